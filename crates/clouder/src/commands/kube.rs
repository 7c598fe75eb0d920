//! Commands that act through the cluster's Kubernetes API: `adopt`, ingress on and off. Each
//! talks to the cluster's kubeconfig under CLOUDER_HOME, or the one given with `--kubeconfig`.

use super::{confirm, resolve_name};
use crate::Usage;
use crate::cli::{AdoptArgs, Global, KubeTarget, KubeTargetForce};
use crate::home::Home;
use crate::output::{emit, table};
use anyhow::{Context as _, Result, bail};
use clouder_kube::addons::{self, Addon, Cloud};
use clouder_kube::{Applier, ObjectRef};
use clouder_spec::{Cluster, Provider};
use clouder_state::{ClusterRecord, StateStore, now};
use futures::future::try_join_all;
use kube::api as kube_objects;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Status of clusters clouder recorded but did not create (never deleted by `terminate`).
pub const ADOPTED: &str = "adopted";

/// The kubeconfig a command about `name` uses: `--kubeconfig`, else the cluster's own.
pub fn kubeconfig_for(home: &Home, name: &str, flag: Option<&Path>) -> Result<PathBuf> {
    let path = flag.map_or_else(|| home.kubeconfig(name), Path::to_path_buf);
    if !path.exists() {
        bail!(Usage(format!(
            "no kubeconfig for {name} at {}: fetch it with `clouder kubeadm get-config {name}`, or pass --kubeconfig FILE",
            path.display()
        )));
    }
    Ok(path)
}

/// A cluster named on the command line, with its spec and a client for its API.
pub struct Target {
    pub name: String,
    pub cluster: Cluster,
    pub applier: Applier,
    /// clouder bootstrapped its nodes (so every machine of it should be a Node).
    pub setup_complete: bool,
}

pub async fn target(
    home: &Home,
    name: Option<String>,
    kubeconfig: Option<&Path>,
) -> Result<Target> {
    let name = resolve_name(home, name)?;
    let record = home.store()?.cluster(&name)?.ok_or_else(|| {
        Usage(format!(
            "no cluster `{name}` in local state (see `clouder kubeadm ls`, or `clouder kubeadm adopt {name} --kubeconfig FILE`)"
        ))
    })?;
    let cluster: Cluster =
        serde_json::from_value(record.spec).context("reading the cluster's last applied spec")?;
    let client = clouder_kube::connect(&kubeconfig_for(home, &name, kubeconfig)?).await?;
    Ok(Target {
        name,
        cluster,
        applier: Applier::new(client),
        setup_complete: record.setup_complete && record.status != ADOPTED,
    })
}

fn cloud(provider: Provider) -> Cloud {
    match provider {
        Provider::Aws => Cloud::Aws,
        Provider::Azure => Cloud::Azure,
        Provider::Ssh => Cloud::Ssh,
    }
}

/// `1.36`, `v1.36.2` → 36.
fn minor(version: &str) -> Result<u32> {
    version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|m| m.trim_end_matches('+').parse().ok())
        .ok_or_else(|| Usage(format!("Kubernetes version `{version}`: expected 1.MINOR")).into())
}

pub fn addon_context(cluster: &Cluster) -> Result<addons::Context> {
    Ok(addons::Context {
        cluster: cluster.name().to_string(),
        cloud: cloud(cluster.spec.provider),
        region: cluster.spec.region.clone().unwrap_or_default(),
        minor: minor(&cluster.spec.kubernetes.version)?,
        azure_cloud_config: None,
        efs_file_system: cluster.spec.addons.efs_file_system_id.clone(),
    })
}

/// The addons `cluster`'s spec asks for: the cloud's integration first, then what it names.
pub fn wanted(cluster: &Cluster) -> Vec<Addon> {
    let a = &cluster.spec.addons;
    let mut wanted = addons::cloud_addons(cloud(cluster.spec.provider)).to_vec();
    if a.efs_file_system_id.is_some() {
        wanted.push(Addon::AwsEfsCsi);
    }
    match a.ingress {
        Some(clouder_spec::Ingress::Nginx) => wanted.push(Addon::IngressNginx),
        Some(clouder_spec::Ingress::Traefik) => wanted.push(Addon::IngressTraefik),
        None => {}
    }
    if a.cert_manager.is_some() {
        wanted.push(Addon::CertManager);
    }
    wanted
}

