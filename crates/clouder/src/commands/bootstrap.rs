//! `provider: ssh` clusters: the hosts exist already; converging means bootstrapping them over
//! SSH, with their host keys pinned in clouder's state.

use super::converge::{lock_holder, take_lock};
use crate::Usage;
use crate::cli::{Global, RunFlags, SshFlags};
use crate::home::{Home, expand};
use crate::output::{emit, table};
use anyhow::{Result, bail};
use clouder_node::Facts;
use clouder_node::bootstrap::{self, HostOutcome};
use clouder_node::cluster;
use clouder_node::fleet::{HostReport, KeyPins};
use clouder_node::kubeadm::{ClusterInputs, NodeInputs};
use clouder_node::phases::{NodePlan, Outcome};
use clouder_node::{Fleet, Host};
use clouder_spec::{Cluster, HostSpec, Role};
use clouder_state::{ClusterRecord, SqliteStore, StateStore, now};
use serde::Serialize;
use std::sync::Arc;

/// Host keys pinned per cluster in the state store.
struct StatePins {
    store: Arc<SqliteStore>,
    cluster: String,
}

impl KeyPins for StatePins {
    fn pinned(&self, address: &str) -> Option<String> {
        self.store.host_key(&self.cluster, address).ok().flatten()
    }
    fn pin(&self, address: &str, fingerprint: &str) {
        if let Err(e) = self.store.pin_host_key(&self.cluster, address, fingerprint) {
            tracing::warn!(%e, address, "could not pin the host key");
        }
    }
}

/// `-i NAME` is a key in ~/.ssh/ or a path; otherwise the spec's key, then the usual ones.
pub(super) fn private_key(
    cluster: &Cluster,
    flags: Option<&SshFlags>,
) -> Result<std::path::PathBuf> {
    let flag = flags.and_then(|f| f.key.as_ref()).map(|k| {
        if k.contains('/') {
            k.clone()
        } else {
            format!("~/.ssh/{k}")
        }
    });
    let candidates: Vec<String> = match flag.or(cluster.spec.ssh.private_key_path.clone()) {
        Some(p) => vec![p],
        None => vec!["~/.ssh/id_ed25519".into(), "~/.ssh/id_rsa".into()],
    };
    candidates
        .iter()
        .map(|c| expand(c))
        .find(|p| p.exists())
        .ok_or_else(|| {
            Usage(format!(
                "no SSH private key found (looked at {}); set spec.ssh.privateKeyPath",
                candidates.join(", ")
            ))
            .into()
        })
}

#[derive(Serialize)]
struct Row {
    host: String,
    role: Role,
    ok: bool,
    error: Option<String>,
    applied: Vec<&'static str>,
    skipped: Vec<&'static str>,
    seconds: f64,
}

/// One machine to bootstrap: where to log in, and what it becomes.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub host: Host,
    pub spec: HostSpec,
}

/// The machines a bootstrap forms into one cluster, and where clients reach its API.
#[derive(Debug, Clone)]
pub(super) struct Formation {
    pub targets: Vec<Target>,
    /// `host:port` of the API: the load balancer, or the first control plane.
    pub endpoint: String,
    /// Extra names the API server certificate must carry (public addresses).
    pub cert_sans: Vec<String>,
}

impl Formation {
    /// The first control plane: kubeadm init runs there, the kubeconfig comes from there.
    pub fn first_control_plane(&self) -> Option<&Target> {
        self.targets
            .iter()
            .find(|t| t.spec.role == Role::ControlPlane)
    }
}

fn login(cluster: &Cluster, flags: Option<&SshFlags>, spec_user: Option<&String>) -> String {
    flags
        .and_then(|f| f.admin_user.clone())
        .or(spec_user.cloned())
        .unwrap_or_else(|| cluster.spec.admin_user.clone())
}

