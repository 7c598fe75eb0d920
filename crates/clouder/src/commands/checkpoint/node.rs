//! The node a pod runs on, reached the way clouder reaches it for every node operation: over SSH
//! at the address its state records (machines from `create`, `provider: ssh` hosts, `byon`
//! hosts), with the host key pinned. The kubelet writes the checkpoint archive there; it is
//! streamed here into a private temporary file and deleted on the node, since it holds the
//! process's memory.

use super::super::bootstrap::{connect_fleet, ssh_formation};
use super::super::{byon, kube, setup};
use crate::Usage;
use crate::cli::{Global, SshFlags};
use crate::home::Home;
use anyhow::{Context as _, Result, anyhow, bail};
use clouder_node::shell::quote;
use clouder_node::{Host, Session};
use clouder_spec::{AddressKind, Cluster, Provider};
use clouder_state::StateStore;
use k8s_openapi::api::core::v1::Node;

/// A Node of the cluster and how clouder logs in to it.
pub struct Reached {
    pub node: String,
    pub cluster: Cluster,
    pub host: Host,
    purpose: Purpose,
}

/// Why clouder logs in to the node, for what its errors say cannot be done.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// Fetching the kubelet's checkpoint archive.
    Fetch,
    /// Importing a checkpoint image into the node's containerd.
    Import,
}

impl Purpose {
    fn consequence(self) -> &'static str {
        match self {
            Purpose::Fetch => {
                "the kubelet's checkpoint archive cannot be fetched from it; copy the archive from the node and pass --archive"
            }
            Purpose::Import => {
                "the checkpoint image cannot be imported on it; store checkpoints in a registry the nodes pull from (--to HOST[:PORT]/REPO)"
            }
        }
    }

    fn unreachable(self) -> &'static str {
        match self {
            Purpose::Fetch => "so no checkpoint was taken",
            Purpose::Import => "so the checkpoint image cannot be imported on it",
        }
    }
}

/// A host clouder knows: the addresses it has (private and public) and how to log in.
struct Known {
    node: Option<String>,
    addresses: Vec<String>,
    host: Host,
}

/// Pure: the known host that is this Node, by name (BYON hosts are recorded by Node name)
/// or by one of the Node's addresses.
fn pick(known: Vec<Known>, name: &str, addresses: &[String]) -> Option<Host> {
    known
        .into_iter()
        .find(|k| {
            k.node.as_deref() == Some(name) || k.addresses.iter().any(|a| addresses.contains(a))
        })
        .map(|k| k.host)
}

/// The hosts of `cluster` clouder has SSH access to.
fn known(store: &dyn StateStore, cluster: &Cluster, flags: &SshFlags) -> Result<Vec<Known>> {
    let name = cluster.name();
    let mut known: Vec<Known> = byon::joined(store, name)?
        .into_iter()
        .map(|j| Known {
            node: Some(j.node),
            addresses: vec![j.address.clone()],
            host: Host {
                address: j.address,
                port: j.port,
                user: j.user,
            },
        })
        .collect();
    if cluster.spec.provider == Provider::Ssh {
        known.extend(
            ssh_formation(cluster, Some(flags))
                .targets
                .into_iter()
                .map(|t| Known {
                    node: None,
                    addresses: vec![t.host.address.clone()],
                    host: t.host,
                }),
        );
    } else if !store.resources(name)?.is_empty() {
        // Nodes report their private address; clouder may log in at the public one.
        let private = setup::cloud_formation(store, cluster, Some(flags), AddressKind::Private)?;
        let reach = match cluster.spec.ssh.address {
            AddressKind::Private => private.clone(),
            AddressKind::Public => {
                setup::cloud_formation(store, cluster, Some(flags), AddressKind::Public)?
            }
        };
        known.extend(
            private
                .targets
                .into_iter()
                .zip(reach.targets)
                .map(|(p, r)| Known {
                    node: None,
                    addresses: vec![p.host.address, r.host.address.clone()],
                    host: r.host,
                }),
        );
    }
    Ok(known)
}

