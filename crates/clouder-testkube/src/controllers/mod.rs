//! What kube-controller-manager and kube-scheduler would do: garbage collection always, and with
//! `--controllers` the workload controllers, a scheduler and node lifecycle. Each runs as a pass over
//! the store after a batch of relevant changes, writing through the same paths as API requests, so
//! watchers see the controllers' writes like any other.

mod bootstrapsigner;
mod daemonset;
mod deployment;
mod gc;
mod namespaces;
mod nodes;
mod replicaset;
mod scheduler;
mod statefulset;

use crate::App;
use crate::apply::Writer;
use crate::objects::{self, Propagation};
use crate::resources::ResourceType;
use crate::store::{Event, Inner};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

const CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// Runs the controllers until the task is aborted. `workloads` adds everything beyond the GC.
pub fn spawn(app: Arc<App>, workloads: bool) -> JoinHandle<()> {
    let mut rx = app.store.lock().events();
    tokio::spawn(async move {
        // A server resumed from a snapshot may have work waiting before any change arrives.
        let mut wake = reconcile(&app, workloads);
        loop {
            // A pass is due on a relevant change, or when a timer a pass set runs out
            // (tolerationSeconds, minReadySeconds, progressDeadlineSeconds).
            let first = match wake {
                Some(at) => tokio::select! {
                    ev = rx.recv() => Some(ev),
                    _ = tokio::time::sleep_until(at) => None,
                },
                None => Some(rx.recv().await),
            };
            let mut due = match first {
                None => true,
                Some(Ok(ev)) => triggers(&ev, workloads),
                Some(Err(RecvError::Lagged(_))) => true,
                Some(Err(RecvError::Closed)) => return,
            };
            // One pass for a burst of changes.
            loop {
                match rx.try_recv() {
                    Ok(ev) => due |= triggers(&ev, workloads),
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => due = true,
                    Err(_) => break,
                }
            }
            if due {
                wake = reconcile(&app, workloads);
            }
        }
    })
}

fn triggers(ev: &Event, workloads: bool) -> bool {
    let meta = &ev.object["metadata"];
    // A dependent that just lost its owner references may be what an orphaning owner waits for.
    let gc = ev.kind == "DELETED"
        || meta.get("deletionTimestamp").is_some()
        || meta.get("ownerReferences").is_some()
        || ev
            .old
            .as_ref()
            .is_some_and(|o| o["metadata"].get("ownerReferences").is_some());
    // The bootstrap signer follows token Secrets and cluster-info.
    let signer = matches!(
        (ev.key.resource.as_str(), ev.key.namespace.as_str()),
        ("secrets", "kube-system") | ("configmaps", "kube-public")
    );
    let workload = workloads
        && match (ev.key.group.as_str(), ev.key.resource.as_str()) {
            ("", r) => matches!(r, "pods" | "nodes"),
            ("apps", r) => matches!(
                r,
                "deployments" | "replicasets" | "daemonsets" | "statefulsets"
            ),
            _ => false,
        };
    gc || signer || workload
}

/// One pass of every controller, in the order a change flows: owners before what they own.
/// Returns when the next pass is due without any change, if a controller waits on the clock.
pub fn reconcile(app: &App, workloads: bool) -> Option<tokio::time::Instant> {
    let types = app.types();
    let mut s = app.store.lock();
    let clock = jiff::Timestamp::now();
    let mut cx = Ctx {
        s: &mut s,
        types: &types,
        now: objects::now(),
        clock,
        wake: None,
    };
    if workloads {
        nodes::reconcile(&mut cx);
        deployment::reconcile(&mut cx);
        replicaset::reconcile(&mut cx);
        daemonset::reconcile(&mut cx);
        statefulset::reconcile(&mut cx);
        scheduler::reconcile(&mut cx);
    }
    gc::reconcile(&mut cx);
    namespaces::reconcile(&mut cx);
    bootstrapsigner::reconcile(&mut cx);
    let wait = cx.wake?.duration_since(clock);
    // Timestamps have whole seconds: wake a little after the moment, never in a busy loop.
    let wait = wait.max(jiff::SignedDuration::ZERO) + jiff::SignedDuration::from_millis(50);
    Some(tokio::time::Instant::now() + std::time::Duration::try_from(wait).ok()?)
}

