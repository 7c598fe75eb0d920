//! What create, update and delete do to an object: server-set metadata, generations, namespaces,
//! finalizers and status handling, independent of HTTP.

use crate::apply::{self, Writer};
use crate::crd;
use crate::resources::ResourceType;
use crate::status::ApiError;
use crate::store::{Inner, Key};
use rand::Rng;
use serde_json::{Value, json};

/// Namespaces every cluster starts with.
pub const INITIAL_NAMESPACES: [&str; 4] =
    ["default", "kube-node-lease", "kube-public", "kube-system"];

pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A `MicroTime`, as Leases renew with.
pub fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

pub fn key(rt: &ResourceType, namespace: Option<&str>, name: &str) -> Key {
    Key {
        group: rt.group.clone(),
        version: rt.version.clone(),
        resource: rt.plural.clone(),
        namespace: if rt.namespaced {
            namespace.unwrap_or_default().to_string()
        } else {
            String::new()
        },
        name: name.to_string(),
    }
}

fn is_namespace(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "namespaces"
}

fn namespace_key(name: &str) -> Key {
    Key {
        group: String::new(),
        version: "v1".into(),
        resource: "namespaces".into(),
        namespace: String::new(),
        name: name.into(),
    }
}

/// 404 for a missing namespace and 403 for one being terminated, as the real server answers
/// creates in them.
pub fn require_namespace(
    s: &Inner,
    ns: &str,
    rt: &ResourceType,
    name: &str,
) -> Result<(), ApiError> {
    match s.get(&namespace_key(ns)) {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(n) if n["metadata"].get("deletionTimestamp").is_some() => {
            let mut details = json!({"name": name, "kind": rt.plural, "causes": [{
                "reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"
            }]});
            if !rt.group.is_empty() {
                details["group"] = json!(rt.group);
            }
            Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    crate::status::qualified(&rt.group, &rt.plural)
                ),
            )
            .with_details(details))
        }
        Some(_) => Ok(()),
    }
}

fn random_suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// Whether the object's desired state (everything but metadata and status) differs.
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

/// Resources whose status is kept as sent on create (the rest start from an empty status).
fn keeps_status_on_create(rt: &ResourceType) -> bool {
    rt.group.is_empty()
        && matches!(
            rt.plural.as_str(),
            "nodes" | "persistentvolumes" | "persistentvolumeclaims"
        )
}

/// 400 unless the object and the metadata fields the server writes have the right JSON types.
pub fn check_shape(obj: &Value) -> Result<(), ApiError> {
    let bad = |what: &str| {
        Err(ApiError::bad_request(format!(
            "{what} must be a JSON object"
        )))
    };
    if !obj.is_object() {
        return bad("the object");
    }
    let meta = &obj["metadata"];
    if !(meta.is_object() || meta.is_null()) {
        return bad("metadata");
    }
    for field in ["labels", "annotations"] {
        if !(meta[field].is_object() || meta[field].is_null()) {
            return bad(&format!("metadata.{field}"));
        }
    }
    for field in ["spec", "status"] {
        if !(obj[field].is_object() || obj[field].is_null()) {
            return bad(field);
        }
    }
    Ok(())
}

