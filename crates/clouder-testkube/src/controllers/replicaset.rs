//! ReplicaSet → Pods: keeps `spec.replicas` pods that match the template, reports ready and
//! available (Ready for `minReadySeconds`).

use super::{
    Ctx, counts, deleting, generation, min_ready_seconds, owned_by, pod_active, pod_from_template,
    pod_ready, replicas,
};
use crate::objects::Propagation;
use serde_json::{Value, json};

pub fn reconcile(cx: &mut Ctx) {
    let pods = cx.list("", "pods");
    for rs in cx.list("apps", "replicasets") {
        let mine: Vec<&Value> = owned_by(&rs, &pods)
            .into_iter()
            .filter(|p| pod_active(p))
            .collect();
        let want = replicas(&rs).max(0) as usize;
        if !deleting(&rs) {
            scale(cx, &rs, &mine, want);
        }
        let ready = mine.iter().filter(|p| pod_ready(p)).count() as i64;
        let min_ready = min_ready_seconds(&rs);
        let available = mine
            .iter()
            .filter(|p| cx.pod_available(p, min_ready))
            .count() as i64;
        let mut status = json!({"replicas": mine.len()});
        status.as_object_mut().expect("a map").extend(counts(&[
            ("fullyLabeledReplicas", mine.len() as i64),
            ("readyReplicas", ready),
            ("availableReplicas", available),
            ("observedGeneration", generation(&rs)),
        ]));
        cx.set_status("apps", "replicasets", &rs, status);
    }
}

fn scale(cx: &mut Ctx, rs: &Value, mine: &[&Value], want: usize) {
    let template = &rs["spec"]["template"];
    let prefix = format!("{}-", super::name(rs));
    for _ in mine.len()..want {
        cx.create(
            "",
            "pods",
            pod_from_template(rs, template, json!(prefix), &[]),
        );
    }
    if mine.len() > want {
        // The controller deletes the pods that matter least first: unscheduled, unready, newest.
        let mut victims = mine.to_vec();
        victims.sort_by_key(|p| {
            (
                p["spec"].get("nodeName").is_some(),
                pod_ready(p),
                std::cmp::Reverse(
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ),
            )
        });
        for p in &victims[..mine.len() - want] {
            cx.delete("", "pods", p, Propagation::Background);
            let message = format!("Deleted pod: {}", super::name(p));
            cx.event(
                rs,
                false,
                "SuccessfulDelete",
                &message,
                "replicaset-controller",
            );
        }
    }
}
