//! DaemonSet → one Pod per eligible Node (node selector, affinity, taints with the tolerations the
//! real controller adds), placed through node affinity as the real controller does, rolled one
//! unavailable pod at a time, with the status `kubectl rollout status ds` reads.

use super::{
    Ctx, counts, deleting, generation, int_or_percent, min_ready_seconds, name, owned_by,
    pod_active, pod_from_template, pod_ready, scheduler, template_hash,
};
use crate::objects::Propagation;
use serde_json::{Value, json};

const HASH_LABEL: &str = "controller-revision-hash";

/// Tolerations every DaemonSet pod gets, so that it runs on nodes others avoid.
fn default_tolerations() -> Vec<Value> {
    [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
    .into_iter()
    .map(|(k, e)| json!({"key": k, "operator": "Exists", "effect": e}))
    .collect()
}

/// The node a DaemonSet pod is for: bound, or pinned by its `matchFields` affinity.
fn target_node(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str().or_else(|| {
        pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0]
            .as_str()
    })
}

pub fn reconcile(cx: &mut Ctx) {
    let nodes = cx.list("", "nodes");
    let pods = cx.list("", "pods");
    for ds in cx.list("apps", "daemonsets") {
        let mine: Vec<&Value> = owned_by(&ds, &pods)
            .into_iter()
            .filter(|p| pod_active(p))
            .collect();
        let hash = template_hash(&ds["spec"]["template"]);
        let mut template = ds["spec"]["template"].clone();
        let tolerations = template["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        template["spec"]["tolerations"] = json!([tolerations, default_tolerations()].concat());
        let probe = json!({"spec": template["spec"]});
        let eligible: Vec<&str> = nodes
            .iter()
            .filter(|n| {
                scheduler::node_matches(&probe, n)
                    && scheduler::untolerated_taint(&probe, n).is_none()
            })
            .map(name)
            .collect();
        let (mut scheduled, mut misscheduled, mut ready, mut available, mut updated) =
            (0, 0, 0, 0, 0);
        let min_ready = min_ready_seconds(&ds);
        for p in &mine {
            match target_node(p) {
                Some(n) if eligible.contains(&n) => {
                    scheduled += 1;
                    ready += i64::from(pod_ready(p));
                    available += i64::from(cx.pod_available(p, min_ready));
                    updated += i64::from(p["metadata"]["labels"][HASH_LABEL] == hash.as_str());
                }
                _ => misscheduled += 1,
            }
        }
        if !deleting(&ds) {
            place(cx, &ds, &template, &hash, &mine, &eligible);
        }
        let desired = eligible.len() as i64;
        let mut status = json!({
            "desiredNumberScheduled": desired, "currentNumberScheduled": scheduled,
            "numberMisscheduled": misscheduled, "numberReady": ready,
        });
        status.as_object_mut().expect("a map").extend(counts(&[
            ("observedGeneration", generation(&ds)),
            ("updatedNumberScheduled", updated),
            ("numberAvailable", available),
            ("numberUnavailable", (desired - available).max(0)),
        ]));
        cx.set_status("apps", "daemonsets", &ds, status);
    }
}

fn place(
    cx: &mut Ctx,
    ds: &Value,
    template: &Value,
    hash: &str,
    mine: &[&Value],
    eligible: &[&str],
) {
    let prefix = format!("{}-", name(ds));
    for node in eligible {
        let on_node: Vec<&&Value> = mine
            .iter()
            .filter(|p| target_node(p) == Some(*node))
            .collect();
        if on_node.is_empty() {
            let mut pod = pod_from_template(ds, template, json!(prefix), &[(HASH_LABEL, hash)]);
            pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!({
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]
            });
            if let Some(pod) = cx.create("", "pods", pod) {
                let message = format!("Created pod: {}", name(&pod));
                cx.event(
                    ds,
                    false,
                    "SuccessfulCreate",
                    &message,
                    "daemonset-controller",
                );
            }
        }
        for extra in on_node.iter().skip(1) {
            cx.delete("", "pods", extra, Propagation::Background);
        }
    }
    for p in mine {
        if target_node(p).is_none_or(|n| !eligible.contains(&n)) {
            cx.delete("", "pods", p, Propagation::Background);
        }
    }
    // RollingUpdate: replace outdated pods while at most maxUnavailable are unavailable.
    if ds["spec"]["updateStrategy"]["type"] == "OnDelete" {
        return;
    }
    let max_unavailable = int_or_percent(
        ds["spec"]["updateStrategy"]["rollingUpdate"]
            .get("maxUnavailable")
            .unwrap_or(&json!(1)),
        eligible.len() as i64,
        true,
    )
    .unwrap_or(1)
    .max(1);
    let mut unavailable =
        eligible.len() as i64 - mine.iter().filter(|p| pod_ready(p)).count() as i64;
    let outdated = mine
        .iter()
        .filter(|p| p["metadata"]["labels"][HASH_LABEL] != hash);
    for p in outdated {
        if !pod_ready(p) {
            cx.delete("", "pods", p, Propagation::Background);
        } else if unavailable < max_unavailable {
            cx.delete("", "pods", p, Propagation::Background);
            unavailable += 1;
        }
    }
}
