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

/// The process of "container" `c1`, as the CRI would name it.
struct OnePid(u32);

#[async_trait::async_trait]
impl clouder_userdata::attacher::Pids for OnePid {
    async fn pid(&self, container_id: &str) -> Result<u32, Error> {
        match container_id {
            "c1" => Ok(self.0),
            other => Err(Error::Failed(format!("no container {other}"))),
        }
    }
}

/// A running pod on node n1 whose container `app` is CRI container `c1`.
async fn runtime_pod(
    client: &kube::Client,
    name: &str,
) -> kube::Api<k8s_openapi::api::core::v1::Pod> {
    use kube::api::{Patch, PatchParams, PostParams};
    let pods = kube::Api::namespaced(client.clone(), "default");
    let pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "runtime:1"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = serde_json::json!({"status": {"phase": "Running", "containerStatuses": [{
        "name": "app", "ready": true, "restartCount": 0, "image": "runtime:1", "imageID": "i",
        "containerID": "containerd://c1", "state": {"running": {"startedAt": "2026-11-25T18:00:00Z"}},
    }]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    pods
}

async fn assign(pods: &kube::Api<k8s_openapi::api::core::v1::Pod>, name: &str, user: Option<&str>) {
    let patch = serde_json::json!({"metadata": {"annotations": {"clouder.io/user": user}}});
    pods.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
}

async fn annotation(
    pods: &kube::Api<k8s_openapi::api::core::v1::Pod>,
    name: &str,
    key: &str,
) -> Option<String> {
    pods.get(name)
        .await
        .unwrap()
        .metadata
        .annotations
        .and_then(|a| a.get(key).cloned())
}

#[tokio::test]
async fn the_agent_loop_attaches_assigned_users_and_detaches_when_they_go() {
    use clouder_userdata::attacher::{ATTACHED_ANNOTATION, Agent, REFUSED_ANNOTATION};
    let (_kube, client) = crate::support::testkube(false).await;
    let lab = Lab::new();
    let proc = Contained::start().expect("a process in its own mount namespace (needs root)");
    let pids = OnePid(proc.pid());
    let agent = Agent {
        client: client.clone(),
        node: "n1".into(),
        policy: lab.policy(),
        mount_path: lab.target(),
        pids: &pids,
    };
    let pods = runtime_pod(&client, "warm-0").await;
    assert!(
        agent.reconcile().await.unwrap().is_empty(),
        "an unassigned pod is left alone"
    );

    assign(&pods, "warm-0", Some("alice")).await;
    std::fs::write(lab.alice().join("hello"), "from the shared filesystem").unwrap();
    assert_eq!(
        agent.reconcile().await.unwrap(),
        ["attached default/warm-0 alice"]
    );
    assert_eq!(
        std::fs::read_to_string(proc.sees(&lab.target()).join("hello")).unwrap(),
        "from the shared filesystem"
    );
    assert_eq!(
        annotation(&pods, "warm-0", ATTACHED_ANNOTATION)
            .await
            .as_deref(),
        Some("alice")
    );
    assert!(
        agent.reconcile().await.unwrap().is_empty(),
        "settled: nothing to do"
    );

    assign(&pods, "warm-0", None).await;
    assert_eq!(
        agent.reconcile().await.unwrap(),
        ["detached default/warm-0 alice"]
    );
    assert!(!proc.sees(&lab.target()).join("hello").exists());
    assert_eq!(annotation(&pods, "warm-0", ATTACHED_ANNOTATION).await, None);

    // A user over quota is refused, with the reason on the pod and nothing mounted.
    let folders = clouder_userdata::storage::folders::Folders::open(lab.storage.path(), 0).unwrap();
    let bob = folders.create("bob", 1024).unwrap();
    std::fs::write(bob.path.join("big"), vec![0u8; 64 * 1024]).unwrap();
    let before = proc.mountinfo();
    assign(&pods, "warm-0", Some("bob")).await;
    let done = agent.reconcile().await.unwrap();
    assert!(
        done[0].starts_with("refused default/warm-0 bob"),
        "{done:?}"
    );
    assert!(
        annotation(&pods, "warm-0", REFUSED_ANNOTATION)
            .await
            .unwrap()
            .contains("over quota")
    );
    assert_eq!(proc.mountinfo(), before);
}