/// What the spec asks for beyond the addons proper, in the order to converge it: its
/// ClusterIssuer, then the shared storage for user folders and the node agent on it.
fn extras(cluster: &Cluster) -> Result<Vec<(&'static str, Vec<kube_objects::DynamicObject>)>> {
    let mut extras = Vec::new();
    if let Some(objects) = issuer(cluster)? {
        extras.push(("cluster-issuer", objects));
    }
    if let Some(storage) = &cluster.spec.storage {
        let objects =
            clouder_userdata::storage::manifests::for_spec(storage, cluster.spec.provider)?;
        let dynamic = |values: Vec<serde_json::Value>| {
            values
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<Vec<kube_objects::DynamicObject>, _>>()
                .context("rendering the storage objects")
        };
        extras.push(("user-storage", dynamic(objects.shared)?));
        extras.push(("node-agent", dynamic(objects.agent)?));
    }
    Ok(extras)
}

/// What a failure of `extra` was doing; Ceph's objects need the Rook operator first.
fn converging(cluster: &Cluster, extra: &str) -> String {
    let rook = clouder_userdata::storage::manifests::ROOK_CHART;
    match &cluster.spec.storage {
        Some(s) if s.ceph.is_some() && extra == "user-storage" => format!(
            "converging {extra}: spec.storage.ceph needs the Rook operator and its CRDs first \
             (chart {} {} from {} in namespace {}, e.g. as a release of `clouder services`)",
            rook.chart, rook.version, rook.repo, rook.namespace
        ),
        _ => format!("converging {extra}"),
    }
}

/// The spec's ClusterIssuer, for its cert-manager.
fn issuer(cluster: &Cluster) -> Result<Option<Vec<kube_objects::DynamicObject>>> {
    let Some(cm) = &cluster.spec.addons.cert_manager else {
        return Ok(None);
    };
    let kind = match cm.issuer {
        clouder_spec::IssuerKind::SelfSigned => addons::Issuer::SelfSigned,
        clouder_spec::IssuerKind::Acme => addons::Issuer::Acme {
            server: cm
                .server
                .clone()
                .unwrap_or_else(|| "https://acme-v02.api.letsencrypt.org/directory".into()),
            email: cm.email.clone().unwrap_or_default(),
        },
    };
    let class = match cluster.spec.addons.ingress {
        Some(clouder_spec::Ingress::Traefik) => "traefik",
        _ => "nginx",
    };
    Ok(Some(addons::issuer(&cm.issuer_name, &kind, class)?))
}

#[derive(Serialize)]
pub struct AddonsOutcome {
    pub cluster: String,
    pub addons: Vec<AddonOutcome>,
}

#[derive(Serialize)]
pub struct AddonOutcome {
    pub addon: String,
    pub created: usize,
    pub configured: usize,
    pub unchanged: usize,
}

fn tally(addon: &str, applied: &[clouder_kube::Applied]) -> AddonOutcome {
    let count = |o: clouder_kube::Outcome| applied.iter().filter(|a| a.outcome == o).count();
    AddonOutcome {
        addon: addon.to_string(),
        created: count(clouder_kube::Outcome::Created),
        configured: count(clouder_kube::Outcome::Configured),
        unchanged: count(clouder_kube::Outcome::Unchanged),
    }
}

/// What converging the addons would do, per addon, asked of the API server by dry runs.
pub async fn plan_addons(home: &Home, cluster: &Cluster) -> Result<AddonsOutcome> {
    let name = cluster.name().to_string();
    let client = clouder_kube::connect(&kubeconfig_for(home, &name, None)?).await?;
    let applier = Applier::new(client);
    let ctx = addon_context(cluster)?;
    let mut outcomes = Vec::new();
    for addon in wanted(cluster) {
        let planned = applier
            .plan(&addons::rendered_for(&applier, addon, &ctx).await?)
            .await?;
        outcomes.push(tally(addon.name(), &planned));
    }
    for (name, objects) in extras(cluster)? {
        let planned = applier
            .plan(&objects)
            .await
            .with_context(|| converging(cluster, name))?;
        outcomes.push(tally(name, &planned));
    }
    Ok(AddonsOutcome {
        cluster: name,
        addons: outcomes,
    })
}

