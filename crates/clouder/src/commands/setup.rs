//! `setup NAME`: Kubernetes on the machines `create` made — the same bootstrap as `provider: ssh`,
//! on the addresses recorded in the state. Host keys are pinned from the cloud's console log where
//! it announces them (cloud-init prints them there), on first contact otherwise.

use super::bootstrap::{Formation, Target, bootstrap, connect_fleet, dry_run, finish};
use super::converge::{lock_holder, take_lock};
use super::{context, resolve_name};
use crate::Usage;
use crate::cli::{Global, SetupArgs, SshFlags};
use crate::home::Home;
use crate::provider::{Cloud, connect_cloud};
use anyhow::{Context as _, Result, anyhow, bail};
use clouder_node::Host;
use clouder_node::kubeadm::API_PORT;
use clouder_spec::{AddressKind, Cluster, HostSpec, Provider, Role};
use clouder_state::{ClusterRecord, ResourceRecord, StateStore, now};

/// The pool control-plane machines are recorded under, on every cloud.
const CONTROL_PLANE_POOL: &str = "control-plane";

/// One machine as the state records it.
#[derive(Debug, Clone, PartialEq)]
struct Machine {
    pool: String,
    index: u32,
    cloud_id: String,
    private_ip: String,
    public_ip: String,
}

fn attr<'a>(r: &'a ResourceRecord, key: &str) -> &'a str {
    r.attrs
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
}

/// The machines in the state, control planes first, then pools by name and index.
fn machines(resources: &[ResourceRecord]) -> Vec<Machine> {
    let mut found: Vec<Machine> = resources
        .iter()
        .filter_map(|r| {
            let (pool, private_ip) = (attr(r, "pool"), attr(r, "private_ip"));
            let index = r.id.rsplit_once('-')?.1.parse().ok()?;
            (!pool.is_empty() && !private_ip.is_empty()).then(|| Machine {
                pool: pool.to_string(),
                index,
                cloud_id: r.cloud_id.clone(),
                private_ip: private_ip.to_string(),
                public_ip: attr(r, "public_ip").to_string(),
            })
        })
        .collect();
    found.sort_by(|a, b| {
        (a.pool != CONTROL_PLANE_POOL, &a.pool, a.index).cmp(&(
            b.pool != CONTROL_PLANE_POOL,
            &b.pool,
            b.index,
        ))
    });
    found
}

/// The API endpoint clients and nodes use: the cloud load balancer's name or address.
fn load_balancer(resources: &[ResourceRecord]) -> Option<String> {
    resources.iter().find_map(|r| {
        let address = match attr(r, "dns_name") {
            "" if r.id.ends_with("api-public-ip") => attr(r, "ip_address"),
            name => name,
        };
        (!address.is_empty()).then(|| address.to_string())
    })
}

/// The machines of a cloud cluster as bootstrap targets, at the address kind asked for.
pub(super) fn cloud_formation(
    store: &dyn StateStore,
    cluster: &Cluster,
    flags: Option<&SshFlags>,
    address: AddressKind,
) -> Result<Formation> {
    let name = cluster.name();
    let resources = store.resources(name)?;
    let found = machines(&resources);
    if found.is_empty() {
        bail!(
            "no machines of `{name}` are recorded: create them first (`clouder kubeadm create {name}`)"
        );
    }
    let unreachable: Vec<String> = found
        .iter()
        .filter(|m| address == AddressKind::Public && m.public_ip.is_empty())
        .map(|m| format!("{}-{}", m.pool, m.index))
        .collect();
    if !unreachable.is_empty() {
        bail!(Usage(format!(
            "{} ha{} no public address: run from inside the network with --address private",
            unreachable.join(", "),
            if unreachable.len() == 1 { "s" } else { "ve" }
        )));
    }
    let user = flags
        .and_then(|f| f.admin_user.clone())
        .unwrap_or_else(|| cluster.spec.admin_user.clone());
    let provenance = cluster.spec.provider.as_str().to_string();
    let targets: Vec<Target> = found
        .iter()
        .map(|m| {
            let at = match address {
                AddressKind::Public => &m.public_ip,
                AddressKind::Private => &m.private_ip,
            };
            let control_plane = m.pool == CONTROL_PLANE_POOL;
            Target {
                host: Host {
                    address: at.clone(),
                    port: 22,
                    user: user.clone(),
                },
                spec: HostSpec {
                    address: at.clone(),
                    port: 22,
                    user: Some(user.clone()),
                    role: if control_plane {
                        Role::ControlPlane
                    } else {
                        Role::Worker
                    },
                    pool: (!control_plane).then(|| m.pool.clone()),
                    provenance: Some(provenance.clone()),
                    owner: None,
                },
            }
        })
        .collect();
    let control_planes: Vec<&Machine> = found
        .iter()
        .filter(|m| m.pool == CONTROL_PLANE_POOL)
        .collect();
    let first = targets
        .iter()
        .find(|t| t.spec.role == Role::ControlPlane)
        .ok_or_else(|| anyhow!("no control-plane machine of `{name}` is recorded"))?;
    let endpoint_host = load_balancer(&resources).unwrap_or_else(|| first.host.address.clone());
    let mut cert_sans = vec![endpoint_host.clone()];
    for m in control_planes {
        for ip in [&m.public_ip, &m.private_ip] {
            if !ip.is_empty() && !cert_sans.contains(ip) {
                cert_sans.push(ip.clone());
            }
        }
    }
    Ok(Formation {
        endpoint: format!("{endpoint_host}:{API_PORT}"),
        cert_sans,
        targets,
    })
}

