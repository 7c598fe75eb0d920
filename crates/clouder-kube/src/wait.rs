//! Waits on objects with a deadline; a timeout names the object, what it was still waiting for,
//! and the object's last event.

use crate::apply::Applier;
use crate::manifest::ObjectRef;
use crate::{Error, Result};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Where an object stands against what is awaited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Done,
    Pending(String),
    /// It will not get there by waiting (e.g. a rollout past its progress deadline).
    Failed(String),
}

const POLL: Duration = Duration::from_millis(250);

/// Polls `object` until `check` says done; errors on `Failed`, on timeout and when the object is
/// missing at the deadline.
pub async fn until(
    applier: &Applier,
    object: &ObjectRef,
    timeout: Duration,
    check: impl Fn(&Value) -> Progress,
) -> Result<Value> {
    let start = Instant::now();
    loop {
        let state = match applier.find(object).await? {
            Some(found) => {
                let value = serde_json::to_value(&found).expect("objects serialise");
                match check(&value) {
                    Progress::Done => return Ok(value),
                    Progress::Failed(why) => {
                        return Err(Error::Refused(format!("{object}: {why}")));
                    }
                    Progress::Pending(why) => why,
                }
            }
            None => "not found".to_string(),
        };
        if start.elapsed() >= timeout {
            return Err(Error::Timeout {
                object: Box::new(object.clone()),
                waited: timeout,
                state,
                last_event: last_event(applier.client(), object).await,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until a workload has rolled out (Deployment, DaemonSet, StatefulSet); other kinds are
/// ready once they exist.
pub async fn rollout(applier: &Applier, object: &ObjectRef, timeout: Duration) -> Result<()> {
    let check: fn(&Value) -> Progress = match object.kind.as_str() {
        "Deployment" => deployment,
        "DaemonSet" => daemon_set,
        "StatefulSet" => stateful_set,
        _ => |_| Progress::Done,
    };
    until(applier, object, timeout, check).await.map(|_| ())
}

/// The newest event about `object`, as `Reason: message`.
pub async fn last_event(client: &kube::Client, object: &ObjectRef) -> Option<String> {
    let events: Api<Event> = match &object.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let selector = format!(
        "involvedObject.kind={},involvedObject.name={}",
        object.kind, object.name
    );
    let list = events
        .list(&ListParams::default().fields(&selector))
        .await
        .ok()?;
    let newest = list.items.into_iter().max_by_key(|e| {
        e.last_timestamp
            .clone()
            .map(|t| t.0)
            .or(e.event_time.clone().map(|t| t.0))
    })?;
    Some(format!(
        "{}: {}",
        newest.reason.unwrap_or_default(),
        newest.message.unwrap_or_default()
    ))
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn observed(v: &Value) -> bool {
    int(v, "/metadata/generation") <= int(v, "/status/observedGeneration")
}

/// `type` condition is `True`.
pub fn condition(v: &Value, type_: &str) -> Progress {
    let found = v
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == type_));
    match found {
        Some(c) if c["status"] == "True" => Progress::Done,
        Some(c) => Progress::Pending(format!(
            "condition {type_} is {} ({})",
            c["status"].as_str().unwrap_or("Unknown"),
            c["message"].as_str().or(c["reason"].as_str()).unwrap_or("")
        )),
        None => Progress::Pending(format!("condition {type_} not reported yet")),
    }
}

/// As `kubectl rollout status deployment` decides.
pub fn deployment(v: &Value) -> Progress {
    if !observed(v) {
        return Progress::Pending("waiting for the new spec to be observed".into());
    }
    let deadline = v
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
        });
    if deadline {
        return Progress::Failed("rollout exceeded its progress deadline".into());
    }
    let want = v
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let updated = int(v, "/status/updatedReplicas");
    let total = int(v, "/status/replicas");
    let available = int(v, "/status/availableReplicas");
    if updated < want {
        Progress::Pending(format!("{updated} of {want} updated replicas"))
    } else if total > updated {
        Progress::Pending(format!(
            "{} old replicas pending termination",
            total - updated
        ))
    } else if available < updated {
        Progress::Pending(format!(
            "{available} of {updated} updated replicas available"
        ))
    } else {
        Progress::Done
    }
}

/// As `kubectl rollout status daemonset` decides.
pub fn daemon_set(v: &Value) -> Progress {
    if !observed(v) {
        return Progress::Pending("waiting for the new spec to be observed".into());
    }
    let desired = int(v, "/status/desiredNumberScheduled");
    let updated = int(v, "/status/updatedNumberScheduled");
    let available = int(v, "/status/numberAvailable");
    if updated < desired {
        Progress::Pending(format!("{updated} of {desired} updated pods scheduled"))
    } else if available < desired {
        Progress::Pending(format!("{available} of {desired} updated pods available"))
    } else {
        Progress::Done
    }
}

/// As `kubectl rollout status statefulset` decides.
pub fn stateful_set(v: &Value) -> Progress {
    if !observed(v) {
        return Progress::Pending("waiting for the new spec to be observed".into());
    }
    let want = v
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let ready = int(v, "/status/readyReplicas");
    if ready < want {
        return Progress::Pending(format!("{ready} of {want} pods ready"));
    }
    let current = v.pointer("/status/currentRevision");
    let update = v.pointer("/status/updateRevision");
    if update.is_some() && current != update {
        let updated = int(v, "/status/updatedReplicas");
        return Progress::Pending(format!("{updated} of {want} pods at the new revision"));
    }
    Progress::Done
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_progress_follows_kubectl() {
        let d = |generation: i64, observed: i64, status: Value| {
            let mut v = json!({"metadata": {"generation": generation}, "spec": {"replicas": 3}, "status": status});
            v["status"]["observedGeneration"] = observed.into();
            deployment(&v)
        };
        assert!(matches!(d(2, 1, json!({})), Progress::Pending(m) if m.contains("observed")));
        assert_eq!(
            d(1, 1, json!({"updatedReplicas": 1, "replicas": 3})),
            Progress::Pending("1 of 3 updated replicas".into())
        );
        assert_eq!(
            d(1, 1, json!({"updatedReplicas": 3, "replicas": 4})),
            Progress::Pending("1 old replicas pending termination".into())
        );
        assert_eq!(
            d(
                1,
                1,
                json!({"updatedReplicas": 3, "replicas": 3, "availableReplicas": 2})
            ),
            Progress::Pending("2 of 3 updated replicas available".into())
        );
        assert_eq!(
            d(
                1,
                1,
                json!({"updatedReplicas": 3, "replicas": 3, "availableReplicas": 3})
            ),
            Progress::Done
        );
        assert!(matches!(
            d(
                1,
                1,
                json!({"conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]})
            ),
            Progress::Failed(_)
        ));
    }

    #[test]
    fn daemon_sets_and_stateful_sets_wait_for_every_pod() {
        let ds = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 1}});
        assert_eq!(
            daemon_set(&ds),
            Progress::Pending("1 of 2 updated pods available".into())
        );
        let sts = json!({"metadata": {"generation": 1}, "spec": {"replicas": 2}, "status": {"observedGeneration": 1, "readyReplicas": 2, "currentRevision": "a", "updateRevision": "b", "updatedReplicas": 1}});
        assert_eq!(
            stateful_set(&sts),
            Progress::Pending("1 of 2 pods at the new revision".into())
        );
        let c = json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}});
        assert_eq!(condition(&c, "Established"), Progress::Done);
        assert!(matches!(condition(&c, "Ready"), Progress::Pending(_)));
    }
}
