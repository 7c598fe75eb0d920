use crate::terraform::Terraform;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::RwLock;

/// What a provider saw of one object: its cloud id and the attributes its dependents need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub cloud_id: String,
    #[serde(default)]
    pub attrs: serde_json::Map<String, serde_json::Value>,
}

impl Observed {
    pub fn new(cloud_id: impl Into<String>) -> Self {
        Observed {
            cloud_id: cloud_id.into(),
            attrs: Default::default(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.attrs.insert(key.to_string(), value.into());
        self
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).and_then(|v| v.as_str())
    }
}

/// The observations of this run, by resource id: how a resource reads its dependencies' ids.
#[derive(Debug, Default)]
pub struct Outputs(RwLock<HashMap<String, Observed>>);

impl Outputs {
    pub fn set(&self, id: &str, observed: Observed) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), observed);
    }

    /// The observation of dependency `id`.
    ///
    /// # Errors
    /// When `id` has not been found or created yet: a bug in the declared dependencies.
    pub fn get(&self, id: &str) -> Result<Observed, Error> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| {
                Error::permanent(format!(
                    "dependency {id} is not available (missing depends_on?)"
                ))
            })
    }

    /// The cloud id of dependency `id`.
    pub fn id_of(&self, id: &str) -> Result<String, Error> {
        self.get(id).map(|o| o.cloud_id)
    }
}

/// A failed cloud operation. `transient` failures (throttling, 5xx, eventual consistency) are
/// retried by the engine's one retry policy; the rest fail the resource at once.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub message: String,
    pub transient: bool,
}

impl Error {
    pub fn permanent(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            transient: false,
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            transient: true,
        }
    }
}

/// One desired object.
///
/// `find` must observe the world by tags or unique names only — never by dependency outputs —
/// so that a whole plan's finds run at once and a resumed run rediscovers what a killed one made.
#[async_trait]
pub trait Resource: Send + Sync {
    /// Unique in the graph and stable across runs, e.g. `vpc` or `instance/workers-2`; providers
    /// also write it into a tag so `find` can recognise the object.
    fn id(&self) -> &str;
    /// Provider-qualified kind, e.g. `aws_vpc` (also the Terraform resource type).
    fn kind(&self) -> &'static str;
    fn depends_on(&self) -> Vec<String> {
        Vec::new()
    }
    async fn find(&self) -> Result<Option<Observed>, Error>;
    /// How the found object differs from desired; empty means no-op.
    fn changes(&self, _found: &Observed) -> Vec<String> {
        Vec::new()
    }
    async fn create(&self, deps: &Outputs) -> Result<Observed, Error>;
    /// Converges drift listed by `changes`.
    async fn update(&self, _deps: &Outputs, found: &Observed) -> Result<Observed, Error> {
        Ok(found.clone())
    }
    async fn delete(&self, found: &Observed) -> Result<(), Error>;
    /// This resource as Terraform blocks (see [`crate::terraform`]); `None` when it has no
    /// rendering, which makes an export fail rather than silently leave it out.
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        Ok(None)
    }
    /// What this resource is billed for while it exists (for cost estimates); free by default.
    fn billing(&self) -> Vec<Billable> {
        Vec::new()
    }
}

/// One thing a cloud bills by the hour or by the GB-month; priced by provider and region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "meter", rename_all = "snake_case")]
pub enum Billable {
    /// A machine of `size` (instance type / VM size), per hour.
    Machine { size: String },
    /// A disk of `class` (`gp3`, `Premium_LRS`) and size, per GB-month or by tier.
    Disk { class: String, gb: u32 },
    /// A load balancer of `class` (`network`, `standard`), per hour; traffic units not included.
    LoadBalancer { class: String },
    /// One public IPv4 address, per hour.
    PublicIpv4,
}

/// An object that carries the cluster's tags, as a provider's sweep lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tagged {
    pub kind: String,
    /// The graph id recorded in its tag, when it has one.
    pub resource_id: Option<String>,
    pub cloud_id: String,
    /// Deletion rank: lower ranks are deleted first (instances before subnets before VPCs).
    pub rank: u32,
}

/// Everything a provider can list by the cluster's tags, and delete without a spec.
#[async_trait]
pub trait Inventory: Send + Sync {
    /// May answer from what this inventory listed before, until [`Inventory::refresh`].
    async fn tagged(&self) -> Result<Vec<Tagged>, Error>;
    /// Drops anything remembered, so the next `tagged` observes the cloud anew.
    fn refresh(&self) {}
    async fn delete(&self, object: &Tagged) -> Result<(), Error>;
}
