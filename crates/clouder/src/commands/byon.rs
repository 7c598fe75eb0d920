//! Bring your own node: `byon add` prepares a host the user owns with the same phases as every
//! node and joins it as a worker, with its provenance marks; `byon remove` drains it, resets
//! kubeadm on it and deletes its Node. Joined hosts are recorded in the state (`byon/NODE`).

use super::bootstrap::{
    Formation, Target, cluster_inputs, connect_fleet, node_inputs, ssh_formation,
};
use super::converge::{lock_holder, take_lock};
use super::{checkpoint, kube_client, resolve_name};
use crate::Usage;
use crate::cli::{
    Byon, ByonAddArgs, ByonClusterArgs, ByonRemoveArgs, Global, NodeAccess, SshFlags,
};
use crate::home::Home;
use crate::output::{emit, table};
use anyhow::{Context as _, Result, anyhow, bail};
use clouder_kube::drain::{self, DrainOptions};
use clouder_node::cluster::{self, Member, RunSecrets};
use clouder_node::phases::NodePlan;
use clouder_node::shell::script;
use clouder_node::{Fleet, Host};
use clouder_spec::{Cluster, HostSpec, Provider, Role};
use clouder_state::{ClusterRecord, ResourceRecord, SqliteStore, StateStore, now};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const KIND: &str = "byon_node";

/// A joined host as the state keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Joined {
    pub node: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    provenance: String,
    labels: Vec<String>,
    taints: Vec<String>,
}

impl Joined {
    fn id(node: &str) -> String {
        format!("byon/{node}")
    }
}

pub async fn run(home: &Home, g: &Global, command: Byon) -> Result<()> {
    match command {
        Byon::Add(args) => add(home, g, args).await,
        Byon::Remove(args) => remove(home, g, args).await,
        Byon::Ls(args) => ls(home, g, args),
    }
}

/// `[USER@]ADDRESS[:PORT]`.
fn parse_host(text: &str, default_user: &str) -> Result<Host> {
    let bad = || Usage(format!("--host `{text}`: expected [USER@]ADDRESS[:PORT]"));
    let (user, rest) = match text.split_once('@') {
        Some((u, r)) if !u.is_empty() => (u.to_string(), r),
        Some(_) => return Err(bad().into()),
        None => (default_user.to_string(), text),
    };
    let (address, port) = match rest.rsplit_once(':') {
        Some((a, p)) if !a.contains(':') => (a, p.parse().map_err(|_| bad())?),
        _ => (rest, 22),
    };
    if address.is_empty() || address.contains(char::is_whitespace) {
        return Err(bad().into());
    }
    Ok(Host {
        address: address.to_string(),
        port,
        user,
    })
}

/// `k=v` labels.
fn parse_labels(labels: &[String]) -> Result<Vec<(String, String)>> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Usage(format!("--label `{l}`: expected KEY=VALUE")).into()),
        })
        .collect()
}

/// `key[=value]:Effect` taints.
fn parse_taints(taints: &[String]) -> Result<Vec<(String, Option<String>, String)>> {
    const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
    taints
        .iter()
        .map(|t| {
            let bad = || {
                Usage(format!(
                    "--taint `{t}`: expected KEY[=VALUE]:EFFECT, EFFECT one of {}",
                    EFFECTS.join(", ")
                ))
            };
            let (kv, effect) = t.rsplit_once(':').ok_or_else(bad)?;
            if !EFFECTS.contains(&effect) {
                return Err(bad().into());
            }
            let (key, value) = match kv.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (kv, None),
            };
            if key.is_empty() {
                return Err(bad().into());
            }
            Ok((key.to_string(), value, effect.to_string()))
        })
        .collect()
}

/// A set-up cluster's record and spec, and how its control planes are reached.
fn set_up_cluster(
    home: &Home,
    store: &SqliteStore,
    name: &str,
    flags: &SshFlags,
) -> Result<(ClusterRecord, Cluster, Formation)> {
    let record = store.cluster(name)?.ok_or_else(|| {
        Usage(format!(
            "no cluster named `{name}` in {}",
            home.root.display()
        ))
    })?;
    if !record.setup_complete || record.status == super::kube::ADOPTED {
        bail!(Usage(format!(
            "`{name}` has no control plane clouder set up (`clouder kubeadm setup {name}` first): a host joins through it"
        )));
    }
    let cluster: Cluster =
        serde_json::from_value(record.spec.clone()).context("the recorded spec does not parse")?;
    let formation = match cluster.spec.provider {
        Provider::Ssh => ssh_formation(&cluster, Some(flags)),
        _ => super::setup::cloud_formation(store, &cluster, Some(flags), cluster.spec.ssh.address)?,
    };
    Ok((record, cluster, formation))
}

pub(super) fn joined(store: &dyn StateStore, cluster: &str) -> Result<Vec<Joined>> {
    store
        .resources(cluster)?
        .into_iter()
        .filter(|r| r.kind == KIND)
        .map(|r| serde_json::from_value(r.attrs).context("a recorded BYON host does not parse"))
        .collect()
}

