//! Where the shared filesystem is, and the shell commands user folders are kept with.
//!
//! Every change to a folder is a short bash script (values quoted, checked by shellcheck in the
//! tests) run where the filesystem is mounted: here ([`Local`], `--root` on a node or the NFS
//! server), or on the host that has it over SSH ([`Remote`], `clouder storage` from anywhere).
//! XFS project quotas can only be set where the XFS filesystem itself is mounted, so running
//! there, rather than through an NFS client, is what makes them enforceable.

use crate::Error;
use clouder_node::shell::{quote, script};
use std::path::Path;

/// Runs bash scripts where the shared filesystem is mounted.
#[async_trait::async_trait]
pub trait Place: Send + Sync {
    /// Runs `script`; its stdout, or its stderr as the error.
    async fn run(&self, script: &str) -> Result<String, Error>;
}

/// This machine.
pub struct Local;

#[async_trait::async_trait]
impl Place for Local {
    async fn run(&self, text: &str) -> Result<String, Error> {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new("bash")
            .arg("-s")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| Error::Failed(format!("running bash: {e}")))?;
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| Error::Failed(format!("feeding bash: {e}")))?;
        drop(stdin);
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| Error::Failed(format!("running bash: {e}")))?;
        finished(
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            &String::from_utf8_lossy(&out.stderr),
        )
    }
}

/// A host reached over SSH (as root, or through `sudo -n`).
pub struct Remote(pub clouder_node::Session);

#[async_trait::async_trait]
impl Place for Remote {
    async fn run(&self, text: &str) -> Result<String, Error> {
        let host = self.0.host().label();
        let out = self
            .0
            .run("bash -s", Some(text.as_bytes()))
            .await
            .map_err(|e| Error::Failed(format!("{host}: {e}")))?;
        finished(out.ok(), out.stdout, &format!("{host}: {}", out.stderr))
    }
}

fn finished(ok: bool, stdout: String, stderr: &str) -> Result<String, Error> {
    if ok {
        Ok(stdout)
    } else {
        Err(Error::Failed(stderr.trim().to_string()))
    }
}

fn q(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

/// The scripts, one per operation.
pub mod scripts {
    use super::*;

    /// Fails unless `root` is a folder.
    pub fn is_folder(root: &Path) -> String {
        script([format!(
            "[ -d {r} ] || {{ printf 'storage root %s is not a folder\\n' {r} >&2; exit 1; }}",
            r = q(root)
        )])
    }

    /// The file's content, or nothing when it does not exist.
    pub fn read(path: &Path) -> String {
        script([format!("if [ -e {p} ]; then cat -- {p}; fi", p = q(path))])
    }

    /// Replaces `path` with `content` (mode 0600), making its folder.
    pub fn write(path: &Path, content: &str) -> String {
        script([clouder_node::shell::write_file(
            &path.to_string_lossy(),
            "0600",
            content,
        )])
    }

    /// A new user folder: group `gid`, setgid, rwx for owner and group only.
    pub fn make_folder(dir: &Path, gid: u32) -> String {
        let d = q(dir);
        script([
            format!("if [ -e {d} ]; then printf '%s exists already\\n' {d} >&2; exit 1; fi"),
            format!("mkdir -p -- {d}"),
            format!("chgrp {gid} {d}"),
            format!("chmod 2770 {d}"),
        ])
    }

    /// Moves `dir` to `kept`, making the trash folder.
    pub fn keep(dir: &Path, kept: &Path) -> String {
        let parent = kept.parent().unwrap_or(Path::new("/"));
        script([
            format!("mkdir -p -- {}", q(parent)),
            format!("mv -T -- {} {}", q(dir), q(kept)),
        ])
    }

    /// Deletes folders (a missing one is no error).
    pub fn delete(dirs: &[&Path]) -> String {
        let all: Vec<String> = dirs.iter().map(|d| q(d)).collect();
        script([format!("rm -rf -- {}", all.join(" "))])
    }

    /// Bytes each folder takes on disk (allocated blocks, this filesystem only): a number a line.
    pub fn usage(dirs: &[&Path]) -> String {
        let all: Vec<String> = dirs.iter().map(|d| q(d)).collect();
        script([format!("du -s -B1 -x -- {} | cut -f1", all.join(" "))])
    }

    /// The filesystem holding `root`: `FSTYPE OPTIONS TARGET`.
    pub fn filesystem(root: &Path) -> String {
        script([format!(
            "findmnt -n -o FSTYPE,OPTIONS,TARGET --target {}",
            q(root)
        )])
    }

    /// One `xfs_quota` expert command on the filesystem mounted at `mount`.
    pub fn xfs_quota(mount: &Path, command: &str) -> String {
        script([format!("xfs_quota -x -c {} {}", quote(command), q(mount))])
    }
}
