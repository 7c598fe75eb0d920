//! AWS infrastructure for kubeadm clusters, on the official AWS SDK for Rust.
//!
//! One file per cloud object under [`resources`], each a [`clouder_engine::Resource`] found by
//! the cluster's tags; [`graph`] assembles them from a spec and [`AwsInventory`] lists and deletes
//! whatever carries the tags; [`terraform`] renders the same graph as Terraform JSON. The endpoint comes from `AWS_ENDPOINT_URL`, so the same code runs
//! against the moto server in tests.

mod cloud;
mod instrument;
mod inventory;
pub mod resources;
pub mod terraform;

pub use cloud::{AwsCloud, ConnectError, ConnectOptions, Scope};
pub use inventory::AwsInventory;
pub use resources::graph;
