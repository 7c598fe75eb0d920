//! The scheduler: binds each pending pod to a Ready Node that tolerates it, matches its node
//! selector and required node affinity, and has room for its requests; the least loaded wins.
//! A pod that fits nowhere gets `PodScheduled=False/Unschedulable` with the real message's shape.

use super::{Ctx, condition, condition_true, deleting, name, pod_active};
use crate::selectors::labels_of;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

pub const NAME: &str = "default-scheduler";

pub fn reconcile(cx: &mut Ctx) {
    let nodes = cx.list("", "nodes");
    let pods = cx.list("", "pods");
    let mut used: HashMap<String, Resources> = HashMap::new();
    for p in &pods {
        if let Some(n) = p["spec"]["nodeName"].as_str()
            && pod_active(p)
        {
            used.entry(n.to_string()).or_default().add(&requests(p));
        }
    }
    for pod in &pods {
        let unbound = pod["spec"].get("nodeName").is_none_or(Value::is_null);
        let ours = pod["spec"]["schedulerName"]
            .as_str()
            .is_none_or(|s| s == NAME);
        if !unbound || !ours || deleting(pod) {
            continue;
        }
        let want = requests(pod);
        let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
        let mut best: Option<(f64, &Value)> = None;
        for node in &nodes {
            let load = used.get(name(node)).cloned().unwrap_or_default();
            match fits(pod, node, &load, &want) {
                Err(why) => *refusals.entry(why).or_default() += 1,
                Ok(score) => {
                    if best.is_none_or(|(b, _)| score < b) {
                        best = Some((score, node));
                    }
                }
            }
        }
        match best {
            Some((_, node)) => {
                used.entry(name(node).to_string()).or_default().add(&want);
                bind(cx, pod, name(node));
            }
            None => unschedulable(cx, pod, nodes.len(), &refusals),
        }
    }
}

/// CPU in millicores, memory and ephemeral storage in bytes, and a pod count.
#[derive(Debug, Default, Clone, PartialEq)]
struct Resources {
    cpu: f64,
    memory: f64,
    storage: f64,
    pods: f64,
}

impl Resources {
    fn add(&mut self, r: &Resources) {
        self.cpu += r.cpu;
        self.memory += r.memory;
        self.storage += r.storage;
        self.pods += r.pods;
    }

    fn from_list(list: &Value) -> Self {
        let q = |k: &str| list[k].as_str().map(quantity).or_else(|| list[k].as_f64());
        Self {
            cpu: q("cpu").map_or(0.0, |c| c * 1000.0),
            memory: q("memory").unwrap_or(0.0),
            storage: q("ephemeral-storage").unwrap_or(0.0),
            pods: q("pods").unwrap_or(0.0),
        }
    }
}

/// A pod's requests: the sum over its containers, or the largest init container if larger.
fn requests(pod: &Value) -> Resources {
    let of = |field: &str| -> Vec<Resources> {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| Resources::from_list(&c["resources"]["requests"]))
            .collect()
    };
    let mut total = Resources::default();
    of("containers").iter().for_each(|r| total.add(r));
    for init in of("initContainers") {
        total.cpu = total.cpu.max(init.cpu);
        total.memory = total.memory.max(init.memory);
        total.storage = total.storage.max(init.storage);
    }
    total.pods = 1.0;
    total
}

/// A Kubernetes quantity (`100m`, `1.5`, `128Mi`, `1G`, `1e3`) as a number of base units.
pub fn quantity(s: &str) -> f64 {
    let s = s.trim();
    let suffixes: [(&str, f64); 14] = [
        ("Ki", 1024.0),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    for (suffix, factor) in suffixes {
        if let Some(n) = s.strip_suffix(suffix) {
            return n.parse::<f64>().unwrap_or(0.0) * factor;
        }
    }
    s.parse().unwrap_or(0.0)
}

/// Whether `pod` tolerates `taint`.
pub fn tolerates(pod: &Value, taint: &Value) -> bool {
    pod["spec"]["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| toleration_matches(t, taint))
}

/// Whether one toleration covers `taint`: key (or an empty key with Exists), value, effect.
pub fn toleration_matches(t: &Value, taint: &Value) -> bool {
    let key_ok = t["key"].as_str().is_none_or(str::is_empty) && t["operator"] == "Exists"
        || t["key"] == taint["key"]
            && (t["operator"] == "Exists"
                || t["value"].as_str().unwrap_or("") == taint["value"].as_str().unwrap_or(""));
    let effect_ok =
        t["effect"].as_str().is_none_or(str::is_empty) || t["effect"] == taint["effect"];
    key_ok && effect_ok
}

/// The first taint that keeps `pod` off `node` (NoSchedule and NoExecute; PreferNoSchedule is a preference).
pub fn untolerated_taint<'n>(pod: &Value, node: &'n Value) -> Option<&'n Value> {
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| {
            matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute")) && !tolerates(pod, t)
        })
}

