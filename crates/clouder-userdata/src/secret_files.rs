//! A warm pod's secrets, as files.
//!
//! The decision: a user's secrets live in their namespace (`user-USER`), while warm runtime pods
//! run in a shared namespace, are created before anyone knows whose they will be, and cannot
//! reference another namespace's Secret or gain variables or volumes once running. So the node
//! agent, which already binds the user's folder into the running container, also gives it the
//! user's secrets as files: it reads the user's Secret (its ClusterRole allows `get`/`list`/
//! `watch` of Secrets named `clouder-user-secrets` only), writes each key to a small tmpfs of its
//! own (one per pod, never on disk; files 0440, group = the pod's `fsGroup`, as a projected
//! volume's) and binds that tmpfs read-only at the path a new pod's projected volume has
//! ([`crate::podspec::SECRETS_DIR`]). A runtime therefore reads secrets from one place, warm or
//! cold. When `secrets sync` changes the Secret, the agent's watch rewrites the files in place
//! (write, then rename, so a reader sees the old or the new value, never half); detaching
//! unmounts the bind and wipes the tmpfs. Variables cannot reach a process that is already
//! running: a warm runtime reads the files (cold pods get both).

use crate::Error;
use crate::secrets::check_name;
use rustix::fs::{Mode, OFlags};
use rustix::mount::MountFlags;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Room for a Secret at its 1 MiB limit, with each key in its own file.
const TMPFS_OPTIONS: &str = "size=2m,nr_inodes=1024,mode=0750,uid=0";

/// One pod's secrets on a tmpfs mounted in the agent's own namespace.
#[derive(Debug)]
pub struct SecretFiles {
    dir: PathBuf,
    gid: u32,
}

impl SecretFiles {
    /// A fresh tmpfs at `root/name`, readable by group `gid` only.
    pub fn mount(root: &Path, name: &str, gid: u32) -> Result<SecretFiles, Error> {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io(root, e))?;
        let options = std::ffi::CString::new(format!("{TMPFS_OPTIONS},gid={gid}"))
            .expect("no NUL in the options");
        rustix::mount::mount(
            "clouder-secrets",
            &dir,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            options.as_c_str(),
        )
        .map_err(|e| Error::Failed(format!("mounting a tmpfs at {}: {e}", dir.display())))?;
        Ok(SecretFiles { dir, gid })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes the files exactly `data`: each key a file (0440, root and the pod's group), each
    /// changed one replaced by a rename, those no longer in the Secret removed. Keys that are
    /// not variable names (the Secret was written by something else) are left out.
    pub fn write(&self, data: &BTreeMap<String, Vec<u8>>) -> Result<(), Error> {
        for (name, value) in data {
            if check_name(name).is_err() {
                tracing::warn!(key = %name, "left out a key that is not a variable name");
                continue;
            }
            let path = self.dir.join(name);
            if std::fs::read(&path).is_ok_and(|old| old == *value) {
                continue;
            }
            let tmp = self.dir.join(format!(".{name}.new"));
            let fd = rustix::fs::open(
                &tmp,
                OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::TRUNC
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o440),
            )
            .map_err(|e| io(&tmp, e.into()))?;
            rustix::fs::fchown(
                &fd,
                Some(rustix::fs::Uid::ROOT),
                Some(rustix::fs::Gid::from_raw(self.gid)),
            )
            .map_err(|e| io(&tmp, e.into()))?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o440)).map_err(|e| io(&tmp, e.into()))?;
            std::fs::File::from(fd)
                .write_all(value)
                .map_err(|e| io(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        }
        for entry in std::fs::read_dir(&self.dir).map_err(|e| io(&self.dir, e))? {
            let entry = entry.map_err(|e| io(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !data.contains_key(&name) {
                std::fs::remove_file(entry.path()).map_err(|e| io(&entry.path(), e))?;
            }
        }
        Ok(())
    }

    /// Removes the files, then the tmpfs and its folder.
    pub fn wipe(self) -> Result<(), Error> {
        self.write(&BTreeMap::new())?;
        rustix::mount::unmount(&self.dir, rustix::mount::UnmountFlags::DETACH)
            .map_err(|e| Error::Failed(format!("unmounting {}: {e}", self.dir.display())))?;
        std::fs::remove_dir(&self.dir).map_err(|e| io(&self.dir, e))
    }
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Failed(format!("{}: {e}", path.display()))
}
