//! The connection to one subscription and location, and what every resource shares: the ARM
//! client with call counting, the cluster's resource group and tags, a per-plan cache of listings.

use crate::arm::Arm;
use crate::auth::Credential;
use clouder_engine::calls::{CallStats, Calls};
use clouder_engine::{Error, Observed};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

pub const CLUSTER_TAG: &str = "clouder.io/cluster";
pub const MANAGED_TAG: &str = "clouder.io/managed";
pub const RESOURCE_TAG: &str = "clouder.io/resource";
pub const ENDPOINT_ENV: &str = "CLOUDER_AZURE_ARM_ENDPOINT";
const PUBLIC_CLOUD: &str = "https://management.azure.com";

/// One ARM resource type: its path, pinned api-version, and the Terraform kind clouder reports.
#[derive(Debug, PartialEq, Eq)]
pub struct ArmType {
    /// `Microsoft.Network/virtualNetworks`.
    pub path: &'static str,
    pub api_version: &'static str,
    pub kind: &'static str,
    /// Attributes dependents read, as (name, JSON pointer into the body).
    pub exports: &'static [(&'static str, &'static str)],
}

const NETWORK: &str = "2024-05-01";

pub const RESOURCE_GROUP: ArmType = ArmType {
    path: "Microsoft.Resources/resourceGroups",
    api_version: "2021-04-01",
    kind: "azurerm_resource_group",
    exports: &[],
};
pub const VIRTUAL_NETWORK: ArmType = ArmType {
    path: "Microsoft.Network/virtualNetworks",
    api_version: NETWORK,
    kind: "azurerm_virtual_network",
    exports: &[],
};
pub const SUBNET: ArmType = ArmType {
    path: "Microsoft.Network/virtualNetworks/subnets",
    api_version: NETWORK,
    kind: "azurerm_subnet",
    exports: &[],
};
pub const SECURITY_GROUP: ArmType = ArmType {
    path: "Microsoft.Network/networkSecurityGroups",
    api_version: NETWORK,
    kind: "azurerm_network_security_group",
    exports: &[],
};
pub const PUBLIC_IP: ArmType = ArmType {
    path: "Microsoft.Network/publicIPAddresses",
    api_version: NETWORK,
    kind: "azurerm_public_ip",
    exports: &[("ip_address", "/properties/ipAddress")],
};
pub const NETWORK_INTERFACE: ArmType = ArmType {
    path: "Microsoft.Network/networkInterfaces",
    api_version: NETWORK,
    kind: "azurerm_network_interface",
    exports: &[(
        "private_ip",
        "/properties/ipConfigurations/0/properties/privateIPAddress",
    )],
};
pub const LOAD_BALANCER: ArmType = ArmType {
    path: "Microsoft.Network/loadBalancers",
    api_version: NETWORK,
    kind: "azurerm_lb",
    exports: &[],
};
pub const VIRTUAL_MACHINE: ArmType = ArmType {
    path: "Microsoft.Compute/virtualMachines",
    api_version: "2024-07-01",
    kind: "azurerm_linux_virtual_machine",
    exports: &[("size", "/properties/hardwareProfile/vmSize")],
};
pub const IDENTITY: ArmType = ArmType {
    path: "Microsoft.ManagedIdentity/userAssignedIdentities",
    api_version: "2023-01-31",
    kind: "azurerm_user_assigned_identity",
    exports: &[
        ("principal_id", "/properties/principalId"),
        ("client_id", "/properties/clientId"),
        ("tenant_id", "/properties/tenantId"),
    ],
};
pub const ROLE_ASSIGNMENT: ArmType = ArmType {
    path: "Microsoft.Authorization/roleAssignments",
    api_version: "2022-04-01",
    kind: "azurerm_role_assignment",
    exports: &[],
};

pub const TYPES: [&ArmType; 10] = [
    &RESOURCE_GROUP,
    &VIRTUAL_NETWORK,
    &SUBNET,
    &SECURITY_GROUP,
    &PUBLIC_IP,
    &NETWORK_INTERFACE,
    &LOAD_BALANCER,
    &VIRTUAL_MACHINE,
    &IDENTITY,
    &ROLE_ASSIGNMENT,
];

/// The type clouder reports as `kind`.
pub fn type_of(kind: &str) -> Option<&'static ArmType> {
    TYPES.iter().copied().find(|t| t.kind == kind)
}

#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub subscription: Option<String>,
    pub tenant: Option<String>,
    pub location: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "no Azure credentials found ({0}); log in with `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service principal"
    )]
    NoCredentials(String),
    #[error(
        "no Azure subscription: add a context with `clouder ctx add NAME --provider azure --subscription ID`, or set AZURE_SUBSCRIPTION_ID"
    )]
    NoSubscription,
    #[error(
        "no Azure location: pass -r/--region (e.g. eastus, westeurope), set spec.region, or a context location"
    )]
    NoLocation,
}