/// The store and the types, with writes as a controller makes them.
pub struct Ctx<'a> {
    s: &'a mut Inner,
    types: &'a [ResourceType],
    now: String,
    /// `now` as a time, to measure timers against.
    clock: jiff::Timestamp,
    /// The soonest moment a timer runs out.
    wake: Option<jiff::Timestamp>,
}

impl Ctx<'_> {
    /// Whether `seconds` have passed since `timestamp` (strictly, as the controllers compare);
    /// if not yet, the next pass is due when they have.
    fn elapsed(&mut self, timestamp: Option<&str>, seconds: i64) -> bool {
        let Some(from) = timestamp.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
            return seconds <= 0;
        };
        let at = from
            .checked_add(jiff::SignedDuration::from_secs(seconds))
            .unwrap_or(jiff::Timestamp::MAX);
        if at < self.clock {
            return true;
        }
        self.wake = Some(self.wake.map_or(at, |w| w.min(at)));
        false
    }

    /// A pod counts as available once Ready for more than `min_ready` seconds.
    fn pod_available(&mut self, pod: &Value, min_ready: i64) -> bool {
        if !pod_ready(pod) {
            return false;
        }
        if min_ready <= 0 {
            return true;
        }
        let since = condition(pod, "Ready").and_then(|c| c["lastTransitionTime"].as_str());
        self.elapsed(since, min_ready)
    }

    fn rt(&self, group: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural)
            .cloned()
    }

    /// Objects of a built-in type in all namespaces.
    fn list(&self, group: &str, plural: &str) -> Vec<Value> {
        self.s
            .list(group, plural, None)
            .into_iter()
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn create(&mut self, group: &str, plural: &str, obj: Value) -> Option<Value> {
        let rt = self.rt(group, plural)?;
        let ns = obj["metadata"]["namespace"].as_str().map(String::from);
        let (av, now) = (rt.api_version(), self.now.clone());
        let w = writer(CONTROLLER_MANAGER, &av, &now, false);
        match objects::create(self.s, &rt, ns.as_deref(), obj, &w) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!("controller could not create {plural}: {}", e.message);
                None
            }
        }
    }

    /// Writes `new` over `old` (spec and metadata) or only its status.
    fn write(
        &mut self,
        group: &str,
        plural: &str,
        old: &Value,
        new: Value,
        manager: &str,
        status: bool,
    ) {
        if *old == new {
            return;
        }
        let Some(rt) = self.rt(group, plural) else {
            return;
        };
        let key = key_of(&rt, old);
        // A controller acting on an object it read before another write this pass waits for the next.
        let current = self.s.get(&key).map(|o| &o["metadata"]["resourceVersion"]);
        if current != Some(&old["metadata"]["resourceVersion"]) {
            return;
        }
        let (av, now) = (rt.api_version(), self.now.clone());
        let w = writer(manager, &av, &now, status);
        if let Err(e) = objects::commit_update(self.s, &rt, key, old, new, &w) {
            tracing::debug!("controller write to {plural} not taken: {}", e.message);
        }
    }

    /// The live version of `obj`.
    fn get(&self, group: &str, plural: &str, obj: &Value) -> Option<Value> {
        let rt = self.rt(group, plural)?;
        self.s.get(&key_of(&rt, obj)).cloned()
    }

    fn update(&mut self, group: &str, plural: &str, old: &Value, new: Value) {
        self.write(group, plural, old, new, CONTROLLER_MANAGER, false);
    }

    fn set_status(&mut self, group: &str, plural: &str, old: &Value, status: Value) {
        if old["status"] == status {
            return;
        }
        let mut new = old.clone();
        new["status"] = status;
        self.write(group, plural, old, new, CONTROLLER_MANAGER, true);
    }

    /// Records a core/v1 Event about `obj`, as `kubectl describe` and `kubectl events` show them.
    fn event(&mut self, obj: &Value, warning: bool, reason: &str, message: &str, component: &str) {
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or("default");
        let suffix = format!(
            "{:x}",
            uuid::Uuid::new_v4().as_u128() & 0xffff_ffff_ffff_ffff
        );
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{}.{suffix}", name(obj)), "namespace": ns},
            "involvedObject": {
                "apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
                "namespace": obj["metadata"]["namespace"], "uid": obj["metadata"]["uid"],
                "resourceVersion": obj["metadata"]["resourceVersion"],
            },
            "reason": reason, "message": message, "type": if warning { "Warning" } else { "Normal" },
            "source": {"component": component}, "reportingComponent": component, "reportingInstance": "",
            "firstTimestamp": self.now, "lastTimestamp": self.now, "count": 1,
        });
        self.create("", "events", event);
    }

    /// Sets one condition of a pod through its status, as `manager`; an empty reason or message
    /// is left out, as the real components leave it.
    fn set_pod_condition(
        &mut self,
        pod: &Value,
        kind: &str,
        status: bool,
        reason: &str,
        message: &str,
        manager: &str,
    ) {
        let mut conditions = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let now = self.now.clone();
        set_condition(&mut conditions, kind, status, reason, message, &now, false);
        for c in &mut conditions {
            if let Some(m) = c.as_object_mut() {
                m.retain(|k, v| !(matches!(k.as_str(), "reason" | "message") && v == ""));
            }
        }
        let mut new = pod.clone();
        new["status"]["conditions"] = json!(conditions);
        self.write("", "pods", pod, new, manager, true);
    }

    fn delete(&mut self, group: &str, plural: &str, obj: &Value, propagation: Propagation) {
        let opts = objects::DeleteOptions {
            propagation,
            ..Default::default()
        };
        self.delete_with(group, plural, obj, opts);
    }

    fn delete_with(
        &mut self,
        group: &str,
        plural: &str,
        obj: &Value,
        opts: objects::DeleteOptions,
    ) {
        let Some(rt) = self.rt(group, plural) else {
            return;
        };
        let key = key_of(&rt, obj);
        if let Err(e) = objects::delete(self.s, &rt, &key, opts) {
            tracing::debug!("controller delete of {plural} not taken: {}", e.message);
        }
    }
}

