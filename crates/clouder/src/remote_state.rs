//! `--state s3://BUCKET/KEY` or `azblob://ACCOUNT/CONTAINER/KEY`: clouder's state kept in an
//! object store, shared by a team. A run takes the state's lock (naming its holder), works on a
//! private copy of the SQLite state, and writes it back — even when the command failed, so a
//! re-run resumes — with compare-and-swap on the object's ETag, then releases the lock.
//! `state pull` and `state push` copy the whole state between the store and a local file.

use crate::Usage;
use crate::home::{Home, private_dir, write_private};
use anyhow::{Context as _, Result, bail};
use clouder_remote::lock::{self, Holder};
use clouder_remote::{Backend, Expect, Location};
use clouder_state::{Lineage, SqliteStore, StateStore};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The location `url` names (a usage error when malformed) and a client of its store.
async fn connect(url: &str) -> Result<(Location, Box<dyn Backend>)> {
    let location = Location::parse(url).map_err(|e| Usage(format!("--state {e}")))?;
    let store = location.connect().await?;
    Ok((location, store))
}

/// A run holding the remote state: its lock, and the local copy it works on.
pub struct Session {
    store: Box<dyn Backend>,
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
        let (location, store) = connect(url).await?;
        let holder = Holder::current(command);
        lock::acquire(store.as_ref(), &location.lock_key(), &holder, lock_timeout)
            .await
            .with_context(|| format!("locking the state at {url}"))?;
        let dir = home.root.join("remote-state");
        private_dir(&dir)?;
        let copy = dir.join(location.file_name());
        remove_database(&copy);
        let current = match store.get(location.key()).await {
            Ok(c) => c,
            Err(e) => {
                let _ = store.release(&location.lock_key(), &holder).await;
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
        self.store
            .release(&self.location.lock_key(), &self.holder)
            .await
            .context("releasing the state lock")?;
        written
    }

    async fn push(&self) -> Result<()> {
        if !self.copy.exists() {
            return Ok(());
        }
        let after = SqliteStore::snapshot(&self.copy)?;
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
            .put(self.location.key(), after, expect)
            .await
            .with_context(|| format!("writing the state back to {}", self.location))?;
        Ok(())
    }
}

/// Whether two snapshots hold the same state (a snapshot of unchanged content is byte-identical).
fn same_state(before: &[u8], after: &[u8], scratch: &Path) -> Result<bool> {
    if before == after {
        return Ok(true);
    }
    // The fetched bytes may come from another writer's snapshot layout: compare as snapshots.
    let probe = scratch.with_extension("before");
    write_private(&probe, before)?;
    let normalised = SqliteStore::snapshot(&probe);
    let _ = std::fs::remove_file(&probe);
    Ok(normalised? == after)
}

/// Removes a SQLite database and its write-ahead files, so nothing stale is read with new bytes.
fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// `clouder state unlock --force ID`: breaks that lock (never a newer one).
pub async fn force_unlock(url: &str, id: &str) -> Result<Holder> {
    let (location, store) = connect(url).await?;
    Ok(store.force_unlock(&location.lock_key(), id).await?)
}

/// `clouder state migrate --to URL`: the current state (local, or `--state`) copied to `URL`,
/// which must not hold a state yet.
pub async fn migrate(home: &Home, to: &str) -> Result<()> {
    if !home.state_db.exists() {
        bail!(Usage(format!(
            "no state at {} to migrate",
            home.state_db.display()
        )));
    }
    let bytes = SqliteStore::snapshot(&home.state_db)?;
    let (location, store) = connect(to).await?;
    store
        .put(location.key(), bytes, Expect::Absent)
        .await
        .with_context(|| format!("{to} already holds a state (or cannot be written)"))?;
    Ok(())
}

/// What `state pull` or `state push` did.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Copied {
    /// The destination held no state; now it holds this one.
    Written,
    /// The destination held an earlier version of this state (same lineage, no change since
    /// the last pull or push): brought up to date.
    Updated,
    /// The destination held another state, or one changed on both sides, replaced on `--force`.
    Replaced,
    /// The destination held this very state already.
    Unchanged,
}

