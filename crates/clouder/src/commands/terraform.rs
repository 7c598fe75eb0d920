//! `export-terraform`: the cluster's graph as a Terraform module; `import --terraform-output`:
//! a cluster Terraform made, recorded from that module's outputs.

use super::{context, converge::named_or_file};
use crate::Usage;
use crate::cli::{ExportTerraformArgs, Global};
use crate::home::Home;
use crate::output::{emit, table};
use crate::provider;
use anyhow::{Context as _, Result};
use clouder_aws::resources::CONTROL_PLANE_POOL;
use clouder_engine::terraform::TerraformOutputs;
use clouder_spec::{Cluster, NodePool, Provider};
use clouder_state::{ClusterRecord, ResourceRecord, StateStore};
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct Exported {
    cluster: String,
    dir: String,
    files: Vec<String>,
    resources: usize,
    provider: String,
}

pub fn export(home: &Home, g: &Global, args: ExportTerraformArgs) -> Result<()> {
    let cluster = named_or_file(home, args.name, args.file.as_deref())?;
    let store = home.store()?;
    let ctx = context(home, &store, cluster.spec.context.as_deref())?;
    let (doc, plugin) = provider::terraform(&cluster, ctx.as_ref())?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let mut files = Vec::new();
    for (name, text) in doc.files() {
        let path = args.dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        files.push(name.to_string());
    }
    let out = Exported {
        cluster: cluster.name().to_string(),
        dir: args.dir.display().to_string(),
        files,
        resources: doc.resource.values().map(|blocks| blocks.len()).sum(),
        provider: plugin,
    };
    emit(g.output, &out, || {
        let rows: Vec<Vec<String>> = out.files.iter().map(|f| vec![f.clone()]).collect();
        table(&["FILE"], &rows)
            + &format!(
                "Wrote {} Terraform resources for {} ({}) to {}.\nNext: terraform -chdir={} init && terraform -chdir={} apply\n",
                out.resources, out.cluster, out.provider, out.dir, out.dir, out.dir
            )
    })
}

/// The status of a cluster recorded from Terraform's outputs.
const IMPORTED: &str = "imported";

/// `import NAME --terraform-output FILE`: records the cluster Terraform made, its machines
/// and API endpoint, so clouder's other commands (setup, info, cost) know it.
pub fn import(home: &Home, g: &Global, name: &str, file: &Path) -> Result<()> {
    let out = record(home, Some(name), file)?;
    emit(g.output, &out, || {
        let machines: usize = out.nodes.values().map(Vec::len).sum();
        format!(
            "Imported {name} from {}: {machines} machines, API endpoint {}.\nNext: clouder kubeadm setup {name}\n",
            file.display(),
            out.api_endpoint
        )
    })
}

/// Records (or brings up to date) the cluster whose Terraform outputs `file` holds, named
/// `name` if given; a cluster of that name that clouder did not import is left alone. A
/// re-import keeps what setup did: the Kubernetes settings and whether setup completed.
pub fn record(home: &Home, name: Option<&str>, file: &Path) -> Result<TerraformOutputs> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let out = TerraformOutputs::parse(&file.display().to_string(), &text)
        .map_err(|e| Usage(e.message))?;
    let name = name.unwrap_or(&out.cluster_name);
    if out.cluster_name != name {
        return Err(Usage(format!(
            "{}: the module is for cluster `{}`, not `{name}`",
            file.display(),
            out.cluster_name
        ))
        .into());
    }
    let store = home.store()?;
    let existing = store.cluster(name)?;
    if let Some(other) = existing.as_ref().filter(|r| r.status != IMPORTED) {
        return Err(Usage(format!(
            "`{name}` is already in {} ({}), not imported from Terraform; nothing was changed",
            home.root.display(),
            other.status
        ))
        .into());
    }
    let provider: Provider = out.provider.parse().map_err(Usage)?;
    let mut cluster = Cluster::new(name, provider);
    cluster.spec.region = Some(out.region.clone());
    cluster.spec.admin_user = out.ssh_user.clone();
    cluster.spec.node_pools.clear();
    for (pool, machines) in &out.nodes {
        let count = machines.len() as u32;
        if pool == CONTROL_PLANE_POOL {
            cluster.spec.control_plane.count = count;
        } else {
            let mut p = NodePool::workers(count);
            p.name = pool.clone();
            cluster.spec.node_pools.push(p);
        }
    }
    cluster.apply_defaults();
    if let Some(before) = existing
        .as_ref()
        .and_then(|r| serde_json::from_value::<Cluster>(r.spec.clone()).ok())
    {
        cluster.spec.kubernetes = before.spec.kubernetes;
    }
    let (machine_kind, lb_kind) = match provider {
        Provider::Azure => ("azurerm_linux_virtual_machine", "azurerm_lb"),
        _ => ("aws_instance", "aws_lb"),
    };
    let now = clouder_state::now();
    store.put_cluster(&ClusterRecord {
        name: name.to_string(),
        provider: provider.as_str().into(),
        region: Some(out.region.clone()),
        context: None,
        spec: serde_json::to_value(&cluster)?,
        status: IMPORTED.into(),
        setup_complete: existing.as_ref().is_some_and(|r| r.setup_complete),
        created_at: existing.as_ref().map_or(now, |r| r.created_at),
        updated_at: now,
    })?;
    for (pool, machines) in &out.nodes {
        for m in machines {
            store.put_resource(
                name,
                &ResourceRecord {
                    id: format!("instance/{pool}-{}", m.index),
                    kind: machine_kind.into(),
                    cloud_id: m.instance_id.clone(),
                    attrs: serde_json::json!({
                        "name": m.name,
                        "pool": pool,
                        "private_ip": m.private_ip,
                        "public_ip": m.public_ip,
                    }),
                    updated_at: now,
                },
            )?;
        }
    }
    store.put_resource(
        name,
        &ResourceRecord {
            id: "api-load-balancer".into(),
            kind: lb_kind.into(),
            cloud_id: out.api_endpoint.clone(),
            attrs: serde_json::json!({ "dns_name": out.api_endpoint }),
            updated_at: now,
        },
    )?;
    Ok(out)
}
