//! `provider: ssh` clusters: the hosts exist already; converging means bootstrapping them over
//! SSH, with their host keys pinned in clouder's state.

use super::converge::{lock_holder, take_lock};
use crate::Usage;
use crate::cli::{Global, RunFlags};
use crate::home::{Home, expand};
use crate::output::{emit, table};
use anyhow::{Result, bail};
use clouder_node::bootstrap::{self, HostOutcome};
use clouder_node::fleet::{HostReport, KeyPins};
use clouder_node::phases::{NodePlan, Outcome};
use clouder_node::{Fleet, Host};
use clouder_spec::{Cluster, Role};
use clouder_state::{ClusterRecord, SqliteStore, StateStore, now};
use serde::Serialize;
use std::sync::Arc;

/// Host keys pinned per cluster in the state store.
struct StatePins {
    store: Arc<SqliteStore>,
    cluster: String,
}

impl KeyPins for StatePins {
    fn pinned(&self, address: &str) -> Option<String> {
        self.store.host_key(&self.cluster, address).ok().flatten()
    }
    fn pin(&self, address: &str, fingerprint: &str) {
        if let Err(e) = self.store.pin_host_key(&self.cluster, address, fingerprint) {
            tracing::warn!(%e, address, "could not pin the host key");
        }
    }
}

fn private_key(cluster: &Cluster) -> Result<std::path::PathBuf> {
    let candidates: Vec<String> = match &cluster.spec.ssh.private_key_path {
        Some(p) => vec![p.clone()],
        None => vec!["~/.ssh/id_ed25519".into(), "~/.ssh/id_rsa".into()],
    };
    candidates
        .iter()
        .map(|c| expand(c))
        .find(|p| p.exists())
        .ok_or_else(|| {
            Usage(format!(
                "no SSH private key found (looked at {}); set spec.ssh.privateKeyPath",
                candidates.join(", ")
            ))
            .into()
        })
}

#[derive(Serialize)]
struct Row {
    host: String,
    role: Role,
    ok: bool,
    error: Option<String>,
    applied: Vec<&'static str>,
    skipped: Vec<&'static str>,
    seconds: f64,
}

pub async fn converge(home: &Home, g: &Global, cluster: Cluster, run: &RunFlags) -> Result<()> {
    let name = cluster.name().to_string();
    let hosts: Vec<(Host, Role)> = cluster
        .spec
        .hosts
        .iter()
        .map(|h| {
            let user = h
                .user
                .clone()
                .unwrap_or_else(|| cluster.spec.admin_user.clone());
            (
                Host {
                    address: h.address.clone(),
                    port: h.port,
                    user,
                },
                h.role,
            )
        })
        .collect();
    let plan = NodePlan {
        kubernetes_version: cluster.spec.kubernetes.version.clone(),
        sources: cluster.spec.sources.clone(),
    };
    if run.dry_run {
        let phases: Vec<&str> = clouder_node::phases::all()
            .iter()
            .map(|p| p.title())
            .collect();
        let out = serde_json::json!({ "cluster": name, "hosts": hosts.iter().map(|(h, _)| h.label()).collect::<Vec<_>>(), "phases": phases });
        return emit(g.output, &out, || {
            format!(
                "Would bootstrap {} host(s) of {name}, probing each phase first: {}\n",
                hosts.len(),
                phases.join(", ")
            )
        });
    }

    let key = clouder_node::ssh::load_key(&private_key(&cluster)?)?;
    let store = Arc::new(home.store()?);
    let holder = lock_holder(std::process::id());
    if run.force_unlock {
        store.force_unlock(&name)?;
    }
    take_lock(store.as_ref(), &name, &holder)?;
    let created_at = store.cluster(&name)?.map_or_else(now, |c| c.created_at);
    let record = |status: &str| ClusterRecord {
        name: name.clone(),
        provider: "ssh".into(),
        region: None,
        context: None,
        spec: serde_json::to_value(&cluster).expect("spec serializes"),
        status: status.into(),
        setup_complete: false,
        created_at,
        updated_at: now(),
    };
    store.put_cluster(&record("applying"))?;
    let mut fleet = Fleet::new(
        key,
        Arc::new(StatePins {
            store: store.clone(),
            cluster: name.clone(),
        }),
    );
    fleet.parallelism = run.concurrency.max(1);
    let only_hosts: Vec<Host> = hosts.iter().map(|(h, _)| h.clone()).collect();
    let reports: Vec<HostReport<HostOutcome>> =
        bootstrap::prepare(&fleet, &only_hosts, &plan).await;
    let failed = reports.iter().filter(|r| r.result.is_err()).count();
    store.put_cluster(&record(if failed == 0 { "ready" } else { "failed" }))?;
    store.unlock(&name, &holder)?;

    let rows: Vec<Row> = reports
        .iter()
        .zip(&hosts)
        .map(|(r, (_, role))| {
            let phases = r
                .result
                .as_ref()
                .map(|o| o.phases.clone())
                .unwrap_or_default();
            let titles = |want: Outcome| {
                phases
                    .iter()
                    .filter(|p| p.outcome == want)
                    .map(|p| p.phase)
                    .collect()
            };
            Row {
                host: r.host.clone(),
                role: *role,
                ok: r.result.is_ok(),
                error: r.result.as_ref().err().cloned(),
                applied: titles(Outcome::Applied),
                skipped: titles(Outcome::Skipped),
                seconds: r.elapsed.as_secs_f64(),
            }
        })
        .collect();
    emit(g.output, &rows, || {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.host.clone(),
                    format!("{:?}", r.role).to_lowercase(),
                    if r.ok { "ok".into() } else { "FAILED".into() },
                    r.applied.join(","),
                    r.skipped.join(","),
                    format!("{:.1}s", r.seconds),
                ]
            })
            .collect();
        table(
            &["HOST", "ROLE", "RESULT", "APPLIED", "UNCHANGED", "TIME"],
            &cells,
        )
    })?;
    if failed > 0 {
        let lines: Vec<String> = rows
            .iter()
            .filter_map(|r| r.error.as_ref().map(|e| format!("  {e}")))
            .collect();
        bail!(
            "{failed} of {} host(s) failed; the others are done. Fix the cause and re-run to resume:\n{}",
            rows.len(),
            lines.join("\n")
        );
    }
    Ok(())
}