#[derive(Serialize)]
struct Added {
    cluster: String,
    node: String,
    host: String,
    applied: Vec<&'static str>,
    skipped: Vec<&'static str>,
}

async fn add(home: &Home, g: &Global, args: ByonAddArgs) -> Result<()> {
    let name = resolve_name(home, args.cluster.clone())?;
    let wanted = Wanted {
        labels: parse_labels(&args.label)?,
        taints: parse_taints(&args.taint)?,
        provenance: args.provenance.parse().map_err(|e: String| Usage(e))?,
        owner: args.owner.clone(),
    };
    let store = home.store()?;
    let flags = SshFlags {
        admin_user: None,
        key: args.key.clone(),
    };
    let (_, cluster, formation) = set_up_cluster(home, &store, &name, &flags)?;
    let host = parse_host(&args.host, &cluster.spec.admin_user)?;
    if formation
        .targets
        .iter()
        .any(|t| t.host.address == host.address)
        || joined(&store, &name)?
            .iter()
            .any(|j| j.address == host.address)
    {
        bail!(Usage(format!(
            "{} is already a machine of `{name}`",
            host.address
        )));
    }
    let leader = formation
        .first_control_plane()
        .ok_or_else(|| anyhow!("`{name}` has no control plane"))?
        .clone();
    let fleet = connect_fleet(home, g, &cluster, Some(&flags))?;
    let holder = lock_holder(std::process::id());
    take_lock(&store, &name, &holder)?;
    let result = join_host(&fleet, &cluster, &formation, &leader, &host, wanted).await;
    fleet.watch.finish();
    let added = match result {
        Ok((joined_host, added)) => {
            store.put_resource(
                &name,
                &ResourceRecord {
                    id: Joined::id(&joined_host.node),
                    kind: KIND.into(),
                    cloud_id: joined_host.address.clone(),
                    attrs: serde_json::to_value(&joined_host)?,
                    updated_at: now(),
                },
            )?;
            Ok(added)
        }
        Err(e) => Err(e),
    };
    store.unlock(&name, &holder)?;
    let added = added?;
    emit(g.output, &added, || {
        format!(
            "{} joined {} as node {} (applied: {}; unchanged: {})\n",
            added.host,
            added.cluster,
            added.node,
            added.applied.join(", "),
            added.skipped.join(", ")
        )
    })
}

/// What the user asked the host's Node to carry.
struct Wanted {
    labels: Vec<(String, String)>,
    taints: Vec<(String, Option<String>, String)>,
    provenance: clouder_byoc::provenance::Provenance,
    owner: Option<String>,
}

/// Prepares the host and joins it through the leader; the host's record once it has joined.
async fn join_host(
    fleet: &Fleet,
    cluster: &Cluster,
    formation: &Formation,
    leader: &Target,
    host: &Host,
    wanted: Wanted,
) -> Result<(Joined, Added)> {
    let plan = NodePlan {
        kubernetes_version: cluster.spec.kubernetes.version.clone(),
        sources: cluster.spec.sources.clone(),
    };
    let prepared = clouder_node::bootstrap::prepare(fleet, std::slice::from_ref(host), &plan)
        .await
        .remove(0)
        .result
        .map_err(|e| anyhow!(e))?;
    if let Some(failure) = &prepared.failure {
        bail!("{failure}; re-run `byon add` to resume");
    }
    let spec = HostSpec {
        address: host.address.clone(),
        port: host.port,
        user: Some(host.user.clone()),
        role: Role::Worker,
        pool: None,
        provenance: Some(wanted.provenance.as_str().to_string()),
        owner: wanted.owner,
    };
    let mut node = node_inputs(cluster, &spec, &prepared.facts, &host.user);
    node.labels.extend(wanted.labels);
    node.taints.extend(wanted.taints);
    let inputs = cluster_inputs(cluster, formation);
    let member = Member {
        host: host.clone(),
        node: node.clone(),
        control_plane: false,
    };
    let reports = cluster::join(
        fleet,
        &inputs,
        &RunSecrets::generate(),
        &leader.host,
        std::slice::from_ref(&member),
    )
    .await;
    if let Some(e) = reports.iter().find_map(|r| r.result.as_ref().err()) {
        bail!("{e}");
    }
    let titles = |want| {
        prepared
            .phases
            .iter()
            .filter(|p| p.outcome == want)
            .map(|p| p.phase)
            .collect()
    };
    let added = Added {
        cluster: cluster.name().to_string(),
        node: node.name.clone(),
        host: host.label(),
        applied: titles(clouder_node::phases::Outcome::Applied),
        skipped: titles(clouder_node::phases::Outcome::Skipped),
    };
    let joined = Joined {
        node: node.name,
        address: host.address.clone(),
        port: host.port,
        user: host.user.clone(),
        provenance: wanted.provenance.as_str().to_string(),
        labels: node
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        taints: node
            .taints
            .iter()
            .map(|(k, v, e)| match v {
                Some(v) => format!("{k}={v}:{e}"),
                None => format!("{k}:{e}"),
            })
            .collect(),
    };
    Ok((joined, added))
}