/// How clouder logs in to `node`, or why it cannot.
pub fn reach(
    home: &Home,
    cluster: &str,
    node: &Node,
    flags: &SshFlags,
    purpose: Purpose,
) -> Result<Reached> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let addresses: Vec<String> = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .map(|all| all.iter().map(|a| a.address.clone()).collect())
        .unwrap_or_default();
    let unknown = |why: String| {
        Usage(format!(
            "node {name} of cluster {cluster}: {why}, so {}",
            purpose.consequence()
        ))
    };
    let store = home.store()?;
    let record = store
        .cluster(cluster)?
        .filter(|r| r.status != kube::ADOPTED)
        .ok_or_else(|| unknown("the cluster is not one clouder created or set up".into()))?;
    let spec: Cluster =
        serde_json::from_value(record.spec).context("the recorded spec does not parse")?;
    let host = pick(known(&store, &spec, flags)?, &name, &addresses).ok_or_else(|| {
        unknown(format!(
            "no host recorded for the cluster has its name or addresses ({})",
            addresses.join(", ")
        ))
    })?;
    Ok(Reached {
        node: name,
        cluster: spec,
        host,
        purpose,
    })
}

impl Reached {
    fn label(&self) -> String {
        format!("node {} ({})", self.node, self.host.label())
    }

    /// Logs in, before anything is written on the node that would then be left there.
    pub async fn connect(&self, home: &Home, g: &Global, flags: &SshFlags) -> Result<Session> {
        let fleet = connect_fleet(home, g, &self.cluster, Some(flags))?;
        fleet.connect(&self.host).await.map_err(|e| {
            anyhow!(
                "{} is unreachable over SSH, {}: {e}",
                self.label(),
                self.purpose.unreachable()
            )
        })
    }

    /// Streams the file at `path` on the node into a private (0600) temporary file here,
    /// then deletes it on the node.
    pub async fn fetch(&self, session: &Session, path: &str) -> Result<tempfile::NamedTempFile> {
        let label = self.label();
        let local = tempfile::Builder::new()
            .prefix("clouder-checkpoint-")
            .suffix(".tar")
            .tempfile()
            .context("creating a temporary file for the checkpoint archive")?;
        let mut file = tokio::fs::File::from_std(local.reopen()?);
        let copied = session.download(path, &mut file).await?;
        if !copied.ok() {
            bail!(
                "{label}: cannot read the checkpoint archive {path}: {}",
                copied.stderr.trim()
            );
        }
        match session
            .run(&format!("rm -f -- {}", quote(path)), None)
            .await
        {
            Ok(out) if out.ok() => {}
            Ok(out) => {
                tracing::warn!(%label, path, stderr = out.stderr.trim(), "archive not deleted")
            }
            Err(e) => tracing::warn!(%label, path, %e, "archive not deleted"),
        }
        Ok(local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(node: Option<&str>, addresses: &[&str], login: &str) -> Known {
        Known {
            node: node.map(str::to_string),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            host: Host::new(login, "root"),
        }
    }

    #[test]
    fn a_node_is_the_host_with_its_name_or_one_of_its_addresses() {
        let hosts = || {
            vec![
                known(Some("box-1"), &["192.0.2.7"], "192.0.2.7"),
                known(None, &["10.0.1.5", "203.0.113.5"], "203.0.113.5"),
            ]
        };
        let by_name = pick(hosts(), "box-1", &[]).unwrap();
        assert_eq!(by_name.address, "192.0.2.7");
        let by_private = pick(hosts(), "ip-10-0-1-5", &["10.0.1.5".into()]).unwrap();
        assert_eq!(
            by_private.address, "203.0.113.5",
            "logs in at the public address"
        );
        assert_eq!(pick(hosts(), "other", &["10.9.9.9".into()]), None);
    }
}