/// `clouder state pull`: the remote state into `file` (the local default state), which must
/// hold no other state unless `force`. Reads without taking the lock, like `terraform state
/// pull`: a state object is only ever replaced whole.
pub async fn pull(url: &str, file: &Path, force: bool) -> Result<Copied> {
    let (location, store) = connect(url).await?;
    let Some(remote) = store.get(location.key()).await? else {
        bail!("there is no state at {url} to pull");
    };
    check_is_state(&remote.body, url)?;
    let copied = match local_state(file)? {
        None => Copied::Written,
        Some(_) => {
            let ours = lineage_at(file)?;
            let theirs = lineage_of(&remote.body, file)?;
            let shown = file.display();
            match () {
                _ if same_version(&ours, &theirs) => Copied::Unchanged,
                _ if force => Copied::Replaced,
                _ if ours.lineage != theirs.lineage => bail!(Usage(format!(
                    "{shown} holds another state (lineage {}; {url} is lineage {}): `state pull --force` replaces it (push it elsewhere first to keep it)",
                    ours.lineage, theirs.lineage
                ))),
                _ if ours.head != ours.synced => bail!(Usage(format!(
                    "{shown} has changes not pushed yet (serial {}): `state push` them first, or `state pull --force` to drop them",
                    ours.serial
                ))),
                _ => Copied::Updated,
            }
        }
    };
    if copied != Copied::Unchanged {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_dir(dir)?;
        }
        remove_database(file);
        write_private(file, &remote.body)?;
    }
    SqliteStore::open(file)?.mark_synced()?;
    Ok(copied)
}

/// `clouder state push`: the state in `file` to the remote, under its lock, with
/// compare-and-swap; an existing different remote state is replaced only if `force`.
pub async fn push(
    url: &str,
    file: &Path,
    force: bool,
    command: &str,
    lock_timeout: Duration,
) -> Result<Copied> {
    let Some(local) = local_state(file)? else {
        bail!(Usage(format!("no state at {} to push", file.display())));
    };
    let ours = lineage_at(file)?;
    let (location, store) = connect(url).await?;
    let holder = Holder::current(command);
    let key = location.lock_key();
    lock::acquire(store.as_ref(), &key, &holder, lock_timeout)
        .await
        .with_context(|| format!("locking the state at {url}"))?;
    let pushed = async {
        let (copied, expect) = match store.get(location.key()).await? {
            None => (Copied::Written, Expect::Absent),
            Some(remote) => {
                let theirs = lineage_of(&remote.body, file)?;
                let copied = match () {
                    _ if same_version(&ours, &theirs) => return Ok(Copied::Unchanged),
                    _ if force => Copied::Replaced,
                    _ if ours.lineage != theirs.lineage => bail!(Usage(format!(
                        "{url} holds another state (lineage {}; {} is lineage {}): `state push --force` replaces it (pull it elsewhere first to keep it)",
                        theirs.lineage,
                        file.display(),
                        ours.lineage
                    ))),
                    _ if theirs.head != ours.synced => bail!(Usage(format!(
                        "{url} has changed since {} was last pulled or pushed (its serial is {}, yours {}): `state pull` and make your change again, or `state push --force` to overwrite it",
                        file.display(),
                        theirs.serial,
                        ours.serial
                    ))),
                    _ => Copied::Updated,
                };
                (copied, Expect::Etag(remote.etag))
            }
        };
        store
            .put(location.key(), local, expect)
            .await
            .with_context(|| format!("writing the state to {url}"))?;
        SqliteStore::open(file)?.mark_synced()?;
        Ok(copied)
    }
    .await;
    let released = store.release(&key, &holder).await;
    let copied = pushed?;
    released.context("releasing the state lock")?;
    Ok(copied)
}

/// A consistent snapshot of the SQLite state at `file`; `None` when there is none, or it is
/// empty (no cluster, no context: nothing a copy could lose).
fn local_state(file: &Path) -> Result<Option<Vec<u8>>> {
    if !file.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    check_is_state(&bytes, &file.display().to_string())?;
    let store = SqliteStore::open(file)?;
    if store.clusters()?.is_empty() && store.contexts()?.is_empty() {
        return Ok(None);
    }
    drop(store);
    Ok(Some(SqliteStore::snapshot(file)?))
}

/// The same state at the same change: copies differ at most in when they were last synced.
fn same_version(ours: &Lineage, theirs: &Lineage) -> bool {
    ours.lineage == theirs.lineage && ours.head == theirs.head
}

fn lineage_at(file: &Path) -> Result<Lineage> {
    Ok(SqliteStore::open(file)?.lineage()?)
}

/// The lineage of a state held as bytes (read from a scratch copy beside `scratch`).
fn lineage_of(bytes: &[u8], scratch: &Path) -> Result<Lineage> {
    let probe = scratch.with_extension("lineage");
    write_private(&probe, bytes)?;
    let lineage = lineage_at(&probe);
    remove_database(&probe);
    lineage
}

/// Refuses bytes that are not a SQLite database.
fn check_is_state(bytes: &[u8], source: &str) -> Result<()> {
    if !bytes.is_empty() && !bytes.starts_with(b"SQLite format 3\0") {
        bail!("{source} is not a clouder state (not a SQLite database)");
    }
    Ok(())
}
