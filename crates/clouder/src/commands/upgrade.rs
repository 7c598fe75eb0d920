//! `upgrade-kubelet NAME`: a rolling upgrade of every node to the spec's Kubernetes version (or
//! `--k8s-version`) — control planes one at a time, then workers a tenth at a time; each node
//! drained around its kubelet's restart and uncordoned after. A node already at the version is
//! left alone; a failure stops the roll before the next wave, and a re-run resumes.

use super::bootstrap::{Formation, Target, connect_fleet, ssh_formation};
use super::converge::{lock_holder, take_lock};
use super::{kube_client, resolve_name};
use crate::Usage;
use crate::cli::{Global, UpgradeArgs};
use crate::home::Home;
use crate::output::{emit, table};
use anyhow::{Context as _, Result, bail};
use clouder_kube::drain::{self, DrainOptions};
use clouder_node::phases::{self, Node, NodePlan, Outcome};
use clouder_node::upgrade::{self, Part};
use clouder_node::watch::Ended;
use clouder_node::{Facts, Fleet, Session};
use clouder_spec::{Cluster, Provider, Role};
use clouder_state::{ClusterRecord, StateStore, now};
use k8s_openapi::api::core::v1::Node as KubeNode;
use kube::api::{Api, ListParams};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Serialize)]
struct Row {
    host: String,
    node: Option<String>,
    role: Role,
    /// `upgraded`, `unchanged`, `failed` or `not started` (a wave before it failed).
    result: &'static str,
    steps: Vec<&'static str>,
    error: Option<String>,
    seconds: f64,
}

/// The API's nodes by kubelet version, to refuse an unsupported skew before touching anything.
async fn node_versions(client: &kube::Client) -> Result<Vec<(String, String, Vec<String>)>> {
    let nodes = Api::<KubeNode>::all(client.clone())
        .list(&ListParams::default())
        .await
        .context("listing the cluster's nodes")?;
    Ok(nodes
        .items
        .into_iter()
        .map(|n| {
            let status = n.status.unwrap_or_default();
            let version = status
                .node_info
                .map(|i| i.kubelet_version)
                .unwrap_or_default();
            let addresses = status
                .addresses
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.address)
                .collect();
            (n.metadata.name.unwrap_or_default(), version, addresses)
        })
        .collect())
}

/// The Node a host registered as: by address, else by hostname.
fn node_of(
    nodes: &[(String, String, Vec<String>)],
    target: &Target,
    facts: &Facts,
) -> Option<String> {
    nodes
        .iter()
        .find(|(_, _, addresses)| {
            addresses
                .iter()
                .any(|a| *a == facts.address || *a == target.host.address)
        })
        .or_else(|| nodes.iter().find(|(name, _, _)| *name == facts.hostname))
        .map(|(name, _, _)| name.clone())
}

struct Context<'a> {
    client: &'a kube::Client,
    nodes: &'a [(String, String, Vec<String>)],
    plan: &'a NodePlan,
    drain: DrainOptions,
}

/// One node: skipped when every step's probe passes; else kubeadm and the control plane, the
/// drain, the kubelet, the uncordon.
async fn upgrade_node(
    cx: &Context<'_>,
    session: Session,
    target: &Target,
    part: Part,
) -> Result<(Option<String>, Vec<&'static str>, bool), String> {
    let host = session.host().label();
    let facts = Facts::gather(&session).await.map_err(|e| e.to_string())?;
    let node = Node {
        plan: cx.plan,
        facts: &facts,
    };
    let name = node_of(cx.nodes, target, &facts);
    let steps = upgrade::all(part);
    let mut done = true;
    for step in &steps {
        let probe = session
            .script(&step.probe(node))
            .await
            .map_err(|e| e.to_string())?;
        done &= probe.ok();
    }
    if done {
        return Ok((name, Vec::new(), false));
    }
    let name = name.ok_or_else(|| {
        format!(
            "{host}: no Node of the cluster has this host's address ({}) or name ({}); nothing was changed",
            facts.address, facts.hostname
        )
    })?;
    let mut applied = Vec::new();
    let mut run = |progress: phases::Progress| -> Result<(), String> {
        applied.extend(
            progress
                .done
                .iter()
                .filter(|p| p.outcome == Outcome::Applied)
                .map(|p| p.phase),
        );
        progress.failure.map_or(Ok(()), |e| Err(e.to_string()))
    };
    run(phases::run(&session, node, &upgrade::before_drain(part)).await)?;
    session
        .step("drain", async {
            match drain::drain(cx.client, &name, &cx.drain).await {
                Ok(_) => Ok(((), Ended::Applied)),
                Err(e) => Err(format!("{host}: draining {name}: {e}")),
            }
        })
        .await?;
    run(phases::run(&session, node, &upgrade::while_drained()).await)?;
    session
        .step("uncordon", async {
            match drain::cordon(cx.client, &name, false).await {
                Ok(()) => Ok(((), Ended::Applied)),
                Err(e) => Err(format!("{host}: uncordoning {name}: {e}")),
            }
        })
        .await?;
    session.close().await;
    Ok((Some(name), applied, true))
}

