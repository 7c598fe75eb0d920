//! Where checkpoint images are kept. Every backend is content-addressed: [`push`] asks for each
//! blob first and uploads only what the backend does not hold, then writes the manifest last,
//! so a failed push never leaves a manifest naming missing blobs.

mod azure;
mod local;
mod registry;
mod s3;

pub use azure::AzureBlob;
pub use clouder_remote::shared_key::AccountKey;
pub use local::LocalDir;
pub use registry::{Credentials, Registry};
pub use s3::S3;

use crate::image::{Blob, Content, OciImage};
use async_trait::async_trait;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{location} is unreachable: {reason}")]
    Unreachable { location: String, reason: String },
    #[error("{location} refused the credentials: {reason}")]
    Auth { location: String, reason: String },
    #[error("{location}: {operation} failed with {status}: {body}")]
    Status {
        location: String,
        operation: String,
        status: u16,
        body: String,
    },
    #[error("{location}: {operation}: {source}")]
    Io {
        location: String,
        operation: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: image {reference} not found")]
    NotFound { location: String, reference: String },
    #[error("{location}: {what}")]
    Unsupported { location: String, what: String },
}

pub type Result<T> = std::result::Result<T, BackendError>;

/// One place checkpoint images are stored.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Where the images go, e.g. `localhost:5000/checkpoints` or `/var/lib/checkpoints`.
    fn location(&self) -> String;
    async fn has_blob(&self, digest: &str) -> Result<bool>;
    async fn put_blob(&self, blob: &Blob, content: &Content) -> Result<()>;
    async fn put_manifest(&self, tag: &str, manifest: &Blob, json: &bytes::Bytes) -> Result<()>;
    /// Removes the tag's manifest (blobs are left to the backend's garbage collection).
    async fn delete(&self, tag: &str) -> Result<()>;
    /// How a runtime names the stored image (a registry reference) or where it is.
    fn reference(&self, tag: &str, manifest_digest: &str) -> String;

    /// Whether nodes pull the images themselves (a registry). The others' images are read
    /// back through [`Backend::manifest`] and [`Backend::open_blob`] and imported on the node.
    fn pulled_by_nodes(&self) -> bool {
        false
    }

    /// The manifest stored under `tag`.
    async fn manifest(&self, tag: &str) -> Result<bytes::Bytes> {
        Err(self.unsupported(format!("reading manifest {tag} back")))
    }

    /// A stored blob's bytes, streamed.
    async fn open_blob(&self, digest: &str) -> Result<BlobReader> {
        Err(self.unsupported(format!("reading blob {digest} back")))
    }

    #[doc(hidden)]
    fn unsupported(&self, what: String) -> BackendError {
        BackendError::Unsupported {
            location: self.location(),
            what: format!("{what} is not supported: nodes pull from it themselves"),
        }
    }
}

/// A blob's bytes as they come from the backend.
pub type BlobReader = std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>;

/// Bytes per part of a large blob's upload (default 64 MiB).
pub const PART_SIZE_ENV: &str = "CLOUDER_CHECKPOINT_PART_SIZE";

