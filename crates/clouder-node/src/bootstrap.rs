//! Bootstrap of many hosts: read facts, refuse unsupported hosts before changing anything, then
//! run the phases; each host's outcome is reported, and a re-run resumes where each stopped.

use crate::facts::Facts;
use crate::fleet::{Fleet, HostReport};
use crate::phases::{self, Node, NodePlan, PhaseReport};
use crate::ssh::Host;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct HostOutcome {
    pub facts: Facts,
    pub phases: Vec<PhaseReport>,
    /// The phase that failed, after `phases` were done; a re-run resumes there.
    pub failure: Option<String>,
}

/// Runs every phase on every host (in parallel, bounded by the fleet).
pub async fn prepare(
    fleet: &Fleet,
    hosts: &[Host],
    plan: &NodePlan,
) -> Vec<HostReport<HostOutcome>> {
    let all = phases::all();
    let all = &all;
    fleet
        .each(hosts, |session| async move {
            let facts = Facts::gather(&session).await.map_err(|e| e.to_string())?;
            let problems = facts.problems(plan.minor());
            if !problems.is_empty() {
                return Err(format!(
                    "{}: not bootstrapped, nothing changed: {}",
                    session.host().label(),
                    problems.join("; ")
                ));
            }
            let node = Node {
                plan,
                facts: &facts,
            };
            let progress = phases::run(&session, node, all).await;
            session.close().await;
            Ok(HostOutcome {
                facts,
                phases: progress.done,
                failure: progress.failure.map(|e| e.to_string()),
            })
        })
        .await
}
