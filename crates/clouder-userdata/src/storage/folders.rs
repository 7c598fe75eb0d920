//! User folders under the storage root: `users/USER` (group-owned by the runtime's group,
//! setgid so new files keep it), removed ones kept in `trash/` until their grace period ends,
//! and a small index (`.clouder/folders.json`) of quotas, project ids and removals.

use super::quota::Quota;
use super::{USERS_DIR, check_user};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Removed folders are kept this long unless purged.
pub const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
const TRASH_DIR: &str = "trash";
const INDEX: &str = ".clouder/folders.json";

/// A user's folder as `ls`/`show`/`usage` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Folder {
    pub user: String,
    pub path: PathBuf,
    pub quota_bytes: u64,
    pub used_bytes: u64,
    pub over_quota: bool,
    /// Whether the filesystem enforces the quota (otherwise it is watched).
    pub enforced: bool,
}

/// A removed folder kept for its grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub user: String,
    pub path: PathBuf,
    /// RFC 3339; `None` once purged.
    pub purge_after: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    users: BTreeMap<String, Entry>,
    trash: Vec<Removed>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    quota_bytes: u64,
    project: u32,
}

/// The folders under one storage root.
pub struct Folders {
    root: PathBuf,
    gid: u32,
    quota: Quota,
}

impl Folders {
    /// Folders under `root`, owned by group `gid`.
    pub fn open(root: &Path, gid: u32) -> Result<Folders, Error> {
        if !root.is_dir() {
            return Err(Error::Invalid(format!(
                "storage root {} is not a folder",
                root.display()
            )));
        }
        Ok(Folders {
            root: root.to_path_buf(),
            gid,
            quota: Quota::detect(root),
        })
    }

    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    fn dir(&self, user: &str) -> PathBuf {
        self.root.join(USERS_DIR).join(user)
    }

    fn index(&self) -> Result<Index, Error> {
        match std::fs::read(self.root.join(INDEX)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Failed(format!("{}: {e}", self.root.join(INDEX).display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(io(&self.root.join(INDEX), e)),
        }
    }

    fn save(&self, index: &Index) -> Result<(), Error> {
        let path = self.root.join(INDEX);
        let dir = path.parent().expect("index has a parent");
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(index).expect("serializable"),
        )
        .map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))
    }

    fn entry<'a>(&self, index: &'a Index, user: &str) -> Result<&'a Entry, Error> {
        check_user(user)?;
        index
            .users
            .get(user)
            .ok_or_else(|| Error::Invalid(format!("user {user} has no folder")))
    }

    fn folder(&self, user: &str, entry: &Entry) -> Result<Folder, Error> {
        let path = self.dir(user);
        let used = self.quota.used(&path, entry.project)?;
        Ok(Folder {
            user: user.into(),
            path,
            quota_bytes: entry.quota_bytes,
            used_bytes: used,
            over_quota: used > entry.quota_bytes,
            enforced: self.quota.enforced(),
        })
    }

    /// Makes `user`'s folder with `quota_bytes`.
    pub fn create(&self, user: &str, quota_bytes: u64) -> Result<Folder, Error> {
        check_user(user)?;
        let mut index = self.index()?;
        let dir = self.dir(user);
        if index.users.contains_key(user) || dir.exists() {
            return Err(Error::Invalid(format!("user {user} already has a folder")));
        }
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        std::os::unix::fs::chown(&dir, None, Some(self.gid)).map_err(|e| io(&dir, e))?;
        // rwx for the group, setgid so files made inside stay the group's.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2770))
            .map_err(|e| io(&dir, e))?;
        let project = index
            .users
            .values()
            .map(|e| e.project)
            .max()
            .unwrap_or(1000)
            + 1;
        self.quota.set(&dir, project, quota_bytes)?;
        let entry = Entry {
            quota_bytes,
            project,
        };
        index.users.insert(user.into(), entry.clone());
        self.save(&index)?;
        self.folder(user, &entry)
    }

    pub fn show(&self, user: &str) -> Result<Folder, Error> {
        let index = self.index()?;
        let entry = self.entry(&index, user)?;
        self.folder(user, entry)
    }

    /// Every user's folder, by name (also `storage usage`).
    pub fn ls(&self) -> Result<Vec<Folder>, Error> {
        let index = self.index()?;
        index
            .users
            .iter()
            .map(|(user, entry)| self.folder(user, entry))
            .collect()
    }

    pub fn resize(&self, user: &str, quota_bytes: u64) -> Result<Folder, Error> {
        let mut index = self.index()?;
        let mut entry = self.entry(&index, user)?.clone();
        entry.quota_bytes = quota_bytes;
        self.quota
            .set(&self.dir(user), entry.project, quota_bytes)?;
        index.users.insert(user.into(), entry.clone());
        self.save(&index)?;
        self.folder(user, &entry)
    }

    /// Removes `user`'s folder: kept in trash for `grace`, or deleted now with `purge`.
    pub fn rm(
        &self,
        user: &str,
        purge: bool,
        grace: std::time::Duration,
    ) -> Result<Removed, Error> {
        let mut index = self.index()?;
        let entry = self.entry(&index, user)?.clone();
        let dir = self.dir(user);
        let now = jiff::Timestamp::now();
        let removed = if purge {
            std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
            Removed {
                user: user.into(),
                path: dir,
                purge_after: None,
            }
        } else {
            let trash = self.root.join(TRASH_DIR);
            std::fs::create_dir_all(&trash).map_err(|e| io(&trash, e))?;
            let kept = trash.join(format!("{user}.{}", now.as_second()));
            std::fs::rename(&dir, &kept).map_err(|e| io(&dir, e))?;
            let due = now
                .checked_add(
                    jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::MAX),
                )
                .unwrap_or(jiff::Timestamp::MAX);
            let removed = Removed {
                user: user.into(),
                path: kept,
                purge_after: Some(whole_seconds(due).to_string()),
            };
            index.trash.push(removed.clone());
            removed
        };
        self.quota.clear(entry.project)?;
        index.users.remove(user);
        self.save(&index)?;
        Ok(removed)
    }

    /// Deletes removed folders whose grace period is over; returns them.
    pub fn purge_expired(&self) -> Result<Vec<Removed>, Error> {
        let mut index = self.index()?;
        let now = jiff::Timestamp::now();
        let (due, kept): (Vec<Removed>, Vec<Removed>) = index.trash.drain(..).partition(|r| {
            r.purge_after
                .as_deref()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_none_or(|t| t <= now)
        });
        for r in &due {
            match std::fs::remove_dir_all(&r.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&r.path, e)),
                _ => {}
            }
        }
        index.trash = kept;
        self.save(&index)?;
        Ok(due)
    }
}

/// Dropping the fraction never moves a deadline later.
fn whole_seconds(t: jiff::Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Failed(format!("{}: {e}", path.display()))
}
