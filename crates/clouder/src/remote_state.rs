//! `--state s3://BUCKET/KEY`: clouder's state kept in an object store, shared by a team. A run
//! takes the state's lock (naming its holder), works on a private copy of the SQLite state, and
//! writes it back — even when the command failed, so a re-run resumes — with compare-and-swap on
//! the object's ETag, then releases the lock.

use crate::Usage;
use crate::home::{Home, private_dir, write_private};
use anyhow::{Context as _, Result, bail};
use clouder_remote::lock::{self, Holder};
use clouder_remote::s3::S3Store;
use clouder_remote::{Expect, ObjectStore};
use std::path::PathBuf;
use std::time::Duration;

/// Where a remote state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    pub key: String,
}

impl Location {
    pub fn parse(url: &str) -> Result<Location> {
        if url.starts_with("azblob://") {
            bail!(Usage(format!(
                "--state {url}: Azure Blob state is not available in this build yet (s3:// is)"
            )));
        }
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| Usage(format!("--state {url}: expected s3://BUCKET/KEY")))?;
        match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(Location {
                bucket: bucket.into(),
                key: key.into(),
            }),
            _ => bail!(Usage(format!("--state {url}: expected s3://BUCKET/KEY"))),
        }
    }

    fn lock_key(&self) -> String {
        format!("{}.lock", self.key)
    }
}

/// A run holding the remote state: its lock, and the local copy it works on.
pub struct Session {
    store: S3Store,
    location: Location,
    holder: Holder,
    etag: Option<String>,
    before: Option<Vec<u8>>,
    copy: PathBuf,
}

impl Session {
    /// Takes the lock (waiting up to `lock_timeout`), fetches the state, and points `home` at
    /// the copy.
    pub async fn open(
        home: &mut Home,
        url: &str,
        command: &str,
        lock_timeout: Duration,
    ) -> Result<Session> {
        let location = Location::parse(url)?;
        let store = S3Store::connect(&location.bucket).await;
        let holder = Holder::current(command);
        lock::acquire(&store, &location.lock_key(), &holder, lock_timeout)
            .await
            .with_context(|| format!("locking the state at {url}"))?;
        let dir = home.root.join("remote-state");
        private_dir(&dir)?;
        let copy = dir.join(format!(
            "{}-{}.db",
            location.bucket,
            location.key.replace('/', "_")
        ));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
        }
        let current = store.get(&location.key).await;
        let current = match current {
            Ok(c) => c,
            Err(e) => {
                let _ = lock::release(&store, &location.lock_key(), &holder).await;
                return Err(anyhow::anyhow!("reading the state at {url}: {e}"));
            }
        };
        if let Some(v) = &current {
            write_private(&copy, &v.body)?;
        }
        home.state_db = copy.clone();
        Ok(Session {
            store,
            holder,
            etag: current.as_ref().map(|v| v.etag.clone()),
            before: current.map(|v| v.body),
            copy,
            location,
        })
    }

    /// Writes the state back if the run changed it, then releases the lock.
    pub async fn close(self) -> Result<()> {
        let written = self.push().await;
        lock::release(&self.store, &self.location.lock_key(), &self.holder)
            .await
            .context("releasing the state lock")?;
        written
    }

    async fn push(&self) -> Result<()> {
        if !self.copy.exists() {
            return Ok(());
        }
        let after = clouder_state::SqliteStore::snapshot(&self.copy)?;
        let changed = match &self.before {
            Some(before) => !same_state(before, &after, &self.copy)?,
            None => true,
        };
        if !changed {
            return Ok(());
        }
        let expect = match &self.etag {
            Some(etag) => Expect::Etag(etag.clone()),
            None => Expect::Absent,
        };
        self.store
            .put(&self.location.key, after, expect)
            .await
            .with_context(|| {
                format!(
                    "writing the state back to s3://{}/{}",
                    self.location.bucket, self.location.key
                )
            })?;
        Ok(())
    }
}

/// Whether two snapshots hold the same state (a snapshot of unchanged content is byte-identical).
fn same_state(before: &[u8], after: &[u8], copy: &std::path::Path) -> Result<bool> {
    if before == after {
        return Ok(true);
    }
    // The fetched bytes may come from another writer's snapshot layout: compare as snapshots.
    let probe = copy.with_extension("before");
    write_private(&probe, before)?;
    let normalised = clouder_state::SqliteStore::snapshot(&probe);
    let _ = std::fs::remove_file(&probe);
    Ok(normalised? == after)
}

/// `clouder state unlock --force ID`: breaks that lock (never a newer one).
pub async fn force_unlock(url: &str, id: &str) -> Result<Holder> {
    let location = Location::parse(url)?;
    let store = S3Store::connect(&location.bucket).await;
    Ok(lock::force_unlock(&store, &location.lock_key(), id).await?)
}

/// `clouder state migrate --to URL`: the current state (local, or `--state`) copied to `URL`,
/// which must not hold a state yet.
pub async fn migrate(home: &Home, to: &str) -> Result<()> {
    let location = Location::parse(to)?;
    if !home.state_db.exists() {
        bail!(Usage(format!(
            "no state at {} to migrate",
            home.state_db.display()
        )));
    }
    let bytes = clouder_state::SqliteStore::snapshot(&home.state_db)?;
    let store = S3Store::connect(&location.bucket).await;
    store
        .put(&location.key, bytes, Expect::Absent)
        .await
        .with_context(|| format!("{to} already holds a state (or cannot be written)"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Location;

    #[test]
    fn state_urls_are_checked() {
        let l = Location::parse("s3://team-state/clusters/prod.db").unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.key.as_str()),
            ("team-state", "clusters/prod.db")
        );
        for bad in [
            "s3://bucket",
            "s3:///key",
            "file:///tmp/x",
            "azblob://acct/c/k",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
