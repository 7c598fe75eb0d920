//! Per-user folders on the shared filesystem: names and paths that cannot escape the storage
//! root, folders with quotas (XFS project quotas where the filesystem has them, a usage scan
//! otherwise), removal with a grace period, and the mount a runtime pod gets.

pub mod folders;
pub mod locate;
pub mod manifests;
pub mod place;
pub mod quota;

use crate::Error;
use crate::podspec::FolderMount;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Where user folders live under the storage root (and under the shared claim).
pub const USERS_DIR: &str = "users";

/// A user name is a DNS label (it names the folder and the user's namespace).
pub fn check_user(user: &str) -> Result<(), Error> {
    let ok = !user.is_empty()
        && user.len() <= 57
        && user
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !user.starts_with('-')
        && !user.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "user `{user}`: must be a DNS label (lower-case letters, digits and '-', at most 57 characters)"
        )))
    }
}

/// The namespace a user's runtime pods and secrets live in.
pub fn user_namespace(user: &str) -> String {
    format!("user-{user}")
}

/// The mount a runtime pod of `user` gets: their folder on `claim` at `mount_path`.
pub fn mount_spec(
    user: &str,
    claim: &str,
    mount_path: &str,
    fs_group: i64,
) -> Result<FolderMount, Error> {
    check_user(user)?;
    Ok(FolderMount {
        claim: claim.into(),
        sub_path: format!("{USERS_DIR}/{user}"),
        mount_path: mount_path.into(),
        fs_group,
    })
}

/// `path` (relative to `root`, or absolute under it) as a real folder under `root`: no `..`,
/// and no symlink anywhere between `root` and the end.
pub fn resolve_under(root: &Path, path: &Path) -> Result<PathBuf, Error> {
    let refuse = |why: &str| {
        Error::Refused(format!(
            "{} escapes the storage root {}: {why}",
            path.display(),
            root.display()
        ))
    };
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(refuse("`.` or `..` in the path"));
    }
    let joined = if path.is_absolute() {
        if !path.starts_with(root) {
            return Err(refuse("an absolute path outside it"));
        }
        path.to_path_buf()
    } else {
        root.join(path)
    };
    let real_root = root
        .canonicalize()
        .map_err(|e| Error::Failed(format!("storage root {}: {e}", root.display())))?;
    let relative = joined.strip_prefix(root).expect("joined under root");
    let real = joined
        .canonicalize()
        .map_err(|e| Error::Refused(format!("{}: {e}", joined.display())))?;
    if real != real_root.join(relative) {
        return Err(refuse("a symlink on the way"));
    }
    Ok(real)
}

/// Bytes a folder takes on disk (allocated blocks, as `du`), without following symlinks or
/// leaving its filesystem.
pub fn usage(dir: &Path) -> Result<u64, Error> {
    let io = |p: &Path, e: std::io::Error| Error::Failed(format!("{}: {e}", p.display()));
    let top = std::fs::symlink_metadata(dir).map_err(|e| io(dir, e))?;
    let mut total = top.blocks() * 512;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| io(&d, e))? {
            let entry = entry.map_err(|e| io(&d, e))?;
            let meta = entry.metadata().map_err(|e| io(&entry.path(), e))?;
            if meta.dev() != top.dev() {
                continue;
            }
            total += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(total)
}

/// A size such as `10Gi`, `500Mi`, `1G` or a byte count.
pub fn parse_size(s: &str) -> Result<u64, Error> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    let n: u64 = digits.parse().map_err(|_| {
        Error::Invalid(format!(
            "size `{s}`: expected a number with an optional unit (Ki, Mi, Gi, Ti, K, M, G, T)"
        ))
    })?;
    let factor: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => {
            return Err(Error::Invalid(format!(
                "size `{s}`: unknown unit `{unit}` (Ki, Mi, Gi, Ti, K, M, G, T)"
            )));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| Error::Invalid(format!("size `{s}`: too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        for ok in ["alice", "a", "bob-2", "x1"] {
            check_user(ok).unwrap();
        }
        for bad in [
            "",
            "..",
            "a/b",
            "/abs",
            "Alice",
            "-a",
            "a-",
            "a_b",
            &"a".repeat(58),
        ] {
            assert!(matches!(check_user(bad), Err(Error::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10Gi").unwrap(), 10 << 30);
        assert_eq!(parse_size("1G").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("1Qi").is_err());
        assert!(parse_size("99999999999Ti").is_err());
    }

    #[test]
    fn paths_stay_under_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("users/alice")).unwrap();
        std::fs::create_dir_all(r.join("outside")).unwrap();
        std::os::unix::fs::symlink("/etc", r.join("users/evil")).unwrap();
        std::os::unix::fs::symlink(r.join("users/alice"), r.join("users/alias")).unwrap();
        let real_alice = r.join("users/alice").canonicalize().unwrap();
        assert_eq!(
            resolve_under(r, Path::new("users/alice")).unwrap(),
            real_alice
        );
        assert_eq!(
            resolve_under(r, &r.join("users/alice")).unwrap(),
            real_alice
        );
        for bad in ["users/../outside", "/etc", "users/evil", "users/alias"] {
            assert!(
                matches!(resolve_under(r, Path::new(bad)), Err(Error::Refused(_))),
                "{bad}"
            );
        }
    }
}