/// Fills `kind`/`apiVersion` and checks the body's namespace against the path's.
pub fn normalize_body(
    rt: &ResourceType,
    ns: Option<&str>,
    body: &mut Value,
) -> Result<(), ApiError> {
    check_shape(body)?;
    body["kind"] = json!(rt.kind);
    body["apiVersion"] = json!(rt.api_version());
    if !body["metadata"].is_object() {
        body["metadata"] = json!({});
    }
    if rt.namespaced {
        let path_ns = ns.unwrap_or_default();
        match body["metadata"]["namespace"].as_str() {
            Some(b) if !b.is_empty() && b != path_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => body["metadata"]["namespace"] = json!(path_ns),
        }
    } else if let Some(m) = body["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    Ok(())
}

/// POST: a new object with server-set metadata. `dry_run` computes without storing.
pub fn create(
    s: &mut Inner,
    rt: &ResourceType,
    ns: Option<&str>,
    mut body: Value,
    w: &Writer,
) -> Result<Value, ApiError> {
    normalize_body(rt, ns, &mut body)?;
    if rt.namespaced {
        let name = body["metadata"]["name"].as_str().unwrap_or_default();
        require_namespace(s, ns.unwrap_or_default(), rt, name)?;
    }
    let applied_fields = body["metadata"]
        .as_object_mut()
        .and_then(|m| m.remove("managedFields"));
    let meta = &mut body["metadata"];
    let mut name = meta["name"].as_str().unwrap_or_default().to_string();
    if name.is_empty() {
        match meta["generateName"].as_str() {
            Some(prefix) if !prefix.is_empty() => name = format!("{prefix}{}", random_suffix()),
            _ => {
                return Err(ApiError::invalid(
                    &rt.kind,
                    &rt.group,
                    "",
                    "metadata.name",
                    "FieldValueRequired",
                    "Required value: name or generateName is required",
                ));
            }
        }
    }
    let key = key(rt, ns, &name);
    if s.get(&key).is_some() {
        return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
    }
    let now = now();
    let m = meta.as_object_mut().expect("normalized");
    m.insert("name".into(), json!(name));
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(now));
    for server_owned in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    ] {
        m.remove(server_owned);
    }
    if body.get("spec").is_some() || rt.custom {
        body["metadata"]["generation"] = json!(1);
    } else if let Some(m) = body["metadata"].as_object_mut() {
        m.remove("generation");
    }
    crate::schema::drop_empty_optionals(&mut body);
    defaults_on_create(rt, &mut body);
    if crd::is_crd(rt) {
        crd::check_name(&body)?;
        crd::defaults(&mut body, &now);
    }
    if rt.custom {
        crd::validate(s, rt, &mut body)?;
    }
    match applied_fields {
        Some(mf) if w.apply => body["metadata"]["managedFields"] = mf,
        _ => apply::record_update(None, &mut body, w),
    }
    if w.dry_run {
        return Ok(body);
    }
    Ok(s.put(key, body, "ADDED"))
}

