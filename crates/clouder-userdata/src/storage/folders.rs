//! User folders under the storage root: `users/USER` (group-owned by the runtime's group,
//! setgid so new files keep it), removed ones kept in `trash/` until their grace period ends,
//! and a small index (`.clouder/folders.json`) of quotas, project ids and removals. The changes
//! are made where the filesystem is mounted (see [`super::place`]).

use super::place::{Place, scripts};
use super::quota::Quota;
use super::{USERS_DIR, check_user};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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

/// The folders under one storage root, at a place.
pub struct Folders<'a> {
    place: &'a dyn Place,
    root: PathBuf,
    gid: u32,
    quota: Quota,
}

impl<'a> Folders<'a> {
    /// Folders under `root` at `place`, owned by group `gid`.
    pub async fn open(place: &'a dyn Place, root: &Path, gid: u32) -> Result<Folders<'a>, Error> {
        place
            .run(&scripts::is_folder(root))
            .await
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(Folders {
            place,
            root: root.to_path_buf(),
            gid,
            quota: Quota::detect(place, root).await?,
        })
    }

    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    fn dir(&self, user: &str) -> PathBuf {
        self.root.join(USERS_DIR).join(user)
    }

    async fn index(&self) -> Result<Index, Error> {
        let path = self.root.join(INDEX);
        let text = self.place.run(&scripts::read(&path)).await?;
        if text.trim().is_empty() {
            return Ok(Index::default());
        }
        serde_json::from_str(&text).map_err(|e| Error::Failed(format!("{}: {e}", path.display())))
    }

    async fn save(&self, index: &Index) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(index).expect("serializable");
        self.place
            .run(&scripts::write(&self.root.join(INDEX), &text))
            .await
            .map(drop)
    }

    fn entry<'i>(&self, index: &'i Index, user: &str) -> Result<&'i Entry, Error> {
        check_user(user)?;
        index
            .users
            .get(user)
            .ok_or_else(|| Error::Invalid(format!("user {user} has no folder")))
    }

    /// The folders of `users`, with what each uses.
    async fn folders(&self, users: &[(&String, &Entry)]) -> Result<Vec<Folder>, Error> {
        let dirs: Vec<PathBuf> = users.iter().map(|(u, _)| self.dir(u)).collect();
        let wanted: Vec<(&Path, u32)> = dirs
            .iter()
            .zip(users)
            .map(|(d, (_, e))| (d.as_path(), e.project))
            .collect();
        let used = self.quota.used(self.place, &wanted).await?;
        Ok(users
            .iter()
            .zip(dirs)
            .zip(used)
            .map(|(((user, entry), path), used)| Folder {
                user: user.to_string(),
                path,
                quota_bytes: entry.quota_bytes,
                used_bytes: used,
                over_quota: used > entry.quota_bytes,
                enforced: self.quota.enforced(),
            })
            .collect())
    }

    async fn folder(&self, user: &str, entry: &Entry) -> Result<Folder, Error> {
        let user = user.to_string();
        let mut one = self.folders(&[(&user, entry)]).await?;
        Ok(one.remove(0))
    }

    /// Makes `user`'s folder with `quota_bytes`.
    pub async fn create(&self, user: &str, quota_bytes: u64) -> Result<Folder, Error> {
        check_user(user)?;
        let mut index = self.index().await?;
        let dir = self.dir(user);
        if index.users.contains_key(user) {
            return Err(Error::Invalid(format!("user {user} already has a folder")));
        }
        self.place
            .run(&scripts::make_folder(&dir, self.gid))
            .await
            .map_err(|e| match e {
                Error::Failed(why) if why.contains("exists already") => {
                    Error::Invalid(format!("user {user} already has a folder"))
                }
                e => e,
            })?;
        let project = index
            .users
            .values()
            .map(|e| e.project)
            .max()
            .unwrap_or(1000)
            + 1;
        self.quota
            .set(self.place, &dir, project, quota_bytes)
            .await?;
        let entry = Entry {
            quota_bytes,
            project,
        };
        index.users.insert(user.into(), entry.clone());
        self.save(&index).await?;
        self.folder(user, &entry).await
    }

    pub async fn show(&self, user: &str) -> Result<Folder, Error> {
        let index = self.index().await?;
        let entry = self.entry(&index, user)?;
        self.folder(user, entry).await
    }

    /// Every user's folder, by name (also `storage usage`).
    pub async fn ls(&self) -> Result<Vec<Folder>, Error> {
        let index = self.index().await?;
        let users: Vec<(&String, &Entry)> = index.users.iter().collect();
        self.folders(&users).await
    }

    pub async fn resize(&self, user: &str, quota_bytes: u64) -> Result<Folder, Error> {
        let mut index = self.index().await?;
        let mut entry = self.entry(&index, user)?.clone();
        entry.quota_bytes = quota_bytes;
        self.quota
            .set(self.place, &self.dir(user), entry.project, quota_bytes)
            .await?;
        index.users.insert(user.into(), entry.clone());
        self.save(&index).await?;
        self.folder(user, &entry).await
    }

    /// Removes `user`'s folder: kept in trash for `grace`, or deleted now with `purge`.
    pub async fn rm(
        &self,
        user: &str,
        purge: bool,
        grace: std::time::Duration,
    ) -> Result<Removed, Error> {
        let mut index = self.index().await?;
        let entry = self.entry(&index, user)?.clone();
        let dir = self.dir(user);
        let now = jiff::Timestamp::now();
        let removed = if purge {
            self.place.run(&scripts::delete(&[&dir])).await?;
            Removed {
                user: user.into(),
                path: dir,
                purge_after: None,
            }
        } else {
            let kept = self
                .root
                .join(TRASH_DIR)
                .join(format!("{user}.{}", now.as_second()));
            self.place.run(&scripts::keep(&dir, &kept)).await?;
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
        self.quota.clear(self.place, entry.project).await?;
        index.users.remove(user);
        self.save(&index).await?;
        Ok(removed)
    }

    /// Deletes removed folders whose grace period is over; returns them.
    pub async fn purge_expired(&self) -> Result<Vec<Removed>, Error> {
        let mut index = self.index().await?;
        let now = jiff::Timestamp::now();
        let (due, kept): (Vec<Removed>, Vec<Removed>) = index.trash.drain(..).partition(|r| {
            r.purge_after
                .as_deref()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_none_or(|t| t <= now)
        });
        if !due.is_empty() {
            let paths: Vec<&Path> = due.iter().map(|r| r.path.as_path()).collect();
            self.place.run(&scripts::delete(&paths)).await?;
        }
        index.trash = kept;
        self.save(&index).await?;
        Ok(due)
    }
}

/// Dropping the fraction never moves a deadline later.
fn whole_seconds(t: jiff::Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_second(t.as_second()).unwrap_or(t)
}