/// Brings the cluster's addons to what its spec asks for, through its API; waits for rollouts.
pub async fn converge_addons(home: &Home, cluster: &Cluster) -> Result<AddonsOutcome> {
    let name = cluster.name().to_string();
    let client = clouder_kube::connect(&kubeconfig_for(home, &name, None)?).await?;
    let applier = Applier::new(client);
    let ctx = addon_context(cluster)?;
    let installed =
        addons::install(&applier, &wanted(cluster), &ctx, Duration::from_secs(600)).await?;
    let mut outcomes: Vec<AddonOutcome> = installed
        .iter()
        .map(|i| tally(i.addon.name(), &i.applied))
        .collect();
    for (name, objects) in extras(cluster)? {
        let applied = applier
            .apply(&objects)
            .await
            .with_context(|| converging(cluster, name))?;
        outcomes.push(tally(name, &applied));
        let refs: Vec<ObjectRef> = objects.iter().map(ObjectRef::of).collect();
        let timeout = Duration::from_secs(600);
        try_join_all(
            refs.iter()
                .map(|o| clouder_kube::wait::rollout(&applier, o, timeout)),
        )
        .await?;
    }
    Ok(AddonsOutcome {
        cluster: name,
        addons: outcomes,
    })
}

/// `apply -f` of an adopted cluster: its machines are not clouder's, so only its addons converge.
pub async fn apply_adopted(
    home: &Home,
    g: &Global,
    cluster: &Cluster,
    dry_run: bool,
) -> Result<()> {
    if dry_run {
        let planned = plan_addons(home, cluster).await?;
        return emit(g.output, &planned, || render(&planned));
    }
    let outcome = converge_addons(home, cluster).await?;
    let store = home.store()?;
    if let Some(mut record) = store.cluster(cluster.name())? {
        record.spec = serde_json::to_value(cluster).expect("spec serializes");
        record.updated_at = now();
        store.put_cluster(&record)?;
    }
    emit(g.output, &outcome, || render(&outcome))
}

pub fn render(outcome: &AddonsOutcome) -> String {
    let rows: Vec<Vec<String>> = outcome
        .addons
        .iter()
        .map(|a| {
            vec![
                a.addon.clone(),
                a.created.to_string(),
                a.configured.to_string(),
                a.unchanged.to_string(),
            ]
        })
        .collect();
    format!("Addons of {}:\n", outcome.cluster)
        + &table(&["ADDON", "CREATED", "CHANGED", "UNCHANGED"], &rows)
}

/// The pool's machines by private address → index, from the state of the last apply.
pub fn pool_machines(
    store: &dyn StateStore,
    cluster: &str,
    pool: &str,
) -> Result<BTreeMap<String, u32>> {
    Ok(pool_machines_seen(store, cluster, pool)?
        .into_iter()
        .map(|(ip, (index, _))| (ip, index))
        .collect())
}

/// A pool's machines by private address: their index and when clouder last saw them (epoch s).
pub fn pool_machines_seen(
    store: &dyn StateStore,
    cluster: &str,
    pool: &str,
) -> Result<BTreeMap<String, (u32, i64)>> {
    let prefix = format!("instance/{pool}-");
    Ok(store
        .resources(cluster)?
        .into_iter()
        .filter_map(|r| {
            let index = r.id.rsplit_once(&prefix)?.1.parse().ok()?;
            let ip = r.attrs.get("private_ip")?.as_str()?.to_string();
            (!ip.is_empty()).then_some((ip, (index, r.updated_at)))
        })
        .collect())
}

#[derive(Serialize)]
struct AddonRow<'a> {
    cluster: &'a str,
    addon: &'static str,
    action: &'static str,
    objects: Vec<String>,
}

