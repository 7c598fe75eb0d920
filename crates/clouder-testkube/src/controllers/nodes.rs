//! Node lifecycle: taints that follow a Node's Ready condition and `spec.unschedulable`, pods on a
//! NotReady Node marked Ready=False; the taint manager, which evicts pods that do not tolerate a
//! NoExecute taint of their Node (after their `tolerationSeconds`); and the pod GC, which
//! force-deletes pods bound to a Node that is gone, and terminating pods on a Node taken out of
//! service.

use super::{Ctx, condition, condition_true, deleting, name, namespace, scheduler};
use crate::objects::DeleteOptions;
use serde_json::{Value, json};
use std::collections::HashMap;

const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

pub fn reconcile(cx: &mut Ctx) {
    let nodes = cx.list("", "nodes");
    for node in &nodes {
        taint(cx, node);
    }
    // With the taints just written.
    let nodes: HashMap<String, Value> = cx
        .list("", "nodes")
        .into_iter()
        .map(|n| (name(&n).to_string(), n))
        .collect();
    for pod in cx.list("", "pods") {
        let Some(node) = pod["spec"]["nodeName"].as_str() else {
            continue;
        };
        let Some(node) = nodes.get(node) else {
            pod_gc(cx, &pod, "PodGC: node no longer exists");
            continue;
        };
        let out_of_service = no_execute(node).any(|t| t["key"] == OUT_OF_SERVICE);
        if deleting(&pod) {
            if out_of_service && !condition_true(node, "Ready") {
                pod_gc(cx, &pod, "PodGC: node is out of service");
            }
            continue;
        }
        if !condition_true(node, "Ready")
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
        if evict_due(cx, &pod, node) {
            let live = cx.get("", "pods", &pod).unwrap_or(pod);
            evict(cx, &live);
        }
    }
}

fn no_execute(node: &Value) -> impl Iterator<Item = &Value> {
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["effect"] == "NoExecute")
}

/// Whether the taint manager evicts `pod` now: a NoExecute taint it does not tolerate, or one it
/// tolerates for `tolerationSeconds` that have passed since the taint was added (the shortest of
/// the tolerations in use, as the real one counts).
fn evict_due(cx: &mut Ctx, pod: &Value, node: &Value) -> bool {
    let taints: Vec<&Value> = no_execute(node).collect();
    if taints.is_empty() {
        return false;
    }
    if taints.iter().any(|t| !scheduler::tolerates(pod, t)) {
        return true;
    }
    let limit = pod["spec"]["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|tol| taints.iter().any(|t| scheduler::toleration_matches(tol, t)))
        .filter_map(|tol| tol["tolerationSeconds"].as_i64())
        .min();
    let Some(seconds) = limit else {
        return false;
    };
    // From when the taint was added: the oldest NoExecute taint started the clock.
    let since = taints
        .iter()
        .filter_map(|t| t["timeAdded"].as_str())
        .min()
        .map(String::from);
    let since = since.unwrap_or_else(|| cx.now.clone());
    cx.elapsed(Some(&since), seconds.max(0))
}

/// The taint manager's eviction: the pod marked as a disruption target, then deleted (gracefully).
fn evict(cx: &mut Ctx, pod: &Value) {
    let message = format!("Marking for deletion Pod {}/{}", namespace(pod), name(pod));
    cx.event(
        pod,
        false,
        "TaintManagerEviction",
        &message,
        "taint-eviction-controller",
    );
    cx.set_pod_condition(
        pod,
        "DisruptionTarget",
        true,
        "DeletionByTaintManager",
        "Taint manager: deleting due to NoExecute taint",
        "kube-controller-manager",
    );
    cx.delete_with("", "pods", pod, DeleteOptions::default());
}

/// The pod GC's force deletion: the pod marked Failed as a disruption target, then deleted with
/// grace period 0, since no kubelet will finish it.
fn pod_gc(cx: &mut Ctx, pod: &Value, message: &str) {
    if !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) {
        let mut failed = pod.clone();
        failed["status"]["phase"] = json!("Failed");
        cx.write("", "pods", pod, failed, "kube-controller-manager", true);
    }
    if let Some(live) = cx.get("", "pods", pod) {
        cx.set_pod_condition(
            &live,
            "DisruptionTarget",
            true,
            "DeletionByPodGC",
            message,
            "kube-controller-manager",
        );
    }
    let force = DeleteOptions {
        grace: Some(0),
        ..Default::default()
    };
    cx.delete_with("", "pods", pod, force);
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
