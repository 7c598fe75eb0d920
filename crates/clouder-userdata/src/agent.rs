//! The node agent: binds a user's folder into a running container, and takes it out again.
//!
//! "A container process on this node" means: a process visible in the `/proc` of the container
//! runtime's pid namespace (the node's, for a DaemonSet with `hostPID`) whose mount namespace is
//! not the agent's own, and — when the policy names a cgroup marker (the
//! DaemonSet uses `kubepods`, which kubelet puts in every pod's cgroup under both cgroup
//! drivers) — whose cgroup names it. Anything else is refused.
//!
//! The mount is made on a dedicated thread that leaves the agent's filesystem context
//! (`unshare(CLONE_FS)`), enters the process's mount namespace and root, and moves a detached
//! clone of the folder (`open_tree`, taken in the agent's namespace) onto the target, which is
//! walked one component at a time without following symlinks. Every check runs before the
//! mount; a refusal leaves nothing mounted.

use crate::Error;
use crate::storage::{resolve_under, usage};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{CWD, Mode, OFlags};
use rustix::mount::{MountFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags};
use std::path::{Component, Path, PathBuf};

/// What the agent allows.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The node's mount of the shared filesystem: sources must be folders under it.
    pub storage_root: PathBuf,
    /// Targets must be at or under this path inside the container.
    pub mount_root: PathBuf,
    /// When set, the process's cgroup must contain it (e.g. `kubepods`).
    pub cgroup_marker: Option<String>,
    /// When set, a source using more bytes than this is refused (the user is over quota).
    pub quota_bytes: Option<u64>,
    /// The `/proc` of the pid namespace the container runtime reports pids in: `/proc` with
    /// `hostPID`, or wherever the node's `/proc` is mounted (e.g. `/host/proc`).
    pub proc: PathBuf,
}

impl Policy {
    /// Sources under `storage_root`, targets under `mount_root`, pids of this `/proc`, no cgroup
    /// marker and no quota.
    pub fn new(storage_root: &Path, mount_root: &Path) -> Policy {
        Policy {
            storage_root: storage_root.to_path_buf(),
            mount_root: mount_root.to_path_buf(),
            cgroup_marker: None,
            quota_bytes: None,
            proc: PathBuf::from("/proc"),
        }
    }
}

/// Binds `source` (a folder under the storage root) at `target` inside process `pid`'s mount
/// namespace.
pub fn attach(policy: &Policy, pid: u32, source: &Path, target: &Path) -> Result<(), Error> {
    let target = check_target(policy, target)?;
    let source = resolve_under(&policy.storage_root, source)?;
    if !source.is_dir() {
        return Err(Error::Refused(format!(
            "source {} is not a folder",
            source.display()
        )));
    }
    let process = Process::check(policy, pid)?;
    process.refuse_if_mounted(&target)?;
    if let Some(quota) = policy.quota_bytes {
        let used = usage(&source)?;
        if used > quota {
            return Err(Error::Refused(format!(
                "{} uses {used} bytes, over its quota of {quota} bytes",
                source.display()
            )));
        }
    }
    process.mount(&source, target, &policy.mount_root, false)?;
    tracing::info!(pid, source = %source.display(), "attached");
    Ok(())
}

/// Binds `source` (a folder in the agent's own namespace, e.g. a tmpfs it filled) read-only at
/// `target` inside process `pid`; missing folders under `create_under` are made. The target is
/// the platform's, not a request's, so only the process is checked.
pub fn attach_read_only(
    policy: &Policy,
    pid: u32,
    source: &Path,
    target: &Path,
    create_under: &Path,
) -> Result<(), Error> {
    let process = Process::check(policy, pid)?;
    process.refuse_if_mounted(target)?;
    process.mount(source, target.to_path_buf(), create_under, true)
}

