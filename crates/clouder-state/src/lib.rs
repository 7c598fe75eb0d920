//! Where clouder remembers clusters, the cloud objects it made, its operations and contexts.
//!
//! [`StateStore`] is the seam for remote backends (S3, Azure Blob) that share state between
//! people; [`SqliteStore`] is the embedded default under `CLOUDER_HOME`. State is a cache and a
//! journal, never the source of truth: the engine always observes the cloud. Nothing secret is
//! ever written here — contexts hold references (profile names, regions), not credentials.

mod sqlite;

pub use sqlite::SqliteStore;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("state file: {0}")]
    Io(#[from] std::io::Error),
    #[error("state record is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("this state backend does not keep {0}")]
    Unsupported(&'static str),
    #[error(
        "cluster {cluster} is locked by {holder} (another clouder run?); if that run is gone, retry with --force-unlock"
    )]
    Locked { cluster: String, holder: String },
}

pub type Result<T> = std::result::Result<T, StateError>;

/// A cluster as clouder knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub name: String,
    pub provider: String,
    pub region: Option<String>,
    pub context: Option<String>,
    /// The last applied spec document (JSON), without secrets.
    pub spec: serde_json::Value,
    /// `planned`, `applying`, `ready`, `failed`, `terminating`.
    pub status: String,
    pub setup_complete: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// One cloud object the engine created or found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceRecord {
    /// Graph id, e.g. `aws/instance/workers-0`.
    pub id: String,
    pub kind: String,
    pub cloud_id: String,
    pub attrs: serde_json::Value,
    pub updated_at: i64,
}

/// One step of an operation, appended as it starts and ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub operation: String,
    pub resource: String,
    /// `create`, `update`, `delete`.
    pub action: String,
    /// `started`, `done`, `failed`.
    pub outcome: String,
    pub message: String,
    pub at: i64,
}

/// A named set of cloud account references (never credentials).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub name: String,
    pub provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// AWS account id or Azure subscription id, once seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Azure tenant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// One container checkpoint in the catalogue: what it is of and where its image is stored.
/// Written only once the image is fully stored, so a record always names a complete image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// Unique, also the image's tag, e.g. `default.counter.app.20261125t180812z`.
    pub id: String,
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The backend's location (`localhost:5000/checkpoints`, `s3://bucket/prefix`, a directory).
    pub backend: String,
    /// How a runtime pulls the image (`HOST/REPO@sha256:…`) or where it is.
    pub reference: String,
    pub manifest_digest: String,
    /// The checkpointed container's own image, as `NAME@DIGEST`.
    pub image: String,
    pub size: u64,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Unix seconds.
    pub created_at: i64,
    /// The checkpointed pod as a restore recreates it (`clouder_checkpoint::pod::PodRecord`:
    /// labels, annotations, spec), never with literal env values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_spec: Option<serde_json::Value>,
}

/// A remote container endpoint enrolled as BYOC capacity. Its token is never here: only the
/// token's SHA-256, to tell which token an endpoint was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ByocRecord {
    pub cluster: String,
    pub name: String,
    /// `https://HOST:PORT` (or `http://…` when enrolled with `--insecure`).
    pub endpoint: String,
    /// Plain HTTP: the endpoint's traffic is not protected.
    pub insecure: bool,
    /// The image as given, and pinned as `REGISTRY/REPOSITORY@DIGEST`.
    pub image: String,
    pub image_digest: String,
    /// Hex SHA-256 of the enrollment token.
    pub token_sha256: String,
    /// Capability metadata: cpu, memory, gpu, runtime, classes, labels.
    pub capability: serde_json::Value,
    /// Unix seconds.
    pub enrolled_at: i64,
    pub updated_at: i64,
}

/// The operations every backend offers. Calls are short; async callers may call them directly.
/// Where a state comes from and how far it has moved, to tell copies apart (Terraform's
/// lineage and serial, plus a head, since two copies changed apart can reach the same serial):
/// `lineage` is drawn when the state is created and kept by its copies, `serial` counts its
/// changes, `head` is drawn anew at each change, `synced` is the head it had when last pulled
/// or pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    pub lineage: String,
    pub serial: i64,
    pub head: String,
    pub synced: String,
}

pub trait StateStore: Send + Sync {
    fn put_cluster(&self, cluster: &ClusterRecord) -> Result<()>;
    fn cluster(&self, name: &str) -> Result<Option<ClusterRecord>>;
    fn clusters(&self) -> Result<Vec<ClusterRecord>>;
    /// Forgets the cluster with its resources and journal.
    fn delete_cluster(&self, name: &str) -> Result<()>;

    fn put_resource(&self, cluster: &str, resource: &ResourceRecord) -> Result<()>;
    fn resources(&self, cluster: &str) -> Result<Vec<ResourceRecord>>;
    fn delete_resource(&self, cluster: &str, id: &str) -> Result<()>;

    fn append_journal(&self, cluster: &str, entry: &JournalEntry) -> Result<()>;
    /// The newest `limit` entries, oldest first.
    fn journal(&self, cluster: &str, limit: usize) -> Result<Vec<JournalEntry>>;

    /// Takes the cluster's operation lock for `holder`, or says who holds it.
    fn lock(&self, cluster: &str, holder: &str) -> Result<()>;
    fn unlock(&self, cluster: &str, holder: &str) -> Result<()>;
    /// Breaks a lock left by a run that died.
    fn force_unlock(&self, cluster: &str) -> Result<()>;

    /// The SHA256 fingerprint pinned for a host of the cluster, if any.
    fn host_key(&self, cluster: &str, address: &str) -> Result<Option<String>>;
    fn pin_host_key(&self, cluster: &str, address: &str, fingerprint: &str) -> Result<()>;

    fn put_context(&self, context: &Context) -> Result<()>;
    fn context(&self, name: &str) -> Result<Option<Context>>;
    fn contexts(&self) -> Result<Vec<Context>>;
    fn delete_context(&self, name: &str) -> Result<bool>;

    /// The checkpoint catalogue. Backends that do not keep it say so.
    fn put_checkpoint(&self, _checkpoint: &CheckpointRecord) -> Result<()> {
        Err(StateError::Unsupported("checkpoints"))
    }
    fn checkpoint(&self, _id: &str) -> Result<Option<CheckpointRecord>> {
        Err(StateError::Unsupported("checkpoints"))
    }
    /// A cluster's checkpoints, newest first.
    fn checkpoints(&self, _cluster: &str) -> Result<Vec<CheckpointRecord>> {
        Err(StateError::Unsupported("checkpoints"))
    }
    fn delete_checkpoint(&self, _id: &str) -> Result<bool> {
        Err(StateError::Unsupported("checkpoints"))
    }

    /// Enrolled BYOC endpoints. Backends that do not keep them say so.
    fn put_byoc(&self, _record: &ByocRecord) -> Result<()> {
        Err(StateError::Unsupported("BYOC endpoints"))
    }
    fn byoc(&self, _cluster: &str, _name: &str) -> Result<Option<ByocRecord>> {
        Err(StateError::Unsupported("BYOC endpoints"))
    }
    /// A cluster's endpoints by name.
    fn byocs(&self, _cluster: &str) -> Result<Vec<ByocRecord>> {
        Err(StateError::Unsupported("BYOC endpoints"))
    }
    fn delete_byoc(&self, _cluster: &str, _name: &str) -> Result<bool> {
        Err(StateError::Unsupported("BYOC endpoints"))
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