/// The hosts of a `provider: ssh` cluster with their login users (`-u` overrides the spec); the
/// first control plane is the endpoint.
pub(super) fn ssh_formation(cluster: &Cluster, flags: Option<&SshFlags>) -> Formation {
    let targets: Vec<Target> = cluster
        .spec
        .hosts
        .iter()
        .map(|h| Target {
            host: Host {
                address: h.address.clone(),
                port: h.port,
                user: login(cluster, flags, h.user.as_ref()),
            },
            spec: h.clone(),
        })
        .collect();
    let control_planes = targets
        .iter()
        .filter(|t| t.spec.role == Role::ControlPlane)
        .map(|t| t.host.address.clone());
    Formation {
        endpoint: super::kubeconfig::ssh_endpoint(cluster).unwrap_or_default(),
        cert_sans: control_planes.collect(),
        targets,
    }
}

/// SSH to the cluster's hosts with its key, host keys pinned in the state store.
/// What every host does is shown as it happens and logged under the cluster's directory.
pub(super) fn connect_fleet(
    home: &Home,
    g: &Global,
    cluster: &Cluster,
    flags: Option<&SshFlags>,
) -> Result<Fleet> {
    let key = clouder_node::ssh::load_key(&private_key(cluster, flags)?)?;
    let mut fleet = Fleet::new(
        key,
        Arc::new(StatePins {
            store: Arc::new(home.store()?),
            cluster: cluster.name().to_string(),
        }),
    );
    fleet.watch = Arc::new(crate::host_progress::HostProgress::new(
        g.quiet,
        home.cluster_dir(cluster.name()).join("logs"),
    ));
    Ok(fleet)
}

/// `--dry-run`: the hosts and the phases each would be probed for.
pub(super) fn dry_run(g: &Global, cluster: &Cluster, formation: &Formation) -> Result<()> {
    let name = cluster.name();
    let phases: Vec<&str> = clouder_node::phases::all()
        .iter()
        .map(|p| p.title())
        .collect();
    let hosts: Vec<String> = formation.targets.iter().map(|t| t.host.label()).collect();
    let out = serde_json::json!({ "cluster": name, "hosts": hosts, "endpoint": formation.endpoint, "phases": phases });
    emit(g.output, &out, || {
        format!(
            "Would bootstrap {} host(s) of {name} (API at {}), probing each phase first: {}\n",
            hosts.len(),
            formation.endpoint,
            phases.join(", ")
        )
    })
}

/// A set-up cluster changes its Kubernetes version only through `upgrade-kubelet`, in kubeadm's
/// order: re-running the bootstrap would move the packages under a running control plane.
pub(super) fn refuse_version_change(
    record: Option<&ClusterRecord>,
    cluster: &Cluster,
) -> Result<()> {
    let Some(record) = record.filter(|r| r.setup_complete) else {
        return Ok(());
    };
    let recorded = record
        .spec
        .pointer("/spec/kubernetes/version")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .trim_start_matches('v');
    let wanted = cluster.spec.kubernetes.version.trim_start_matches('v');
    if recorded != wanted {
        bail!(Usage(format!(
            "`{name}` runs Kubernetes {recorded}; nothing was changed. To move it to {wanted}, run \
             `clouder kubeadm upgrade-kubelet {name} -f SPEC` (a rolling upgrade in kubeadm's order)",
            name = record.name
        )));
    }
    Ok(())
}

pub async fn converge(home: &Home, g: &Global, cluster: Cluster, run: &RunFlags) -> Result<()> {
    let name = cluster.name().to_string();
    refuse_version_change(home.store()?.cluster(&name)?.as_ref(), &cluster)?;
    let formation = ssh_formation(&cluster, None);
    if run.dry_run {
        return dry_run(g, &cluster, &formation);
    }
    let mut fleet = connect_fleet(home, g, &cluster, None)?;
    fleet.parallelism = run.concurrency.max(1);
    let store = home.store()?;
    let holder = lock_holder(std::process::id());
    if run.force_unlock {
        store.force_unlock(&name)?;
    }
    take_lock(&store, &name, &holder)?;
    let created_at = store.cluster(&name)?.map_or_else(now, |c| c.created_at);
    let record = |status: &str, setup_complete: bool| ClusterRecord {
        name: name.clone(),
        provider: "ssh".into(),
        region: None,
        context: None,
        spec: serde_json::to_value(&cluster).expect("spec serializes"),
        status: status.into(),
        setup_complete,
        created_at,
        updated_at: now(),
    };
    store.put_cluster(&record("applying", false))?;
    let done = bootstrap(home, &cluster, &formation, &fleet).await;
    let status = if done.failed() == 0 {
        "ready"
    } else {
        "failed"
    };
    store.put_cluster(&record(status, done.complete()))?;
    store.unlock(&name, &holder)?;
    finish(home, g, &cluster, done).await
}