fn writer<'w>(manager: &'w str, av: &'w str, now: &'w str, status: bool) -> Writer<'w> {
    Writer {
        manager,
        api_version: av,
        subresource: status.then_some("status"),
        now,
        apply: false,
        dry_run: false,
    }
}

fn key_of(rt: &ResourceType, obj: &Value) -> crate::store::Key {
    objects::key(
        rt,
        obj["metadata"]["namespace"].as_str(),
        obj["metadata"]["name"].as_str().unwrap_or_default(),
    )
}

fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or_default()
}

fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

fn namespace(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or_default()
}

fn deleting(obj: &Value) -> bool {
    obj["metadata"].get("deletionTimestamp").is_some()
}

/// The uid of the object's managing controller, from its `ownerReferences`.
fn controller_uid(obj: &Value) -> Option<&str> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?["uid"]
        .as_str()
}

/// Objects in `owner`'s namespace that it controls.
fn owned_by<'v>(owner: &Value, objs: &'v [Value]) -> Vec<&'v Value> {
    objs.iter()
        .filter(|o| namespace(o) == namespace(owner) && controller_uid(o) == Some(uid(owner)))
        .collect()
}

/// The `ownerReferences` entry a controller puts on what it creates.
fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
    })
}

fn replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1)
}

fn generation(obj: &Value) -> i64 {
    obj["metadata"]["generation"].as_i64().unwrap_or(1)
}

fn condition<'v>(obj: &'v Value, kind: &str) -> Option<&'v Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn condition_true(obj: &Value, kind: &str) -> bool {
    condition(obj, kind).is_some_and(|c| c["status"] == "True")
}

/// A pod counts as ready while its Ready condition is True and it is not being deleted.
fn pod_ready(pod: &Value) -> bool {
    !deleting(pod) && condition_true(pod, "Ready")
}

fn min_ready_seconds(obj: &Value) -> i64 {
    obj["spec"]["minReadySeconds"].as_i64().unwrap_or(0)
}

