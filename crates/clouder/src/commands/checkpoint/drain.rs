//! The `beforeDrain` trigger of CheckpointPolicies, for `kubeadm scale` down and `byon remove`:
//! before a node drains, the pods on it that such a policy selects are checkpointed (through
//! [`take`], as `checkpoint create`); after the drain, each is restored under its own name
//! where the scheduler puts it (through [`restore_pod`], as `checkpoint restore`). A pod a
//! controller owns (ReplicaSet, StatefulSet…) is not restored: its controller recreates it,
//! and a second copy would run; its checkpoint stays in the catalogue.

use super::take::{self, Request};
use super::{RestoreTarget, Restored, restore_pod};
use crate::cli::{Global, NodeAccess};
use crate::home::Home;
use anyhow::{Result, bail};
use clouder_checkpoint::policy::{CheckpointPolicy, selector_matches};
use clouder_state::CheckpointRecord;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;
use kube::api::{Api, ListParams};
use serde::Serialize;
use std::time::{Duration, Instant};

/// A pod checkpointed before its node drained.
pub struct Held {
    pod: Pod,
    checkpoint: CheckpointRecord,
}

/// What became of a pod checkpointed before the drain.
#[derive(Debug, Serialize)]
pub struct Moved {
    pub pod: String,
    pub checkpoint: String,
    /// Where it runs again, restored from the checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<Restored>,
    /// The controller that recreates it instead (`Kind/name`): it is not restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recreated_by: Option<String>,
    /// Why restoring it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn name(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

/// Checkpoints the pods on `node` that a policy with `beforeDrain` selects. A failure stops
/// here, before anything was drained, unless `force` (then the pod drains without one).
pub async fn before_drain(
    home: &Home,
    g: &Global,
    client: &kube::Client,
    cluster: &str,
    node: &str,
    access: &NodeAccess,
    force: bool,
) -> Result<Vec<Held>> {
    let policies = match Api::<CheckpointPolicy>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list.items,
        // No CRD, no policies.
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let draining: Vec<&CheckpointPolicy> = policies
        .iter()
        .filter(|p| p.spec.triggers.before_drain)
        .collect();
    if draining.is_empty() {
        return Ok(Vec::new());
    }
    let on_node = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let pods = Api::<Pod>::all(client.clone()).list(&on_node).await?;
    let mut held = Vec::new();
    for pod in pods
        .items
        .into_iter()
        .filter(clouder_kube::drain::evictable)
    {
        let Some(policy) = draining.iter().find(|p| {
            p.namespace() == pod.namespace()
                && selector_matches(&p.spec.selector, pod.labels()).unwrap_or(false)
        }) else {
            continue;
        };
        let request = Request {
            cluster: cluster.to_string(),
            namespace: pod.namespace().unwrap_or_default(),
            pod: pod.name_any(),
            container: policy.spec.container.clone(),
            to: policy.spec.destination.clone(),
            timeout: 60,
            labels: [
                ("clouder.io/policy".to_string(), policy.name_any()),
                ("clouder.io/trigger".to_string(), "before-drain".to_string()),
            ]
            .into(),
            retention: policy.spec.retention.rule(),
            archive: None,
            access: access.clone(),
        };
        match take::take(home, g, client, &request).await {
            Ok(taken) => {
                if !g.quiet {
                    eprintln!(
                        "checkpointed {} before draining {node}: {}",
                        name(&pod),
                        taken.checkpoint.id
                    );
                }
                held.push(Held {
                    pod,
                    checkpoint: taken.checkpoint,
                });
            }
            Err(e) if force => eprintln!(
                "warning: {} drains without a checkpoint (--force): {e:#}",
                name(&pod)
            ),
            Err(e) => bail!(
                "checkpointing {} (policy {}, beforeDrain) failed, so {node} was not drained: {e:#}. Fix the cause and re-run, or pass --force to drain without it",
                name(&pod),
                policy.name_any()
            ),
        }
    }
    Ok(held)
}

/// Restores each held pod under its own name once the drained one is gone; `wait` bounds both.
pub async fn after_drain(to: &RestoreTarget<'_>, held: Vec<Held>, wait: Duration) -> Vec<Moved> {
    let client = to.client;
    let mut moved = Vec::new();
    for Held { pod, checkpoint } in held {
        let mut outcome = Moved {
            pod: name(&pod),
            checkpoint: checkpoint.id.clone(),
            restored: None,
            recreated_by: None,
            error: None,
        };
        let owners = pod.owner_references();
        if let Some(owner) = owners.iter().find(|o| o.controller == Some(true)) {
            outcome.recreated_by = Some(format!("{}/{}", owner.kind, owner.name));
            moved.push(outcome);
            continue;
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), &checkpoint.namespace);
        let deadline = Instant::now() + wait;
        let restored = async {
            while pods.get_opt(&pod.name_any()).await?.is_some() {
                if Instant::now() > deadline {
                    bail!("the drained pod was still there after {}s", wait.as_secs());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            restore_pod(to, &checkpoint, &pod.name_any(), None, left).await
        }
        .await;
        match restored {
            Ok(r) => outcome.restored = Some(r),
            Err(e) => outcome.error = Some(format!("{e:#}")),
        }
        moved.push(outcome);
    }
    moved
}

/// After a drain: what moved, as lines; and an error naming the pods that should run again
/// from their checkpoint and do not.
pub fn report(moved: &[Moved]) -> (String, Result<()>) {
    let mut text = String::new();
    let mut lost = Vec::new();
    for m in moved {
        match (&m.restored, &m.recreated_by, &m.error) {
            (Some(r), _, _) => {
                text += &format!("{} restored from {} on {}\n", m.pod, m.checkpoint, r.node)
            }
            (None, Some(owner), _) => {
                text += &format!(
                    "{} checkpointed as {}; {owner} recreates it (clouder checkpoint restore runs it from the checkpoint)\n",
                    m.pod, m.checkpoint
                )
            }
            (None, None, error) => lost.push(format!(
                "{} ({}): {}",
                m.pod,
                m.checkpoint,
                error.as_deref().unwrap_or_default()
            )),
        }
    }
    let result = match lost.is_empty() {
        true => Ok(()),
        false => Err(anyhow::anyhow!(
            "{} pod(s) checkpointed before the drain were not restored (clouder checkpoint restore runs them from their checkpoint):\n  {}",
            lost.len(),
            lost.join("\n  ")
        )),
    };
    (text, result)
}
