//! `terminate`: delete everything the cluster owns — by its graph, then by its tags — and forget it.

use super::{confirm, context, resolve_name};
use crate::Usage;
use crate::cli::{Global, TerminateArgs};
use crate::home::Home;
use crate::output::emit;
use crate::progress::Progress;
use crate::provider;
use anyhow::{Context as _, Result, bail};
use clouder_engine::{ApplyOptions, DestroySummary, Graph, Inventory, calls::Calls, retry::Policy};
use clouder_spec::{Cluster, Provider};
use clouder_state::{StateStore, now};
use serde::Serialize;
use std::time::Duration;

/// What finds a cluster clouder has no state of: its tags, in the region (and, on Azure, the
/// resource group) named by the flags, the reference's `kubeadm.json`, or the context.
async fn sweep(
    home: &Home,
    store: &dyn StateStore,
    name: &str,
    args: &TerminateArgs,
) -> Result<(Box<dyn Inventory>, provider::Cloud)> {
    let reference = crate::reference::read(home, name).ok().flatten();
    let ctx = context(home, store, None)?;
    let cloud_of = |c: &str| c.parse::<Provider>().ok();
    let provider = args
        .provider
        .or_else(|| reference.as_ref().and_then(|r| cloud_of(&r.cloud)))
        .or_else(|| ctx.as_ref().and_then(|c| cloud_of(&c.provider)))
        .unwrap_or(Provider::Aws);
    let region = args
        .region
        .clone()
        .or_else(|| reference.as_ref().and_then(|r| r.region.clone()));
    if region.is_none() && ctx.as_ref().and_then(|c| c.region.as_ref()).is_none() {
        bail!(Usage(format!(
            "no cluster `{name}` in local state; pass -r REGION (and --provider azure -g GROUP for Azure) to sweep its tagged resources"
        )));
    }
    let cloud = provider::connect_cloud(provider, region, ctx.as_ref()).await?;
    let inventory: Box<dyn Inventory> = match &cloud {
        provider::Cloud::Aws(aws) => Box::new(clouder_aws::AwsInventory::new(
            clouder_aws::Scope::new(aws.clone(), name),
        )),
        provider::Cloud::Azure(azure) => {
            let group = args
                .resource_group
                .clone()
                .or_else(|| reference.as_ref().and_then(|r| r.resource_group.clone()))
                .unwrap_or_else(|| format!("{name}-rg"));
            Box::new(clouder_azure::AzureInventory::new(
                clouder_azure::Scope::new(azure.clone(), name, &group, args.delete_rg),
            ))
        }
    };
    Ok((inventory, cloud))
}

#[derive(Serialize)]
struct TerminateOutput<'a> {
    cluster: &'a str,
    result: &'a DestroySummary,
    calls: Calls,
}

pub async fn terminate(home: &Home, g: &Global, args: TerminateArgs) -> Result<()> {
    let name = resolve_name(home, args.name.clone())?;
    let store = home.store()?;
    let record = store.cluster(&name)?;
    confirm(
        &format!("Terminate cluster {name} and delete everything it owns"),
        args.force || g.yes,
        "--force",
    )?;

    if let Some(r) = &record
        && r.status == super::kube::ADOPTED
    {
        // Clouder did not make its machines, so it does not delete them.
        forget(home, &store, &name)?;
        let out = serde_json::json!({"cluster": name, "forgotten": true});
        return emit(g.output, &out, || {
            format!("Cluster {name} was adopted: clouder forgot it; its machines are untouched.\n")
        });
    }
    if record.as_ref().is_some_and(|r| r.setup_complete) {
        release_cloud_resources(home, &name).await;
    }

    // Without local state, sweep by tags alone: nothing clouder made is left behind.
    let (graph, inventory, cloud) = match &record {
        Some(r) => {
            let cluster: Cluster = serde_json::from_value(r.spec.clone())
                .context("reading the cluster's last applied spec")?;
            let ctx = context(home, &store, r.context.as_deref())?;
            let teardown = provider::Teardown {
                delete_rg: args.delete_rg,
            };
            if args.delete_rg && cluster.spec.provider != Provider::Azure {
                bail!(Usage("--delete-rg applies to Azure clusters only".into()));
            }
            let t = provider::connect_with(&cluster, ctx.as_ref(), false, teardown).await?;
            (t.graph, t.inventory, t.cloud)
        }
        None => {
            let (inventory, cloud) = sweep(home, &store, &name, &args).await?;
            (Graph::new(), inventory, cloud)
        }
    };

    if let Some(mut r) = record.clone() {
        r.status = "terminating".into();
        r.updated_at = now();
        store.put_cluster(&r)?;
    }
    let progress = Progress::new(g.quiet || g.output != crate::cli::Format::Table);
    let options = ApplyOptions {
        cluster: &name,
        operation: &format!("terminate-{}", now()),
        concurrency: args.concurrency,
        retry: Policy::default(),
    };
    let summary =
        clouder_engine::destroy(&graph, inventory.as_ref(), &store, &options, &progress).await?;
    progress.finish();

    if summary.ok() {
        forget(home, &store, &name)?;
    }
    let out = TerminateOutput {
        cluster: &name,
        result: &summary,
        calls: cloud.calls(),
    };
    emit(g.output, &out, || {
        if summary.ok() {
            format!(
                "Cluster {name} terminated: {} objects deleted, nothing left.\n",
                summary.deleted
            )
        } else {
            String::new()
        }
    })?;
    if !summary.ok() {
        let mut lines: Vec<String> = summary
            .failed
            .iter()
            .map(|(id, e)| format!("  {id}: {e}"))
            .collect();
        lines.extend(
            summary
                .remaining
                .iter()
                .map(|r| format!("  still there: {r}")),
        );
        bail!(
            "terminate of {name} is incomplete; re-run to finish:\n{}",
            lines.join("\n")
        );
    }
    Ok(())
}

/// Deletes LoadBalancer Services and PersistentVolumeClaims first, so the cloud lets go of the
/// load balancers and disks it made for them before the network they live in is deleted. An
/// unreachable API is reported, not fatal: the machines must still go.
async fn release_cloud_resources(home: &Home, name: &str) {
    let kubeconfig = home.kubeconfig(name);
    let released = async {
        let client = clouder_kube::connect(&kubeconfig).await?;
        clouder_kube::teardown::release_cloud_resources(&client, Duration::from_secs(300)).await
    };
    match tokio::time::timeout(Duration::from_secs(330), released).await {
        Ok(Ok(r)) if r.pending.is_empty() => tracing::info!(
            load_balancers = r.load_balancers.len(),
            claims = r.claims.len(),
            "released cloud resources held by the cluster"
        ),
        Ok(Ok(r)) => eprintln!(
            "warning: still held when the deadline passed: {}",
            r.pending.join(", ")
        ),
        Ok(Err(e)) => eprintln!(
            "warning: could not release load balancers and volumes through the API ({e}); deleting the machines anyway"
        ),
        Err(_) => {
            eprintln!("warning: the API did not answer in time; deleting the machines anyway")
        }
    }
}

/// Drops the cluster from state, its files, and the default if it was the default.
fn forget(home: &Home, store: &dyn StateStore, name: &str) -> Result<()> {
    store.delete_cluster(name)?;
    let dir = home.cluster_dir(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    if home.default_cluster()?.as_deref() == Some(name) {
        home.set_default_cluster(None)?;
    }
    Ok(())
}
