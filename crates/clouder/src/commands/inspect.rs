//! Read-only and local commands: `ls`, `info`, `set-default`, `use`, `schema`.

use super::resolve_name;
use crate::Usage;
use crate::cli::{Global, LsArgs, UseArgs};
use crate::home::Home;
use crate::output::{emit, table};
use crate::reference;
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
    resource_group: String,
    status: String,
    control_planes: u32,
    workers: u32,
    kubeconfig: bool,
    setup: bool,
    /// With `--details`: node readiness from the API server, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    nodes: Option<crate::readiness::Readiness>,
    /// With `--details`: `ready`, `unreachable` or `no-kubeconfig`.
    #[serde(skip_serializing_if = "Option::is_none")]
    api: Option<&'static str>,
}

fn node_counts(record: &ClusterRecord) -> (u32, u32) {
    serde_json::from_value::<Cluster>(record.spec.clone())
        .map(|c| (c.spec.control_plane.count, c.worker_count()))
        .unwrap_or_default()
}

/// Clusters in clouder's state, then those only a reference `kubeadm.json` knows. A malformed
/// file is reported (exit 1) without hiding the others.
pub async fn ls(home: &Home, g: &Global, args: LsArgs) -> Result<()> {
    let store = home.store()?;
    let default = home.default_cluster()?;
    let mut problems = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    for c in store.clusters()? {
        let (control_planes, workers) = node_counts(&c);
        let reference = reference::read(home, &c.name).unwrap_or_default();
        rows.push(Row {
            default: default.as_deref() == Some(c.name.as_str()),
            kubeconfig: home.kubeconfig(&c.name).exists(),
            cloud: c.provider,
            region: c.region.unwrap_or_default(),
            resource_group: reference.and_then(|r| r.resource_group).unwrap_or_default(),
            status: c.status,
            setup: c.setup_complete,
            control_planes,
            workers,
            nodes: None,
            api: None,
            name: c.name,
        });
    }
    for name in reference::names(home) {
        if rows.iter().any(|r| r.name == name) {
            continue;
        }
        match reference::read(home, &name) {
            Ok(Some(r)) => rows.push(Row {
                default: default.as_deref() == Some(name.as_str()),
                kubeconfig: home.kubeconfig(&name).exists(),
                cloud: r.cloud,
                region: r.region.unwrap_or_default(),
                resource_group: r.resource_group.unwrap_or_default(),
                status: "reference".into(),
                setup: r.setup_complete,
                control_planes: 1,
                workers: r.requested_workers.unwrap_or_default(),
                nodes: None,
                api: None,
                name,
            }),
            Ok(None) => {}
            Err(e) => problems.push(e),
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    if args.details {
        let paths: Vec<_> = rows.iter().map(|r| home.kubeconfig(&r.name)).collect();
        let asks = paths.iter().map(|path| async move {
            if path.exists() {
                crate::readiness::read(path).await
            } else {
                None
            }
        });
        let answers = futures::future::join_all(asks).await;
        for (row, nodes) in rows.iter_mut().zip(answers) {
            row.api = Some(match (&nodes, row.kubeconfig) {
                (Some(_), _) => "ready",
                (None, true) => "unreachable",
                (None, false) => "no-kubeconfig",
            });
            row.nodes = nodes;
        }
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    emit(g.output, &rows, || {
        let mut headers = vec![
            "NAME",
            "DEFAULT",
            "CLOUD",
            "REGION",
            "RESOURCE GROUP",
            "STATUS",
            "KUBECONFIG",
            "SETUP",
        ];
        if args.details {
            headers.extend(["MASTERS", "MASTERS STATE", "WORKERS", "WORKERS STATE"]);
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let mut row = vec![
                    r.name.clone(),
                    if r.default { "*".into() } else { String::new() },
                    r.cloud.clone(),
                    r.region.clone(),
                    r.resource_group.clone(),
                    r.status.clone(),
                    yes_no(r.kubeconfig),
                    yes_no(r.setup),
                ];
                if args.details {
                    row.extend(match (&r.nodes, r.api) {
                        (Some(n), _) => [
                            n.masters.to_string(),
                            format!("{}/{} Ready", n.masters_ready, n.masters),
                            n.workers.to_string(),
                            format!("{}/{} Ready", n.workers_ready, n.workers),
                        ],
                        (None, state) => {
                            let state = state.unwrap_or("unreachable").to_string();
                            [
                                r.control_planes.to_string(),
                                state.clone(),
                                r.workers.to_string(),
                                state,
                            ]
                        }
                    });
                }
                row
            })
            .collect();
        if rows.is_empty() {
            "No clusters yet. Create one: clouder kubeadm create NAME -r REGION --admin-cidr YOUR_IP/32\n".into()
        } else {
            table(&headers, &cells)
        }
    })?;
    if let Some(first) = problems.first() {
        for p in &problems {
            eprintln!("error: {p:#}");
        }
        anyhow::bail!(
            "{} cluster folder(s) could not be read (first: {first:#})",
            problems.len()
        );
    }
    Ok(())
}

/// Records a reference cluster in clouder's state; the reference's files stay as they are.
pub fn import(home: &Home, g: &Global, name: &str) -> Result<()> {
    let Some(r) = reference::read(home, name)? else {
        return Err(Usage(format!(
            "no {} to import",
            reference::path(home, name).display()
        ))
        .into());
    };
    let provider: clouder_spec::Provider = r.cloud.parse().map_err(|e| {
        anyhow::anyhow!(
            "{}: field `cloud`: {e}",
            reference::path(home, name).display()
        )
    })?;
    let mut cluster = Cluster::new(name, provider);
    cluster.spec.region = r.region.clone();
    if let Some(n) = r.requested_workers {
        cluster.spec.node_pools[0].count = n;
    }
    if let Some(size) = &r.master_size {
        cluster.spec.control_plane.size = size.clone();
    }
    if let Some(size) = &r.node_size {
        cluster.spec.node_pools[0].size = size.clone();
    }
    if let Some(user) = &r.admin_user {
        cluster.spec.admin_user = user.clone();
    }
    cluster.apply_defaults();
    let store = home.store()?;
    let now = clouder_state::now();
    let record = ClusterRecord {
        name: name.to_string(),
        provider: provider.as_str().into(),
        region: r.region,
        context: None,
        spec: serde_json::to_value(&cluster)?,
        status: "imported".into(),
        setup_complete: r.setup_complete,
        created_at: now,
        updated_at: now,
    };
    store.put_cluster(&record)?;
    emit(g.output, &record, || {
        format!(
            "Imported {name} from {}.\n",
            reference::path(home, name).display()
        )
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
    /// Nodes and addon health from the cluster's API, when it answers.
    live: Option<clouder_kube::status::ClusterStatus>,
}

/// The cluster's nodes and addons as its API reports them; `None` when it does not answer in time.
async fn live_status(kubeconfig: &std::path::Path) -> Option<clouder_kube::status::ClusterStatus> {
    let ask = async {
        let client = clouder_kube::connect(kubeconfig).await.ok()?;
        clouder_kube::status::read(&client).await.ok()
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
}

pub async fn info(home: &Home, g: &Global, name: Option<String>) -> Result<()> {
    let name = resolve_name(home, name)?;
    let store = home.store()?;
    let Some(cluster) = store.cluster(&name)? else {
        return reference_info(home, g, &name);
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
        live: if kubeconfig.exists() {
            live_status(&kubeconfig).await
        } else {
            None
        },
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
        if let Some(live) = &info.live {
            let nodes: Vec<Vec<String>> = live
                .nodes
                .iter()
                .map(|n| {
                    vec![
                        n.name.clone(),
                        n.role.into(),
                        if n.ready { "Ready" } else { "NotReady" }.into(),
                        n.version.clone(),
                        n.provenance.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            out += "\n";
            out += &table(&["NODE", "ROLE", "STATUS", "VERSION", "PROVENANCE"], &nodes);
            let addons: Vec<Vec<String>> = live
                .addons
                .iter()
                .map(|a| {
                    vec![
                        a.name.clone(),
                        a.version.clone(),
                        if a.healthy {
                            "healthy".into()
                        } else {
                            a.detail.clone().unwrap_or_default()
                        },
                    ]
                })
                .collect();
            if !addons.is_empty() {
                out += "\n";
                out += &table(&["ADDON", "VERSION", "HEALTH"], &addons);
            }
        }
        out += "\nNext steps:\n";
        for step in &info.next_steps {
            out += &format!("  {step}\n");
        }
        out
    })
}

/// `info` of a cluster only a reference `kubeadm.json` knows.
fn reference_info(home: &Home, g: &Global, name: &str) -> Result<()> {
    let Some(r) = reference::read(home, name)? else {
        return Err(Usage(format!("no cluster `{name}` (see `clouder kubeadm ls`)")).into());
    };
    let kubeconfig = home.kubeconfig(name);
    let out = serde_json::json!({
        "name": name, "source": reference::path(home, name), "reference": r,
        "kubeconfig": kubeconfig, "kubeconfig_present": kubeconfig.exists(),
        "next_steps": [format!("clouder kubeadm import {name}")],
    });
    emit(g.output, &out, || {
        format!(
            "Cluster:     {name} (reference CLOUDER_HOME)\nCloud:       {} {}\nSetup:       {}\nKubeconfig:  {}{}\n\nNext steps:\n  clouder kubeadm import {name}\n",
            r.cloud,
            r.region.as_deref().unwrap_or(""),
            if r.setup_complete {
                "complete"
            } else {
                "not done"
            },
            kubeconfig.display(),
            if kubeconfig.exists() {
                ""
            } else {
                " (not fetched yet)"
            },
        )
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
