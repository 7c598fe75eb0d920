//! Deployment → ReplicaSets: one ReplicaSet per pod template (named by its hash), rolled by the
//! RollingUpdate or Recreate strategy with the real controller's surge/unavailable arithmetic, and
//! the status and conditions `kubectl rollout status` and `kubectl wait` read.

use super::{
    Ctx, controller_ref, controller_uid, counts, deleting, generation, int_or_percent, name,
    namespace, owned_by, replicas, set_condition, template_hash, uid,
};
use crate::objects::Propagation;
use serde_json::{Value, json};

const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH_LABEL: &str = "pod-template-hash";

pub fn reconcile(cx: &mut Ctx) {
    let all = cx.list("apps", "replicasets");
    for d in cx.list("apps", "deployments") {
        if deleting(&d) {
            continue;
        }
        let owned: Vec<Value> = owned_by(&d, &all).into_iter().cloned().collect();
        sync(cx, &d, owned);
    }
}

fn rs_replicas(rs: &Value) -> i64 {
    rs["spec"]["replicas"].as_i64().unwrap_or(0)
}

fn available(rs: &Value) -> i64 {
    rs["status"]["availableReplicas"].as_i64().unwrap_or(0)
}

fn revision(obj: &Value) -> i64 {
    obj["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The ReplicaSet's template without the hash label: what the Deployment's template must equal.
fn plain_template(rs: &Value) -> Value {
    let mut t = rs["spec"]["template"].clone();
    if let Some(l) = t["metadata"]["labels"].as_object_mut() {
        l.remove(HASH_LABEL);
    }
    t
}

/// (maxSurge, maxUnavailable) for RollingUpdate; never both zero.
fn surge_and_unavailable(d: &Value, replicas: i64) -> (i64, i64) {
    let ru = &d["spec"]["strategy"]["rollingUpdate"];
    let pick = |field: &str, up: bool| {
        int_or_percent(ru.get(field).unwrap_or(&json!("25%")), replicas, up).unwrap_or(0)
    };
    let (surge, unavailable) = (pick("maxSurge", true), pick("maxUnavailable", false));
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

fn sync(cx: &mut Ctx, d: &Value, mut owned: Vec<Value>) {
    let want = replicas(d).max(0);
    let template = &d["spec"]["template"];
    let recreate = d["spec"]["strategy"]["type"] == "Recreate";
    let (surge, unavailable) = if recreate {
        (0, want)
    } else {
        surge_and_unavailable(d, want)
    };
    owned.sort_by_key(|rs| {
        rs["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    let new_pos = owned.iter().position(|rs| plain_template(rs) == *template);
    let old_total: i64 = owned
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_pos)
        .map(|(_, rs)| rs_replicas(rs))
        .sum();
    let total: i64 = owned.iter().map(rs_replicas).sum();
    let paused = d["spec"]["paused"] == true;
    let mut created = None;
    let new_rs = match new_pos {
        Some(i) => Some(owned[i].clone()),
        None if paused => None,
        None => {
            let initial = if recreate {
                if old_total > 0 { 0 } else { want }
            } else if old_total == 0 {
                want
            } else {
                (want + surge - total).clamp(0, want)
            };
            let next_revision = owned.iter().map(revision).max().unwrap_or(0) + 1;
            let rs = new_replica_set(d, template, initial, next_revision);
            created = cx.create("apps", "replicasets", rs);
            if let Some(rs) = &created {
                let message = format!("Scaled up replica set {} from 0 to {initial}", name(rs));
                cx.event(
                    d,
                    false,
                    "ScalingReplicaSet",
                    &message,
                    "deployment-controller",
                );
            }
            created.clone()
        }
    };
    if !paused && let Some(mut new_rs) = new_rs.clone() {
        let olds: Vec<&Value> = owned
            .iter()
            .filter(|rs| rs["metadata"]["uid"] != new_rs["metadata"]["uid"])
            .collect();
        // The newest template's ReplicaSet carries the highest revision.
        let max_old = olds.iter().map(|rs| revision(rs)).max().unwrap_or(0);
        if revision(&new_rs) <= max_old {
            let mut bumped = new_rs.clone();
            bumped["metadata"]["annotations"][REVISION] = json!((max_old + 1).to_string());
            cx.update("apps", "replicasets", &new_rs, bumped);
            new_rs = cx.get("apps", "replicasets", &new_rs).unwrap_or(new_rs);
        }
        roll(cx, d, &new_rs, &olds, (want, surge, unavailable, recreate));
        prune_history(cx, d, &olds);
    }
    // Re-read what the passes wrote, for the status.
    let all = cx.list("apps", "replicasets");
    let owned: Vec<&Value> = owned_by(d, &all);
    let new_rs = new_rs.and_then(|n| {
        owned
            .iter()
            .find(|rs| rs["metadata"]["uid"] == n["metadata"]["uid"])
            .map(|rs| (*rs).clone())
    });
    status(
        cx,
        d,
        &owned,
        new_rs.as_ref(),
        created.is_some(),
        unavailable,
    );
}

fn new_replica_set(d: &Value, template: &Value, initial: i64, revision: i64) -> Value {
    let hash = template_hash(template);
    let mut template = template.clone();
    template["metadata"]["labels"][HASH_LABEL] = json!(hash);
    let mut selector = d["spec"]["selector"].clone();
    selector["matchLabels"][HASH_LABEL] = json!(hash);
    let mut labels = template["metadata"]["labels"].clone();
    labels[HASH_LABEL] = json!(hash);
    let mut spec = json!({"replicas": initial, "selector": selector, "template": template});
    if let Some(m) = d["spec"].get("minReadySeconds") {
        spec["minReadySeconds"] = m.clone();
    }
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{}-{hash}", name(d)), "namespace": namespace(d), "labels": labels,
            "annotations": {
                REVISION: revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": replicas(d).to_string(),
            },
            "ownerReferences": [controller_ref(d)],
        },
        "spec": spec,
    })
}

fn set_replicas(cx: &mut Ctx, d: &Value, rs: &Value, n: i64, desired: i64) {
    let from = rs_replicas(rs);
    if from == n {
        return;
    }
    let direction = if n > from { "up" } else { "down" };
    let message = format!(
        "Scaled {direction} replica set {} from {from} to {n}",
        name(rs)
    );
    cx.event(
        d,
        false,
        "ScalingReplicaSet",
        &message,
        "deployment-controller",
    );
    let mut new = rs.clone();
    new["spec"]["replicas"] = json!(n);
    new["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
        json!(desired.to_string());
    cx.update("apps", "replicasets", rs, new);
}

/// One step of the rollout, as deployment/rolling.go and recreate.go compute it.
fn roll(cx: &mut Ctx, d: &Value, new_rs: &Value, olds: &[&Value], params: (i64, i64, i64, bool)) {
    let (want, surge, unavailable, recreate) = params;
    let old_total: i64 = olds.iter().map(|rs| rs_replicas(rs)).sum();
    if recreate {
        for rs in olds {
            set_replicas(cx, d, rs, 0, want);
        }
        // The new pods start once every old one is gone, terminating ones included.
        let old_pods = cx
            .list("", "pods")
            .iter()
            .filter(|p| olds.iter().any(|rs| controller_uid(p) == Some(uid(rs))))
            .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
            .count();
        if old_pods == 0 {
            set_replicas(cx, d, new_rs, want, want);
        }
        return;
    }
    if old_total == 0 {
        // Only the new ReplicaSet is left: a plain scale.
        set_replicas(cx, d, new_rs, want, want);
        return;
    }
    let new_replicas = rs_replicas(new_rs);
    let all_total = old_total + new_replicas;
    // Scale up the new ReplicaSet within maxSurge.
    let max_total = want + surge;
    let new_target = if new_replicas >= want {
        want
    } else if all_total >= max_total {
        new_replicas
    } else {
        new_replicas + (max_total - all_total).min(want - new_replicas)
    };
    set_replicas(cx, d, new_rs, new_target, want);
    // Scale down old ReplicaSets while at least `want - maxUnavailable` pods stay available.
    let min_available = want - unavailable;
    let new_unavailable = new_replicas - available(new_rs);
    let mut max_scale_down = all_total - min_available - new_unavailable;
    let mut olds: Vec<(Value, i64)> = olds
        .iter()
        .map(|rs| ((*rs).clone(), rs_replicas(rs)))
        .collect();
    // Unhealthy old replicas go first: removing them costs no availability.
    for (rs, n) in &mut olds {
        if max_scale_down <= 0 {
            break;
        }
        let cut = (*n - available(rs)).min(max_scale_down).max(0);
        *n -= cut;
        max_scale_down -= cut;
    }
    let available_all: i64 =
        olds.iter().map(|(rs, _)| available(rs)).sum::<i64>() + available(new_rs);
    let mut budget = (available_all - min_available).max(0);
    for (_, n) in &mut olds {
        let cut = (*n).min(budget);
        *n -= cut;
        budget -= cut;
    }
    for (rs, n) in olds {
        set_replicas(cx, d, &rs, n, want);
    }
}

/// Old ReplicaSets scaled to zero beyond `revisionHistoryLimit` (default 10) are deleted.
fn prune_history(cx: &mut Ctx, d: &Value, olds: &[&Value]) {
    let limit = d["spec"]["revisionHistoryLimit"]
        .as_i64()
        .unwrap_or(10)
        .max(0) as usize;
    let mut idle: Vec<&Value> = olds
        .iter()
        .copied()
        .filter(|rs| rs_replicas(rs) == 0 && rs["status"]["replicas"].as_i64().unwrap_or(0) == 0)
        .collect();
    if idle.len() > limit {
        idle.sort_by_key(|rs| revision(rs));
        for rs in &idle[..idle.len() - limit] {
            cx.delete("apps", "replicasets", rs, Propagation::Background);
        }
    }
}

/// The replica counts of a Deployment's status.
#[derive(Clone, Copy)]
struct Counts {
    replicas: i64,
    updated: i64,
    ready: i64,
    available: i64,
}

impl Counts {
    fn of(d: &Value) -> Self {
        let n = |f: &str| d["status"][f].as_i64().unwrap_or(0);
        Self {
            replicas: n("replicas"),
            updated: n("updatedReplicas"),
            ready: n("readyReplicas"),
            available: n("availableReplicas"),
        }
    }
}

/// `progressDeadlineSeconds` when set and not "no deadline" (MaxInt32).
fn progress_deadline(d: &Value) -> Option<i64> {
    d["spec"]["progressDeadlineSeconds"]
        .as_i64()
        .filter(|s| *s != i64::from(i32::MAX))
}

/// The Progressing condition as deployment/progress.go keeps it: NewReplicaSetCreated when the new
/// ReplicaSet was just made; NewReplicaSetAvailable once complete; ReplicaSetUpdated whenever the
/// rollout moved (its lastUpdateTime marks the last progress); ProgressDeadlineExceeded (False)
/// once `progressDeadlineSeconds` passed without any.
fn progress(
    cx: &mut Ctx,
    d: &Value,
    conditions: &mut Vec<Value>,
    rs_name: &str,
    created: bool,
    now: Counts,
) {
    let stamp = cx.now.clone();
    let want = replicas(d).max(0);
    let set = |conditions: &mut Vec<Value>, ok: bool, reason: &str, message: String| {
        set_condition(
            conditions,
            "Progressing",
            ok,
            reason,
            &message,
            &stamp,
            true,
        );
    };
    if created {
        set(
            conditions,
            true,
            "NewReplicaSetCreated",
            format!("Created new replica set \"{rs_name}\""),
        );
        return;
    }
    let current = conditions
        .iter()
        .find(|c| c["type"] == "Progressing")
        .cloned();
    let reason = current.as_ref().and_then(|c| c["reason"].as_str());
    let before = Counts::of(d);
    let was_complete = now.replicas == now.updated && reason == Some("NewReplicaSetAvailable");
    if was_complete {
        return;
    }
    let complete = now.updated == want && now.replicas == want && now.available == want;
    let old_replicas = |c: Counts| c.replicas - c.updated;
    let progressed = now.updated > before.updated
        || old_replicas(now) < old_replicas(before)
        || now.ready > before.ready
        || now.available > before.available
        // A first status or one the controller never wrote: the rollout starts now.
        || current.is_none();
    if complete {
        set(
            conditions,
            true,
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        );
    } else if progressed {
        set(
            conditions,
            true,
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs_name}\" is progressing."),
        );
        // Progress moves lastUpdateTime even when nothing else of the condition changes.
        if let Some(c) = conditions.iter_mut().find(|c| c["type"] == "Progressing") {
            c["lastUpdateTime"] = json!(stamp);
        }
    } else if reason != Some("ProgressDeadlineExceeded")
        && d["spec"]["paused"] != true
        && let Some(deadline) = progress_deadline(d)
    {
        let last = current
            .as_ref()
            .and_then(|c| c["lastUpdateTime"].as_str().map(String::from));
        if cx.elapsed(last.as_deref(), deadline) {
            set(
                conditions,
                false,
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
            );
        }
    }
}

fn status(
    cx: &mut Ctx,
    d: &Value,
    owned: &[&Value],
    new_rs: Option<&Value>,
    created: bool,
    max_unavailable: i64,
) {
    let want = replicas(d).max(0);
    let sum = |f: &str| -> i64 {
        owned
            .iter()
            .map(|rs| rs["status"][f].as_i64().unwrap_or(0))
            .sum()
    };
    let (actual, ready, avail) = (
        sum("replicas"),
        sum("readyReplicas"),
        sum("availableReplicas"),
    );
    let spec_total: i64 = owned.iter().map(|rs| rs_replicas(rs)).sum();
    let updated = new_rs.map_or(0, |rs| rs["status"]["replicas"].as_i64().unwrap_or(0));
    let mut status = serde_json::Map::new();
    status.extend(counts(&[
        ("observedGeneration", generation(d)),
        ("replicas", actual),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", avail),
        ("unavailableReplicas", (spec_total - avail).max(0)),
    ]));
    let mut conditions: Vec<Value> = d["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let now = cx.now.clone();
    let (ok, reason, message) = if avail >= want - max_unavailable {
        (
            true,
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            false,
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    set_condition(
        &mut conditions,
        "Available",
        ok,
        reason,
        message,
        &now,
        true,
    );
    if let Some(rs) = new_rs {
        let counts = Counts {
            replicas: actual,
            updated,
            ready,
            available: avail,
        };
        progress(cx, d, &mut conditions, super::name(rs), created, counts);
    }
    // Progressing comes first on a real Deployment's status only when created first; keep the order
    // the conditions were added in.
    status.insert("conditions".into(), json!(conditions));
    if let Some(rs) = new_rs {
        let rev = revision(rs);
        if rev > 0 && revision(d) != rev {
            let mut annotated = d.clone();
            annotated["metadata"]["annotations"][REVISION] = json!(rev.to_string());
            cx.update("apps", "deployments", d, annotated);
        }
    }
    // Re-read: the revision annotation may have moved the object on.
    let live = cx
        .list("apps", "deployments")
        .into_iter()
        .find(|x| x["metadata"]["uid"] == d["metadata"]["uid"]);
    if let Some(live) = live {
        cx.set_status("apps", "deployments", &live, Value::Object(status));
    }
}
