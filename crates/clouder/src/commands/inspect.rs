//! Read-only and local commands: `ls`, `info`, `set-default`, `use`, `schema`.

use super::resolve_name;
use crate::Usage;
use crate::cli::{Global, LsArgs, UseArgs};
use crate::home::Home;
use crate::output::{emit, table};
use anyhow::Result;
use clouder_spec::Cluster;
use clouder_state::{ClusterRecord, JournalEntry, ResourceRecord, StateStore};
use serde::Serialize;

#[derive(Serialize)]
struct Row {
    name: String,
    default: bool,
    cloud: String,
    region: String,
    status: String,
    control_planes: u32,
    workers: u32,
    kubeconfig: bool,
    setup: bool,
}

fn node_counts(record: &ClusterRecord) -> (u32, u32) {
    serde_json::from_value::<Cluster>(record.spec.clone())
        .map(|c| (c.spec.control_plane.count, c.worker_count()))
        .unwrap_or_default()
}

pub fn ls(home: &Home, g: &Global, args: LsArgs) -> Result<()> {
    let store = home.store()?;
    let default = home.default_cluster()?;
    let rows: Vec<Row> = store
        .clusters()?
        .into_iter()
        .map(|c| {
            let (control_planes, workers) = node_counts(&c);
            Row {
                default: default.as_deref() == Some(c.name.as_str()),
                kubeconfig: home.kubeconfig(&c.name).exists(),
                cloud: c.provider,
                region: c.region.unwrap_or_default(),
                status: c.status,
                setup: c.setup_complete,
                control_planes,
                workers,
                name: c.name,
            }
        })
        .collect();
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    emit(g.output, &rows, || {
        let mut headers = vec![
            "NAME",
            "DEFAULT",
            "CLOUD",
            "REGION",
            "STATUS",
            "KUBECONFIG",
            "SETUP",
        ];
        if args.details {
            headers.extend(["MASTERS", "WORKERS"]);
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let mut row = vec![
                    r.name.clone(),
                    if r.default { "*".into() } else { String::new() },
                    r.cloud.clone(),
                    r.region.clone(),
                    r.status.clone(),
                    yes_no(r.kubeconfig),
                    yes_no(r.setup),
                ];
                if args.details {
                    row.extend([r.control_planes.to_string(), r.workers.to_string()]);
                }
                row
            })
            .collect();
        if rows.is_empty() {
            "No clusters yet. Create one: clouder kubeadm create NAME -r REGION --admin-cidr YOUR_IP/32\n".into()
        } else {
            table(&headers, &cells)
        }
    })
}

#[derive(Serialize)]
struct Info {
    cluster: ClusterRecord,
    default: bool,
    kubeconfig: String,
    kubeconfig_present: bool,
    resources: Vec<ResourceRecord>,
    recent_operations: Vec<JournalEntry>,
    next_steps: Vec<String>,
}

pub fn info(home: &Home, g: &Global, name: Option<String>) -> Result<()> {
    let name = resolve_name(home, name)?;
    let store = home.store()?;
    let Some(cluster) = store.cluster(&name)? else {
        return Err(Usage(format!(
            "no cluster `{name}` in local state (see `clouder kubeadm ls`)"
        ))
        .into());
    };
    let kubeconfig = home.kubeconfig(&name);
    let next_steps = match cluster.status.as_str() {
        "ready" if !cluster.setup_complete => vec![format!("clouder kubeadm setup {name}")],
        "ready" => vec![
            format!("eval $(clouder kubeadm use {name} --print-export)"),
            "kubectl get nodes".into(),
        ],
        "failed" | "applying" => vec![format!("clouder kubeadm create {name}  # re-run to resume")],
        _ => vec![format!("clouder kubeadm terminate {name} --force")],
    };
    let info = Info {
        default: home.default_cluster()?.as_deref() == Some(name.as_str()),
        kubeconfig: kubeconfig.display().to_string(),
        kubeconfig_present: kubeconfig.exists(),
        resources: store.resources(&name)?,
        recent_operations: store.journal(&name, 10)?,
        next_steps,
        cluster,
    };
    emit(g.output, &info, || {
        let c = &info.cluster;
        let (cps, workers) = node_counts(c);
        let mut out = format!(
            "Cluster:     {}{}\nCloud:       {} {}\nStatus:      {}\nNodes:       {cps} control plane(s), {workers} worker(s)\nKubeconfig:  {}{}\n\n",
            c.name,
            if info.default { " (default)" } else { "" },
            c.provider,
            c.region.as_deref().unwrap_or(""),
            c.status,
            info.kubeconfig,
            if info.kubeconfig_present {
                ""
            } else {
                " (not fetched yet)"
            },
        );
        let rows: Vec<Vec<String>> = info
            .resources
            .iter()
            .map(|r| vec![r.kind.clone(), r.id.clone(), r.cloud_id.clone()])
            .collect();
        out += &table(&["KIND", "RESOURCE", "CLOUD ID"], &rows);
        out += "\nNext steps:\n";
        for step in &info.next_steps {
            out += &format!("  {step}\n");
        }
        out
    })
}

pub fn set_default(home: &Home, g: &Global, name: &str) -> Result<()> {
    if home.store()?.cluster(name)?.is_none() && !home.cluster_dir(name).exists() {
        return Err(Usage(format!("no cluster `{name}` (see `clouder kubeadm ls`)")).into());
    }
    home.set_default_cluster(Some(name))?;
    emit(g.output, &serde_json::json!({ "default": name }), || {
        format!("Default cluster: {name}\n")
    })
}

pub fn use_cluster(home: &Home, g: &Global, args: UseArgs) -> Result<()> {
    let name = resolve_name(home, args.name)?;
    let path = home.kubeconfig(&name);
    let export = format!("export KUBECONFIG={}", path.display());
    if args.print_export {
        println!("{export}");
        return Ok(());
    }
    let present = path.exists();
    emit(
        g.output,
        &serde_json::json!({ "cluster": name, "kubeconfig": path, "present": present }),
        || {
            let mut out = format!("{export}\n");
            if !present {
                out += &format!("# not fetched yet: clouder kubeadm get-config {name}\n");
            }
            out
        },
    )
}

pub fn schema() -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&clouder_spec::json_schema())?
    );
    Ok(())
}
