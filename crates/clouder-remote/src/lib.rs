//! State shared by a team in an object store. Two primitives, both on conditional writes:
//!
//! - [`cas::update`]: read an object with its ETag, change it, write it back only if the ETag
//!   is still the same (`If-Match`), or only if it is still absent (`If-None-Match: *`);
//!   on a lost race read again and retry. No update is ever lost.
//! - [`lock`]: a lock naming its holder (user, host, pid, command, time) — on S3 an object
//!   created with `If-None-Match: *`, on Azure Blob a lease; a second writer waits up to a
//!   timeout, then fails with the holder.
//!
//! A [`Backend`] is both; [`s3::S3Store`] is S3 (and the moto server), [`azblob::BlobStore`]
//! Azure Blob (and Azurite). [`Location`] parses the URLs users write and connects to them.

pub mod azblob;
pub mod cas;
pub mod location;
pub mod lock;
pub mod s3;
pub mod shared_key;

pub use location::Location;

use async_trait::async_trait;

/// One stored version: its bytes and ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub body: Vec<u8>,
    pub etag: String,
}

/// The condition a write or delete needs to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The object must not exist (`If-None-Match: *`).
    Absent,
    /// The object must still have this ETag (`If-Match`).
    Etag(String),
    /// No condition (for breaking a lock on purpose).
    Any,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The condition did not hold: someone else wrote first.
    #[error("precondition failed: {0} changed since it was read")]
    Conflict(String),
    #[error("{0}")]
    Other(String),
}

/// An object store with conditional writes.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// `None` when the object does not exist.
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;
    /// Writes `body` if `expect` holds; returns the new ETag.
    async fn put(&self, key: &str, body: Vec<u8>, expect: Expect) -> Result<String, StoreError>;
    /// Deletes if `expect` holds (`Absent` is meaningless here and treated as `Any`).
    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError>;
}

/// A store for shared state: conditional writes and a lock.
pub trait Backend: ObjectStore + lock::Locking {}

impl<T: ObjectStore + lock::Locking> Backend for T {}

/// An error with its causes, e.g. "error sending request: connection refused".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}
