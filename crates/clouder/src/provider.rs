//! Connects a spec to its cloud: credentials via the context, the resource graph, the inventory.

use crate::Usage;
use anyhow::{Context as _, Result};
use clouder_aws::AwsCloud;
use clouder_azure::AzureCloud;
use clouder_engine::{Graph, Inventory, calls::Calls};
use clouder_spec::{Cluster, Provider};
use clouder_state::Context;
use std::sync::Arc;

/// A connection to one cloud account.
#[derive(Clone)]
pub enum Cloud {
    Aws(Arc<AwsCloud>),
    Azure(Arc<AzureCloud>),
}

impl Cloud {
    pub fn calls(&self) -> Calls {
        match self {
            Cloud::Aws(c) => c.calls(),
            Cloud::Azure(c) => c.calls(),
        }
    }

    /// The AWS region or Azure location.
    /// `aws` or `azure`, as price tables name the clouds.
    pub fn name(&self) -> &'static str {
        match self {
            Cloud::Aws(_) => "aws",
            Cloud::Azure(_) => "azure",
        }
    }

    pub fn region(&self) -> String {
        match self {
            Cloud::Aws(c) => c.region.clone(),
            Cloud::Azure(c) => c.location.clone(),
        }
    }

    /// The AWS account or Azure subscription id.
    pub async fn account_id(&self) -> Result<String> {
        match self {
            Cloud::Aws(c) => Ok(c.account_id().await?),
            Cloud::Azure(c) => Ok(c.subscription.clone()),
        }
    }
}

pub struct Target {
    pub graph: Graph,
    pub inventory: Box<dyn Inventory>,
    pub cloud: Cloud,
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
) -> Result<Cloud> {
    let region = region.or_else(|| context.and_then(|c| c.region.clone()));
    match provider {
        Provider::Aws => {
            let options = clouder_aws::ConnectOptions {
                region,
                profile: context.and_then(|c| c.profile.clone()),
            };
            Ok(Cloud::Aws(AwsCloud::connect(&options).await?))
        }
        Provider::Azure => {
            let options = clouder_azure::ConnectOptions {
                subscription: context.and_then(|c| c.account.clone()),
                tenant: context.and_then(|c| c.tenant.clone()),
                location: region,
            };
            Ok(Cloud::Azure(AzureCloud::connect(&options).await?))
        }
        Provider::Ssh => Err(Usage(
            "provider `ssh` has no cloud to connect to; its hosts come from the spec".into(),
        )
        .into()),
    }
}

/// What a cluster's teardown may take beyond its tagged objects.
#[derive(Debug, Clone, Copy, Default)]
pub struct Teardown {
    /// Azure: delete the resource group even when clouder did not create it.
    pub delete_rg: bool,
}

/// The cluster's graph on its cloud. `need_key`: creating machines needs the SSH public key;
/// observing and deleting them does not.
pub async fn connect(
    cluster: &Cluster,
    context: Option<&Context>,
    need_key: bool,
) -> Result<Target> {
    connect_with(cluster, context, need_key, Teardown::default()).await
}

pub async fn connect_with(
    cluster: &Cluster,
    context: Option<&Context>,
    need_key: bool,
    teardown: Teardown,
) -> Result<Target> {
    let cloud = connect_cloud(cluster.spec.provider, cluster.spec.region.clone(), context).await?;
    let public_key = if need_key {
        public_key(cluster)?
    } else {
        String::new()
    };
    let (graph, inventory): (Graph, Box<dyn Inventory>) = match &cloud {
        Cloud::Aws(aws) => {
            let scope = clouder_aws::Scope::new(aws.clone(), cluster.name());
            let graph = clouder_aws::graph(scope.clone(), cluster, &public_key)?;
            (graph, Box::new(clouder_aws::AwsInventory::new(scope)))
        }
        Cloud::Azure(azure) => {
            let group = clouder_azure::resource_group_name(cluster);
            let scope = clouder_azure::Scope::new(
                azure.clone(),
                cluster.name(),
                &group,
                teardown.delete_rg,
            );
            let graph = clouder_azure::graph(scope.clone(), cluster, &public_key)?;
            (graph, Box::new(clouder_azure::AzureInventory::new(scope)))
        }
    };
    Ok(Target {
        graph,
        inventory,
        cloud,
    })
}

/// The cluster's graph rendered as a Terraform module, without calling the cloud; with the
/// provider plugin it is written for (`hashicorp/aws 6.0.0`).
pub fn terraform(
    cluster: &Cluster,
    context: Option<&Context>,
) -> Result<(clouder_engine::terraform::Terraform, String)> {
    let region = cluster
        .spec
        .region
        .clone()
        .or_else(|| context.and_then(|c| c.region.clone()));
    let key = public_key(cluster).unwrap_or_default();
    match cluster.spec.provider {
        Provider::Aws => {
            let region = region
                .or_else(|| std::env::var("AWS_REGION").ok())
                .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                .ok_or_else(|| Usage(clouder_aws::ConnectError::NoRegion.to_string()))?;
            let scope = clouder_aws::Scope::new(AwsCloud::offline(&region), cluster.name());
            let graph = clouder_aws::graph(scope.clone(), cluster, &key)?;
            let doc = clouder_aws::terraform::document(&scope, cluster, &graph)?;
            let plugin = format!(
                "hashicorp/aws {}",
                clouder_aws::terraform::AWS_PROVIDER_VERSION
            );
            Ok((doc, plugin))
        }
        Provider::Azure => {
            let location =
                region.ok_or_else(|| Usage(clouder_azure::ConnectError::NoLocation.to_string()))?;
            // Unknown here, the subscription becomes a variable without a default.
            let subscription = context
                .and_then(|c| c.account.clone())
                .or_else(|| std::env::var("AZURE_SUBSCRIPTION_ID").ok())
                .unwrap_or_default();
            let scope = clouder_azure::Scope::new(
                AzureCloud::offline(&subscription, &location),
                cluster.name(),
                &clouder_azure::resource_group_name(cluster),
                false,
            );
            let graph = clouder_azure::graph(scope.clone(), cluster, &key)?;
            let doc = clouder_azure::terraform::document(&scope, cluster, &graph, &key)?;
            let plugin = format!(
                "hashicorp/azurerm {}",
                clouder_azure::terraform::AZURERM_PROVIDER_VERSION
            );
            Ok((doc, plugin))
        }
        Provider::Ssh => Err(Usage(
            "provider `ssh` has no cloud infrastructure to export: its hosts are yours".into(),
        )
        .into()),
    }
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
