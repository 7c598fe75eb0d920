//! Bootstrap phases, one file each (like k0sctl's). A phase is a probe and an apply script: the
//! runner runs the probe, skips the phase when it passes, otherwise applies and probes again.
//! So every phase is idempotent by construction, and a re-run changes nothing.

pub mod apt;
pub mod archive;
mod criu;
pub mod kubernetes;
mod prerequisites;
mod runtime;
pub mod source;

pub use criu::Criu;
pub use kubernetes::KubernetesPackages;
pub use prerequisites::Prerequisites;
pub use runtime::ContainerRuntime;

use crate::facts::Facts;
use crate::ssh::{Session, SshError};
use crate::watch::Ended;
use clouder_spec::Sources;
use serde::Serialize;
use std::time::{Duration, Instant};

/// What the phases need to know about the cluster the node joins.
#[derive(Debug, Clone, Default)]
pub struct NodePlan {
    /// Kubernetes `MAJOR.MINOR[.PATCH]`.
    pub kubernetes_version: String,
    /// Where packages come from; absent entries take the upstream defaults.
    pub sources: Sources,
}

/// A phase's view of one host: the cluster's plan and the host's facts.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    pub plan: &'a NodePlan,
    pub facts: &'a Facts,
}

impl NodePlan {
    /// The Kubernetes version without a leading `v`.
    pub fn bare_version(&self) -> &str {
        self.kubernetes_version.trim_start_matches('v')
    }

    /// The Kubernetes minor version (`32` of `v1.32.3`).
    pub fn minor(&self) -> u32 {
        let bare = self.kubernetes_version.trim_start_matches('v');
        bare.split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }
}

pub trait Phase: Send + Sync {
    /// A short human title for progress lines.
    fn title(&self) -> &'static str;
    /// A script that exits 0 when the host is already as this phase wants it. Must change nothing.
    fn probe(&self, node: Node) -> String;
    /// A script that makes the probe pass.
    fn apply(&self, node: Node) -> String;
}

/// Every phase that prepares a host, in order (the cluster phases — init, join — come after).
pub fn all() -> Vec<Box<dyn Phase>> {
    vec![
        Box::new(Prerequisites),
        Box::new(ContainerRuntime),
        Box::new(Criu),
        Box::new(KubernetesPackages),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The probe passed: nothing was changed.
    Skipped,
    Applied,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub phase: &'static str,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PhaseError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("{host}: phase `{phase}` failed (exit {status}): {stderr}")]
    Failed {
        host: String,
        phase: &'static str,
        status: u32,
        stderr: String,
    },
    #[error("{host}: phase `{phase}` ran, but its check still fails: {stderr}")]
    NotConverged {
        host: String,
        phase: &'static str,
        stderr: String,
    },
}

/// What the phases did on one host, up to the first failure if any.
#[derive(Debug, Default)]
pub struct Progress {
    pub done: Vec<PhaseReport>,
    pub failure: Option<PhaseError>,
}

/// Runs `phases` in order on one host; stops at the first failure (later phases build on it),
/// keeping what was done before it.
pub async fn run(session: &Session, node: Node<'_>, phases: &[Box<dyn Phase>]) -> Progress {
    let mut progress = Progress::default();
    if let Err(e) = run_each(session, node, phases, &mut progress.done).await {
        progress.failure = Some(e);
    }
    progress
}

async fn run_each(
    session: &Session,
    node: Node<'_>,
    phases: &[Box<dyn Phase>],
    reports: &mut Vec<PhaseReport>,
) -> Result<(), PhaseError> {
    let host = session.host().label();
    for phase in phases {
        let start = Instant::now();
        let title = phase.title();
        let outcome = session
            .step(title, async {
                if session.script(&phase.probe(node)).await?.ok() {
                    return Ok((Outcome::Skipped, Ended::Unchanged));
                }
                tracing::info!(%host, phase = title, "applying");
                let out = session.script(&phase.apply(node)).await?;
                if !out.ok() {
                    return Err(PhaseError::Failed {
                        host: host.clone(),
                        phase: title,
                        status: out.status,
                        stderr: out.stderr.trim().to_string(),
                    });
                }
                let check = session.script(&phase.probe(node)).await?;
                if !check.ok() {
                    return Err(PhaseError::NotConverged {
                        host: host.clone(),
                        phase: title,
                        stderr: check.stderr.trim().to_string(),
                    });
                }
                Ok((Outcome::Applied, Ended::Applied))
            })
            .await?;
        reports.push(PhaseReport {
            phase: title,
            outcome,
            elapsed: start.elapsed(),
        });
    }
    Ok(())
}