/// Pins each AWS machine's host key from its console log before anyone connects; returns how
/// many were pinned so. Machines whose log has no keys yet are trusted on first contact.
async fn pin_from_console(
    home: &Home,
    store: &dyn StateStore,
    cluster: &Cluster,
    record: &ClusterRecord,
    formation: &Formation,
) -> Result<usize> {
    if cluster.spec.provider != Provider::Aws {
        return Ok(0);
    }
    let ctx = context(home, store, record.context.as_deref())?;
    let Cloud::Aws(aws) = connect_cloud(Provider::Aws, record.region.clone(), ctx.as_ref()).await?
    else {
        unreachable!("connected to AWS")
    };
    let resources = store.resources(cluster.name())?;
    let by_address = machines(&resources);
    let logs = futures::future::join_all(formation.targets.iter().map(|t| {
        let aws = aws.clone();
        let machine = by_address
            .iter()
            .find(|m| m.public_ip == t.host.address || m.private_ip == t.host.address)
            .cloned();
        async move {
            let machine = machine?;
            let log = clouder_aws::resources::instance::console_output(&aws, &machine.cloud_id)
                .await
                .map_err(|e| tracing::warn!(%e, machine = machine.cloud_id, "no console output"))
                .ok()?;
            Some((t.host.address.clone(), log))
        }
    }))
    .await;
    let mut pinned = 0;
    for (address, log) in logs.into_iter().flatten() {
        match clouder_node::host_keys::expected_fingerprint(&log) {
            Some(fingerprint) => {
                store.pin_host_key(cluster.name(), &address, &fingerprint)?;
                pinned += 1;
            }
            None => tracing::info!(
                address,
                "the console announces no host key yet: trusting the key on first contact"
            ),
        }
    }
    Ok(pinned)
}

/// `--k8s-version` and `--node-label` change the recorded spec: later runs keep them.
fn apply_flags(cluster: &mut Cluster, args: &SetupArgs) -> Result<()> {
    if let Some(version) = &args.k8s_version {
        let bare = version.trim_start_matches('v');
        let parts: Vec<&str> = bare.split('.').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.parse::<u32>().is_err()) {
            bail!(Usage(format!(
                "--k8s-version `{version}`: expected MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 1.32 or 1.32.3"
            )));
        }
        cluster.spec.kubernetes.version = bare.to_string();
    }
    for label in &args.node_label {
        let (key, value) = label
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| Usage(format!("--node-label `{label}`: expected KEY=VALUE")))?;
        for pool in &mut cluster.spec.node_pools {
            pool.labels.insert(key.to_string(), value.to_string());
        }
    }
    Ok(())
}

