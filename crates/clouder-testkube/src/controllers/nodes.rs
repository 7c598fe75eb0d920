//! Node lifecycle: taints that follow a Node's Ready condition and `spec.unschedulable`, pods on a
//! NotReady Node marked Ready=False, and pods bound to a Node that is gone deleted (pod GC).

use super::{Ctx, condition, condition_true, name};
use crate::objects::Propagation;
use serde_json::{Value, json};
use std::collections::HashSet;

const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

pub fn reconcile(cx: &mut Ctx) {
    let nodes = cx.list("", "nodes");
    let mut not_ready = HashSet::new();
    for node in &nodes {
        if !condition_true(node, "Ready") {
            not_ready.insert(name(node).to_string());
        }
        taint(cx, node);
    }
    let present: HashSet<&str> = nodes.iter().map(name).collect();
    for pod in cx.list("", "pods") {
        let Some(node) = pod["spec"]["nodeName"].as_str() else {
            continue;
        };
        if !present.contains(node) {
            cx.delete("", "pods", &pod, Propagation::Background);
        } else if not_ready.contains(node)
            && condition(&pod, "Ready").is_some_and(|c| c["status"] != "False")
        {
            cx.set_pod_condition(
                &pod,
                "Ready",
                false,
                "NodeNotReady",
                "",
                super::CONTROLLER_MANAGER,
            );
        }
    }
}

/// The taints the node lifecycle controller keeps in step with the Node's conditions.
fn wanted_taints(node: &Value) -> Vec<(&'static str, &'static str)> {
    let mut want = Vec::new();
    match condition(node, "Ready").map(|c| c["status"].as_str().unwrap_or_default()) {
        Some("True") => {}
        Some("False") => want.extend([(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")]),
        _ => want.extend([(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]),
    }
    if node["spec"]["unschedulable"] == true {
        want.push((UNSCHEDULABLE, "NoSchedule"));
    }
    want
}

fn taint(cx: &mut Ctx, node: &Value) {
    let managed = [NOT_READY, UNREACHABLE, UNSCHEDULABLE];
    let want = wanted_taints(node);
    let current: Vec<Value> = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut next: Vec<Value> = current
        .iter()
        .filter(|t| {
            let key = t["key"].as_str().unwrap_or_default();
            !managed.contains(&key) || want.iter().any(|(k, e)| *k == key && t["effect"] == *e)
        })
        .cloned()
        .collect();
    for (k, e) in &want {
        if !next.iter().any(|t| t["key"] == *k && t["effect"] == *e) {
            let mut t = json!({"key": k, "effect": e});
            if *e == "NoExecute" {
                t["timeAdded"] = json!(cx.now);
            }
            next.push(t);
        }
    }
    if next != current {
        let mut new = node.clone();
        if next.is_empty() {
            if let Some(spec) = new["spec"].as_object_mut() {
                spec.remove("taints");
            }
        } else {
            new["spec"]["taints"] = json!(next);
        }
        cx.update("", "nodes", node, new);
    }
}
