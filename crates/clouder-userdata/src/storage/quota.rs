//! Quotas on user folders: XFS project quotas when the storage root is on an XFS filesystem
//! mounted with `prjquota` (the in-cluster NFS server's disk), enforced by the filesystem and
//! read back instantly; otherwise a usage scan, and the over-quota user is reported and
//! refused attaches.

use super::place::{Place, scripts};
use crate::Error;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quota {
    /// XFS project quotas on the filesystem mounted at `mount`.
    Xfs { mount: PathBuf },
    /// No filesystem quotas: usage is scanned.
    Scan,
}

impl Quota {
    /// XFS with project quotas when the filesystem holding `root` has them.
    pub async fn detect(place: &dyn Place, root: &Path) -> Result<Quota, Error> {
        let found = place.run(&scripts::filesystem(root)).await?;
        let mut fields = found.split_whitespace();
        let (fstype, options) = (fields.next(), fields.next().unwrap_or_default());
        let mount = fields.collect::<Vec<_>>().join(" ");
        Ok(match fstype {
            Some("xfs") if has_project_quota(options) => Quota::Xfs {
                mount: PathBuf::from(mount),
            },
            _ => Quota::Scan,
        })
    }

    /// Whether the filesystem enforces the limit.
    pub fn enforced(&self) -> bool {
        matches!(self, Quota::Xfs { .. })
    }

    /// Puts `dir` in project `project` with a hard limit of `bytes`.
    pub async fn set(
        &self,
        place: &dyn Place,
        dir: &Path,
        project: u32,
        bytes: u64,
    ) -> Result<(), Error> {
        if let Quota::Xfs { mount } = self {
            let dir = dir.display();
            xfs_quota(place, mount, &format!("project -s -p {dir} {project}")).await?;
            xfs_quota(place, mount, &format!("limit -p bhard={bytes} {project}")).await?;
        }
        Ok(())
    }

    /// Lifts project `project`'s limit.
    pub async fn clear(&self, place: &dyn Place, project: u32) -> Result<(), Error> {
        if let Quota::Xfs { mount } = self {
            xfs_quota(place, mount, &format!("limit -p bhard=0 {project}")).await?;
        }
        Ok(())
    }

    /// Bytes used by each folder (of its project), in order.
    pub async fn used(
        &self,
        place: &dyn Place,
        folders: &[(&Path, u32)],
    ) -> Result<Vec<u64>, Error> {
        if folders.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Quota::Scan => {
                let dirs: Vec<&Path> = folders.iter().map(|(d, _)| *d).collect();
                let out = place.run(&scripts::usage(&dirs)).await?;
                let used: Vec<u64> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
                if used.len() != folders.len() {
                    return Err(Error::Failed(format!(
                        "du gave {} sizes for {} folders",
                        used.len(),
                        folders.len()
                    )));
                }
                Ok(used)
            }
            Quota::Xfs { mount } => {
                // `#ID used soft hard warn grace`, in 1 KiB blocks.
                let report = xfs_quota(place, mount, "report -p -N -b -n").await?;
                let of = |project: u32| {
                    let wanted = format!("#{project}");
                    report
                        .lines()
                        .filter_map(|l| {
                            let mut f = l.split_whitespace();
                            (f.next() == Some(wanted.as_str())).then(|| f.next())?
                        })
                        .find_map(|used| used.parse::<u64>().ok())
                        .unwrap_or(0)
                        * 1024
                };
                Ok(folders.iter().map(|(_, p)| of(*p)).collect())
            }
        }
    }
}

fn has_project_quota(options: &str) -> bool {
    options
        .split(',')
        .any(|o| matches!(o, "prjquota" | "pquota" | "pqnoenforce"))
}

async fn xfs_quota(place: &dyn Place, mount: &Path, command: &str) -> Result<String, Error> {
    place
        .run(&scripts::xfs_quota(mount, command))
        .await
        .map_err(|e| {
            Error::Failed(format!(
                "xfs_quota `{command}` on {} (Debian package xfsprogs): {e}",
                mount.display()
            ))
        })
}
