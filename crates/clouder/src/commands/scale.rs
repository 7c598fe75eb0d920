//! `scale NAME -w N`: the `workers` pool to N machines, through the same converge as `apply`.

use super::{confirm, converge, resolve_name};
use crate::Usage;
use crate::cli::{Global, RunFlags, ScaleArgs};
use crate::home::Home;
use anyhow::{Context as _, Result, bail};
use clouder_spec::{Cluster, NodePool};
use clouder_state::StateStore;

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
        if record.setup_complete {
            bail!(
                "scaling {name} down drains the removed nodes first (cordon, evict, wait); that needs the Kubernetes layer, which this build does not have"
            );
        }
        let question = format!(
            "Remove {} worker machine(s) from {name}",
            pool.count - args.workers
        );
        confirm(&question, args.force || g.yes, "--force")?;
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
    let cluster = clouder_spec::finish(cluster, "flags")?;
    let run = RunFlags {
        dry_run: false,
        cost: false,
        concurrency: args.concurrency,
        force_unlock: false,
    };
    converge::converge(home, g, cluster, &run).await
}
