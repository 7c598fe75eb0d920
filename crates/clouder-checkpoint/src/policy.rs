//! The `CheckpointPolicy` custom resource (`clouder.io/v1alpha1`, namespaced) and the decisions
//! its controller makes, kept pure here: which pods a policy selects, and when one is due.
//!
//! A pod is **due** when either trigger fires:
//! - **schedule** (cron, five fields, UTC): an occurrence of the schedule has passed since the
//!   pod was last checkpointed by this policy (since it was created, if never);
//! - **idleFor**: the pod is *idle* — every container running, none restarted, and the pod's
//!   containers' state unchanged (no start, restart or readiness change) for at least `idleFor`
//!   — and it was not checkpointed by this policy since it became idle. So an idle pod is
//!   checkpointed once per idle stretch, again only after its state changes and settles.
//!
//! `beforeDrain` is not decided here: `kubeadm scale` down and `byon remove` checkpoint the pods
//! such policies select before draining their node.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Checkpoint the pods a selector picks on a schedule, when idle, or before their node drains.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "clouder.io",
    version = "v1alpha1",
    kind = "CheckpointPolicy",
    namespaced,
    status = "CheckpointPolicyStatus",
    shortname = "ckp",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Destination","type":"string","jsonPath":".spec.destination"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointPolicySpec {
    /// The pods of the policy's namespace it applies to.
    pub selector: LabelSelector,
    /// The container to checkpoint (default: each pod's first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// When to checkpoint: a cron expression (minute hour day-of-month month day-of-week), UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub triggers: Triggers,
    /// Where images go, as `clouder checkpoint create --to` takes it: an OCI registry
    /// repository, `oci:DIR`, `s3://BUCKET/PREFIX` or `azblob://ACCOUNT/CONTAINER/PREFIX`.
    pub destination: String,
}

/// Which checkpoints of each container are kept after a new one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Keep the newest N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_last: Option<u32>,
    /// Drop those older than this many hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_age_hours: Option<u64>,
}

impl Retention {
    pub fn rule(&self) -> crate::catalogue::Retention {
        crate::catalogue::Retention {
            keep: self.keep_last.map(|n| n as usize),
            max_age: self
                .max_age_hours
                .map(|h| std::time::Duration::from_secs(h * 3600)),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Triggers {
    /// Checkpoint the pods before `scale` down or `byon remove` drains their node, and restore
    /// them on another node after.
    #[serde(default)]
    pub before_drain: bool,
    /// Checkpoint a pod once it has been idle this long, e.g. `30m`, `2h`, `1h30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_for: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointPolicyStatus {
    /// The selected pods, by name.
    #[serde(default)]
    pub pods: Vec<PodStatus>,
    /// `Ready`: True when the last round checkpointed every due pod; False with the reason
    /// (`CheckpointFailed`, `InvalidSpec`) otherwise.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One pod as the policy last saw it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    pub pod: String,
    /// When it was last checkpointed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    /// The id of its last checkpoint in the catalogue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checkpoint: Option<String>,
    /// Why the last attempt failed; cleared by a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last failed attempt was (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// Why a pod is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    Schedule,
    Idle,
    BeforeDrain,
}

/// A policy that cannot be followed as written.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    #[error("spec.schedule `{0}` is not a cron expression: {1}")]
    Schedule(String, String),
    #[error("spec.triggers.idleFor `{0}` is not a duration (e.g. 30m, 2h, 1h30m): {1}")]
    IdleFor(String, String),
    #[error("spec.selector: {0}")]
    Selector(String),
}

/// The policy's schedule and idle time, checked.
pub struct Rules {
    schedule: Option<croner::Cron>,
    idle_for: Option<SignedDuration>,
}

impl CheckpointPolicySpec {
    pub fn rules(&self) -> Result<Rules, PolicyError> {
        let schedule = match &self.schedule {
            Some(s) => Some(
                s.parse::<croner::Cron>()
                    .map_err(|e| PolicyError::Schedule(s.clone(), e.to_string()))?,
            ),
            None => None,
        };
        let idle_for = match &self.triggers.idle_for {
            Some(d) => Some(
                d.parse::<SignedDuration>()
                    .map_err(|e| PolicyError::IdleFor(d.clone(), e.to_string()))?,
            ),
            None => None,
        };
        selector_matches(&self.selector, &BTreeMap::new())?;
        Ok(Rules { schedule, idle_for })
    }
}

impl Rules {
    /// Whether `pod` is due at `now`, given when this policy last checkpointed it.
    pub fn due(&self, pod: &Pod, last_run: Option<Timestamp>, now: Timestamp) -> Option<Trigger> {
        let since = last_run
            .or_else(|| created(pod))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        if let Some(cron) = &self.schedule
            && previous_occurrence(cron, now).is_some_and(|at| at > since)
        {
            return Some(Trigger::Schedule);
        }
        if let Some(idle_for) = self.idle_for
            && let Some(settled) = settled_since(pod)
            && now.duration_since(settled) >= idle_for
            && last_run.is_none_or(|run| run < settled + idle_for)
        {
            return Some(Trigger::Idle);
        }
        None
    }

    /// When the schedule next fires after `now`: the controller looks again then.
    pub fn next(&self, now: Timestamp) -> Option<Timestamp> {
        let cron = self.schedule.as_ref()?;
        let at = chrono::DateTime::from_timestamp(now.as_second(), 0)?;
        let next = cron.find_next_occurrence(&at, false).ok()?;
        Timestamp::from_second(next.timestamp()).ok()
    }
}

/// The latest occurrence of the schedule at or before `now`.
fn previous_occurrence(cron: &croner::Cron, now: Timestamp) -> Option<Timestamp> {
    let at = chrono::DateTime::from_timestamp(now.as_second(), 0)?;
    let previous = cron.find_previous_occurrence(&at, true).ok()?;
    Timestamp::from_second(previous.timestamp()).ok()
}

fn created(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Since when the pod's containers have been running unchanged: the latest container start or
/// readiness change; `None` unless every container runs and none ever restarted.
pub fn settled_since(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref()?;
    let containers = status.container_statuses.as_deref().unwrap_or_default();
    if containers.is_empty() {
        return None;
    }
    let mut latest = Timestamp::UNIX_EPOCH;
    for c in containers {
        if c.restart_count > 0 {
            return None;
        }
        let started = c.state.as_ref()?.running.as_ref()?.started_at.as_ref()?;
        latest = latest.max(started.0);
    }
    let ready = status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|c| c.type_ == "Ready" || c.type_ == "ContainersReady")
        .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0));
    Some(ready.fold(latest, Timestamp::max))
}

