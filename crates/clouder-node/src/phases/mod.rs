//! Bootstrap phases, one file each (like k0sctl's). A phase is a probe and an apply script: the
//! runner runs the probe, skips the phase when it passes, otherwise applies and probes again.
//! So every phase is idempotent by construction, and a re-run changes nothing.

mod prerequisites;

pub use prerequisites::Prerequisites;

use crate::ssh::{Session, SshError};
use serde::Serialize;
use std::time::{Duration, Instant};

/// What the phases need to know about the node they run on.
#[derive(Debug, Clone, Default)]
pub struct NodePlan {
    /// Kubernetes `MAJOR.MINOR[.PATCH]`.
    pub kubernetes_version: String,
}

impl NodePlan {
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
    fn probe(&self, node: &NodePlan) -> String;
    /// A script that makes the probe pass.
    fn apply(&self, node: &NodePlan) -> String;
}

/// Every phase of the node bootstrap, in order.
pub fn all() -> Vec<Box<dyn Phase>> {
    vec![Box::new(Prerequisites)]
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

/// Runs `phases` in order on one host; stops at the first failure (later phases build on it).
pub async fn run(
    session: &Session,
    node: &NodePlan,
    phases: &[Box<dyn Phase>],
) -> Result<Vec<PhaseReport>, PhaseError> {
    let host = session.host().label();
    let mut reports = Vec::new();
    for phase in phases {
        let start = Instant::now();
        let title = phase.title();
        if session.script(&phase.probe(node)).await?.ok() {
            reports.push(PhaseReport {
                phase: title,
                outcome: Outcome::Skipped,
                elapsed: start.elapsed(),
            });
            continue;
        }
        tracing::info!(%host, phase = title, "applying");
        let out = session.script(&phase.apply(node)).await?;
        if !out.ok() {
            return Err(PhaseError::Failed {
                host,
                phase: title,
                status: out.status,
                stderr: out.stderr.trim().to_string(),
            });
        }
        let check = session.script(&phase.probe(node)).await?;
        if !check.ok() {
            return Err(PhaseError::NotConverged {
                host,
                phase: title,
                stderr: check.stderr.trim().to_string(),
            });
        }
        reports.push(PhaseReport {
            phase: title,
            outcome: Outcome::Applied,
            elapsed: start.elapsed(),
        });
    }
    Ok(reports)
}
