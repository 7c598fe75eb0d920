//! Connects a spec to its cloud: credentials via the context, the resource graph, the inventory.

use crate::Usage;
use anyhow::{Context as _, Result};
use clouder_aws::{AwsCloud, AwsInventory, ConnectOptions, Scope};
use clouder_engine::{Graph, Inventory, calls::Calls};
use clouder_spec::{Cluster, Provider};
use clouder_state::Context;
use std::sync::Arc;

pub struct Target {
    pub graph: Graph,
    pub inventory: Box<dyn Inventory>,
    pub cloud: Arc<AwsCloud>,
}

impl Target {
    pub fn calls(&self) -> Calls {
        self.cloud.calls()
    }
}

/// Connects to the cloud named by `cluster`, with the context's references.
pub async fn connect_cloud(
    provider: Provider,
    region: Option<String>,
    context: Option<&Context>,
) -> Result<Arc<AwsCloud>> {
    match provider {
        Provider::Aws => {
            let options = ConnectOptions {
                region: region.or_else(|| context.and_then(|c| c.region.clone())),
                profile: context.and_then(|c| c.profile.clone()),
            };
            Ok(AwsCloud::connect(&options).await?)
        }
        other => Err(Usage(format!(
            "provider `{}` is not available in this build yet (aws is); see `clouder kubeadm create --help`",
            other.as_str()
        ))
        .into()),
    }
}

/// The cluster's graph on its cloud. `need_key`: creating machines needs the SSH public key;
/// observing and deleting them does not.
pub async fn connect(
    cluster: &Cluster,
    context: Option<&Context>,
    need_key: bool,
) -> Result<Target> {
    let cloud = connect_cloud(cluster.spec.provider, cluster.spec.region.clone(), context).await?;
    let public_key = if need_key {
        public_key(cluster)?
    } else {
        String::new()
    };
    let scope = Scope::new(cloud.clone(), cluster.name());
    let graph = clouder_aws::graph(scope.clone(), cluster, &public_key)?;
    let inventory = Box::new(AwsInventory::new(scope));
    Ok(Target {
        graph,
        inventory,
        cloud,
    })
}

/// The cluster's graph without a cloud connection (no credentials needed): for rendering,
/// never for calls. The key is optional: without one, the rendering leaves it to the user.
pub fn offline(cluster: &Cluster, context: Option<&Context>) -> Result<(Arc<Scope>, Graph)> {
    if cluster.spec.provider != Provider::Aws {
        return Err(Usage(format!(
            "provider `{}` is not available in this build yet (aws is)",
            cluster.spec.provider.as_str()
        ))
        .into());
    }
    let region = cluster
        .spec
        .region
        .clone()
        .or_else(|| context.and_then(|c| c.region.clone()))
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .ok_or_else(|| Usage(clouder_aws::ConnectError::NoRegion.to_string()))?;
    let key = public_key(cluster).unwrap_or_default();
    let scope = Scope::new(AwsCloud::offline(&region), cluster.name());
    let graph = clouder_aws::graph(scope.clone(), cluster, &key)?;
    Ok((scope, graph))
}

/// The spec's public key, or the user's usual one.
fn public_key(cluster: &Cluster) -> Result<String> {
    let candidates: Vec<String> = match &cluster.spec.ssh.public_key_path {
        Some(path) => vec![path.clone()],
        None => vec!["~/.ssh/id_ed25519.pub".into(), "~/.ssh/id_rsa.pub".into()],
    };
    for candidate in &candidates {
        let path = crate::home::expand(candidate);
        if path.exists() {
            let key = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            if !key.starts_with("ssh-") && !key.starts_with("ecdsa-") {
                return Err(
                    Usage(format!("{} is not an OpenSSH public key", path.display())).into(),
                );
            }
            return Ok(key.trim().to_string());
        }
    }
    Err(Usage(format!(
        "no SSH public key found (looked at {}); create one with `ssh-keygen -t ed25519` or pass --ssh-public-key PATH",
        candidates.join(", ")
    ))
    .into())
}