/// `nodeSelector` and required node affinity (`matchExpressions` on labels, `matchFields` on the name).
pub fn node_matches(pod: &Value, node: &Value) -> bool {
    let labels = labels_of(node);
    let selector_ok = pod["spec"]["nodeSelector"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        .as_array();
    let affinity_ok = terms.is_none_or(|terms| {
        terms.iter().any(|term| {
            let fields = BTreeMap::from([("metadata.name".to_string(), name(node).to_string())]);
            requirements_hold(&term["matchExpressions"], &labels)
                && requirements_hold(&term["matchFields"], &fields)
        })
    });
    selector_ok && affinity_ok
}

fn requirements_hold(reqs: &Value, values: &BTreeMap<String, String>) -> bool {
    reqs.as_array().into_iter().flatten().all(|r| {
        let have = r["key"].as_str().and_then(|k| values.get(k));
        let list: Vec<&str> = r["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let num = |s: &str| s.parse::<i64>().ok();
        match r["operator"].as_str() {
            Some("In") => have.is_some_and(|v| list.contains(&v.as_str())),
            Some("NotIn") => have.is_none_or(|v| !list.contains(&v.as_str())),
            Some("Exists") => have.is_some(),
            Some("DoesNotExist") => have.is_none(),
            Some("Gt") => matches!((have.and_then(|v| num(v)), list.first().and_then(|v| num(v))), (Some(a), Some(b)) if a > b),
            Some("Lt") => matches!((have.and_then(|v| num(v)), list.first().and_then(|v| num(v))), (Some(a), Some(b)) if a < b),
            _ => false,
        }
    })
}

/// Ok(load after placing the pod, lower is better) or the reason the node was refused, worded as
/// the scheduler's FailedScheduling message words it.
fn fits(pod: &Value, node: &Value, load: &Resources, want: &Resources) -> Result<f64, String> {
    if let Some(t) = untolerated_taint(pod, node) {
        return Err(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t["key"].as_str().unwrap_or_default(),
            t["value"].as_str().unwrap_or_default()
        ));
    }
    if !condition_true(node, "Ready") {
        return Err("node(s) were not ready".into());
    }
    if !node_matches(pod, node) {
        return Err("node(s) didn't match Pod's node affinity/selector".into());
    }
    let cap = Resources::from_list(&node["status"]["allocatable"]);
    let over = |used: f64, want: f64, cap: f64| want > 0.0 && used + want > cap;
    if over(load.pods, 1.0, cap.pods) {
        return Err("Too many pods".into());
    }
    if over(load.cpu, want.cpu, cap.cpu) {
        return Err("Insufficient cpu".into());
    }
    if over(load.memory, want.memory, cap.memory) {
        return Err("Insufficient memory".into());
    }
    if over(load.storage, want.storage, cap.storage) {
        return Err("Insufficient ephemeral-storage".into());
    }
    let frac = |u: f64, w: f64, c: f64| if c > 0.0 { (u + w) / c } else { 0.0 };
    Ok(frac(load.cpu, want.cpu, cap.cpu)
        + frac(load.memory, want.memory, cap.memory)
        + frac(load.pods, 1.0, cap.pods))
}

/// What a Binding does: `spec.nodeName` and `PodScheduled=True`.
fn bind(cx: &mut Ctx, pod: &Value, node: &str) {
    let mut bound = pod.clone();
    bound["spec"]["nodeName"] = json!(node);
    cx.write("", "pods", pod, bound, "kube-scheduler", false);
    let Some(live) = cx.get("", "pods", pod) else {
        return;
    };
    cx.set_pod_condition(&live, "PodScheduled", true, "", "", "kube-scheduler");
    let message = format!(
        "Successfully assigned {}/{} to {node}",
        super::namespace(pod),
        name(pod)
    );
    cx.event(pod, false, "Scheduled", &message, NAME);
}

fn unschedulable(cx: &mut Ctx, pod: &Value, nodes: usize, refusals: &BTreeMap<String, usize>) {
    let mut reasons: Vec<String> = refusals
        .iter()
        .map(|(why, n)| format!("{n} {why}"))
        .collect();
    reasons.sort();
    let message = if reasons.is_empty() {
        format!("0/{nodes} nodes are available.")
    } else {
        format!("0/{nodes} nodes are available: {}.", reasons.join(", "))
    };
    let same = condition(pod, "PodScheduled")
        .is_some_and(|c| c["status"] == "False" && c["message"] == message.as_str());
    if same {
        return;
    }
    cx.set_pod_condition(
        pod,
        "PodScheduled",
        false,
        "Unschedulable",
        &message,
        "kube-scheduler",
    );
    cx.event(pod, true, "FailedScheduling", &message, NAME);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity("100m"), 0.1);
        assert_eq!(quantity("2"), 2.0);
        assert_eq!(quantity("128Mi"), 128.0 * 1024.0 * 1024.0);
        assert_eq!(quantity("1G"), 1e9);
        assert_eq!(quantity("1e3"), 1000.0);
    }

    #[test]
    fn tolerations_match_key_value_and_effect() {
        let taint = json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"});
        let pod = |t: Value| json!({"spec": {"tolerations": [t]}});
        assert!(tolerates(
            &pod(json!({"key": "dedicated", "operator": "Equal", "value": "db"})),
            &taint
        ));
        assert!(tolerates(
            &pod(json!({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"})),
            &taint
        ));
        assert!(tolerates(&pod(json!({"operator": "Exists"})), &taint));
        assert!(!tolerates(
            &pod(json!({"key": "dedicated", "value": "web"})),
            &taint
        ));
        assert!(!tolerates(
            &pod(json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"})),
            &taint
        ));
    }

    #[test]
    fn node_affinity_by_labels_and_name() {
        let node = json!({"metadata": {"name": "n1", "labels": {"zone": "a"}}});
        let pod = |term: Value| json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}}});
        assert!(node_matches(
            &pod(
                json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]})
            ),
            &node
        ));
        assert!(!node_matches(
            &pod(
                json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]})
            ),
            &node
        ));
        assert!(node_matches(
            &pod(
                json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]})
            ),
            &node
        ));
        assert!(!node_matches(
            &json!({"spec": {"nodeSelector": {"zone": "b"}}}),
            &node
        ));
    }
}
