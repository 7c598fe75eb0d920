//! `application/vnd.kubernetes.protobuf` request bodies, as kubectl's typed commands (`kubectl
//! create deployment|configmap|namespace|secret|…`) send them: the `k8s\0` magic, a
//! `runtime.Unknown` envelope, and the object in Kubernetes' protobuf encoding. Decoded to JSON for
//! the messages in [`SCHEMA`]; a field outside it is refused with 415 rather than dropped.

use base64::Engine;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::OnceLock;

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The messages this server decodes, by Kubernetes' generated.proto field numbers:
/// `Message: number name type, …` where type is `s` string, `i` integer, `b` bool, `map`
/// string→string, `bytemap` string→base64, `qmap` string→Quantity, `ios` IntOrString, `time`,
/// `drop` (status, which a write does not take), another message, or `[T]` repeated. Go encodes
/// every non-pointer field, so zero values are left out as its JSON encoding leaves them out;
/// `?` marks pointer fields, whose zero values mean something and are kept.
const SCHEMA: &str = "
ObjectMeta: 1 name s, 2 generateName s, 3 namespace s, 4 selfLink s, 5 uid s, 6 resourceVersion s, 7 generation i, 8 creationTimestamp time, 9 deletionTimestamp time, 10 deletionGracePeriodSeconds i?, 11 labels map, 12 annotations map, 13 ownerReferences [OwnerReference], 14 finalizers [s]
OwnerReference: 1 kind s, 3 name s, 4 uid s, 5 apiVersion s, 6 controller b?, 7 blockOwnerDeletion b?
LabelSelector: 1 matchLabels map, 2 matchExpressions [LabelSelectorRequirement]
LabelSelectorRequirement: 1 key s, 2 operator s, 3 values [s]
ObjectReference: 1 kind s, 2 namespace s, 3 name s, 4 uid s, 5 apiVersion s, 6 resourceVersion s, 7 fieldPath s
LocalObjectReference: 1 name s
PodTemplateSpec: 1 metadata ObjectMeta, 2 spec PodSpec
PodSpec: 2 containers [Container], 3 restartPolicy s, 4 terminationGracePeriodSeconds i?, 5 activeDeadlineSeconds i?, 6 dnsPolicy s, 7 nodeSelector map, 8 serviceAccountName s, 9 serviceAccount s, 10 nodeName s, 11 hostNetwork b, 15 imagePullSecrets [LocalObjectReference], 16 hostname s, 17 subdomain s, 19 schedulerName s, 20 initContainers [Container], 21 automountServiceAccountToken b?, 22 tolerations [Toleration], 24 priorityClassName s, 25 priority i?, 30 enableServiceLinks b?
Container: 1 name s, 2 image s, 3 command [s], 4 args [s], 5 workingDir s, 6 ports [ContainerPort], 7 env [EnvVar], 8 resources ResourceRequirements, 13 terminationMessagePath s, 14 imagePullPolicy s, 16 stdin b, 17 stdinOnce b, 18 tty b, 20 terminationMessagePolicy s
ContainerPort: 1 name s, 2 hostPort i, 3 containerPort i, 4 protocol s, 5 hostIP s
EnvVar: 1 name s, 2 value s
ResourceRequirements: 1 limits qmap, 2 requests qmap
Toleration: 1 key s, 2 operator s, 3 value s, 4 effect s, 5 tolerationSeconds i?
Deployment: 1 metadata ObjectMeta, 2 spec DeploymentSpec, 3 status drop
DeploymentSpec: 1 replicas i?, 2 selector LabelSelector, 3 template PodTemplateSpec, 4 strategy DeploymentStrategy, 5 minReadySeconds i, 6 revisionHistoryLimit i?, 7 paused b, 9 progressDeadlineSeconds i?
DeploymentStrategy: 1 type s, 2 rollingUpdate RollingUpdateDeployment
RollingUpdateDeployment: 1 maxUnavailable ios, 2 maxSurge ios
ConfigMap: 1 metadata ObjectMeta, 2 data map, 3 binaryData bytemap, 4 immutable b?
Secret: 1 metadata ObjectMeta, 2 data bytemap, 3 type s, 4 stringData map, 5 immutable b?
Namespace: 1 metadata ObjectMeta, 2 spec NamespaceSpec, 3 status drop
NamespaceSpec: 1 finalizers [s]
ServiceAccount: 1 metadata ObjectMeta, 2 secrets [ObjectReference], 3 imagePullSecrets [LocalObjectReference], 4 automountServiceAccountToken b?
Service: 1 metadata ObjectMeta, 2 spec ServiceSpec, 3 status drop
ServiceSpec: 1 ports [ServicePort], 2 selector map, 3 clusterIP s, 4 type s, 5 externalIPs [s], 7 sessionAffinity s, 10 externalName s, 11 externalTrafficPolicy s, 17 ipFamilyPolicy s?, 18 clusterIPs [s], 19 ipFamilies [s], 22 internalTrafficPolicy s?
ServicePort: 1 name s, 2 protocol s, 3 port i, 4 targetPort ios, 5 nodePort i, 6 appProtocol s?
PodDisruptionBudget: 1 metadata ObjectMeta, 2 spec PodDisruptionBudgetSpec, 3 status drop
PodDisruptionBudgetSpec: 1 minAvailable ios, 2 selector LabelSelector, 3 maxUnavailable ios, 4 unhealthyPodEvictionPolicy s?
Job: 1 metadata ObjectMeta, 2 spec JobSpec, 3 status drop
JobSpec: 1 parallelism i?, 2 completions i?, 3 activeDeadlineSeconds i?, 4 selector LabelSelector, 5 manualSelector b?, 6 template PodTemplateSpec, 7 backoffLimit i?, 8 ttlSecondsAfterFinished i?, 9 completionMode s?, 10 suspend b?, 14 podReplacementPolicy s?
CronJob: 1 metadata ObjectMeta, 2 spec CronJobSpec, 3 status drop
CronJobSpec: 1 schedule s, 2 startingDeadlineSeconds i?, 3 concurrencyPolicy s, 4 suspend b?, 5 jobTemplate JobTemplateSpec, 6 successfulJobsHistoryLimit i?, 7 failedJobsHistoryLimit i?, 8 timeZone s?
JobTemplateSpec: 1 metadata ObjectMeta, 2 spec JobSpec
Role: 1 metadata ObjectMeta, 2 rules [PolicyRule]
ClusterRole: 1 metadata ObjectMeta, 2 rules [PolicyRule]
PolicyRule: 1 verbs [s], 2 apiGroups [s], 3 resources [s], 4 resourceNames [s], 5 nonResourceURLs [s]
RoleBinding: 1 metadata ObjectMeta, 2 subjects [Subject], 3 roleRef RoleRef
ClusterRoleBinding: 1 metadata ObjectMeta, 2 subjects [Subject], 3 roleRef RoleRef
Subject: 1 kind s, 2 apiGroup s, 3 name s, 4 namespace s
RoleRef: 1 apiGroup s, 2 kind s, 3 name s
ResourceQuota: 1 metadata ObjectMeta, 2 spec ResourceQuotaSpec, 3 status drop
ResourceQuotaSpec: 1 hard qmap, 2 scopes [s]
PriorityClass: 1 metadata ObjectMeta, 2 value i, 3 globalDefault b, 4 description s, 5 preemptionPolicy s?
";

