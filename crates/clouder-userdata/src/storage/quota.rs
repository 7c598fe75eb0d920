//! Quotas on user folders: XFS project quotas when the storage root is on an XFS filesystem
//! mounted with `prjquota` (the in-cluster NFS server's disk), enforced by the filesystem and
//! read back instantly; otherwise a usage scan, and the over-quota user is reported and
//! refused attaches.

use super::usage;
use crate::Error;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quota {
    /// XFS project quotas on the filesystem mounted at `mount`.
    Xfs { mount: PathBuf },
    /// No filesystem quotas: usage is scanned.
    Scan,
}

impl Quota {
    /// XFS with project quotas when the filesystem holding `root` has them.
    pub fn detect(root: &Path) -> Quota {
        let Ok(root) = root.canonicalize() else {
            return Quota::Scan;
        };
        let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return Quota::Scan;
        };
        // The mount with the longest mount point that contains `root`.
        let mount = info
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let dash = fields.iter().position(|f| *f == "-")?;
                let point = PathBuf::from(fields.get(4)?.replace("\\040", " "));
                let fstype = *fields.get(dash + 1)?;
                let options = *fields.get(dash + 3)?;
                root.starts_with(&point)
                    .then_some((point, fstype == "xfs" && has_project_quota(options)))
            })
            .max_by_key(|(point, _)| point.as_os_str().len());
        match mount {
            Some((mount, true)) => Quota::Xfs { mount },
            _ => Quota::Scan,
        }
    }

    /// Whether the filesystem enforces the limit.
    pub fn enforced(&self) -> bool {
        matches!(self, Quota::Xfs { .. })
    }

    /// Puts `dir` in project `project` with a hard limit of `bytes`.
    pub fn set(&self, dir: &Path, project: u32, bytes: u64) -> Result<(), Error> {
        if let Quota::Xfs { mount } = self {
            xfs_quota(mount, &format!("project -s -p {} {project}", dir.display()))?;
            xfs_quota(mount, &format!("limit -p bhard={bytes} {project}"))?;
        }
        Ok(())
    }

    /// Lifts project `project`'s limit.
    pub fn clear(&self, project: u32) -> Result<(), Error> {
        if let Quota::Xfs { mount } = self {
            xfs_quota(mount, &format!("limit -p bhard=0 {project}"))?;
        }
        Ok(())
    }

    /// Bytes used by `dir` (project `project`).
    pub fn used(&self, dir: &Path, project: u32) -> Result<u64, Error> {
        match self {
            Quota::Scan => usage(dir),
            Quota::Xfs { mount } => {
                // `#ID used soft hard warn grace`, in 1 KiB blocks.
                let report = xfs_quota(mount, "report -p -N -b -n")?;
                let wanted = format!("#{project}");
                Ok(report
                    .lines()
                    .filter_map(|l| {
                        let mut f = l.split_whitespace();
                        (f.next() == Some(wanted.as_str())).then(|| f.next())?
                    })
                    .find_map(|used| used.parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1024)
            }
        }
    }
}

fn has_project_quota(options: &str) -> bool {
    options
        .split(',')
        .any(|o| matches!(o, "prjquota" | "pquota" | "pqnoenforce" | "prjquota,"))
}

fn xfs_quota(mount: &Path, command: &str) -> Result<String, Error> {
    let out = Command::new("xfs_quota")
        .args(["-x", "-c", command])
        .arg(mount)
        .output()
        .map_err(|e| Error::Failed(format!("running xfs_quota (Debian package xfsprogs): {e}")))?;
    if !out.status.success() {
        return Err(Error::Failed(format!(
            "xfs_quota `{command}` on {}: {}",
            mount.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