/// A pod that is neither being deleted nor finished.
fn pod_active(pod: &Value) -> bool {
    !deleting(pod)
        && !matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        )
}

/// Sets a condition, keeping `lastTransitionTime` while the status stays the same.
/// `update_time` adds `lastUpdateTime`, as Deployment conditions carry it.
fn set_condition(
    conditions: &mut Vec<Value>,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: &str,
    update_time: bool,
) {
    let status = if status { "True" } else { "False" };
    let old = conditions.iter().position(|c| c["type"] == kind);
    let mut c = json!({"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": now});
    if update_time {
        c["lastUpdateTime"] = json!(now);
    }
    if let Some(i) = old {
        let prev = &conditions[i];
        if prev["status"] == status {
            c["lastTransitionTime"] = prev["lastTransitionTime"].clone();
            if prev["reason"] == reason && prev["message"] == message && update_time {
                c["lastUpdateTime"] = prev["lastUpdateTime"].clone();
            }
        }
        conditions[i] = c;
    } else {
        conditions.push(c);
    }
}

/// A short stable hash of a pod template, in the alphabet Kubernetes uses for generated names.
fn template_hash(template: &Value) -> String {
    // FNV-1a over the canonical JSON (serde_json sorts object keys).
    let mut h: u32 = 0x811c9dc5;
    for b in template.to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|d| CHARS[usize::from(d - b'0') % CHARS.len()] as char)
        .collect()
}

/// A Pod from a template, owned by `owner`, with extra labels.
fn pod_from_template(
    owner: &Value,
    template: &Value,
    name: Value,
    labels: &[(&str, &str)],
) -> Value {
    let mut meta = json!({
        "namespace": owner["metadata"]["namespace"],
        "labels": template["metadata"]["labels"].as_object().cloned().unwrap_or_default(),
        "ownerReferences": [controller_ref(owner)],
    });
    if let Some(a) = template["metadata"].get("annotations") {
        meta["annotations"] = a.clone();
    }
    match name {
        Value::String(n) if n.ends_with('-') => meta["generateName"] = json!(n),
        n => meta["name"] = n,
    }
    for (k, v) in labels {
        meta["labels"][*k] = json!(v);
    }
    let mut spec = template["spec"].clone();
    pod_defaults(&mut spec);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

/// The defaults the API server gives every pod spec that clients commonly read.
fn pod_defaults(spec: &mut Value) {
    for (field, value) in [
        ("restartPolicy", json!("Always")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!(scheduler::NAME)),
        ("terminationGracePeriodSeconds", json!(30)),
        ("serviceAccountName", json!("default")),
        ("enableServiceLinks", json!(true)),
        ("priority", json!(0)),
    ] {
        if spec.get(field).is_none() {
            spec[field] = value;
        }
    }
}

/// `int` or `"N%"` of `total`, rounding percentages up or down.
fn int_or_percent(v: &Value, total: i64, round_up: bool) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let pct: i64 = v.as_str()?.strip_suffix('%')?.parse().ok()?;
    Some(if round_up {
        (pct * total + 99) / 100
    } else {
        pct * total / 100
    })
}

/// Omits zero counts, as the real controllers' status structs do (`omitempty`).
fn counts(pairs: &[(&str, i64)]) -> serde_json::Map<String, Value> {
    pairs
        .iter()
        .filter(|(_, n)| *n != 0)
        .map(|(k, n)| (k.to_string(), json!(n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hashes_are_stable_and_differ_by_template() {
        let a = json!({"spec": {"containers": [{"name": "c", "image": "1"}]}});
        let b = json!({"spec": {"containers": [{"name": "c", "image": "2"}]}});
        assert_eq!(template_hash(&a), template_hash(&a.clone()));
        assert_ne!(template_hash(&a), template_hash(&b));
        assert!(
            template_hash(&a)
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
        );
    }

    #[test]
    fn percentages_round_as_the_controllers_do() {
        assert_eq!(int_or_percent(&json!("25%"), 3, true), Some(1));
        assert_eq!(int_or_percent(&json!("25%"), 3, false), Some(0));
        assert_eq!(int_or_percent(&json!(2), 3, false), Some(2));
    }
}