async fn roll(cx: &Context<'_>, fleet: &Fleet, formation: &Formation) -> Vec<Row> {
    let (control_planes, workers): (Vec<&Target>, Vec<&Target>) = formation
        .targets
        .iter()
        .partition(|t| t.spec.role == Role::ControlPlane);
    let first = control_planes.first().map(|t| t.host.clone());
    let mut rows = Vec::new();
    let mut stopped = false;
    for wave in upgrade::waves(&control_planes, &workers) {
        if stopped {
            rows.extend(wave.iter().map(|t| Row {
                host: t.host.label(),
                node: None,
                role: t.spec.role,
                result: "not started",
                steps: Vec::new(),
                error: None,
                seconds: 0.0,
            }));
            continue;
        }
        let hosts: Vec<_> = wave.iter().map(|t| t.host.clone()).collect();
        let reports = fleet
            .each(&hosts, |session| {
                let target = wave
                    .iter()
                    .find(|t| t.host == *session.host())
                    .expect("a host of this wave");
                let part = match target.spec.role {
                    Role::Worker => Part::Worker,
                    _ if Some(&target.host) == first.as_ref() => Part::FirstControlPlane,
                    _ => Part::ControlPlane,
                };
                upgrade_node(cx, session, target, part)
            })
            .await;
        for (report, target) in reports.into_iter().zip(&wave) {
            let (node, steps, changed, error) = match report.result {
                Ok((node, steps, changed)) => (node, steps, changed, None),
                Err(e) => (None, Vec::new(), false, Some(e)),
            };
            stopped |= error.is_some();
            rows.push(Row {
                host: report.host,
                node,
                role: target.spec.role,
                result: match (&error, changed) {
                    (Some(_), _) => "failed",
                    (None, true) => "upgraded",
                    (None, false) => "unchanged",
                },
                steps,
                error,
                seconds: report.elapsed.as_secs_f64(),
            });
        }
    }
    rows
}

pub async fn upgrade_kubelet(home: &Home, g: &Global, args: UpgradeArgs) -> Result<()> {
    let from_file = match &args.file {
        Some(file) => Some(super::converge::named_or_file(home, None, Some(file))?),
        None => None,
    };
    let name = match &from_file {
        Some(c) => c.name().to_string(),
        None => resolve_name(home, args.name.clone())?,
    };
    let store = home.store()?;
    let Some(record) = store.cluster(&name)? else {
        bail!(Usage(format!(
            "no cluster named `{name}` in {}",
            home.root.display()
        )));
    };
    if record.status == super::kube::ADOPTED || !record.setup_complete {
        bail!(Usage(format!(
            "`{name}` was not set up by clouder (`clouder kubeadm setup {name}` first): there is nothing of clouder's to upgrade"
        )));
    }
    let mut cluster: Cluster =
        serde_json::from_value(record.spec.clone()).context("the recorded spec does not parse")?;
    // Only what an upgrade changes comes from the file: the version and where packages come from.
    if let Some(file) = from_file {
        cluster.spec.kubernetes = file.spec.kubernetes;
        cluster.spec.sources = file.spec.sources;
    }
    if let Some(version) = &args.k8s_version {
        cluster.spec.kubernetes.version = version.trim_start_matches('v').to_string();
    }
    let target = cluster.spec.kubernetes.version.clone();
    let client = kube_client(home, &name, None).await?;
    let nodes = node_versions(&client).await?;
    let skewed: Vec<String> = nodes
        .iter()
        .filter_map(|(node, version, _)| {
            upgrade::skew_problem(version, &target).map(|p| format!("{node}: {p}"))
        })
        .collect();
    if !skewed.is_empty() {
        bail!(Usage(format!(
            "not upgrading `{name}` to {target}; nothing was changed:\n  {}",
            skewed.join("\n  ")
        )));
    }
    let formation = match cluster.spec.provider {
        Provider::Ssh => ssh_formation(&cluster, Some(&args.ssh)),
        _ => super::setup::cloud_formation(
            &store,
            &cluster,
            Some(&args.ssh),
            args.address.unwrap_or(cluster.spec.ssh.address),
        )?,
    };
    let fleet = connect_fleet(home, g, &cluster, Some(&args.ssh))?;
    let plan = NodePlan {
        kubernetes_version: target.clone(),
        sources: cluster.spec.sources.clone(),
    };
    let cx = Context {
        client: &client,
        nodes: &nodes,
        plan: &plan,
        drain: DrainOptions {
            timeout: Duration::from_secs(args.drain_timeout_secs),
            ..DrainOptions::default()
        },
    };
    let holder = lock_holder(std::process::id());
    take_lock(&store, &name, &holder)?;
    let rows = roll(&cx, &fleet, &formation).await;
    fleet.watch.finish();
    let failed = rows.iter().filter(|r| r.result == "failed").count();
    if failed == 0 {
        // Every node is at the version: the spec records it.
        store.put_cluster(&ClusterRecord {
            spec: serde_json::to_value(&cluster).expect("spec serializes"),
            updated_at: now(),
            ..record
        })?;
    }
    store.unlock(&name, &holder)?;
    emit(g.output, &rows, || {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.host.clone(),
                    r.node.clone().unwrap_or_default(),
                    format!("{:?}", r.role).to_lowercase(),
                    r.result.to_uppercase(),
                    r.steps.join(","),
                    format!("{:.1}s", r.seconds),
                ]
            })
            .collect();
        table(
            &["HOST", "NODE", "ROLE", "RESULT", "APPLIED", "TIME"],
            &cells,
        )
    })?;
    if failed > 0 {
        bail!(
            "the upgrade to {target} stopped: {failed} node(s) failed, later waves were not started. Fix the cause and re-run to resume:\n{}",
            super::bootstrap::indented(rows.iter().filter_map(|r| r.error.as_deref()))
        );
    }
    Ok(())
}
