//! containerd 2.1 + runc + CRIU 4.x in the trixie root filesystem that `scripts/peers.sh` builds,
//! as a CRI node for tests: each test starts its own in temporary directories, stopped when dropped.

use clouder_cri::{Cri, api};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The trixie root filesystem with containerd, runc, CRIU, iptables and busybox.
pub fn cri_rootfs() -> PathBuf {
    crate::registry::installed(
        "CLOUDER_TEST_CRI_ROOTFS",
        "/var/tmp/clouder-rootfs/trixie-cri",
        "usr/sbin/criu",
    )
}

/// `cri-node.sh ROOTFS DIR [CMD…]`: the node's namespaces and mounts (see the script).
pub fn node_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cri-node.sh")
}

/// containerd 2.1 with runc and CRIU in the trixie root filesystem, in its own mount and pid
/// namespaces; killing the `unshare` kills every process of the node.
pub struct CriNode {
    child: Child,
    pub dir: tempfile::TempDir,
    pub cri: Cri,
}

impl CriNode {
    /// Starts containerd; `sandbox_image` (pullable from a registry) is its pause image.
    pub async fn start(sandbox_image: &str) -> Self {
        let rootfs = cri_rootfs();
        // Under /var/tmp, not a tmpfs /tmp: overlay upper dirs and CRIU images want a real disk.
        let dir = tempfile::Builder::new()
            .prefix("clouder-cri-")
            .tempdir_in("/var/tmp")
            .unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            containerd_config(sandbox_image),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let script = node_script();
        let child = Command::new("unshare")
            .args(["-m", "-p", "-f", "--kill-child"])
            .arg(script)
            .arg(&rootfs)
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("unshare (util-linux)");
        let socket = dir.path().join("run/containerd/containerd.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        let cri = loop {
            if socket.exists()
                && let Ok(cri) = Cri::connect(&socket).await
                && cri.version().await.is_ok()
            {
                break cri;
            }
            if Instant::now() > deadline {
                panic!(
                    "containerd did not start: {}",
                    std::fs::read_to_string(dir.path().join("containerd.log")).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        CriNode { child, dir, cri }
    }

    /// containerd's pid here (the `unshare` forks it, then the node script execs it): its
    /// `/proc/PID/root/proc` shows the node's pid namespace, where the runtime's pids are.
    pub fn runtime_pid(&self) -> u32 {
        let me = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap();
        children
            .split_whitespace()
            .next()
            .and_then(|pid| pid.parse().ok())
            .expect("the node's unshare has forked containerd")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// A checkpoint archive's path inside the node, and the same file seen from the test.
    pub fn archive(&self, name: &str) -> (String, PathBuf) {
        (
            format!("/checkpoints/{name}"),
            self.dir.path().join("checkpoints").join(name),
        )
    }

    /// A pod sandbox as the kubelet would ask for it, on the node's network (no CNI needed).
    pub async fn run_pod(&self, name: &str, uid: &str) -> (String, api::PodSandboxConfig) {
        let config = api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: name.to_string(),
                uid: uid.to_string(),
                namespace: "default".to_string(),
                attempt: 0,
            }),
            log_directory: format!("/var/log/pods/default_{name}_{uid}"),
            labels: HashMap::from([
                ("io.kubernetes.pod.name".to_string(), name.to_string()),
                (
                    "io.kubernetes.pod.namespace".to_string(),
                    "default".to_string(),
                ),
                ("io.kubernetes.pod.uid".to_string(), uid.to_string()),
            ]),
            linux: Some(clouder_cri::node_network_sandbox()),
            ..Default::default()
        };
        let id = self
            .cri
            .runtime()
            .run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}\n{}", self.log()))
            .into_inner()
            .pod_sandbox_id;
        (id, config)
    }

    /// The container's log (CRI format), read from outside the node.
    pub fn container_log(&self, pod: &api::PodSandboxConfig, log_path: &str) -> String {
        let dir = pod.log_directory.trim_start_matches("/var/log/pods/");
        std::fs::read_to_string(self.dir.path().join("pods").join(dir).join(log_path))
            .unwrap_or_default()
    }
}

impl Drop for CriNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_criu_logs(self.dir.path());
            if std::env::var_os("CLOUDER_TEST_KEEP").is_some() {
                self.dir.disable_cleanup(true);
                eprintln!("kept {}", self.dir.path().display());
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// containerd's configuration: native snapshotter (no overlay in overlay), the pinned sandbox
/// image, and the settings that runc needs in a nested pid namespace.
fn containerd_config(sandbox_image: &str) -> String {
    format!(
        r#"version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "native"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{sandbox_image}"

[plugins.'io.containerd.cri.v1.runtime']
  enable_cdi = false
  restrict_oom_score_adj = true

[[plugins.'io.containerd.transfer.v1.local'.unpack_config]]
  platform = "linux/amd64"
  snapshotter = "native"
"#
    )
}

/// CRIU's own logs under the node's directories: the reason behind "criu failed".
fn print_criu_logs(dir: &Path) {
    let mut pending = vec![dir.join("run"), dir.join("lib")];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path);
            } else if name.ends_with("restore.log") || name == "criu.log" {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<_> = text.lines().rev().take(40).collect();
                eprintln!("--- {} (last lines)", path.display());
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}
