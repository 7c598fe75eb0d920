//! The state's lock, naming its holder. Each backend takes it its own way ([`Locking`]): S3 with
//! a lock object created only if absent ([`object`]), Azure Blob with a lease. Waiting for it,
//! and telling a live holder from a gone one, is the same everywhere ([`acquire`]).

use crate::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Who holds a lock; written into the lock object so a waiting writer can say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Unique per acquisition; `state unlock --force ID` names it.
    pub id: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    /// Seconds since the Unix epoch.
    pub since: i64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "lock {} held by {}@{} pid {} running `{}` since {} (unix time)",
            self.id, self.user, self.host, self.pid, self.command, self.since
        )
    }
}

impl Holder {
    /// This process, running `command`.
    pub fn current(command: &str) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Holder {
            // A GUID: Azure takes it as the lease's ID.
            id: uuid::Uuid::new_v4().to_string(),
            user: std::env::var("USER")
                .or_else(|_| std::env::var("USERNAME"))
                .unwrap_or_else(|_| "unknown".into()),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            pid: std::process::id(),
            command: command.to_string(),
            since: now,
        }
    }

    /// True when the holder is a process of this host that no longer runs: a stale lock.
    pub fn is_stale_here(&self) -> bool {
        let here = Holder::current("").host;
        self.host == here && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("state is locked: {holder}{}", if *stale { " — STALE: that process is gone; run `clouder state unlock --force ID`" } else { "" })]
    Held { holder: Holder, stale: bool },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a backend takes, names and gives back the lock at `key`.
#[async_trait]
pub trait Locking: Send + Sync {
    /// Takes the lock for `holder` if it is free; `false` when someone else holds it.
    async fn try_lock(&self, key: &str, holder: &Holder) -> Result<bool, StoreError>;
    /// The current holder, if the lock is taken.
    async fn held_by(&self, key: &str) -> Result<Option<Holder>, StoreError>;
    /// Releases the lock if `holder` still holds it.
    async fn release(&self, key: &str, holder: &Holder) -> Result<(), StoreError>;
    /// Breaks the lock named `id` (`state unlock --force ID`): only that one, never a newer one.
    async fn force_unlock(&self, key: &str, id: &str) -> Result<Holder, StoreError>;
}

/// Takes the lock at `key` for `holder`, waiting up to `timeout` for the current holder to
/// release it.
pub async fn acquire(
    store: &dyn Locking,
    key: &str,
    holder: &Holder,
    timeout: Duration,
) -> Result<(), LockError> {
    let deadline = Instant::now() + timeout;
    loop {
        if store.try_lock(key, holder).await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            match store.held_by(key).await? {
                Some(holder) => {
                    let stale = holder.is_stale_here();
                    return Err(LockError::Held { holder, stale });
                }
                None => continue, // released just now: try again
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A lock object written only if absent (`If-None-Match: *`), its body the holder: how stores
/// without leases lock.
pub mod object {
    use super::Holder;
    use crate::{Expect, ObjectStore, StoreError};

    pub async fn try_lock(
        store: &dyn ObjectStore,
        key: &str,
        holder: &Holder,
    ) -> Result<bool, StoreError> {
        let body = serde_json::to_vec(holder).expect("holder serializes");
        match store.put(key, body, Expect::Absent).await {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn held_by(store: &dyn ObjectStore, key: &str) -> Result<Option<Holder>, StoreError> {
        Ok(read(store, key).await?.map(|(holder, _)| holder))
    }

    pub async fn release(
        store: &dyn ObjectStore,
        key: &str,
        holder: &Holder,
    ) -> Result<(), StoreError> {
        let Some(v) = store.get(key).await? else {
            return Ok(());
        };
        match serde_json::from_slice::<Holder>(&v.body) {
            Ok(h) if h.id == holder.id => store.delete(key, Expect::Etag(v.etag)).await,
            _ => Ok(()),
        }
    }

    pub async fn force_unlock(
        store: &dyn ObjectStore,
        key: &str,
        id: &str,
    ) -> Result<Holder, StoreError> {
        let Some((holder, etag)) = read(store, key).await? else {
            return Err(StoreError::Other(format!("no lock at {key}")));
        };
        if holder.id != id {
            return Err(super::not_that_one(&holder, id));
        }
        store.delete(key, Expect::Etag(etag)).await?;
        Ok(holder)
    }

    /// The holder the lock object names, and the object's ETag.
    async fn read(
        store: &dyn ObjectStore,
        key: &str,
    ) -> Result<Option<(Holder, String)>, StoreError> {
        let Some(v) = store.get(key).await? else {
            return Ok(None);
        };
        let holder = serde_json::from_slice(&v.body).map_err(|e| {
            StoreError::Other(format!("lock object {key} is not a clouder lock: {e}"))
        })?;
        Ok(Some((holder, v.etag)))
    }
}

/// The refusal of `unlock --force ID` when the lock is now someone else's.
pub(crate) fn not_that_one(holder: &Holder, id: &str) -> StoreError {
    StoreError::Other(format!("the lock is now {holder}, not {id}; not broken"))
}
