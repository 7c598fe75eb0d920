//! `create`, `apply` and `plan`: one path from a spec to a converged cluster.

use super::{context, resolve_name};
use crate::Usage;
use crate::cli::{ApplyArgs, CreateArgs, Global, PlanArgs, RunFlags, SpecFlags};
use crate::home::Home;
use crate::output::{emit, table};
use crate::progress::Progress;
use crate::provider;
use anyhow::{Context as _, Result, bail};
use clouder_cost::Estimate;
use clouder_engine::{ApplyOptions, ApplySummary, Plan, calls::Calls, retry::Policy};
use clouder_spec::{Cluster, NodePool, Provider};
use clouder_state::{ClusterRecord, StateStore, now};
use serde::Serialize;
use std::path::Path;

pub async fn create(home: &Home, g: &Global, args: CreateArgs) -> Result<()> {
    let cluster = spec_from(args.file.as_deref(), args.name.as_deref(), &args.spec)?;
    converge(home, g, cluster, &args.run).await
}

pub async fn apply(home: &Home, g: &Global, args: ApplyArgs) -> Result<()> {
    let cluster = spec_from(Some(&args.file), None, &SpecFlags::default())?;
    converge(home, g, cluster, &args.run).await
}

pub async fn plan(home: &Home, g: &Global, args: PlanArgs) -> Result<()> {
    let cluster = named_or_file(home, args.name, args.file.as_deref())?;
    let store = home.store()?;
    if store
        .cluster(cluster.name())?
        .is_some_and(|r| r.status == super::kube::ADOPTED)
    {
        return super::kube::apply_adopted(home, g, &cluster, true).await;
    }
    let ctx = context(home, &store, cluster.spec.context.as_deref())?;
    let target = provider::connect(&cluster, ctx.as_ref(), false).await?;
    let progress = Progress::new(g.quiet || g.output != crate::cli::Format::Table);
    let planned = clouder_engine::plan(
        &target.graph,
        target.inventory.as_ref(),
        args.concurrency,
        &progress,
    )
    .await?;
    progress.finish();
    let cost = super::cost::when(args.cost, home, &target)?;
    let addons = planned_addons(home, &store, &cluster).await?;
    print_plan(g, cluster.name(), &planned, target.calls(), cost, addons)
}

/// Whether the cluster answers through the Kubernetes API: set up, with its kubeconfig here.
fn answers(home: &Home, store: &dyn StateStore, cluster: &Cluster) -> Result<bool> {
    Ok(store
        .cluster(cluster.name())?
        .is_some_and(|r| r.setup_complete)
        && home.kubeconfig(cluster.name()).exists())
}

/// What converging a set-up cluster's addons would change (nothing to say before setup).
async fn planned_addons(
    home: &Home,
    store: &dyn StateStore,
    cluster: &Cluster,
) -> Result<Option<super::kube::AddonsOutcome>> {
    Ok(if answers(home, store, cluster)? {
        Some(super::kube::plan_addons(home, cluster).await?)
    } else {
        None
    })
}

/// The spec of `-f FILE`, or the last applied spec of the named (or default) cluster.
pub(super) fn named_or_file(
    home: &Home,
    name: Option<String>,
    file: Option<&Path>,
) -> Result<Cluster> {
    match (file, name) {
        (Some(file), None) => spec_from(Some(file), None, &SpecFlags::default()),
        (None, name) => {
            let name = resolve_name(home, name)?;
            let record = home
                .store()?
                .cluster(&name)?
                .ok_or_else(|| Usage(format!("no cluster `{name}` in local state; use -f FILE")))?;
            serde_json::from_value(record.spec).context("reading the cluster's last applied spec")
        }
        (Some(_), Some(_)) => bail!(Usage("give a cluster name or -f FILE, not both".into())),
    }
}