/// Takes the mount at `target` out of process `pid`; `Ok(false)` when nothing was mounted there.
pub fn detach_if_mounted(policy: &Policy, pid: u32, target: &Path) -> Result<bool, Error> {
    let process = Process::check(policy, pid)?;
    if !process.is_mounted(target)? {
        return Ok(false);
    }
    process.unmount(target.to_path_buf())?;
    Ok(true)
}

/// Takes the mount at `target` out of process `pid`'s mount namespace.
pub fn detach(policy: &Policy, pid: u32, target: &Path) -> Result<(), Error> {
    let target = check_target(policy, target)?;
    let process = Process::check(policy, pid)?;
    if !process.is_mounted(&target)? {
        return Err(Error::Refused(format!(
            "nothing is mounted at {} in process {pid}",
            target.display()
        )));
    }
    process.unmount(target)?;
    tracing::info!(pid, "detached");
    Ok(())
}

/// The target must be absolute, plain (no `.`/`..`) and at or under the mount root.
fn check_target(policy: &Policy, target: &Path) -> Result<PathBuf, Error> {
    let plain = target.is_absolute()
        && target
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !plain || !target.starts_with(&policy.mount_root) {
        return Err(Error::Refused(format!(
            "target {} is not a plain absolute path under the allowed mount root {}",
            target.display(),
            policy.mount_root.display()
        )));
    }
    Ok(target.to_path_buf())
}

/// A process checked to be a container process on this node.
struct Process {
    pid: u32,
    mountinfo: PathBuf,
    namespace: OwnedFd,
    root: OwnedFd,
}

impl Process {
    fn check(policy: &Policy, pid: u32) -> Result<Process, Error> {
        let proc = policy.proc.join(pid.to_string());
        let not_here =
            |e: std::io::Error| Error::Refused(format!("no process {pid} on this node ({e})"));
        let theirs = std::fs::read_link(proc.join("ns/mnt")).map_err(not_here)?;
        let ours = std::fs::read_link("/proc/self/ns/mnt")
            .map_err(|e| Error::Failed(format!("reading the agent's mount namespace: {e}")))?;
        if theirs == ours {
            return Err(Error::Refused(format!(
                "process {pid} is not a container process: it shares the agent's mount namespace"
            )));
        }
        if let Some(marker) = &policy.cgroup_marker {
            let cgroup = std::fs::read_to_string(proc.join("cgroup")).map_err(not_here)?;
            if !cgroup.contains(marker.as_str()) {
                return Err(Error::Refused(format!(
                    "process {pid} is not a container process: its cgroup does not name {marker}"
                )));
            }
        }
        let open = |path: PathBuf, flags: OFlags| {
            rustix::fs::open(&path, flags | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| not_here(e.into()))
        };
        Ok(Process {
            pid,
            mountinfo: proc.join("mountinfo"),
            namespace: open(proc.join("ns/mnt"), OFlags::RDONLY)?,
            root: open(proc.join("root"), OFlags::PATH | OFlags::DIRECTORY)?,
        })
    }

    fn refuse_if_mounted(&self, target: &Path) -> Result<(), Error> {
        if self.is_mounted(target)? {
            return Err(Error::Refused(format!(
                "process {} already has a mount at {}",
                self.pid,
                target.display()
            )));
        }
        Ok(())
    }

    /// Whether `target` is a mount point in the process's view.
    fn is_mounted(&self, target: &Path) -> Result<bool, Error> {
        let info = std::fs::read_to_string(&self.mountinfo)
            .map_err(|e| Error::Refused(format!("no process {} on this node ({e})", self.pid)))?;
        // Field 5 is the mount point, with spaces and such octal-escaped.
        let wanted = target.to_string_lossy().replace(' ', "\\040");
        Ok(info
            .lines()
            .any(|line| line.split(' ').nth(4) == Some(wanted.as_str())))
    }