type Fields = HashMap<u64, (&'static str, &'static str)>;

fn schema() -> &'static HashMap<&'static str, Fields> {
    static PARSED: OnceLock<HashMap<&'static str, Fields>> = OnceLock::new();
    PARSED.get_or_init(|| {
        SCHEMA
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(msg, fields)| {
                let fields = fields
                    .split(", ")
                    .map(|f| {
                        let mut parts = f.split(' ');
                        let tag = parts
                            .next()
                            .and_then(|t| t.parse().ok())
                            .expect("schema tags are numbers");
                        let name = parts.next().expect("schema fields are named");
                        let ty = parts.next().expect("schema fields are typed");
                        (tag, (name, ty))
                    })
                    .collect();
                (msg, fields)
            })
            .collect()
    })
}

/// Why a body could not be decoded; the caller answers 415 or 400 with it.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("the protobuf body is malformed: {0}")]
    Malformed(&'static str),
    #[error("clouder-testkube does not decode protobuf for {0}; send it as application/json")]
    Unsupported(String),
}

/// One field off the wire.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &mut &[u8]) -> Result<u64, ProtoError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf
            .split_first()
            .ok_or(ProtoError::Malformed("truncated varint"))?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(ProtoError::Malformed("varint too long"))
}

fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, ProtoError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let wire = match key & 7 {
            0 => Wire::Varint(varint(&mut buf)?),
            2 => {
                let len = usize::try_from(varint(&mut buf)?)
                    .map_err(|_| ProtoError::Malformed("length"))?;
                if len > buf.len() {
                    return Err(ProtoError::Malformed("truncated field"));
                }
                let (bytes, rest) = buf.split_at(len);
                buf = rest;
                Wire::Bytes(bytes)
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                buf = buf
                    .get(n..)
                    .ok_or(ProtoError::Malformed("truncated fixed field"))?;
                Wire::Fixed
            }
            _ => return Err(ProtoError::Malformed("unknown wire type")),
        };
        out.push((key >> 3, wire));
    }
    Ok(out)
}

