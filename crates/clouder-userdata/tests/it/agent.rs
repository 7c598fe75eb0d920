//! The node agent for real: a process in its own mount namespace (`unshare -m`) gets a folder
//! attached and detached, sees files written from outside, and every refusal leaves its mounts
//! as they were.

use clouder_userdata::Error;
use clouder_userdata::agent::{Policy, attach, detach};
use clouder_userdata::testing::Contained;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A storage root with alice's folder, and a mount root for targets; both removed on drop.
pub struct Lab {
    pub storage: tempfile::TempDir,
    pub mounts: tempfile::TempDir,
}

impl Lab {
    pub fn new() -> Lab {
        let lab = Lab {
            storage: tempfile::tempdir().unwrap(),
            mounts: tempfile::tempdir_in("/run").unwrap(),
        };
        std::fs::create_dir_all(lab.storage.path().join("users/alice")).unwrap();
        lab
    }
    pub fn policy(&self) -> Policy {
        Policy {
            storage_root: self.storage.path().to_path_buf(),
            mount_root: self.mounts.path().to_path_buf(),
            cgroup_marker: None,
            quota_bytes: None,
        }
    }
    pub fn alice(&self) -> PathBuf {
        self.storage.path().join("users/alice")
    }
    pub fn target(&self) -> PathBuf {
        self.mounts.path().join("home/work")
    }
}

#[test]
fn attach_shows_the_folder_inside_only_and_detach_takes_it_away() {
    let lab = Lab::new();
    let proc = Contained::start().expect("a process in its own mount namespace (needs root)");
    let policy = lab.policy();
    attach(&policy, proc.pid(), &lab.alice(), &lab.target()).unwrap();

    std::fs::write(lab.alice().join("notes.txt"), "written outside").unwrap();
    let inside = std::fs::read_to_string(proc.sees(&lab.target()).join("notes.txt")).unwrap();
    assert_eq!(inside, "written outside");
    let listed = Command::new("nsenter")
        .args(["-t", &proc.pid().to_string(), "-m", "ls"])
        .arg(lab.target())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "notes.txt");
    assert!(
        !lab.target().join("notes.txt").exists(),
        "the agent's own namespace is untouched"
    );

    let twice = attach(&policy, proc.pid(), &lab.alice(), &lab.target());
    assert!(matches!(twice, Err(Error::Refused(m)) if m.contains("already")));

    detach(&policy, proc.pid(), &lab.target()).unwrap();
    assert!(!proc.sees(&lab.target()).join("notes.txt").exists());
    assert!(!proc.mountinfo().contains(lab.target().to_str().unwrap()));
    let again = detach(&policy, proc.pid(), &lab.target());
    assert!(matches!(again, Err(Error::Refused(m)) if m.contains("nothing is mounted")));
}

#[test]
fn refusals_mount_nothing() {
    let lab = Lab::new();
    let proc = Contained::start().expect("a process in its own mount namespace (needs root)");
    let before = proc.mountinfo();
    std::fs::create_dir_all(lab.storage.path().join("outside")).unwrap();
    std::os::unix::fs::symlink("/etc", lab.storage.path().join("users/evil")).unwrap();
    std::os::unix::fs::symlink("/etc", lab.mounts.path().join("link")).unwrap();
    std::fs::write(lab.alice().join("big"), vec![7u8; 64 * 1024]).unwrap();
    let target = lab.target();
    let policy = lab.policy();
    let quota = Policy {
        quota_bytes: Some(4096),
        ..lab.policy()
    };
    let kubepods = Policy {
        cgroup_marker: Some("kubepods".into()),
        ..lab.policy()
    };
    let mine = std::process::id();
    let cases: Vec<(&str, &Policy, u32, PathBuf, PathBuf, &str)> = vec![
        (
            "source with ..",
            &policy,
            proc.pid(),
            lab.storage.path().join("users/../outside"),
            target.clone(),
            "escapes",
        ),
        (
            "source outside the root",
            &policy,
            proc.pid(),
            PathBuf::from("/etc"),
            target.clone(),
            "escapes",
        ),
        (
            "source through a symlink",
            &policy,
            proc.pid(),
            lab.storage.path().join("users/evil"),
            target.clone(),
            "escapes",
        ),
        (
            "relative target",
            &policy,
            proc.pid(),
            lab.alice(),
            PathBuf::from("home/work"),
            "mount root",
        ),
        (
            "target outside the mount root",
            &policy,
            proc.pid(),
            lab.alice(),
            PathBuf::from("/etc/work"),
            "mount root",
        ),
        (
            "target with ..",
            &policy,
            proc.pid(),
            lab.alice(),
            lab.mounts.path().join("home/../../etc"),
            "mount root",
        ),
        (
            "target through a symlink",
            &policy,
            proc.pid(),
            lab.alice(),
            lab.mounts.path().join("link/work"),
            "symlink",
        ),
        (
            "the agent's own namespace",
            &policy,
            mine,
            lab.alice(),
            target.clone(),
            "shares the agent's mount namespace",
        ),
        (
            "no such process",
            &policy,
            u32::MAX - 1,
            lab.alice(),
            target.clone(),
            "no process",
        ),
        (
            "not in a kubepods cgroup",
            &kubepods,
            proc.pid(),
            lab.alice(),
            target.clone(),
            "kubepods",
        ),
        (
            "over quota",
            &quota,
            proc.pid(),
            lab.alice(),
            target.clone(),
            "over its quota",
        ),
    ];
    for (case, policy, pid, source, target, why) in cases {
        let r = attach(policy, pid, &source, &target);
        assert!(
            matches!(&r, Err(Error::Refused(m)) if m.contains(why)),
            "{case}: {r:?}"
        );
        assert_eq!(proc.mountinfo(), before, "{case}: nothing mounted");
    }
    assert!(!lab.mounts.path().join("etc").exists() && !Path::new("/etc/work").exists());
}
