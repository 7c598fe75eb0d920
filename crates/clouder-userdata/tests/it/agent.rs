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
        Policy::new(self.storage.path(), self.mounts.path())
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

/// A running pod on node n1 whose container `app` is CRI container `c1`, with the runtime's
/// group as `fsGroup`.
async fn runtime_pod(
    client: &kube::Client,
    name: &str,
) -> kube::Api<k8s_openapi::api::core::v1::Pod> {
    use kube::api::{Patch, PatchParams, PostParams};
    let pods = kube::Api::namespaced(client.clone(), "default");
    let pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": "n1",
            "securityContext": {"fsGroup": FS_GROUP},
            "containers": [{"name": "app", "image": "runtime:1"}],
        },
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

const FS_GROUP: u32 = 4321;

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

/// Waits up to 15 s for `probe` to hold.
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) {
    for _ in 0..300 {
        if probe().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen in 15 s");
}

/// Alice's Secret in her namespace, as `secrets set` makes it.
async fn put_secret(client: &kube::Client, data: &[(&str, &str)]) {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Patch, PatchParams};
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("clouder-user-secrets".into()),
            namespace: Some("user-alice".into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    kube::Api::<Secret>::namespaced(client.clone(), "user-alice")
        .patch(
            "clouder-user-secrets",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .unwrap();
}

/// Everything logged on this thread, at every level.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

const MARKER: &str = "MARKER-5f0c9e-never-in-a-log";

/// The agent, watching: a warm pod assigned to alice gets her folder and her secrets as files
/// (read-only, 0440, the pod's group), rewritten when her Secret changes, both taken out when
/// the assignment goes or the pod goes; an over-quota user is refused with nothing mounted. No
/// secret value reaches the agent's logs.
#[tokio::test(flavor = "current_thread")]
async fn the_agent_watches_pods_and_secrets_of_its_node() {
    use clouder_userdata::attacher::{ATTACHED_ANNOTATION, Agent, REFUSED_ANNOTATION};
    use clouder_userdata::podspec::SECRETS_DIR;
    use std::os::unix::fs::MetadataExt;
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // current_thread: the agent's task runs on this thread, under this subscriber.
    let _logging = tracing::subscriber::set_default(subscriber);
    let (_kube, client) = crate::support::testkube(false).await;
    let lab = Lab::new();
    let secrets_root = tempfile::tempdir_in("/run").unwrap();
    let proc = Contained::start().expect("a process in its own mount namespace (needs root)");
    let pids = OnePid(proc.pid());
    let agent = Agent::new(client.clone(), "n1", lab.policy(), &lab.target(), &pids)
        .with_secrets(secrets_root.path());
    let namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "user-alice"}}));
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&Default::default(), &namespace.unwrap())
        .await
        .unwrap();
    put_secret(&client, &[("API_TOKEN", MARKER)]).await;
    let pods = runtime_pod(&client, "warm-0").await;
    let secret_file = proc.sees(Path::new(SECRETS_DIR)).join("API_TOKEN");
    let restarted_root = tempfile::tempdir_in("/run").unwrap();
    let tmpfs_left = || std::fs::read_dir(restarted_root.path()).unwrap().count();

    let before_restart = async {
        assign(&pods, "warm-0", Some("alice")).await;
        std::fs::write(lab.alice().join("hello"), "from the shared filesystem").unwrap();
        eventually("alice attached", || async {
            annotation(&pods, "warm-0", ATTACHED_ANNOTATION)
                .await
                .as_deref()
                == Some("alice")
        })
        .await;
        assert_eq!(
            std::fs::read_to_string(proc.sees(&lab.target()).join("hello")).unwrap(),
            "from the shared filesystem"
        );
        assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), MARKER);
        let meta = std::fs::metadata(&secret_file).unwrap();
        assert_eq!((meta.mode() & 0o777, meta.gid()), (0o440, FS_GROUP));
        let write = std::fs::OpenOptions::new().append(true).open(&secret_file);
        assert_eq!(
            write.unwrap_err().raw_os_error(),
            Some(30),
            "read-only in the container (EROFS)"
        );

        // `secrets sync` rotated a value and added one: rewritten in place.
        put_secret(
            &client,
            &[("API_TOKEN", "rotated"), ("DB_URL", "postgres://db")],
        )
        .await;
        eventually("the rotated value", || async {
            std::fs::read_to_string(&secret_file).ok().as_deref() == Some("rotated")
        })
        .await;
        assert_eq!(
            std::fs::read_to_string(secret_file.with_file_name("DB_URL")).unwrap(),
            "postgres://db"
        );
    };
    tokio::select! {
        () = agent.run() => panic!("the agent stopped"),
        () = before_restart => {}
    }

    // The agent restarts: its container, and the tmpfs mounts it made there, are gone; the new
    // one knows nothing but what the pod says, binds alice afresh and keeps her files current.
    drop(agent);
    for dir in std::fs::read_dir(secrets_root.path()).unwrap() {
        let dir = dir.unwrap().path();
        rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH).unwrap();
    }
    let agent = Agent::new(client.clone(), "n1", lab.policy(), &lab.target(), &pids)
        .with_secrets(restarted_root.path());
    let after_restart = async {
        eventually("alice bound again by the new agent", || async {
            tmpfs_left() == 1
        })
        .await;
        put_secret(&client, &[("API_TOKEN", "rotated-again")]).await;
        eventually("the value rotated after the restart", || async {
            std::fs::read_to_string(&secret_file).ok().as_deref() == Some("rotated-again")
        })
        .await;
        assert!(
            !secret_file.with_file_name("DB_URL").exists(),
            "a key gone from the Secret goes"
        );
        assert_eq!(
            proc.mountinfo().matches(SECRETS_DIR).count(),
            1,
            "the old bind was replaced, not stacked"
        );

        assign(&pods, "warm-0", None).await;
        eventually("alice detached", || async {
            annotation(&pods, "warm-0", ATTACHED_ANNOTATION)
                .await
                .is_none()
        })
        .await;
        assert!(!proc.sees(&lab.target()).join("hello").exists());
        assert!(!secret_file.exists() && !proc.mountinfo().contains(SECRETS_DIR));
        assert_eq!(tmpfs_left(), 0, "the secrets' tmpfs is wiped");

        // A user over quota is refused, with the reason on the pod and nothing mounted.
        let local = clouder_userdata::storage::place::Local;
        let folders =
            clouder_userdata::storage::folders::Folders::open(&local, lab.storage.path(), 0)
                .await
                .unwrap();
        let bob = folders.create("bob", 1024).await.unwrap();
        std::fs::write(bob.path.join("big"), vec![0u8; 64 * 1024]).unwrap();
        let before = proc.mountinfo();
        assign(&pods, "warm-0", Some("bob")).await;
        eventually("bob refused", || async {
            annotation(&pods, "warm-0", REFUSED_ANNOTATION)
                .await
                .is_some_and(|why| why.contains("over quota"))
        })
        .await;
        assert_eq!(proc.mountinfo(), before);

        // The pod goes while alice is attached: everything is taken out.
        assign(&pods, "warm-0", Some("alice")).await;
        eventually("alice attached again", || async {
            annotation(&pods, "warm-0", ATTACHED_ANNOTATION)
                .await
                .as_deref()
                == Some("alice")
        })
        .await;
        assert!(secret_file.exists());
        pods.delete(
            "warm-0",
            &kube::api::DeleteParams::default().grace_period(0),
        )
        .await
        .unwrap();
        eventually("the pod's mounts gone", || async {
            !proc.mountinfo().contains(lab.target().to_str().unwrap()) && tmpfs_left() == 0
        })
        .await;
        assert!(!secret_file.exists());
    };
    tokio::select! {
        () = agent.run() => panic!("the agent stopped"),
        () = after_restart => {}
    }
    let logs = logs.text();
    assert!(logs.contains("attached default/warm-0 alice"), "{logs}");
    assert!(logs.contains("the pod is gone"), "{logs}");
    for value in [MARKER, "rotated", "postgres://db", "rotated-again"] {
        assert!(!logs.contains(value), "a secret value in the agent's logs");
    }
}
