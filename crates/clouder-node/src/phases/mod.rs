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

/// Every probe goes in one round trip first: on a converged host a re-run costs one script. Its
/// answers count only until a phase is applied, since an apply may change what later probes see.
async fn run_each(
    session: &Session,
    node: Node<'_>,
    phases: &[Box<dyn Phase>],
    reports: &mut Vec<PhaseReport>,
) -> Result<(), PhaseError> {
    let host = session.host().label();
    let probed = session.script(&all_probes(phases, node)).await?;
    let mut first_probes = first_probes(&probed.stdout, phases.len()).into_iter();
    let mut applied_before = false;
    for phase in phases {
        let start = Instant::now();
        let title = phase.title();
        let first_probe = first_probes.next().filter(|_| !applied_before);
        if let Some(FirstProbe::Passed(probe_time)) = first_probe {
            session
                .step(title, async { Ok::<_, PhaseError>(((), Ended::Unchanged)) })
                .await?;
            // Timed on the host, where the probe ran.
            reports.push(PhaseReport {
                phase: title,
                outcome: Outcome::Skipped,
                elapsed: probe_time,
            });
            continue;
        }
        let outcome = session
            .step(title, async {
                // The first round trip's failure stands until something was applied.
                if first_probe != Some(FirstProbe::Failed)
                    && session.script(&phase.probe(node)).await?.ok()
                {
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
        applied_before |= outcome == Outcome::Applied;
        reports.push(PhaseReport {
            phase: title,
            outcome,
            elapsed: start.elapsed(),
        });
    }
    Ok(())
}

const PROBE_MARK: &str = "clouder-probe";

/// One script running every phase's probe in a subshell of its own, in order, each printing
/// `clouder-probe INDEX STATUS MICROSECONDS`.
pub fn all_probes(phases: &[Box<dyn Phase>], node: Node) -> String {
    let mut out = String::from("#!/usr/bin/env bash\n");
    for (i, phase) in phases.iter().enumerate() {
        out += &format!(
            "start=${{EPOCHREALTIME/[.,]/}}\n(\n{}) >/dev/null\nstatus=$?\n\
             echo \"{PROBE_MARK} {i} $status $((${{EPOCHREALTIME/[.,]/}} - start))\"\n",
            phase.probe(node)
        );
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstProbe {
    /// Passed, taking this long on the host.
    Passed(Duration),
    Failed,
    /// No answer (the script stopped early): the phase probes again on its own.
    Unknown,
}

/// Each phase's answer in [`all_probes`]' output.
fn first_probes(stdout: &str, count: usize) -> Vec<FirstProbe> {
    let mut answers = vec![FirstProbe::Unknown; count];
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [PROBE_MARK, index, status, micros] = fields[..]
            && let (Ok(index), Ok(micros)) = (index.parse::<usize>(), micros.parse())
            && index < count
        {
            answers[index] = match status {
                "0" => FirstProbe::Passed(Duration::from_micros(micros)),
                _ => FirstProbe::Failed,
            };
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A phase whose probe is `probe`.
    struct Probing(&'static str);

    impl Phase for Probing {
        fn title(&self) -> &'static str {
            "probing"
        }
        fn probe(&self, _: Node) -> String {
            crate::shell::script([self.0])
        }
        fn apply(&self, _: Node) -> String {
            unreachable!()
        }
    }

    #[test]
    fn one_script_answers_for_every_probe_and_a_failure_stops_only_its_own() {
        let phases: Vec<Box<dyn Phase>> = vec![
            Box::new(Probing("echo noise; true")),
            Box::new(Probing("false; echo never")),
            Box::new(Probing("exit 7")),
            Box::new(Probing("sleep 0.05")),
        ];
        let (plan, facts) = (NodePlan::default(), Facts::default());
        let node = Node {
            plan: &plan,
            facts: &facts,
        };
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(all_probes(&phases, node))
            .output()
            .unwrap();
        let answers = first_probes(&String::from_utf8_lossy(&out.stdout), phases.len() + 1);
        assert!(matches!(answers[0], FirstProbe::Passed(_)), "{answers:?}");
        assert_eq!(answers[1..3], [FirstProbe::Failed, FirstProbe::Failed]);
        let FirstProbe::Passed(slept) = answers[3] else {
            panic!("{answers:?}")
        };
        assert!(
            slept >= Duration::from_millis(50),
            "timed on the host: {slept:?}"
        );
        assert_eq!(answers[4], FirstProbe::Unknown, "no line, no answer");
    }
}