/// `enable-ingress-nginx|traefik NAME`: the controller behind the cloud's load balancer.
pub async fn enable_ingress(home: &Home, g: &Global, args: KubeTarget, addon: Addon) -> Result<()> {
    if addon == Addon::IngressNginx {
        eprintln!(
            "warning: ingress-nginx is retired upstream (no fixes after March 2026, no release for Kubernetes 1.36+); prefer enable-ingress-traefik"
        );
    }
    let t = target(home, args.name, args.kubeconfig.as_deref()).await?;
    let ctx = addon_context(&t.cluster)?;
    // No release of the addon for this Kubernetes: a validation error, before any change.
    addon
        .version(&addons::Pins::for_minor(ctx.minor)?, ctx.minor)
        .map_err(|e| Usage(e.to_string()))?;
    let timeout = Duration::from_secs(args.timeout_secs);
    let installed = addons::install(&t.applier, &[addon], &ctx, timeout).await?;
    let objects = installed
        .iter()
        .flat_map(|i| &i.applied)
        .map(|a| {
            format!(
                "{} {}",
                a.object,
                serde_json::to_value(a.outcome)
                    .unwrap()
                    .as_str()
                    .unwrap_or_default()
            )
        })
        .collect();
    let row = AddonRow {
        cluster: &t.name,
        addon: addon.name(),
        action: "enabled",
        objects,
    };
    emit(g.output, &row, || {
        let cells: Vec<Vec<String>> = row.objects.iter().map(|o| vec![o.clone()]).collect();
        format!(
            "{} enabled on {} (rolled out):\n{}",
            addon.name(),
            t.name,
            table(&["OBJECT"], &cells)
        )
    })
}

/// `disable-ingress-nginx|traefik NAME`: removes what enabling installed, after confirmation.
pub async fn disable_ingress(
    home: &Home,
    g: &Global,
    args: KubeTargetForce,
    addon: Addon,
) -> Result<()> {
    let t = target(home, args.target.name, args.target.kubeconfig.as_deref()).await?;
    let ctx = addon_context(&t.cluster)?;
    confirm(
        &format!(
            "Remove {} from {} (its load balancer goes with it)",
            addon.name(),
            t.name
        ),
        args.force || g.yes,
        "--force",
    )?;
    let removed: Vec<ObjectRef> = addons::remove(&t.applier, addon, &ctx).await?;
    let row = AddonRow {
        cluster: &t.name,
        addon: addon.name(),
        action: "disabled",
        objects: removed.iter().map(ToString::to_string).collect(),
    };
    emit(g.output, &row, || {
        format!(
            "{} removed from {}: {} object(s) deleted\n",
            addon.name(),
            t.name,
            row.objects.len()
        )
    })
}

/// `adopt NAME --kubeconfig FILE`: records a cluster clouder did not create, so that addons,
/// drains, services and checkpoints work on it. Its machines are never touched by `terminate`.
pub async fn adopt(home: &Home, g: &Global, args: AdoptArgs) -> Result<()> {
    let store = home.store()?;
    if let Some(existing) = store.cluster(&args.name)?
        && existing.status != ADOPTED
    {
        bail!(Usage(format!(
            "a cluster named `{}` already exists here (provider {}); pick another name",
            args.name, existing.provider
        )));
    }
    let client = clouder_kube::connect(&args.kubeconfig).await?;
    let version = client
        .apiserver_version()
        .await
        .with_context(|| format!("reaching the API server in {}", args.kubeconfig.display()))?;
    let nodes = clouder_kube::drain::workers_by_load(&client).await?;
    let mut cluster = Cluster::new(&args.name, args.provider.unwrap_or(Provider::Ssh));
    cluster.spec.region = args.region.clone();
    cluster.spec.kubernetes.version =
        format!("{}.{}", version.major, version.minor.trim_end_matches('+'));
    let text = std::fs::read(&args.kubeconfig)
        .with_context(|| format!("reading {}", args.kubeconfig.display()))?;
    crate::home::private_dir(&home.cluster_dir(&args.name))?;
    crate::home::write_private(&home.kubeconfig(&args.name), &text)?;
    store.put_cluster(&ClusterRecord {
        name: args.name.clone(),
        provider: cluster.spec.provider.as_str().into(),
        region: args.region.clone(),
        context: None,
        spec: serde_json::to_value(&cluster).expect("spec serializes"),
        status: ADOPTED.into(),
        setup_complete: true,
        created_at: now(),
        updated_at: now(),
    })?;
    let out = serde_json::json!({
        "cluster": args.name,
        "kubernetesVersion": version.git_version,
        "workers": nodes.len(),
        "kubeconfig": home.kubeconfig(&args.name),
    });
    emit(g.output, &out, || {
        format!(
            "Adopted {} (Kubernetes {}, {} worker(s)); kubeconfig kept at {}\n",
            args.name,
            version.git_version,
            nodes.len(),
            home.kubeconfig(&args.name).display()
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn minors_are_read_from_any_version_spelling() {
        assert_eq!(super::minor("1.36").unwrap(), 36);
        assert_eq!(super::minor("v1.33.2").unwrap(), 33);
        assert!(super::minor("latest").is_err());
    }
}