/// Opens the backend a destination names:
/// - `/path` or `oci:/path`: a local OCI image layout;
/// - `s3://BUCKET[/PREFIX]`: S3, with the AWS SDK's usual credentials and `AWS_ENDPOINT_URL`;
/// - `azblob://ACCOUNT/CONTAINER[/PREFIX]`: Azure Blob, key in `AZURE_STORAGE_KEY`, endpoint
///   `AZURE_STORAGE_BLOB_ENDPOINT` (default `https://ACCOUNT.blob.core.windows.net`);
/// - `HOST[:PORT]/REPOSITORY`: an OCI registry, credentials in `CLOUDER_REGISTRY_USERNAME` and
///   `CLOUDER_REGISTRY_PASSWORD` when it asks for them.
pub async fn open(destination: &str) -> Result<Box<dyn Backend>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    // The part size is for tests (and odd networks); the default suits S3 and Azure alike.
    let mut in_parts = Parts::default();
    if let Some(size) = env(PART_SIZE_ENV).and_then(|v| v.parse().ok()) {
        in_parts.size = size;
    }
    if let Some(path) = destination
        .strip_prefix("oci:")
        .or(destination.starts_with('/').then_some(destination))
    {
        return Ok(Box::new(LocalDir::new(path)));
    }
    if destination.starts_with("s3://") {
        return Ok(Box::new(S3::new(destination).await?.with_parts(in_parts)));
    }
    if let Some(rest) = destination.strip_prefix("azblob://") {
        let bad = |reason: &str| BackendError::Unreachable {
            location: destination.to_string(),
            reason: reason.to_string(),
        };
        let mut parts = rest.splitn(3, '/');
        let (Some(account), Some(container)) = (
            parts.next().filter(|a| !a.is_empty()),
            parts.next().filter(|c| !c.is_empty()),
        ) else {
            return Err(bad(
                "an Azure Blob location is azblob://ACCOUNT/CONTAINER[/PREFIX]",
            ));
        };
        let account =
            clouder_remote::shared_key::BlobAccount::from_env(account).map_err(|e| bad(&e))?;
        let backend = AzureBlob::in_account(account, container, parts.next().unwrap_or(""))
            .with_parts(in_parts);
        backend.ensure_container().await?;
        return Ok(Box::new(backend));
    }
    let credentials = env("CLOUDER_REGISTRY_USERNAME").map(|username| Credentials {
        username,
        password: env("CLOUDER_REGISTRY_PASSWORD").unwrap_or_default(),
    });
    Ok(Box::new(Registry::new(destination, credentials)?))
}

/// How large blobs are uploaded in parts (S3 multipart upload, Azure Put Block + Put Block
/// List): blobs above `size` bytes go in parts of `size`, `concurrency` at a time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Parts {
    pub size: u64,
    pub concurrency: usize,
}

impl Default for Parts {
    /// 64 MiB parts, four at a time: a 10 GiB image is 160 parts (S3 allows 10,000; Azure
    /// 50,000 blocks), and at most 256 MiB is in flight.
    fn default() -> Self {
        Parts {
            size: 64 << 20,
            concurrency: 4,
        }
    }
}

impl Parts {
    /// Pure: (number from 1, offset, length) of each part of `total` bytes.
    pub fn split(&self, total: u64) -> Vec<(i32, u64, u64)> {
        let size = self.size.max(1);
        (0..total.div_ceil(size))
            .map(|i| {
                let offset = i * size;
                (i as i32 + 1, offset, size.min(total - offset))
            })
            .collect()
    }
}

/// What [`push`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PushReport {
    pub reference: String,
    pub manifest_digest: String,
    /// Digests uploaded, and those the backend already held.
    pub uploaded: Vec<String>,
    pub skipped: Vec<String>,
    pub bytes_uploaded: u64,
}

/// Stores `image` under `tag`: blobs the backend lacks, then the manifest.
pub async fn push(backend: &dyn Backend, image: &OciImage, tag: &str) -> Result<PushReport> {
    let mut report = PushReport {
        reference: backend.reference(tag, &image.manifest.digest),
        manifest_digest: image.manifest.digest.clone(),
        ..Default::default()
    };
    for (blob, content) in &image.blobs {
        if backend.has_blob(&blob.digest).await? {
            report.skipped.push(blob.digest.clone());
        } else {
            backend.put_blob(blob, content).await?;
            report.bytes_uploaded += blob.size;
            report.uploaded.push(blob.digest.clone());
        }
    }
    backend
        .put_manifest(tag, &image.manifest, &image.manifest_json)
        .await?;
    Ok(report)
}

/// An error with its causes, e.g. "error sending request: connection refused".
pub(crate) use clouder_remote::error_chain;

/// A blob's bytes as a request body, streamed from disk for the archive.
async fn body(content: &Content) -> std::io::Result<reqwest::Body> {
    Ok(match content {
        Content::Bytes(bytes) => reqwest::Body::from(bytes.clone()),
        Content::File(path) => {
            let file = tokio::fs::File::open(path).await?;
            reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20))
        }
    })
}