/// A Secret's `stringData` is written into `data` (base64), overwriting its keys, and never
/// stored or returned itself, as the real server does on every write.
fn merge_string_data(rt: &ResourceType, body: &mut Value) {
    use base64::Engine as _;
    if !rt.group.is_empty() || rt.plural != "secrets" {
        return;
    }
    let Some(Value::Object(strings)) = body.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return;
    };
    if !body["data"].is_object() {
        body["data"] = json!({});
    }
    for (k, v) in strings {
        let text = v.as_str().unwrap_or_default();
        body["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// The API server's defaults for the fields of workload specs that clients and controllers read.
fn workload_defaults(rt: &ResourceType, body: &mut Value) {
    if rt.group != "apps" || !body["spec"].is_object() {
        return;
    }
    let spec = &mut body["spec"];
    fn default(spec: &mut Value, field: &str, v: Value) {
        if spec.get(field).is_none_or(Value::is_null) {
            spec[field] = v;
        }
    }
    match rt.plural.as_str() {
        "deployments" => {
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            default_strategy(
                &mut spec["strategy"],
                json!({"maxUnavailable": "25%", "maxSurge": "25%"}),
            );
        }
        "replicasets" => default(spec, "replicas", json!(1)),
        "statefulsets" => {
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            default_strategy(&mut spec["updateStrategy"], json!({"partition": 0}));
            default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
        }
        "daemonsets" => {
            default(spec, "revisionHistoryLimit", json!(10));
            default_strategy(
                &mut spec["updateStrategy"],
                json!({"maxUnavailable": 1, "maxSurge": 0}),
            );
        }
        _ => {}
    }
}

/// A strategy defaults to RollingUpdate, whose parameters default too.
fn default_strategy(strategy: &mut Value, rolling: Value) {
    if !strategy.is_object() {
        *strategy = json!({});
    }
    if strategy.get("type").is_none_or(Value::is_null) {
        strategy["type"] = json!("RollingUpdate");
    }
    if strategy["type"] == "RollingUpdate"
        && strategy.get("rollingUpdate").is_none_or(Value::is_null)
    {
        strategy["rollingUpdate"] = rolling;
    }
}

/// The `DefaultTolerationSeconds` admission plugin: a pod that does not tolerate the not-ready
/// and unreachable NoExecute taints tolerates them for 300 s, so that the taint manager evicts it
/// five minutes after its Node stops being Ready.
fn default_toleration_seconds(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    let tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    let mut added = tolerations.clone();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = tolerations.iter().any(|t| {
            (t["key"] == key || t["key"].as_str().is_none_or(str::is_empty))
                && (t["effect"] == "NoExecute" || t["effect"].as_str().is_none_or(str::is_empty))
        });
        if !tolerated {
            added.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    if added != tolerations {
        spec["tolerations"] = json!(added);
    }
}

fn defaults_on_create(rt: &ResourceType, body: &mut Value) {
    workload_defaults(rt, body);
    merge_string_data(rt, body);
    if rt.status
        && !keeps_status_on_create(rt)
        && let Some(m) = body.as_object_mut()
    {
        m.remove("status");
    }
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            let name = body["metadata"]["name"].clone();
            body["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            body["spec"] = json!({"finalizers": ["kubernetes"]});
            body["status"] = json!({"phase": "Active"});
        }
        ("", "pods") => {
            body["status"] = json!({"phase": "Pending"});
            default_toleration_seconds(&mut body["spec"]);
        }
        ("", "secrets") if body["type"].as_str().is_none_or(str::is_empty) => {
            body["type"] = json!("Opaque")
        }
        _ => {}
    }
}

/// Stores `new` as the next version of `old`: keeps server-owned metadata and, unless writing
/// through `status`, the status; bumps `generation` when the spec changed; finishes a deletion
/// once the last finalizer is gone. An update that changes nothing is not stored.
pub fn commit_update(
    s: &mut Inner,
    rt: &ResourceType,
    key: Key,
    old: &Value,
    mut new: Value,
    w: &Writer,
) -> Result<Value, ApiError> {
    check_shape(&new)?;
    if !new["metadata"].is_object() {
        new["metadata"] = json!({});
    }
    let subresource = w.subresource;
    let rv = new["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    if !rv.is_empty() && Some(rv) != old["metadata"]["resourceVersion"].as_str() {
        return Err(ApiError::conflict(&rt.group, &rt.plural, &key.name));
    }
    if subresource == Some("status") {
        let status = new.get("status").cloned();
        // Server-side apply to status computed its own managedFields; keep them.
        let managed = new["metadata"]
            .get("managedFields")
            .cloned()
            .filter(|_| w.apply);
        new = old.clone();
        if let Some(mf) = managed {
            new["metadata"]["managedFields"] = mf;
        }
        match status {
            Some(st) => new["status"] = st,
            None => {
                new.as_object_mut()
                    .expect("objects are maps")
                    .remove("status");
            }
        }
    } else if rt.status {
        match old.get("status") {
            Some(st) => new["status"] = st.clone(),
            None => {
                new.as_object_mut()
                    .expect("objects are maps")
                    .remove("status");
            }
        }
    }
    new["kind"] = json!(rt.kind);
    new["apiVersion"] = json!(rt.api_version());
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ] {
        match old["metadata"].get(field) {
            Some(v) => new["metadata"][field] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(field);
                }
            }
        }
    }
    crate::schema::drop_empty_optionals(&mut new);
    workload_defaults(rt, &mut new);
    merge_string_data(rt, &mut new);
    if old["metadata"].get("generation").is_some() && spec_changed(old, &new) {
        new["metadata"]["generation"] =
            json!(old["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
    }
    if rt.custom {
        crd::validate(s, rt, &mut new)?;
    }
    if !w.apply {
        apply::record_update(Some(old), &mut new, w);
    }
    if new == *old || w.dry_run {
        return Ok(new);
    }
    // A namespace is also held by its `spec.finalizers` until the namespace controller clears them.
    let empty = |f: &Value| f.as_array().is_none_or(|f| f.is_empty());
    let finalizers_empty = empty(&new["metadata"]["finalizers"])
        && (!is_namespace(rt) || empty(&new["spec"]["finalizers"]));
    // A pod in its grace period is removed by its kubelet, not by an update (shouldDeleteDuringUpdate).
    let graceful = new["metadata"]["deletionGracePeriodSeconds"]
        .as_i64()
        .is_some_and(|g| g > 0);
    if new["metadata"].get("deletionTimestamp").is_some() && finalizers_empty && !graceful {
        s.put(key.clone(), new, "MODIFIED");
        let removed = s.remove(&key).expect("just stored");
        if crd::is_crd(rt) {
            remove_custom_resources(s, &removed);
        }
        return Ok(removed);
    }
    Ok(s.put(key, new, "MODIFIED"))
}

/// What happens to an object's dependents (objects naming it in `ownerReferences`) on delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// The owner goes now; the garbage collector deletes the dependents afterwards.
    #[default]
    Background,
    /// The owner stays (finalizer `foregroundDeletion`) until its blocking dependents are gone.
    Foreground,
    /// The owner goes once its dependents no longer name it (finalizer `orphan`).
    Orphan,
}

