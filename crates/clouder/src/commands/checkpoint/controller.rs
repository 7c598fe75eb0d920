//! `clouder checkpoint controller CLUSTER`: the CheckpointPolicy controller, on kube-runtime.
//! Each policy is looked at when it changes, every `--tick` seconds, and when its schedule next
//! fires: the pods it selects that are due (schedule, idleFor; see
//! [`clouder_checkpoint::policy`]) are checkpointed through [`take`] — the same path as
//! `checkpoint create` — with the policy's retention; then the policy's status is written. A
//! failed checkpoint is recorded in the pod's status and the `Ready` condition and tried again
//! on the next tick; it never stops the other pods.
//!
//! It runs where clouder runs (it needs clouder's state to reach nodes over SSH). Running it in
//! the cluster means running this command in a pod with a `CLOUDER_HOME` volume (state, SSH key,
//! kubelet client certificate), a kubeconfig for a service account that may get/list/watch
//! pods, nodes and checkpointpolicies, patch `checkpointpolicies/status`, and (through the API
//! server) create `nodes/proxy` — or `--direct` with the kubelet client certificate.

use super::take::{self, Request, Taken};
use crate::Usage;
use crate::cli::{CheckpointControllerArgs, Global};
use crate::home::Home;
use crate::output;
use anyhow::{Result, bail};
use clouder_checkpoint::policy::{
    CheckpointPolicy, CheckpointPolicyStatus, PodStatus, Trigger, selector_matches,
};
use futures::StreamExt as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource as _, ResourceExt as _};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

struct Cx {
    home: Home,
    g: Global,
    client: kube::Client,
    args: CheckpointControllerArgs,
}