/// A subscription in one location.
pub struct AzureCloud {
    pub arm: Arm,
    pub subscription: String,
    pub tenant: Option<String>,
    pub location: String,
    stats: Arc<CallStats>,
}

impl std::fmt::Debug for AzureCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AzureCloud({}, {})", self.subscription, self.location)
    }
}

impl AzureCloud {
    /// Resolves subscription, location and credentials, before any call to Resource Manager.
    pub async fn connect(options: &ConnectOptions) -> Result<Arc<Self>, ConnectError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let subscription = options
            .subscription
            .clone()
            .or_else(|| env("AZURE_SUBSCRIPTION_ID"))
            .ok_or(ConnectError::NoSubscription)?;
        let location = options.location.clone().ok_or(ConnectError::NoLocation)?;
        let credential = Credential::discover()
            .await
            .map_err(ConnectError::NoCredentials)?;
        let endpoint = env(ENDPOINT_ENV).unwrap_or_else(|| PUBLIC_CLOUD.into());
        let stats = Arc::new(CallStats::default());
        Ok(Arc::new(AzureCloud {
            arm: Arm::new(&endpoint, credential, stats.clone()),
            subscription,
            tenant: options.tenant.clone().or_else(|| env("AZURE_TENANT_ID")),
            location,
            stats,
        }))
    }

    /// A cloud that is never called: for rendering the graph (Terraform export) without
    /// credentials. `subscription` may be empty when unknown.
    pub fn offline(subscription: &str, location: &str) -> Arc<Self> {
        let stats = Arc::new(CallStats::default());
        Arc::new(AzureCloud {
            arm: Arm::new(
                PUBLIC_CLOUD,
                Credential::Static(String::new()),
                stats.clone(),
            ),
            subscription: subscription.to_string(),
            tenant: None,
            location: location.to_string(),
            stats,
        })
    }

    pub fn calls(&self) -> Calls {
        self.stats.snapshot()
    }
}

/// An object seen in the cloud, with the graph id from its tag (or its well-known name).
#[derive(Debug, Clone)]
pub struct Found {
    pub resource_id: Option<String>,
    pub observed: Observed,
}

/// One cluster's view: its name, resource group, tags, and this plan's listings.
pub struct Scope {
    pub cloud: Arc<AzureCloud>,
    pub cluster: String,
    pub resource_group: String,
    /// Delete the resource group on terminate even when clouder did not create it.
    pub delete_rg: bool,
    cache: Mutex<HashMap<&'static str, Arc<OnceCell<Vec<Found>>>>>,
}

impl Scope {
    pub fn new(
        cloud: Arc<AzureCloud>,
        cluster: &str,
        resource_group: &str,
        delete_rg: bool,
    ) -> Arc<Self> {
        Arc::new(Scope {
            cloud,
            cluster: cluster.to_string(),
            resource_group: resource_group.to_string(),
            delete_rg,
            cache: Mutex::default(),
        })
    }

    /// `/subscriptions/S/resourceGroups/RG`.
    pub fn group_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}",
            self.cloud.subscription, self.resource_group
        )
    }

    /// The id of `name` of a type directly in the group.
    pub fn id(&self, ty: &ArmType, name: &str) -> String {
        format!("{}/providers/{}/{name}", self.group_id(), ty.path)
    }

    /// `NAME-suffix`, the Azure name of an object.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.cluster)
    }

    pub fn tags(&self, resource_id: &str) -> Value {
        json!({ CLUSTER_TAG: self.cluster, MANAGED_TAG: "true", RESOURCE_TAG: resource_id })
    }

    /// Every object of `ty`, listed once until [`Scope::refresh`].
    pub async fn found_all<F, Fut>(
        &self,
        ty: &'static ArmType,
        list: F,
    ) -> Result<Vec<Found>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Found>, Error>>,
    {
        let cell = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(ty.path)
            .or_default()
            .clone();
        Ok(cell.get_or_try_init(list).await?.clone())
    }

    pub fn refresh(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// What clouder keeps of an ARM body: its id, state, and the attributes of its type.
pub fn observe(ty: &ArmType, body: &Value, checked: &[&str]) -> Observed {
    let text = |p: &str| body.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let mut o = Observed::new(text("/id"))
        .with("name", text("/name"))
        .with("state", text("/properties/provisioningState"));
    for (name, pointer) in ty.exports {
        o = o.with(name, text(pointer));
    }
    for pointer in checked {
        o = o.with(pointer, body.pointer(pointer).cloned().unwrap_or_default());
    }
    o
}

pub fn tag<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get("tags")
        .and_then(|t| t.get(key))
        .and_then(Value::as_str)
}
