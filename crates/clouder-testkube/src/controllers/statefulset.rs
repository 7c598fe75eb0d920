//! StatefulSet → Pods `NAME-0..N-1` with their PersistentVolumeClaims. OrderedReady creates the next
//! pod only once every earlier one is Running and Ready and removes from the highest ordinal down;
//! Parallel does both at once. RollingUpdate replaces outdated pods from the highest ordinal down to
//! the partition, one at a time.

use super::{
    Ctx, counts, deleting, generation, min_ready_seconds, name, namespace, owned_by,
    pod_from_template, pod_ready, replicas, template_hash,
};
use crate::objects::Propagation;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const REVISION_LABEL: &str = "controller-revision-hash";

fn ordinal(sts: &Value, pod: &Value) -> Option<i64> {
    name(pod)
        .strip_prefix(&format!("{}-", name(sts)))?
        .parse()
        .ok()
}

fn running_and_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && pod_ready(pod)
}

pub fn reconcile(cx: &mut Ctx) {
    let pods = cx.list("", "pods");
    for sts in cx.list("apps", "statefulsets") {
        let by_ordinal: BTreeMap<i64, &Value> = owned_by(&sts, &pods)
            .into_iter()
            .filter_map(|p| Some((ordinal(&sts, p)?, p)))
            .collect();
        let revision = format!("{}-{}", name(&sts), template_hash(&sts["spec"]["template"]));
        if !deleting(&sts) {
            sync(cx, &sts, &by_ordinal, &revision);
        }
        status(cx, &sts, &by_ordinal, &revision);
    }
}

fn sync(cx: &mut Ctx, sts: &Value, pods: &BTreeMap<i64, &Value>, revision: &str) {
    let want = replicas(sts).max(0);
    let parallel = sts["spec"]["podManagementPolicy"] == "Parallel";
    for i in 0..want {
        match pods.get(&i) {
            None => {
                create_pod(cx, sts, i, revision);
                if !parallel {
                    return;
                }
            }
            Some(p) if !parallel && (deleting(p) || !running_and_ready(p)) => return,
            Some(_) => {}
        }
    }
    // Scale down from the highest ordinal, one at a time unless Parallel.
    for (_, p) in pods.range(want..).rev() {
        if !deleting(p) {
            cx.delete("", "pods", p, Propagation::Background);
        }
        if !parallel {
            return;
        }
    }
    if sts["spec"]["updateStrategy"]["type"] == "OnDelete" {
        return;
    }
    let partition = sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"]
        .as_i64()
        .unwrap_or(0);
    let all_ready = pods.values().all(|p| running_and_ready(p));
    if !all_ready {
        return;
    }
    if let Some((_, p)) = pods
        .range(partition..want)
        .rev()
        .find(|(_, p)| p["metadata"]["labels"][REVISION_LABEL] != revision)
    {
        cx.delete("", "pods", p, Propagation::Background);
    }
}

fn create_pod(cx: &mut Ctx, sts: &Value, i: i64, revision: &str) {
    let pod_name = format!("{}-{i}", name(sts));
    let index = i.to_string();
    let labels = [
        (REVISION_LABEL, revision),
        ("statefulset.kubernetes.io/pod-name", pod_name.as_str()),
        ("apps.kubernetes.io/pod-index", index.as_str()),
    ];
    let mut pod = pod_from_template(sts, &sts["spec"]["template"], json!(pod_name), &labels);
    pod["spec"]["hostname"] = json!(pod_name);
    if let Some(svc) = sts["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        pod["spec"]["subdomain"] = json!(svc);
    }
    for claim in sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let claim_name = claim["metadata"]["name"].as_str().unwrap_or_default();
        let pvc_name = format!("{claim_name}-{pod_name}");
        let exists = cx
            .list("", "persistentvolumeclaims")
            .iter()
            .any(|c| name(c) == pvc_name && namespace(c) == namespace(sts));
        if !exists {
            let mut pvc = json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": pvc_name, "namespace": namespace(sts), "labels": sts["spec"]["selector"]["matchLabels"]},
                "spec": claim["spec"],
                "status": {"phase": "Pending"},
            });
            if let Some(l) = claim["metadata"]["labels"].as_object() {
                for (k, v) in l {
                    pvc["metadata"]["labels"][k] = v.clone();
                }
            }
            cx.create("", "persistentvolumeclaims", pvc);
        }
        let volumes = &mut pod["spec"]["volumes"];
        if !volumes.is_array() {
            *volumes = json!([]);
        }
        let list = volumes.as_array_mut().expect("an array");
        list.retain(|v| v["name"] != claim_name);
        list.push(json!({"name": claim_name, "persistentVolumeClaim": {"claimName": pvc_name}}));
    }
    if cx.create("", "pods", pod).is_some() {
        let message = format!(
            "create Pod {pod_name} in StatefulSet {} successful",
            name(sts)
        );
        cx.event(
            sts,
            false,
            "SuccessfulCreate",
            &message,
            "statefulset-controller",
        );
    }
}

fn status(cx: &mut Ctx, sts: &Value, pods: &BTreeMap<i64, &Value>, revision: &str) {
    let want = replicas(sts).max(0);
    let live: Vec<&&Value> = pods.values().filter(|p| !deleting(p)).collect();
    let ready = live.iter().filter(|p| pod_ready(p)).count() as i64;
    let min_ready = min_ready_seconds(sts);
    let available = live
        .iter()
        .filter(|p| cx.pod_available(p, min_ready))
        .count() as i64;
    let updated = live
        .iter()
        .filter(|p| p["metadata"]["labels"][REVISION_LABEL] == revision)
        .count() as i64;
    let previous = sts["status"]["currentRevision"]
        .as_str()
        .unwrap_or(revision);
    let current_revision = if updated == want && live.len() as i64 == want {
        revision
    } else {
        previous
    };
    let current = live
        .iter()
        .filter(|p| p["metadata"]["labels"][REVISION_LABEL] == current_revision)
        .count() as i64;
    let mut status = json!({
        "replicas": live.len(), "currentRevision": current_revision, "updateRevision": revision,
        "collisionCount": 0, "availableReplicas": available,
    });
    status.as_object_mut().expect("a map").extend(counts(&[
        ("observedGeneration", generation(sts)),
        ("readyReplicas", ready),
        ("currentReplicas", current),
        ("updatedReplicas", updated),
    ]));
    cx.set_status("apps", "statefulsets", sts, status);
}