/// What one look at a policy did.
#[derive(Debug, Serialize)]
pub struct Round {
    pub policy: String,
    pub checkpointed: Vec<Done>,
    pub failed: Vec<Failed>,
    /// The spec cannot be followed (bad schedule, idleFor or selector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Done {
    pub pod: String,
    pub trigger: Trigger,
    pub checkpoint: String,
    pub dropped: Vec<String>,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct Failed {
    pub pod: String,
    pub trigger: Trigger,
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ReconcileError(String);

pub async fn run(home: &Home, g: &Global, args: CheckpointControllerArgs) -> Result<()> {
    let client = super::kube_client(home, &args.cluster).await?;
    let policies: Api<CheckpointPolicy> = Api::all(client.clone());
    if let Err(kube::Error::Api(e)) = policies.list(&ListParams::default().limit(1)).await
        && e.code == 404
    {
        bail!(Usage(format!(
            "the CheckpointPolicy CRD is not installed in {0}: clouder checkpoint crd | clouder kubectl {0} apply -f -",
            args.cluster
        )));
    }
    let once = args.once;
    let cx = Arc::new(Cx {
        home: Home {
            root: home.root.clone(),
            state_db: home.state_db.clone(),
        },
        g: g.clone(),
        client,
        args,
    });
    if once {
        let mut rounds = Vec::new();
        for policy in policies.list(&ListParams::default()).await? {
            rounds.push(look(&cx, &policy).await?);
        }
        let failed: usize = rounds.iter().map(|r| r.failed.len()).sum();
        output::emit(g.output, &rounds, || text(&rounds))?;
        if failed > 0 {
            bail!("{failed} checkpoint(s) failed; their policies' status says why");
        }
        return Ok(());
    }
    if !g.quiet {
        eprintln!(
            "watching CheckpointPolicies in {} (every {}s; Ctrl-C stops)",
            cx.args.cluster, cx.args.tick
        );
    }
    Controller::new(policies, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, cx.clone())
        .for_each(|result| async {
            match result {
                Ok((policy, _)) => tracing::info!(%policy, "reconciled"),
                Err(e) => tracing::warn!(%e, "reconcile failed"),
            }
        })
        .await;
    Ok(())
}

fn text(rounds: &[Round]) -> String {
    let mut out = String::new();
    for r in rounds {
        if let Some(why) = &r.invalid {
            out += &format!("{}: {why}\n", r.policy);
        }
        for d in &r.checkpointed {
            out += &format!(
                "{}: {} checkpointed as {} ({:?}, {:.1}s)\n",
                r.policy, d.pod, d.checkpoint, d.trigger, d.seconds
            );
        }
        for f in &r.failed {
            out += &format!("{}: {} FAILED: {}\n", r.policy, f.pod, f.error);
        }
    }
    out
}

async fn reconcile(policy: Arc<CheckpointPolicy>, cx: Arc<Cx>) -> Result<Action, ReconcileError> {
    let round = look(&cx, &policy)
        .await
        .map_err(|e| ReconcileError(format!("{e:#}")))?;
    let acted = !round.checkpointed.is_empty() || !round.failed.is_empty();
    if acted && !cx.g.quiet {
        eprint!("{}", text(std::slice::from_ref(&round)));
    }
    let tick = Duration::from_secs(cx.args.tick.max(1));
    let next = policy
        .spec
        .rules()
        .ok()
        .and_then(|r| r.next(Timestamp::now()));
    let until_schedule = next
        .map(|at| at.duration_since(Timestamp::now()))
        .and_then(|d| Duration::try_from(d).ok());
    Ok(Action::requeue(
        until_schedule.map_or(tick, |d| d.min(tick)),
    ))
}

fn error_policy(_: Arc<CheckpointPolicy>, e: &ReconcileError, cx: Arc<Cx>) -> Action {
    tracing::warn!(%e, "looking at a policy failed");
    Action::requeue(Duration::from_secs(cx.args.tick.max(1)))
}

/// One look at a policy: checkpoints its due pods, then writes its status.
async fn look(cx: &Cx, policy: &CheckpointPolicy) -> Result<Round> {
    let namespace = policy.namespace().unwrap_or_else(|| "default".into());
    let name = format!("{namespace}/{}", policy.name_any());
    let mut round = Round {
        policy: name.clone(),
        checkpointed: Vec::new(),
        failed: Vec::new(),
        invalid: None,
    };
    let mut status = policy.status.clone().unwrap_or_default();
    let rules = match policy.spec.rules() {
        Ok(rules) => rules,
        Err(e) => {
            round.invalid = Some(e.to_string());
            set_ready(&mut status, false, "InvalidSpec", &e.to_string());
            write_status(cx, policy, &namespace, status).await?;
            return Ok(round);
        }
    };
    let pods: Api<Pod> = Api::namespaced(cx.client.clone(), &namespace);
    let mut selected = Vec::new();
    for pod in pods.list(&ListParams::default()).await? {
        if selector_matches(&policy.spec.selector, pod.labels())? {
            selected.push(pod);
        }
    }
    // Pods gone from the selection are forgotten.
    status
        .pods
        .retain(|s| selected.iter().any(|p| p.name_any() == s.pod));
    let now = Timestamp::now();
    for pod in &selected {
        let pod_name = pod.name_any();
        let at = status.pods.iter().position(|s| s.pod == pod_name);
        let last_run = at
            .and_then(|i| status.pods[i].last_run.as_deref())
            .and_then(|t| t.parse().ok());
        let entry = match at {
            Some(i) => &mut status.pods[i],
            None => {
                status.pods.push(PodStatus {
                    pod: pod_name.clone(),
                    ..PodStatus::default()
                });
                status.pods.last_mut().expect("just pushed")
            }
        };
        // Only running containers can be checkpointed; others wait for a later look.
        if take::target(pod, policy.spec.container.as_deref()).is_err() {
            continue;
        }
        let Some(trigger) = rules.due(pod, last_run, now) else {
            continue;
        };
        match checkpoint(cx, policy, &namespace, &pod_name).await {
            Ok(taken) => {
                entry.last_run = Some(Timestamp::now().to_string());
                entry.last_checkpoint = Some(taken.checkpoint.id.clone());
                entry.last_error = None;
                entry.last_failure = None;
                round.checkpointed.push(Done {
                    pod: pod_name,
                    trigger,
                    checkpoint: taken.checkpoint.id,
                    dropped: taken.dropped,
                    seconds: taken.seconds,
                });
            }
            Err(e) => {
                let error = format!("{e:#}");
                entry.last_error = Some(error.clone());
                entry.last_failure = Some(Timestamp::now().to_string());
                round.failed.push(Failed {
                    pod: pod_name,
                    trigger,
                    error,
                });
            }
        }
    }
    status.pods.sort_by(|a, b| a.pod.cmp(&b.pod));
    let failing: Vec<String> = status
        .pods
        .iter()
        .filter_map(|p| Some(format!("{}: {}", p.pod, p.last_error.as_ref()?)))
        .collect();
    match failing.is_empty() {
        true => set_ready(
            &mut status,
            true,
            "CheckpointsTaken",
            "every due pod was checkpointed",
        ),
        false => set_ready(&mut status, false, "CheckpointFailed", &failing.join("; ")),
    }
    write_status(cx, policy, &namespace, status).await?;
    Ok(round)
}

/// Checkpoints one pod the way `checkpoint create` does, labelled with its policy.
async fn checkpoint(
    cx: &Cx,
    policy: &CheckpointPolicy,
    namespace: &str,
    pod: &str,
) -> Result<Taken> {
    let request = Request {
        cluster: cx.args.cluster.clone(),
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        container: policy.spec.container.clone(),
        to: policy.spec.destination.clone(),
        timeout: cx.args.timeout,
        labels: [("clouder.io/policy".to_string(), policy.name_any())].into(),
        retention: policy.spec.retention.rule(),
        archive: None,
        access: cx.args.node.clone(),
    };
    take::take(&cx.home, &cx.g, &cx.client, &request).await
}

/// Sets the `Ready` condition, keeping its transition time while its status stays.
fn set_ready(status: &mut CheckpointPolicyStatus, ready: bool, reason: &str, message: &str) {
    let value = if ready { "True" } else { "False" };
    let since = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == value)
        .map(|c| c.last_transition_time.clone());
    status.conditions.retain(|c| c.type_ != "Ready");
    status.conditions.push(Condition {
        type_: "Ready".into(),
        status: value.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: since.unwrap_or(Time(Timestamp::now())),
        observed_generation: None,
    });
}

async fn write_status(
    cx: &Cx,
    policy: &CheckpointPolicy,
    namespace: &str,
    mut status: CheckpointPolicyStatus,
) -> Result<()> {
    status.observed_generation = policy.meta().generation;
    let api: Api<CheckpointPolicy> = Api::namespaced(cx.client.clone(), namespace);
    let patch = serde_json::json!({"status": status});
    api.patch_status(
        &policy.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}