/// What a bootstrap did on each host, and the kubeconfig once the cluster formed.
pub(super) struct Bootstrapped {
    rows: Vec<Row>,
    fetched: Option<super::kubeconfig::Fetched>,
}

impl Bootstrapped {
    pub fn failed(&self) -> usize {
        self.rows.iter().filter(|r| !r.ok).count()
    }

    /// Every host is done and the kubeconfig is here: the cluster is set up.
    pub fn complete(&self) -> bool {
        self.failed() == 0 && self.fetched.is_some()
    }
}

/// Prepares every host, forms the cluster and fetches its kubeconfig. Never fails as a whole:
/// each host's failure is in its row, so the caller records the outcome and releases its lock.
pub(super) async fn bootstrap(
    home: &Home,
    cluster: &Cluster,
    formation: &Formation,
    fleet: &Fleet,
) -> Bootstrapped {
    let plan = NodePlan {
        kubernetes_version: cluster.spec.kubernetes.version.clone(),
        sources: cluster.spec.sources.clone(),
    };
    let hosts: Vec<Host> = formation.targets.iter().map(|t| t.host.clone()).collect();
    let reports: Vec<HostReport<HostOutcome>> = bootstrap::prepare(fleet, &hosts, &plan).await;
    let mut failures: Vec<Option<String>> = reports
        .iter()
        .map(|r| match &r.result {
            Ok(outcome) => outcome.failure.clone(),
            Err(e) => Some(e.clone()),
        })
        .collect();
    let mut fetched = None;
    if failures.iter().all(Option::is_none) {
        let outcomes: Vec<&HostOutcome> = reports.iter().flat_map(|r| r.result.as_ref()).collect();
        let formed = form(fleet, cluster, formation, &outcomes).await;
        for (i, report) in formed.iter().enumerate() {
            if let Err(e) = &report.result {
                let at = hosts.iter().position(|h| h.label() == report.host);
                failures[at.unwrap_or(i.min(hosts.len() - 1))] = Some(e.clone());
            }
        }
        if let (true, Some(first)) = (
            failures.iter().all(Option::is_none),
            formation.first_control_plane(),
        ) {
            let dir = home.cluster_dir(cluster.name());
            let got = async {
                let session = fleet.connect(&first.host).await?;
                let got = super::kubeconfig::fetch(&session, &formation.endpoint, &dir).await;
                session.close().await;
                got
            };
            match got.await {
                Ok(f) => fetched = Some(f),
                Err(e) => {
                    let at = hosts.iter().position(|h| *h == first.host).unwrap_or(0);
                    failures[at] = Some(format!("fetching the kubeconfig: {e:#}"));
                }
            }
        }
    }
    let rows = reports
        .iter()
        .zip(&formation.targets)
        .zip(failures)
        .map(|((r, target), error)| {
            let phases = r
                .result
                .as_ref()
                .map(|o| o.phases.clone())
                .unwrap_or_default();
            let titles = |want: Outcome| {
                phases
                    .iter()
                    .filter(|p| p.outcome == want)
                    .map(|p| p.phase)
                    .collect()
            };
            Row {
                host: r.host.clone(),
                role: target.spec.role,
                ok: error.is_none(),
                error,
                applied: titles(Outcome::Applied),
                skipped: titles(Outcome::Skipped),
                seconds: r.elapsed.as_secs_f64(),
            }
        })
        .collect();
    fleet.watch.finish();
    Bootstrapped { rows, fetched }
}