impl Propagation {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "Background" => Ok(Self::Background),
            "Foreground" => Ok(Self::Foreground),
            "Orphan" => Ok(Self::Orphan),
            other => Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            ))),
        }
    }

    fn finalizer(self) -> Option<&'static str> {
        match self {
            Self::Background => None,
            Self::Foreground => Some(FOREGROUND),
            Self::Orphan => Some(ORPHAN),
        }
    }
}

/// Finalizers the garbage collector acts on.
pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// How a DELETE asks for its object to go.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub propagation: Propagation,
    /// `gracePeriodSeconds`; absent, a pod gets its `terminationGracePeriodSeconds`.
    pub grace: Option<i64>,
}

fn is_pod(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "pods"
}

/// The grace period a pod's deletion gets, as the pod strategy's `CheckGracefulDelete`: the
/// request's, else the pod's own (default 30 s); none for a pod no kubelet has (unbound) or a
/// finished one. Negative values count as 1 s.
fn pod_grace(pod: &Value, requested: Option<i64>) -> i64 {
    let unbound = pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
    let finished = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if unbound || finished {
        return 0;
    }
    let grace = requested.unwrap_or_else(|| {
        pod["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(30)
    });
    if grace < 0 { 1 } else { grace }
}

/// `timestamp` moved by `seconds`, in the API's second precision.
fn shifted(timestamp: &str, seconds: i64) -> String {
    let t: jiff::Timestamp = timestamp.parse().unwrap_or_else(|_| jiff::Timestamp::now());
    let t = t
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or(t);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Graceful deletion of a pod, as BeforeDelete and the store do it: the pod is marked
/// (`deletionTimestamp` = now + grace, `deletionGracePeriodSeconds`) and stored — watchers see
/// it MODIFIED — then left for its kubelet while the grace period is above 0 or finalizers hold
/// it (`Some`, the answer); with grace 0 and no finalizers it goes now (`None`). A second DELETE
/// may only shorten the grace period; one that does not is answered with the pod as it is.
fn graceful_pod_delete(
    s: &mut Inner,
    key: &Key,
    obj: &mut Value,
    opts: &DeleteOptions,
) -> Option<Value> {
    let meta = &obj["metadata"];
    let grace = if let Some(ts) = meta["deletionTimestamp"].as_str() {
        let current = meta["deletionGracePeriodSeconds"].as_i64().unwrap_or(0);
        if current == 0 {
            // Already at 0 (held by finalizers): no update, the deletion goes on as it is.
            return None;
        }
        let Some(mut shorter) = opts.grace.map(|g| g.max(0)).filter(|g| *g < current) else {
            // Pending: the DeleteOptions change nothing, finalizers included.
            return s.get(key).cloned();
        };
        // Never into the past: a grace period already over becomes "now", still graceful
        // (1 s) unless 0 was asked for.
        let mut deadline = shifted(ts, shorter - current);
        let now = now();
        if deadline < now {
            deadline = now;
            if shorter != 0 {
                shorter = 1;
            }
        }
        let m = &mut obj["metadata"];
        m["deletionTimestamp"] = json!(deadline);
        m["deletionGracePeriodSeconds"] = json!(shorter);
        shorter
    } else {
        let grace = pod_grace(obj, opts.grace);
        let m = &mut obj["metadata"];
        m["deletionTimestamp"] = json!(shifted(&now(), grace));
        m["deletionGracePeriodSeconds"] = json!(grace);
        // The first mark moves the generation on, as BeforeDelete does.
        if let Some(g) = m["generation"].as_i64() {
            m["generation"] = json!(g + 1);
        }
        grace
    };
    let marked = s.put(key.clone(), obj.clone(), "MODIFIED");
    (grace > 0 || has_finalizers(obj)).then_some(marked)
}

fn has_finalizers(obj: &Value) -> bool {
    obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

/// DELETE: objects with finalizers are marked and kept; a pod bound to a node is marked for its
/// kubelet (graceful deletion); the rest go at once. Deleting a namespace removes everything in it.
pub fn delete(
    s: &mut Inner,
    rt: &ResourceType,
    key: &Key,
    opts: DeleteOptions,
) -> Result<Value, ApiError> {
    let Some(obj) = s.get(key).cloned() else {
        return Err(ApiError::not_found(&rt.group, &rt.plural, &key.name));
    };
    if opts.dry_run {
        return Ok(obj);
    }
    if is_namespace(rt) {
        // Terminating first; the namespace controller removes the contents, then the namespace.
        if obj["metadata"].get("deletionTimestamp").is_some() {
            return Ok(obj);
        }
        let mut ns = obj;
        ns["metadata"]["deletionTimestamp"] = json!(now());
        ns["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        ns["status"]["phase"] = json!("Terminating");
        return Ok(s.put(key.clone(), ns, "MODIFIED"));
    }
    let mut obj = obj;
    if let Some(f) = opts.propagation.finalizer() {
        let list = &mut obj["metadata"]["finalizers"];
        if !list.is_array() {
            *list = json!([]);
        }
        let list = list.as_array_mut().expect("just made an array");
        if !list.iter().any(|x| x == f) {
            list.push(json!(f));
        }
    }
    if is_pod(rt)
        && let Some(answer) = graceful_pod_delete(s, key, &mut obj, &opts)
    {
        return Ok(answer);
    }
    if has_finalizers(&obj) {
        if let Some(live) = s.get(key)
            && live["metadata"].get("deletionTimestamp").is_some()
        {
            return if *live != obj {
                Ok(s.put(key.clone(), obj, "MODIFIED"))
            } else {
                Ok(obj)
            };
        }
        let mut marked = obj;
        if marked["metadata"].get("deletionTimestamp").is_none() {
            marked["metadata"]["deletionTimestamp"] = json!(now());
        }
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if marked["metadata"].get("generation").is_some() {
            marked["metadata"]["generation"] =
                json!(marked["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
        }
        return Ok(s.put(key.clone(), marked, "MODIFIED"));
    }
    let removed = s.remove(key).expect("checked above");
    if crd::is_crd(rt) {
        remove_custom_resources(s, &removed);
    }
    Ok(removed)
}

/// A CRD takes its custom resources with it.
fn remove_custom_resources(s: &mut Inner, crd: &Value) {
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
    let keys: Vec<Key> = s
        .all_keys()
        .into_iter()
        .filter(|k| k.group == group && k.resource == plural)
        .collect();
    for k in keys {
        s.remove(&k);
    }
}

/// The namespaces a fresh server starts with.
pub fn seed(s: &mut Inner, namespaces: &ResourceType) {
    let now = now();
    let w = Writer {
        manager: "kube-apiserver",
        api_version: "v1",
        subresource: None,
        now: &now,
        apply: false,
        dry_run: false,
    };
    for ns in INITIAL_NAMESPACES {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        create(s, namespaces, None, body, &w).expect("a fresh store has no namespaces");
    }
}