/// What `kubeadm reset` leaves behind by design (it says so): CNI configuration and the
/// kubelet's state, removed so the host could join any cluster again.
fn reset_script() -> String {
    script([
        "if command -v kubeadm >/dev/null; then kubeadm reset --force; fi",
        "rm -rf /etc/cni/net.d /var/lib/kubelet/* /etc/kubernetes/kubelet.conf",
        "systemctl stop kubelet || true",
    ])
}

async fn remove(home: &Home, g: &Global, args: ByonRemoveArgs) -> Result<()> {
    let name = args.cluster.clone();
    let store = home.store()?;
    let flags = SshFlags {
        admin_user: None,
        key: args.key.clone(),
    };
    let (_, cluster, _) = set_up_cluster(home, &store, &name, &flags)?;
    let Some(host) = joined(&store, &name)?
        .into_iter()
        .find(|j| j.node == args.node)
    else {
        bail!(Usage(format!(
            "`{}` is not a host joined to `{name}` with `byon add` (see `clouder byon ls {name}`)",
            args.node
        )));
    };
    let client = kube_client(home, &name, None).await?;
    let options = DrainOptions {
        timeout: Duration::from_secs(args.drain_timeout_secs),
        ..DrainOptions::default()
    };
    let access = NodeAccess {
        kubelet: args.kubelet.clone(),
        ssh: flags.clone(),
    };
    let held =
        checkpoint::drain::before_drain(home, g, &client, &name, &host.node, &access, args.force)
            .await?;
    let report = drain::drain(&client, &host.node, &options).await?;
    let to = checkpoint::RestoreTarget {
        home,
        g,
        client: &client,
        ssh: &flags,
    };
    let moved = checkpoint::drain::after_drain(&to, held, options.timeout).await;
    let (moved_text, restored) = checkpoint::drain::report(&moved);
    let fleet = connect_fleet(home, g, &cluster, Some(&flags))?;
    let target = Host {
        address: host.address.clone(),
        port: host.port,
        user: host.user.clone(),
    };
    let reset = async {
        let session = fleet.connect(&target).await?;
        let out = session.script(&reset_script()).await?;
        session.close().await;
        anyhow::ensure!(
            out.ok(),
            "kubeadm reset failed (exit {}): {}",
            out.status,
            out.stderr.trim()
        );
        Ok(())
    }
    .await;
    if let Err(e) = &reset {
        if !args.force {
            bail!(
                "{}: {e:#}. The node stays cordoned and drained; fix the cause and re-run, or pass --force to delete the Node anyway",
                target.label()
            );
        }
        eprintln!(
            "warning: {} was not reset ({e:#}); its Node is deleted anyway (--force)",
            target.label()
        );
    }
    drain::remove(&client, &host.node).await?;
    store.delete_resource(&name, &Joined::id(&host.node))?;
    let out = serde_json::json!({
        "cluster": name, "node": host.node, "evicted": report.evicted, "reset": reset.is_ok(),
        "moved": moved,
    });
    emit(g.output, &out, || {
        format!(
            "{moved_text}{} removed from {name}: {} pod(s) evicted, host {}\n",
            host.node,
            report.evicted.len(),
            if reset.is_ok() { "reset" } else { "NOT reset" }
        )
    })?;
    restored
}

fn ls(home: &Home, g: &Global, args: ByonClusterArgs) -> Result<()> {
    let name = resolve_name(home, args.cluster)?;
    let hosts = joined(&home.store()?, &name)?;
    emit(g.output, &hosts, || {
        let cells: Vec<Vec<String>> = hosts
            .iter()
            .map(|h| {
                vec![
                    h.node.clone(),
                    format!("{}@{}:{}", h.user, h.address, h.port),
                    h.provenance.clone(),
                    h.labels.join(","),
                    h.taints.join(","),
                ]
            })
            .collect();
        table(&["NODE", "HOST", "PROVENANCE", "LABELS", "TAINTS"], &cells)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_labels_and_taints_parse_or_are_refused() {
        let h = parse_host("admin@192.0.2.10:2222", "ubuntu").unwrap();
        assert_eq!(
            (h.user.as_str(), h.address.as_str(), h.port),
            ("admin", "192.0.2.10", 2222)
        );
        let h = parse_host("box.example.com", "ubuntu").unwrap();
        assert_eq!((h.user.as_str(), h.port), ("ubuntu", 22));
        for bad in ["@x", "a@", "x:port", "a b"] {
            assert!(parse_host(bad, "u").is_err(), "{bad}");
        }
        assert_eq!(
            parse_taints(&["dedicated=ml:NoSchedule".into(), "spot:NoExecute".into()]).unwrap(),
            [
                ("dedicated".into(), Some("ml".into()), "NoSchedule".into()),
                ("spot".into(), None, "NoExecute".into())
            ]
        );
        for bad in ["x=y", "x=y:Never", ":NoSchedule"] {
            assert!(parse_taints(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(parse_labels(&["novalue".into()]).is_err());
        assert_eq!(
            parse_labels(&["gpu=a100".into()]).unwrap(),
            [("gpu".into(), "a100".into())]
        );
    }
}