/// Pure: whether a pod with `labels` is selected (matchLabels and matchExpressions, as the API
/// server evaluates them).
pub fn selector_matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, PolicyError> {
    for (k, v) in selector.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return Ok(false);
        }
    }
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => {
                return Err(PolicyError::Selector(format!(
                    "`{other}` is not an operator (In, NotIn, Exists, DoesNotExist)"
                )));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(schedule: Option<&str>, idle_for: Option<&str>) -> CheckpointPolicySpec {
        CheckpointPolicySpec {
            selector: LabelSelector::default(),
            container: None,
            schedule: schedule.map(str::to_string),
            retention: Retention::default(),
            triggers: Triggers {
                before_drain: false,
                idle_for: idle_for.map(str::to_string),
            },
            destination: "oci:/tmp/x".into(),
        }
    }

    fn pod(created: &str, started: &str, restarts: i32) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "creationTimestamp": created},
            "status": {"containerStatuses": [{"name": "app", "image": "i", "imageID": "i", "ready": true,
                "restartCount": restarts, "state": {"running": {"startedAt": started}}}]},
        }))
        .unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_schedule_is_due_once_per_occurrence() {
        let rules = spec(Some("0 * * * *"), None).rules().unwrap();
        let p = pod("2026-11-26T09:10:00Z", "2026-11-26T09:10:00Z", 0);
        assert_eq!(rules.due(&p, None, at("2026-11-26T09:59:00Z")), None);
        assert_eq!(
            rules.due(&p, None, at("2026-11-26T10:00:00Z")),
            Some(Trigger::Schedule)
        );
        let ran = Some(at("2026-11-26T10:00:05Z"));
        assert_eq!(rules.due(&p, ran, at("2026-11-26T10:30:00Z")), None);
        assert_eq!(
            rules.due(&p, ran, at("2026-11-26T11:00:00Z")),
            Some(Trigger::Schedule)
        );
        assert_eq!(
            rules.next(at("2026-11-26T10:30:00Z")),
            Some(at("2026-11-26T11:00:00Z"))
        );
    }

    #[test]
    fn an_idle_pod_is_due_once_per_idle_stretch() {
        let rules = spec(None, Some("30m")).rules().unwrap();
        let p = pod("2026-11-26T09:00:00Z", "2026-11-26T09:00:00Z", 0);
        assert_eq!(rules.due(&p, None, at("2026-11-26T09:29:00Z")), None);
        assert_eq!(
            rules.due(&p, None, at("2026-11-26T09:30:00Z")),
            Some(Trigger::Idle)
        );
        let ran = Some(at("2026-11-26T09:31:00Z"));
        assert_eq!(rules.due(&p, ran, at("2026-11-26T12:00:00Z")), None);
        let restarted = pod("2026-11-26T09:00:00Z", "2026-11-26T11:00:00Z", 0);
        assert_eq!(
            rules.due(&restarted, ran, at("2026-11-26T11:30:00Z")),
            Some(Trigger::Idle),
            "idle again after a new start"
        );
        let crashed = pod("2026-11-26T09:00:00Z", "2026-11-26T09:00:00Z", 2);
        assert_eq!(rules.due(&crashed, None, at("2026-11-27T09:00:00Z")), None);
    }

    #[test]
    fn bad_rules_are_named() {
        assert!(matches!(
            spec(Some("every hour"), None).rules(),
            Err(PolicyError::Schedule(..))
        ));
        assert!(matches!(
            spec(None, Some("soon")).rules(),
            Err(PolicyError::IdleFor(..))
        ));
    }

    #[test]
    fn selectors_match_as_the_api_server_does() {
        let selector: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "db"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                 {"key": "skip", "operator": "DoesNotExist"}],
        }))
        .unwrap();
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            selector_matches(&selector, &labels(&[("app", "db"), ("tier", "a")])),
            Ok(true)
        );
        assert_eq!(
            selector_matches(&selector, &labels(&[("app", "db"), ("tier", "c")])),
            Ok(false)
        );
        assert_eq!(
            selector_matches(
                &selector,
                &labels(&[("app", "db"), ("tier", "a"), ("skip", "")])
            ),
            Ok(false)
        );
        assert_eq!(
            selector_matches(&selector, &labels(&[("tier", "a")])),
            Ok(false)
        );
    }
}
