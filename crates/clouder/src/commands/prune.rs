//! `prune NAME`: workers whose Node is NotReady are listed, confirmed, and removed — the Node
//! object and, for clouder's own machines, the machine (its index retired so the others keep
//! their names). On a cluster clouder set up, machines that never became a Node (a failed
//! bootstrap, a machine that died before joining) go too, once older than `--unjoined-after`.

use super::{confirm, converge, kube};
use crate::cli::{Global, PruneArgs, RunFlags};
use crate::home::Home;
use crate::output::{emit, table};
use ::kube::api::{Api, ListParams};
use anyhow::Result;
use clouder_spec::Provider;
use k8s_openapi::api::core::v1::Node;
use serde::Serialize;

#[derive(Serialize)]
struct Pruned {
    /// The Node removed; none for a machine that never joined.
    node: Option<String>,
    /// `not ready` or `never joined`.
    reason: &'static str,
    address: Option<String>,
    /// `pool-index` of clouder's machine behind it, if any.
    machine: Option<String>,
}

pub async fn prune(home: &Home, g: &Global, args: PruneArgs) -> Result<()> {
    let t = kube::target(home, args.target.name, args.target.kubeconfig.as_deref()).await?;
    let client = t.applier.client().clone();
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let store = home.store()?;
    let pools = t
        .cluster
        .spec
        .node_pools
        .iter()
        .map(|pool| {
            Ok((
                pool.name.clone(),
                kube::pool_machines_seen(&store, &t.name, &pool.name)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut pruned = Vec::new();
    let mut retire: Vec<(String, u32)> = Vec::new();
    for node in &nodes.items {
        let control_plane = node
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(clouder_kube::drain::CONTROL_PLANE_LABEL));
        if control_plane || crate::readiness::is_ready(node) {
            continue;
        }
        let address = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone());
        let machine = address.as_ref().and_then(|ip| {
            pools
                .iter()
                .find_map(|(pool, m)| m.get(ip).map(|(i, _)| (pool.clone(), *i)))
        });
        if let Some(m) = &machine {
            retire.push(m.clone());
        }
        pruned.push(Pruned {
            node: node.metadata.name.clone(),
            reason: "not ready",
            address,
            machine: machine.map(|(pool, i)| format!("{pool}-{i}")),
        });
    }
    if t.setup_complete {
        let joined: std::collections::HashSet<&str> = nodes
            .items
            .iter()
            .flat_map(|n| n.status.iter().flat_map(|s| s.addresses.iter().flatten()))
            .map(|a| a.address.as_str())
            .collect();
        let before = clouder_state::now() - 60 * i64::from(args.unjoined_after_minutes);
        for (pool, machines) in &pools {
            for (ip, (index, seen)) in machines {
                if !joined.contains(ip.as_str()) && *seen <= before {
                    retire.push((pool.clone(), *index));
                    pruned.push(Pruned {
                        node: None,
                        reason: "never joined",
                        address: Some(ip.clone()),
                        machine: Some(format!("{pool}-{index}")),
                    });
                }
            }
        }
    }
    if pruned.is_empty() {
        return emit(g.output, &pruned, || {
            format!(
                "Nothing to prune in {}: every worker is Ready and every machine a Node.\n",
                t.name
            )
        });
    }
    let cells: Vec<Vec<String>> = pruned
        .iter()
        .map(|p| {
            vec![
                p.node.clone().unwrap_or_else(|| "-".into()),
                p.reason.to_uppercase(),
                p.address.clone().unwrap_or_default(),
                p.machine.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    if !g.quiet && g.output == crate::cli::Format::Table {
        eprint!("{}", table(&["NODE", "WHY", "ADDRESS", "MACHINE"], &cells));
    }
    confirm(
        &format!("Remove these {} worker(s) from {}", pruned.len(), t.name),
        args.force || g.yes,
        "--force",
    )?;
    for node in pruned.iter().filter_map(|p| p.node.as_deref()) {
        clouder_kube::drain::remove(&client, node).await?;
    }
    if !retire.is_empty() && t.cluster.spec.provider != Provider::Ssh {
        let mut cluster = t.cluster.clone();
        for (pool_name, index) in &retire {
            if let Some(pool) = cluster
                .spec
                .node_pools
                .iter_mut()
                .find(|p| &p.name == pool_name)
            {
                pool.retired.push(*index);
                pool.count = pool.count.saturating_sub(1);
            }
        }
        let run = RunFlags {
            dry_run: false,
            cost: false,
            concurrency: 16,
            force_unlock: false,
            silent: true,
            machines_only: true,
        };
        let cluster = clouder_spec::finish(cluster, "prune")?;
        converge::converge(home, g, cluster, &run).await?;
    }
    emit(g.output, &pruned, || {
        format!(
            "Pruned {} worker(s) from {}.\n{}",
            pruned.len(),
            t.name,
            table(&["NODE", "WHY", "ADDRESS", "MACHINE"], &cells)
        )
    })
}