/// Reads the spec file (if any), then lays the flags over it and validates the result.
fn spec_from(file: Option<&Path>, name: Option<&str>, flags: &SpecFlags) -> Result<Cluster> {
    let mut cluster = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            clouder_spec::parse(&path.display().to_string(), &text)?
        }
        None => {
            let name = name.ok_or_else(|| Usage("give a cluster NAME or -f FILE".into()))?;
            let provider: Provider = flags
                .provider
                .as_deref()
                .unwrap_or("aws")
                .parse()
                .map_err(Usage)?;
            Cluster::new(name, provider)
        }
    };
    if let (Some(name), Some(_)) = (name, file)
        && name != cluster.name()
    {
        bail!(Usage(format!(
            "NAME `{name}` differs from metadata.name `{}` in the spec file",
            cluster.name()
        )));
    }
    let changed = overlay(&mut cluster, flags)?;
    if file.is_none() || changed {
        cluster = clouder_spec::finish(
            cluster,
            if file.is_some() {
                "command line"
            } else {
                "flags"
            },
        )?;
    }
    if cluster.spec.admin_cidrs.iter().any(|c| c.prefix_len() == 0) {
        eprintln!(
            "warning: SSH and the API server will be reachable from the whole internet (0.0.0.0/0)"
        );
    }
    Ok(cluster)
}

