//! Azure infrastructure for kubeadm clusters, on a thin Azure Resource Manager REST client.
//!
//! [`arm`] speaks ARM (pinned api-versions, long-running operations, retries, verbatim
//! errors); [`resources`] are the cluster's objects as graph resources, found by the cluster's
//! tags in its resource group; [`AzureInventory`] lists and deletes whatever carries them.
//! `CLOUDER_AZURE_ARM_ENDPOINT` and `CLOUDER_AZURE_TOKEN` point the client at the project's fake
//! ARM server (crates/fake-arm) in tests.

pub mod arm;
pub mod auth;
mod cloud;
mod inventory;
pub mod resources;
pub mod terraform;

pub use auth::TOKEN_ENV;
pub use cloud::{
    AzureCloud, CLUSTER_TAG, ConnectError, ConnectOptions, ENDPOINT_ENV, MANAGED_TAG, RESOURCE_TAG,
    Scope,
};
pub use inventory::AzureInventory;
pub use resources::{graph, resource_group_name};