fn string(w: &Wire) -> Result<String, ProtoError> {
    match w {
        Wire::Bytes(b) => String::from_utf8(b.to_vec())
            .map_err(|_| ProtoError::Malformed("a string is not UTF-8")),
        _ => Err(ProtoError::Malformed("expected a string")),
    }
}

fn bytes<'a>(w: &Wire<'a>) -> Result<&'a [u8], ProtoError> {
    match w {
        Wire::Bytes(b) => Ok(b),
        _ => Err(ProtoError::Malformed("expected a length-delimited field")),
    }
}

fn number(w: &Wire) -> Result<i64, ProtoError> {
    match w {
        // int32 and int64 both travel as two's complement varints.
        Wire::Varint(v) => Ok(*v as i64),
        _ => Err(ProtoError::Malformed("expected a varint")),
    }
}

/// A `map<string, V>` entry: key 1, value 2.
fn entry<'a>(w: &Wire<'a>) -> Result<(String, Option<Wire<'a>>), ProtoError> {
    let mut key = String::new();
    let mut value = None;
    for (tag, f) in fields(bytes(w)?)? {
        match tag {
            1 => key = string(&f)?,
            2 => value = Some(f),
            _ => {}
        }
    }
    Ok((key, value))
}

fn scalar(ty: &str, w: &Wire) -> Result<Value, ProtoError> {
    Ok(match ty {
        "s" => json!(string(w)?),
        "i" => json!(number(w)?),
        "b" => json!(number(w)? != 0),
        "time" => {
            let mut secs = 0;
            for (tag, f) in fields(bytes(w)?)? {
                if tag == 1 {
                    secs = number(&f)?;
                }
            }
            if secs == 0 {
                Value::Null
            } else {
                let t = jiff::Timestamp::from_second(secs)
                    .map_err(|_| ProtoError::Malformed("time out of range"))?;
                json!(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            }
        }
        "ios" => {
            let (mut kind, mut int, mut text) = (0, 0, String::new());
            for (tag, f) in fields(bytes(w)?)? {
                match tag {
                    1 => kind = number(&f)?,
                    2 => int = number(&f)?,
                    3 => text = string(&f)?,
                    _ => {}
                }
            }
            if kind == 1 { json!(text) } else { json!(int) }
        }
        "q" => {
            let mut text = String::new();
            for (tag, f) in fields(bytes(w)?)? {
                if tag == 1 {
                    text = string(&f)?;
                }
            }
            json!(text)
        }
        msg => message(msg, bytes(w)?)?,
    })
}

fn message(name: &str, buf: &[u8]) -> Result<Value, ProtoError> {
    let table = schema()
        .get(name)
        .ok_or_else(|| ProtoError::Unsupported(name.to_string()))?;
    let mut out = Map::new();
    for (tag, w) in fields(buf)? {
        let Some(&(field, ty)) = table.get(&tag) else {
            // A field outside the schema that holds its zero value says nothing: skip it.
            if matches!(w, Wire::Varint(0)) || matches!(w, Wire::Bytes(b) if b.is_empty()) {
                continue;
            }
            return Err(ProtoError::Unsupported(format!("field {tag} of {name}")));
        };
        let (ty, pointer) = match ty.strip_suffix('?') {
            Some(t) => (t, true),
            None => (ty, false),
        };
        let zero = matches!(w, Wire::Varint(0)) || matches!(w, Wire::Bytes(b) if b.is_empty());
        if zero && !pointer && matches!(ty, "s" | "i" | "b") {
            continue;
        }
        let value = match ty {
            "drop" => continue,
            "map" | "bytemap" | "qmap" => {
                let (k, v) = entry(&w)?;
                let v = match (ty, v) {
                    (_, None) => json!(""),
                    ("map", Some(v)) => json!(string(&v)?),
                    ("bytemap", Some(v)) => {
                        json!(base64::engine::general_purpose::STANDARD.encode(bytes(&v)?))
                    }
                    (_, Some(v)) => scalar("q", &v)?,
                };
                out.entry(field).or_insert_with(|| json!({}))[k] = v;
                continue;
            }
            t if t.starts_with('[') => {
                let v = scalar(t.trim_matches(['[', ']']), &w)?;
                match out.entry(field).or_insert_with(|| json!([])) {
                    Value::Array(a) => a.push(v),
                    _ => unreachable!("repeated fields are arrays"),
                }
                continue;
            }
            t => scalar(t, &w)?,
        };
        if !value.is_null() {
            out.insert(field.to_string(), value);
        }
    }
    Ok(Value::Object(out))
}

/// The object in a protobuf request body, as JSON with its `apiVersion` and `kind`.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let envelope = body
        .strip_prefix(b"k8s\0")
        .ok_or(ProtoError::Malformed("missing the k8s magic"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (tag, w) in fields(envelope)? {
        match tag {
            1 => {
                for (t, f) in fields(bytes(&w)?)? {
                    match t {
                        1 => api_version = string(&f)?,
                        2 => kind = string(&f)?,
                        _ => {}
                    }
                }
            }
            2 => raw = bytes(&w)?,
            3 if !string(&w)?.is_empty() => {
                return Err(ProtoError::Unsupported("encoded content".into()));
            }
            _ => {}
        }
    }
    let mut obj = message(&kind, raw)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(tag: u64, wire: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(tag << 3 | wire) as u8];
        if wire == 2 {
            out.push(payload.len() as u8);
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_config_map_envelope() {
        let meta = field(1, 2, b"cm");
        let entry = [field(1, 2, b"k"), field(2, 2, b"v")].concat();
        let cm = [field(1, 2, &meta), field(2, 2, &entry)].concat();
        let type_meta = [field(1, 2, b"v1"), field(2, 2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), field(1, 2, &type_meta), field(2, 2, &cm)].concat();
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn unknown_fields_are_refused_not_dropped() {
        let cm = field(9, 0, &[1]);
        let type_meta = [field(1, 2, b"v1"), field(2, 2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), field(1, 2, &type_meta), field(2, 2, &cm)].concat();
        assert!(
            matches!(decode(&body), Err(ProtoError::Unsupported(m)) if m == "field 9 of ConfigMap")
        );
    }
}