/// Applies the flags that were given; says whether any was.
fn overlay(cluster: &mut Cluster, f: &SpecFlags) -> Result<bool> {
    let before = cluster.clone();
    let spec = &mut cluster.spec;
    if let Some(p) = &f.provider {
        spec.provider = p.parse().map_err(Usage)?;
    }
    if let Some(r) = &f.region {
        spec.region = Some(r.clone());
    }
    if let Some(n) = f.workers {
        match spec.node_pools.iter_mut().find(|p| p.name == "workers") {
            Some(pool) => pool.count = n,
            None => spec.node_pools.push(NodePool::workers(n)),
        }
    }
    if let Some(s) = &f.master_size {
        spec.control_plane.size = s.clone();
    }
    if let Some(s) = &f.node_size {
        spec.node_pools.iter_mut().for_each(|p| p.size = s.clone());
    }
    if let Some(gb) = f.os_disk_size {
        spec.control_plane.os_disk_gb = gb;
        spec.node_pools.iter_mut().for_each(|p| p.os_disk_gb = gb);
    }
    if let Some(u) = &f.admin_user {
        spec.admin_user = u.clone();
    }
    if let Some(i) = &f.image {
        spec.image = i.clone();
    }
    if let Some(n) = f.control_planes {
        spec.control_plane.count = n;
    }
    if let Some(v) = &f.k8s_version {
        spec.kubernetes.version = v.clone();
    }
    if let Some(k) = &f.ssh_public_key {
        spec.ssh.public_key_path = Some(k.display().to_string());
    }
    if let Some(c) = &f.context {
        spec.context = Some(c.clone());
    }
    if !f.admin_cidrs.is_empty() {
        spec.admin_cidrs = f
            .admin_cidrs
            .iter()
            .map(|c| {
                c.parse()
                    .map_err(|e| Usage(format!("--admin-cidr {c}: {e}")))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(rg) = &f.resource_group {
        if spec.provider != Provider::Azure {
            bail!(Usage(
                "--resource-group applies to --provider azure only".into()
            ));
        }
        spec.resource_group = Some(rg.clone());
    }
    Ok(*cluster != before)
}

#[derive(Serialize)]
struct PlanOutput<'a> {
    cluster: &'a str,
    summary: Counts,
    items: &'a [clouder_engine::PlanItem],
    calls: Calls,
    /// With --cost: the estimate of the cluster the plan converges to.
    #[serde(skip_serializing_if = "Option::is_none")]
    cost: Option<Estimate>,
    /// A set-up cluster: what converging its addons would change, per addon.
    #[serde(skip_serializing_if = "Option::is_none")]
    addons: Option<super::kube::AddonsOutcome>,
}

#[derive(Serialize)]
struct Counts {
    create: usize,
    update: usize,
    delete: usize,
    unchanged: usize,
}

fn counts(plan: &Plan) -> Counts {
    Counts {
        create: plan.count("create"),
        update: plan.count("update"),
        delete: plan.count("delete"),
        unchanged: plan.count("no-op"),
    }
}

fn print_plan(
    g: &Global,
    cluster: &str,
    plan: &Plan,
    calls: Calls,
    cost: Option<Estimate>,
    addons: Option<super::kube::AddonsOutcome>,
) -> Result<()> {
    let out = PlanOutput {
        cluster,
        summary: counts(plan),
        items: &plan.items,
        calls,
        cost,
        addons,
    };
    emit(g.output, &out, || {
        let rows: Vec<Vec<String>> = plan
            .items
            .iter()
            .map(|i| {
                let changes = match &i.action {
                    clouder_engine::Action::Update(c) => c.join("; "),
                    _ => String::new(),
                };
                vec![
                    i.action.verb().into(),
                    i.kind.clone(),
                    i.id.clone(),
                    i.cloud_id.clone().unwrap_or_default(),
                    changes,
                ]
            })
            .collect();
        let s = &out.summary;
        table(
            &["ACTION", "KIND", "RESOURCE", "CLOUD ID", "CHANGES"],
            &rows,
        ) + &format!(
            "Plan for {cluster}: {} to create, {} to update, {} to delete, {} unchanged.\n",
            s.create, s.update, s.delete, s.unchanged
        ) + &out.cost.as_ref().map_or_else(String::new, |e| {
            format!("\nCost of {cluster} once applied:\n") + &super::cost::render(e)
        }) + &out
            .addons
            .as_ref()
            .map_or_else(String::new, |a| format!("\n{}", super::kube::render(a)))
    })
}

#[derive(Serialize)]
struct ApplyOutput<'a> {
    cluster: &'a str,
    plan: Counts,
    result: &'a ApplySummary,
    calls: Calls,
    /// A set-up cluster: what converging its addons changed, per addon.
    #[serde(skip_serializing_if = "Option::is_none")]
    addons: Option<super::kube::AddonsOutcome>,
}

pub(super) async fn converge(
    home: &Home,
    g: &Global,
    mut cluster: Cluster,
    run: &RunFlags,
) -> Result<()> {
    carry_retired(home, &mut cluster)?;
    let record = home.store()?.cluster(cluster.name())?;
    if record
        .as_ref()
        .is_some_and(|r| r.status == super::kube::ADOPTED)
    {
        return super::kube::apply_adopted(home, g, &cluster, run.dry_run).await;
    }
    if cluster.spec.provider == Provider::Ssh {
        if run.cost {
            bail!(Usage(
                "--cost: provider ssh runs on machines you own; there is no cloud price to estimate".into()
            ));
        }
        return super::bootstrap::converge(home, g, cluster, run).await;
    }
    let store = home.store()?;
    let ctx = context(home, &store, cluster.spec.context.as_deref())?;
    // Pin the context in the recorded spec: later commands use it even if the current one changes.
    cluster.spec.context = ctx.as_ref().map(|c| c.name.clone());
    let target = provider::connect(&cluster, ctx.as_ref(), true).await?;
    let progress = Progress::new(g.quiet || g.output != crate::cli::Format::Table);
    let name = cluster.name();
    let planned = clouder_engine::plan(
        &target.graph,
        target.inventory.as_ref(),
        run.concurrency,
        &progress,
    )
    .await?;
    if run.dry_run {
        progress.finish();
        let cost = super::cost::when(run.cost, home, &target)?;
        let addons = planned_addons(home, &store, &cluster).await?;
        return print_plan(g, name, &planned, target.calls(), cost, addons);
    }

    let holder = lock_holder(std::process::id());
    if run.force_unlock {
        store.force_unlock(name)?;
    }
    take_lock(&store, name, &holder)?;
    remember_account(&store, ctx.as_ref(), &target).await?;
    // A converge of the machines keeps what setup recorded (it does not undo a set-up cluster).
    let (created_at, setup_complete) = store
        .cluster(name)?
        .map_or_else(|| (now(), false), |c| (c.created_at, c.setup_complete));
    let record = |status: &str| ClusterRecord {
        name: name.to_string(),
        provider: cluster.spec.provider.as_str().to_string(),
        region: Some(target.cloud.region()),
        context: ctx.as_ref().map(|c| c.name.clone()),
        spec: serde_json::to_value(&cluster).expect("spec serializes"),
        status: status.to_string(),
        setup_complete,
        created_at,
        updated_at: now(),
    };
    store.put_cluster(&record("applying"))?;
    let options = ApplyOptions {
        cluster: name,
        operation: &format!("apply-{}", now()),
        concurrency: run.concurrency,
        retry: Policy::default(),
    };
    let result = clouder_engine::apply(
        &target.graph,
        &planned,
        target.inventory.as_ref(),
        &store,
        &options,
        &progress,
    )
    .await;
    progress.finish();
    let status = if result.as_ref().is_ok_and(ApplySummary::ok) {
        "ready"
    } else {
        "failed"
    };
    store.put_cluster(&record(status))?;
    store.unlock(name, &holder)?;
    let summary = result?;
    // A set-up cluster's addons and storage follow its spec too; machines come first.
    let mut addons = None;
    if summary.ok() {
        write_reference(home, &store, &cluster, ctx.as_ref(), &target.cloud.region())?;
        if !run.machines_only && answers(home, &store, &cluster)? {
            addons = Some(super::kube::converge_addons(home, &cluster).await?);
        }
    }

    let out = ApplyOutput {
        cluster: name,
        plan: counts(&planned),
        result: &summary,
        calls: target.calls(),
        addons,
    };
    if !run.silent {
        report(g, name, &out, &summary)?;
    }
    if !summary.ok() {
        let failed: Vec<String> = summary
            .failed
            .iter()
            .map(|(id, e)| format!("  {id}: {e}"))
            .collect();
        bail!(
            "{} resource(s) failed; fix the cause and re-run to resume:\n{}",
            summary.failed.len(),
            failed.join("\n")
        );
    }
    Ok(())
}

fn report(g: &Global, name: &str, out: &ApplyOutput, summary: &ApplySummary) -> Result<()> {
    emit(g.output, out, || {
        format!(
            "Cluster {name}: {} created, {} updated, {} deleted, {} unchanged ({} API calls, {} mutating).\n",
            summary.created,
            summary.updated,
            summary.deleted,
            summary.unchanged,
            out.calls.total,
            out.calls.mutating
        ) + &out
            .addons
            .as_ref()
            .map_or_else(String::new, super::kube::render)
            + &if summary.ok() {
                format!("Next: clouder kubeadm info {name}\n")
            } else {
                String::new()
            }
    })
}

/// Records the account id in the context, once seen (never credentials).
async fn remember_account(
    store: &dyn StateStore,
    ctx: Option<&clouder_state::Context>,
    target: &provider::Target,
) -> Result<()> {
    if let Some(ctx) = ctx.filter(|c| c.account.is_none()) {
        let account = target.cloud.account_id().await?;
        store.put_context(&clouder_state::Context {
            account: Some(account),
            ..ctx.clone()
        })?;
    }
    Ok(())
}

/// `HOST:PID` of a run, so a lock left by a dead run on this machine can be recognised.
pub(super) fn lock_holder(pid: u32) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}:{pid}", host.trim())
}

