//! A lock object created only if absent, naming its holder.

use crate::{Expect, ObjectStore, StoreError};
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
        let pid = std::process::id();
        Holder {
            id: format!("{now:x}-{pid:x}-{:04x}", rand_suffix()),
            user: std::env::var("USER")
                .or_else(|_| std::env::var("USERNAME"))
                .unwrap_or_else(|_| "unknown".into()),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            pid,
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

fn rand_suffix() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now()) as u16
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("state is locked: {holder}{}", if *stale { " — STALE: that process is gone; run `clouder state unlock --force ID`" } else { "" })]
    Held { holder: Holder, stale: bool },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Takes the lock at `key` for `holder`, waiting up to `timeout` for the current holder to
/// release it.
pub async fn acquire(
    store: &dyn ObjectStore,
    key: &str,
    holder: &Holder,
    timeout: Duration,
) -> Result<(), LockError> {
    let body = serde_json::to_vec(holder).expect("holder serializes");
    let deadline = Instant::now() + timeout;
    loop {
        match store.put(key, body.clone(), Expect::Absent).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        if Instant::now() >= deadline {
            let current = held_by(store, key).await?;
            match current {
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

/// The current holder, if the lock is taken.
pub async fn held_by(store: &dyn ObjectStore, key: &str) -> Result<Option<Holder>, StoreError> {
    let Some(v) = store.get(key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&v.body)
        .map(Some)
        .map_err(|e| StoreError::Other(format!("lock object {key} is not a clouder lock: {e}")))
}

/// Releases the lock if `holder` still holds it.
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

/// Breaks the lock named `id` (`state unlock --force ID`): only that one, never a newer one.
pub async fn force_unlock(
    store: &dyn ObjectStore,
    key: &str,
    id: &str,
) -> Result<Holder, StoreError> {
    let Some(v) = store.get(key).await? else {
        return Err(StoreError::Other(format!("no lock at {key}")));
    };
    let holder: Holder = serde_json::from_slice(&v.body)
        .map_err(|e| StoreError::Other(format!("lock object {key}: {e}")))?;
    if holder.id != id {
        return Err(StoreError::Other(format!(
            "the lock is now {holder}, not {id}; not broken"
        )));
    }
    store.delete(key, Expect::Etag(v.etag)).await?;
    Ok(holder)
}