pub async fn setup(home: &Home, g: &Global, args: SetupArgs) -> Result<()> {
    let name = match &args.terraform_output {
        Some(file) => super::terraform::record(home, args.name.as_deref(), file)?.cluster_name,
        None => resolve_name(home, args.name.clone())?,
    };
    let store = home.store()?;
    let Some(record) = store.cluster(&name)? else {
        bail!(Usage(format!(
            "no cluster named `{name}` in {}",
            home.root.display()
        )));
    };
    if record.status == super::kube::ADOPTED {
        bail!(Usage(format!(
            "`{name}` was adopted: its nodes were set up elsewhere, so clouder does not bootstrap them"
        )));
    }
    let mut cluster: Cluster =
        serde_json::from_value(record.spec.clone()).context("the recorded spec does not parse")?;
    apply_flags(&mut cluster, &args)?;
    super::bootstrap::refuse_version_change(Some(&record), &cluster)?;
    let address = args.address.unwrap_or(cluster.spec.ssh.address);
    let formation = match cluster.spec.provider {
        Provider::Ssh => super::bootstrap::ssh_formation(&cluster, Some(&args.ssh)),
        _ => cloud_formation(&store, &cluster, Some(&args.ssh), address)?,
    };
    if args.dry_run {
        return dry_run(g, &cluster, &formation);
    }
    let mut fleet = connect_fleet(home, g, &cluster, Some(&args.ssh))?;
    fleet.parallelism = args.concurrency.max(1);
    let pinned = pin_from_console(home, &store, &cluster, &record, &formation).await?;
    if pinned > 0 && !g.quiet {
        eprintln!(
            "Host keys of {pinned} of {} machine(s) pinned from their console log",
            formation.targets.len()
        );
    }
    let holder = lock_holder(std::process::id());
    take_lock(&store, &name, &holder)?;
    let done = bootstrap(home, &cluster, &formation, &fleet).await;
    let status = match (cluster.spec.provider, done.failed()) {
        (Provider::Ssh, 0) => "ready".to_string(),
        (Provider::Ssh, _) => "failed".to_string(),
        _ => record.status.clone(),
    };
    store.put_cluster(&ClusterRecord {
        spec: serde_json::to_value(&cluster).expect("spec serializes"),
        status,
        setup_complete: record.setup_complete || done.complete(),
        updated_at: now(),
        ..record
    })?;
    store.unlock(&name, &holder)?;
    finish(home, g, &cluster, done).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(id: &str, cloud_id: &str, attrs: serde_json::Value) -> ResourceRecord {
        ResourceRecord {
            id: id.into(),
            kind: "aws_instance".into(),
            cloud_id: cloud_id.into(),
            attrs,
            updated_at: 0,
        }
    }

    #[test]
    fn machines_come_control_planes_first_and_the_load_balancer_is_the_endpoint() {
        let resources = vec![
            resource(
                "instance/workers-1",
                "i-3",
                json!({"pool": "workers", "private_ip": "10.0.0.6", "public_ip": "3.3.3.3"}),
            ),
            resource(
                "instance/gpu-0",
                "i-4",
                json!({"pool": "gpu", "private_ip": "10.0.0.7", "public_ip": ""}),
            ),
            resource(
                "instance/control-plane-0",
                "i-1",
                json!({"pool": "control-plane", "private_ip": "10.0.0.4", "public_ip": "1.1.1.1"}),
            ),
            resource(
                "api-load-balancer",
                "arn",
                json!({"dns_name": "c-api-123.elb.amazonaws.com"}),
            ),
            resource("vpc", "vpc-1", json!({"cidr": "10.0.0.0/16"})),
        ];
        let found = machines(&resources);
        let order: Vec<(&str, u32)> = found.iter().map(|m| (m.pool.as_str(), m.index)).collect();
        assert_eq!(order, [("control-plane", 0), ("gpu", 0), ("workers", 1)]);
        assert_eq!(
            load_balancer(&resources).as_deref(),
            Some("c-api-123.elb.amazonaws.com")
        );
        let azure = vec![resource(
            "api-public-ip",
            "/subscriptions/s/…/c-lb-ip",
            json!({"ip_address": "20.1.2.3"}),
        )];
        assert_eq!(load_balancer(&azure).as_deref(), Some("20.1.2.3"));
    }

    #[test]
    fn flags_change_the_version_and_every_pool_labels() {
        let mut cluster = clouder_spec::parse(
            "c.yaml",
            "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  provider: aws\n  region: us-east-1\n  adminCidrs: [203.0.113.0/24]\n  nodePools: [{name: workers, count: 1}, {name: gpu, count: 1, labels: {gpu: 'yes'}}]\n",
        )
        .unwrap();
        let args = |version: Option<&str>, labels: &[&str]| SetupArgs {
            name: None,
            ssh: SshFlags {
                admin_user: None,
                key: None,
            },
            k8s_version: version.map(String::from),
            node_label: labels.iter().map(|l| l.to_string()).collect(),
            address: None,
            terraform_output: None,
            dry_run: false,
            concurrency: 30,
        };
        apply_flags(&mut cluster, &args(Some("v1.33.2"), &["team=data"])).unwrap();
        assert_eq!(cluster.spec.kubernetes.version, "1.33.2");
        for pool in &cluster.spec.node_pools {
            assert_eq!(pool.labels["team"], "data", "{}", pool.name);
            assert_eq!(pool.labels["role.datalayer.io/runtime"], "true");
        }
        assert_eq!(cluster.spec.node_pools[1].labels["gpu"], "yes");
        for bad in [args(Some("1.x"), &[]), args(None, &["novalue"])] {
            let e = apply_flags(&mut cluster, &bad).unwrap_err();
            assert!(e.downcast_ref::<Usage>().is_some(), "{e}");
        }
    }
}