/// Takes the cluster's lock, breaking it if its holder was a run on this machine that is gone.
pub(super) fn take_lock(store: &dyn StateStore, name: &str, holder: &str) -> Result<()> {
    match store.lock(name, holder) {
        Err(clouder_state::StateError::Locked { holder: other, .. }) => {
            let dead = other
                .rsplit_once(':')
                .filter(|(host, _)| lock_holder(0).starts_with(&format!("{host}:")))
                .and_then(|(_, pid)| pid.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            if !dead {
                bail!(
                    "cluster {name} is being changed by another clouder run ({other}); wait for it, or pass --force-unlock if it is gone"
                );
            }
            tracing::info!(%other, "breaking the lock of a run that is gone");
            store.force_unlock(name)?;
            Ok(store.lock(name, holder)?)
        }
        other => Ok(other?),
    }
}

/// Keeps `kubeadm/NAME/kubeadm.json` current, so the reference Clouder sees this cluster too.
fn write_reference(
    home: &Home,
    store: &dyn StateStore,
    cluster: &Cluster,
    ctx: Option<&clouder_state::Context>,
    region: &str,
) -> Result<()> {
    let name = cluster.name();
    let resources = store.resources(name)?;
    let machine = |r: &clouder_state::ResourceRecord| {
        let attr = |k: &str| r.attrs.get(k).cloned().unwrap_or_default();
        serde_json::json!({ "name": attr("name"), "id": r.cloud_id, "public_ip": attr("public_ip"), "private_ip": attr("private_ip") })
    };
    let instances = resources
        .iter()
        .filter(|r| r.kind == "aws_instance" || r.kind == "azurerm_linux_virtual_machine");
    let (masters, workers): (Vec<_>, Vec<_>) = instances.partition(|r| {
        r.attrs.get("pool").and_then(|p| p.as_str())
            == Some(clouder_aws::resources::CONTROL_PLANE_POOL)
    });
    let cloud_id = |id: &str| {
        resources
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.cloud_id.clone())
    };
    let mut rest = serde_json::Map::new();
    if let Some(master) = masters.first() {
        let m = machine(master);
        rest.insert("master_name".into(), m["name"].clone());
        rest.insert("master_public_ip".into(), m["public_ip"].clone());
        rest.insert("master_private_ip".into(), m["private_ip"].clone());
    }
    rest.insert(
        "masters".into(),
        masters.iter().map(|r| machine(r)).collect(),
    );
    rest.insert(
        "workers".into(),
        workers.iter().map(|r| machine(r)).collect(),
    );
    for (key, id) in [
        ("vpc_id", "vpc"),
        ("vnet_id", "virtual-network"),
        ("subnet_id", "subnet"),
        ("security_group_id", "security-group"),
    ] {
        if let Some(v) = cloud_id(id) {
            rest.insert(key.into(), v.into());
        }
    }
    let setup_complete = crate::reference::read(home, name)
        .ok()
        .flatten()
        .is_some_and(|r| r.setup_complete);
    let pool = cluster.spec.node_pools.first();
    let azure = cluster.spec.provider == Provider::Azure;
    let json = crate::reference::KubeadmJson {
        cloud: cluster.spec.provider.as_str().into(),
        region: Some(region.to_string()),
        setup_complete,
        account_id: ctx.and_then(|c| c.account.clone()),
        resource_group: azure.then(|| clouder_azure::resource_group_name(cluster)),
        subscription_id: azure.then(|| ctx.and_then(|c| c.account.clone())).flatten(),
        requested_workers: Some(cluster.worker_count()),
        master_size: Some(cluster.spec.control_plane.size.clone()),
        node_size: pool.map(|p| p.size.clone()),
        admin_user: Some(cluster.spec.admin_user.clone()),
        rest,
    };
    crate::reference::write(home, name, json)
}

/// Machines a scale-down drained and removed stay removed when a spec file (which does not list
/// them) is applied again.
fn carry_retired(home: &Home, cluster: &mut Cluster) -> Result<()> {
    let Some(record) = home.store()?.cluster(cluster.name())? else {
        return Ok(());
    };
    let Ok(last) = serde_json::from_value::<Cluster>(record.spec) else {
        return Ok(());
    };
    for pool in &mut cluster.spec.node_pools {
        if let Some(before) = last.spec.node_pools.iter().find(|p| p.name == pool.name) {
            for i in &before.retired {
                if !pool.retired.contains(i) {
                    pool.retired.push(*i);
                }
            }
        }
    }
    Ok(())
}