/// Converges the addons of a formed cluster, then reports every host; fails when one did.
pub(super) async fn finish(
    home: &Home,
    g: &Global,
    cluster: &Cluster,
    done: Bootstrapped,
) -> Result<()> {
    if done.complete() {
        // The cluster answers: its addons converge too (reported on stderr, beside the hosts).
        let outcome = super::kube::converge_addons(home, cluster).await?;
        if !g.quiet && !outcome.addons.is_empty() {
            eprint!("{}", super::kube::render(&outcome));
        }
    }
    let rows = &done.rows;
    emit(g.output, rows, || {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.host.clone(),
                    format!("{:?}", r.role).to_lowercase(),
                    if r.ok { "ok".into() } else { "FAILED".into() },
                    r.applied.join(","),
                    r.skipped.join(","),
                    format!("{:.1}s", r.seconds),
                ]
            })
            .collect();
        table(
            &["HOST", "ROLE", "RESULT", "APPLIED", "UNCHANGED", "TIME"],
            &cells,
        )
    })?;
    if let Some(f) = &done.fetched {
        eprintln!(
            "Kubeconfig (server {}) written to {}",
            f.server,
            f.kubeconfig.display()
        );
    }
    let failed = done.failed();
    if failed > 0 {
        bail!(
            "{failed} of {} host(s) failed; the others are done. Fix the cause and re-run to resume:\n{}",
            rows.len(),
            indented(rows.iter().filter_map(|r| r.error.as_deref()))
        );
    }
    Ok(())
}

/// The provenance marks a host's node registers with (`clouder.io/provenance`, `owner`,
/// `enrolled-at`; a laptop is tainted non-production).
fn provenance_marks(spec: &HostSpec, login: &str) -> clouder_byoc::provenance::Marks {
    use clouder_byoc::provenance::{Origin, Provenance, labels_and_taints};
    let provenance = spec
        .provenance
        .as_deref()
        .and_then(|p| p.parse().ok())
        .unwrap_or(Provenance::Ssh);
    labels_and_taints(&Origin {
        provenance,
        owner: spec.owner.clone().unwrap_or_else(|| login.to_string()),
        enrolled_at: jiff::Timestamp::now(),
        non_production_taint: true,
    })
}

/// The pool a host's labels and taints come from (workers only; default `workers`), with its
/// provenance marks.
pub(super) fn node_inputs(
    cluster: &Cluster,
    spec: &HostSpec,
    facts: &Facts,
    login: &str,
) -> NodeInputs {
    let pool = (spec.role == Role::Worker)
        .then(|| {
            let name = spec.pool.as_deref().unwrap_or("workers");
            cluster.spec.node_pools.iter().find(|p| p.name == name)
        })
        .flatten();
    let marks = provenance_marks(spec, login);
    let mut labels = pool.map(|p| p.labels.clone()).unwrap_or_default();
    labels.extend(marks.labels);
    let mut taints: Vec<(String, Option<String>, String)> = pool
        .map(|p| {
            p.taints
                .iter()
                .map(|t| (t.key.clone(), t.value.clone(), format!("{:?}", t.effect)))
                .collect()
        })
        .unwrap_or_default();
    taints.extend(marks.taints.into_iter().map(|t| (t.key, t.value, t.effect)));
    // Workloads stay off control planes, as kubeadm would have it — unless there is nowhere else.
    if spec.role == Role::ControlPlane && has_workers(cluster) {
        taints.push((CONTROL_PLANE_TAINT.into(), None, "NoSchedule".into()));
    }
    NodeInputs {
        name: facts.hostname.clone(),
        // A host without a default route has no such address: the one we reach it at will do.
        advertise_address: if facts.address.is_empty() {
            spec.address.clone()
        } else {
            facts.address.clone()
        },
        labels,
        taints,
    }
}

const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";

/// Whether the spec gives the cluster workers (hosts, or machines of a pool).
fn has_workers(cluster: &Cluster) -> bool {
    match cluster.spec.provider {
        clouder_spec::Provider::Ssh => cluster.spec.hosts.iter().any(|h| h.role == Role::Worker),
        _ => cluster.spec.node_pools.iter().any(|p| p.count > 0),
    }
}

