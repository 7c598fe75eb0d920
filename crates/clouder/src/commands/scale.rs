//! `scale NAME -w N`: the `workers` pool to N machines, through the same converge as `apply`.

use super::{checkpoint, confirm, converge, resolve_name};
use crate::Usage;
use crate::cli::{Global, NodeAccess, RunFlags, ScaleArgs};
use crate::home::Home;
use anyhow::{Context as _, Result, bail};
use clouder_kube::DrainOptions;
use clouder_kube::drain;
use clouder_spec::{Cluster, NodePool};
use clouder_state::StateStore;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub async fn scale(home: &Home, g: &Global, args: ScaleArgs) -> Result<()> {
    let name = resolve_name(home, args.name)?;
    let record = home.store()?.cluster(&name)?.ok_or_else(|| {
        Usage(format!(
            "no cluster `{name}` in local state (see `clouder kubeadm ls`)"
        ))
    })?;
    let mut cluster: Cluster =
        serde_json::from_value(record.spec).context("reading the cluster's last applied spec")?;
    let pools = &mut cluster.spec.node_pools;
    if !pools.iter().any(|p| p.name == "workers") {
        pools.push(NodePool::workers(0));
    }
    let pool = pools
        .iter_mut()
        .find(|p| p.name == "workers")
        .expect("just ensured");
    if args.workers < pool.count {
        let removing = pool.count - args.workers;
        let question = if record.setup_complete {
            format!("Drain and remove the {removing} least-loaded worker(s) of {name}")
        } else {
            format!("Remove {removing} worker machine(s) from {name}")
        };
        confirm(&question, args.force || g.yes, "--force")?;
        if record.setup_complete {
            let kubeconfig = super::kube::kubeconfig_for(home, &name, args.kubeconfig.as_deref())?;
            let machines = super::kube::pool_machines(&home.store()?, &name, &pool.name)?;
            let how = How {
                home,
                g,
                cluster: &name,
                options: DrainOptions {
                    timeout: Duration::from_secs(args.drain_timeout_secs),
                    ..DrainOptions::default()
                },
                access: NodeAccess {
                    kubelet: args.kubelet.clone(),
                    ssh: args.ssh.clone(),
                },
                force: args.force,
            };
            let (drained, failure) =
                drain_least_loaded(&kubeconfig, &machines, removing as usize, &how).await;
            if let Some(err) = failure {
                // Machines whose nodes are already gone are removed now; the rest stay.
                if !drained.is_empty() {
                    pool.count -= drained.len() as u32;
                    pool.retired.extend(drained);
                    converge_pool(home, g, cluster, args.concurrency).await?;
                }
                return Err(err);
            }
            pool.retired.extend(drained);
        }
    }
    pool.count = args.workers;
    if let Some(gb) = args.os_disk_size_gb {
        pool.os_disk_gb = gb;
    }
    for label in &args.node_label {
        let (k, v) = label
            .split_once('=')
            .ok_or_else(|| Usage(format!("--node-label {label}: expected key=value")))?;
        pool.labels.insert(k.to_string(), v.to_string());
    }
    converge_pool(home, g, cluster, args.concurrency).await
}

async fn converge_pool(
    home: &Home,
    g: &Global,
    cluster: Cluster,
    concurrency: usize,
) -> Result<()> {
    let cluster = clouder_spec::finish(cluster, "flags")?;
    let run = RunFlags {
        dry_run: false,
        cost: false,
        concurrency,
        force_unlock: false,
        silent: false,
        machines_only: true,
    };
    converge::converge(home, g, cluster, &run).await
}

/// How workers are drained: beforeDrain checkpoints (a failure stops the drain unless
/// `force`), the drain, the restores.
struct How<'a> {
    home: &'a Home,
    g: &'a Global,
    cluster: &'a str,
    options: DrainOptions,
    access: NodeAccess,
    force: bool,
}

/// Drains the `count` least-loaded workers that are machines of the pool and deletes their Nodes;
/// returns the machine indexes drained, and what stopped it early. Nothing is drained unless
/// enough machines are known.
async fn drain_least_loaded(
    kubeconfig: &Path,
    machines: &BTreeMap<String, u32>,
    count: usize,
    how: &How<'_>,
) -> (Vec<u32>, Option<anyhow::Error>) {
    let mut indexes = Vec::new();
    let failure = drain_into(kubeconfig, machines, count, how, &mut indexes)
        .await
        .err();
    (indexes, failure)
}

async fn drain_into(
    kubeconfig: &Path,
    machines: &BTreeMap<String, u32>,
    count: usize,
    how: &How<'_>,
    indexes: &mut Vec<u32>,
) -> Result<()> {
    let client = clouder_kube::connect(kubeconfig).await?;
    let chosen: Vec<(String, u32)> = drain::workers_by_load(&client)
        .await?
        .into_iter()
        .filter_map(|l| Some((l.node, *machines.get(l.address.as_deref()?)?)))
        .take(count)
        .collect();
    if chosen.len() < count {
        bail!(
            "only {} of the {count} workers to remove could be matched to this pool's machines (by InternalIP); nothing was drained",
            chosen.len()
        );
    }
    let mut moved = Vec::new();
    for (node, index) in chosen {
        let (home, g) = (how.home, how.g);
        let held = checkpoint::drain::before_drain(
            home,
            g,
            &client,
            how.cluster,
            &node,
            &how.access,
            how.force,
        )
        .await?;
        let report = drain::drain(&client, &node, &how.options).await?;
        let to = checkpoint::RestoreTarget {
            home,
            g,
            client: &client,
            ssh: &how.access.ssh,
        };
        moved.extend(checkpoint::drain::after_drain(&to, held, how.options.timeout).await);
        drain::remove(&client, &node).await?;
        if !g.quiet {
            eprintln!(
                "drained {node}: {} pod(s) evicted, {} left with the node",
                report.evicted.len(),
                report.left_in_place
            );
        }
        indexes.push(index);
    }
    let (text, restored) = checkpoint::drain::report(&moved);
    if !how.g.quiet {
        eprint!("{text}");
    }
    restored
}