    /// Moves a detached clone of `source`'s mount (taken here, in the agent's namespace) onto
    /// `target` in the process; with `read_only` the new mount alone is made read-only.
    fn mount(
        self,
        source: &Path,
        target: PathBuf,
        create_under: &Path,
        read_only: bool,
    ) -> Result<(), Error> {
        let tree = rustix::mount::open_tree(
            CWD,
            source,
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )
        .map_err(|e| Error::Failed(format!("cloning the mount of {}: {e}", source.display())))?;
        let create_under = create_under.to_path_buf();
        self.enter(move || {
            let dir = walk(&target, &create_under, true)?;
            rustix::mount::move_mount(
                tree.as_fd(),
                "",
                dir.as_fd(),
                "",
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
            )
            .map_err(|e| Error::Failed(format!("mounting at {}: {e}", target.display())))?;
            if read_only {
                // A bind remount changes this mount's flags only, not the agent's copy.
                rustix::mount::mount_remount(
                    &target,
                    MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
                    "",
                )
                .map_err(|e| {
                    Error::Failed(format!("making {} read-only: {e}", target.display()))
                })?;
            }
            Ok(())
        })
    }

    /// Unmounts `target` (walked without symlinks from the container's root).
    fn unmount(self, target: PathBuf) -> Result<(), Error> {
        self.enter(move || {
            walk(&target, Path::new("/"), false)?;
            rustix::mount::unmount(&target, UnmountFlags::NOFOLLOW | UnmountFlags::DETACH)
                .map_err(|e| Error::Failed(format!("unmounting {}: {e}", target.display())))
        })
    }

    /// Runs `work` on a thread inside the process's mount namespace and root.
    fn enter<F>(self, work: F) -> Result<(), Error>
    where
        F: FnOnce() -> Result<(), Error> + Send + 'static,
    {
        let pid = self.pid;
        std::thread::spawn(move || {
            let fail = |what: &str, e: rustix::io::Errno| {
                Error::Failed(format!("{what} of process {pid}: {e}"))
            };
            // SAFETY: CLONE_FS only separates this thread's root, cwd and umask; no file
            // descriptor table is unshared.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }
                .map_err(|e| fail("leaving the agent's filesystem context", e))?;
            rustix::thread::move_into_link_name_space(
                self.namespace.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Mount),
            )
            .map_err(|e| fail("entering the mount namespace", e))?;
            rustix::process::fchdir(&self.root).map_err(|e| fail("entering the root", e))?;
            rustix::process::chroot(".").map_err(|e| fail("entering the root", e))?;
            work()
        })
        .join()
        .map_err(|_| Error::Failed(format!("the mount thread for process {pid} panicked")))?
    }
}

/// Opens `target` from `/` one component at a time without following symlinks; with `create`,
/// missing folders under `mount_root` are made (mode 0755).
fn walk(target: &Path, mount_root: &Path, create: bool) -> Result<OwnedFd, Error> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir = rustix::fs::open("/", flags, Mode::empty())
        .map_err(|e| Error::Failed(format!("opening the container's root: {e}")))?;
    let mut walked = PathBuf::from("/");
    for part in target.components().skip(1) {
        walked.push(part);
        let next = match rustix::fs::openat(&dir, part.as_os_str(), flags, Mode::empty()) {
            Err(rustix::io::Errno::NOENT) if create && walked.starts_with(mount_root) => {
                // O_PATH descriptors serve as the directory of *at calls.
                match rustix::fs::mkdirat(&dir, part.as_os_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => {
                        return Err(Error::Failed(format!("creating {}: {e}", walked.display())));
                    }
                }
                rustix::fs::openat(&dir, part.as_os_str(), flags, Mode::empty())
            }
            r => r,
        };
        dir = next.map_err(|e| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => Error::Refused(format!(
                "target {}: {} is a symlink or not a folder inside the container",
                target.display(),
                walked.display()
            )),
            e => Error::Refused(format!(
                "target {}: {}: {e}",
                target.display(),
                walked.display()
            )),
        })?;
    }
    Ok(dir)
}