/// What kubeadm's configurations say about the whole cluster.
pub(super) fn cluster_inputs(cluster: &Cluster, formation: &Formation) -> ClusterInputs {
    let net = &cluster.spec.network;
    ClusterInputs {
        name: cluster.name().to_string(),
        version: format!(
            "v{}",
            cluster.spec.kubernetes.version.trim_start_matches('v')
        ),
        endpoint: formation.endpoint.clone(),
        pod_cidr: net.pod_cidr.to_string(),
        service_cidr: net.service_cidr.to_string(),
        cert_sans: formation.cert_sans.clone(),
        cni_manifest: cluster
            .spec
            .sources
            .cni
            .as_ref()
            .map_or_else(cluster::calico_manifest, |c| c.manifest.clone()),
    }
}

/// kubeadm init/join and the CNI on prepared hosts.
async fn form(
    fleet: &Fleet,
    cluster: &Cluster,
    formation: &Formation,
    outcomes: &[&HostOutcome],
) -> Vec<HostReport<Vec<cluster::Formed>>> {
    let inputs = cluster_inputs(cluster, formation);
    let mut members: Vec<cluster::Member> = formation
        .targets
        .iter()
        .zip(outcomes)
        .map(|(target, outcome)| cluster::Member {
            host: target.host.clone(),
            node: node_inputs(cluster, &target.spec, &outcome.facts, &target.host.user),
            control_plane: target.spec.role == Role::ControlPlane,
        })
        .collect();
    // The first control plane leads; the spec's order is kept otherwise.
    members.sort_by_key(|m| !m.control_plane);
    cluster::form(fleet, &inputs, &members).await
}

/// Hosts' errors, one indented line each, for the message a failed run ends with.
pub(super) fn indented<'a>(errors: impl Iterator<Item = &'a str>) -> String {
    errors
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(yaml: &str) -> Cluster {
        clouder_spec::parse("t.yaml", yaml).expect("valid spec")
    }

    #[test]
    fn joined_nodes_carry_their_provenance_and_a_laptop_is_tainted() {
        let c = cluster(
            "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata: {name: lab}\nspec:\n  provider: ssh\n  nodePools: [{name: workers, count: 0, labels: {team: ml}}]\n  hosts:\n  - {address: 10.0.0.1, role: control-plane}\n  - {address: 10.0.0.2, role: worker, provenance: laptop, owner: 'Jane Doe <jane@example.com>'}\n",
        );
        let facts = Facts {
            hostname: "n2".into(),
            address: "10.0.0.2".into(),
            ..Facts::default()
        };
        let laptop = node_inputs(&c, &c.spec.hosts[1], &facts, "admin");
        assert_eq!(laptop.labels["clouder.io/provenance"], "laptop");
        assert_eq!(
            laptop.labels["clouder.io/owner"],
            "Jane_Doe_jane_example.com"
        );
        assert_eq!(laptop.labels["team"], "ml", "pool labels stay");
        assert!(laptop.labels.contains_key("clouder.io/enrolled-at"));
        assert_eq!(
            laptop.taints,
            [(
                "clouder.io/non-production".to_string(),
                Some("laptop".to_string()),
                "NoSchedule".to_string()
            )]
        );
        let control_plane = node_inputs(&c, &c.spec.hosts[0], &facts, "admin");
        assert_eq!(control_plane.labels["clouder.io/provenance"], "ssh");
        assert_eq!(control_plane.labels["clouder.io/owner"], "admin");
        assert_eq!(
            control_plane.taints,
            [(
                "node-role.kubernetes.io/control-plane".to_string(),
                None,
                "NoSchedule".to_string()
            )],
            "workloads go to the workers"
        );
        let single = cluster(
            "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata: {name: one}\nspec:\n  provider: ssh\n  hosts: [{address: 10.0.0.1, role: control-plane}]\n",
        );
        assert!(
            node_inputs(&single, &single.spec.hosts[0], &facts, "admin")
                .taints
                .is_empty(),
            "a single node runs the workloads itself"
        );
    }
}
