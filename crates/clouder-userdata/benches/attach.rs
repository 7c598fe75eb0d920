//! Attach latency: a user's folder bound into a running process's mount namespace, 100 times
//! (each followed by a detach), against the cold start a new pod would need: a pod sandbox and
//! its container, with the folder as a mount, created and started through CRI on real
//! containerd 2.1 (the image already pulled; no kubelet or scheduler, so a lower bound). Needs
//! root and what scripts/peers.sh installs.
//! `cargo bench -p clouder-userdata --bench attach --profile dev` (the dev profile spares a
//! release build of the AWS SDK; the syscalls dominate either way).

use clouder_cri::api;
use clouder_testenv::cri::{CriNode, cri_rootfs};
use clouder_userdata::agent::{Policy, attach, detach};
use clouder_userdata::testing::Contained;
use std::time::{Duration, Instant};

const ROUNDS: usize = 100;
const POD_ROUNDS: usize = 10;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let storage = tempfile::tempdir().unwrap();
    let mounts = tempfile::tempdir_in("/run").unwrap();
    let source = storage.path().join("users/alice");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("notebook.ipynb"), vec![b'x'; 1 << 20]).unwrap();
    let policy = Policy {
        // The quota check scans the folder, as an attach of a watched user does.
        quota_bytes: Some(10 << 30),
        ..Policy::new(storage.path(), mounts.path())
    };
    let target = mounts.path().join("home/user");
    let process = Contained::start().expect("a process in its own mount namespace (run as root)");
    let mut attaches = Vec::with_capacity(ROUNDS);
    let mut detaches = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        attach(&policy, process.pid(), &source, &target).unwrap();
        attaches.push(t.elapsed());
        assert!(process.sees(&target).join("notebook.ipynb").exists());
        let t = Instant::now();
        detach(&policy, process.pid(), &target).unwrap();
        detaches.push(t.elapsed());
    }
    attaches.sort();
    detaches.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "attach x{ROUNDS}: p50 {:.2} ms  p95 {:.2} ms  max {:.2} ms  (target: p95 < 100 ms)",
        ms(percentile(&attaches, 0.50)),
        ms(percentile(&attaches, 0.95)),
        ms(*attaches.last().unwrap())
    );
    println!(
        "detach x{ROUNDS}: p50 {:.2} ms  p95 {:.2} ms",
        ms(percentile(&detaches, 0.50)),
        ms(percentile(&detaches, 0.95))
    );
    let mut starts = pod_starts().await;
    starts.sort();
    println!(
        "new pod with the folder via CRI x{POD_ROUNDS}: p50 {:.2} ms  p95 {:.2} ms  max {:.2} ms",
        ms(percentile(&starts, 0.50)),
        ms(percentile(&starts, 0.95)),
        ms(*starts.last().unwrap())
    );
}

/// Sandbox, then container with the folder mounted, created and started: each round's time.
async fn pod_starts() -> Vec<Duration> {
    let registry = clouder_testenv::RegistryPeer::start(None);
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let busybox = clouder_checkpoint::testing::busybox_image(
        work.path(),
        &cri_rootfs().join("usr/bin/busybox"),
    );
    let repo = format!("{}/clouder-test/busybox", registry.host());
    let backend = clouder_checkpoint::backend::Registry::new(&repo, None).unwrap();
    clouder_checkpoint::push(&backend, &busybox, "1")
        .await
        .unwrap();
    let image = format!("{repo}:1");
    let node = CriNode::start(&image).await;
    node.cri.pull(&image).await.unwrap();
    // A folder the node sees (its checkpoints directory is bound in from here).
    std::fs::create_dir_all(node.dir.path().join("checkpoints/users/alice")).unwrap();
    let mut runtime = node.cri.runtime();
    let mut starts = Vec::with_capacity(POD_ROUNDS);
    for round in 0..POD_ROUNDS {
        let t = Instant::now();
        let (sandbox, config) = node
            .run_pod(&format!("cold-{round}"), &format!("uid-{round}"))
            .await;
        let container = api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: "runtime".into(),
                attempt: 0,
            }),
            image: Some(clouder_cri::image_spec(&image)),
            mounts: vec![api::Mount {
                container_path: "/home/user".into(),
                host_path: "/checkpoints/users/alice".into(),
                ..Default::default()
            }],
            log_path: "runtime/0.log".into(),
            linux: Some(clouder_cri::node_network_container()),
            ..Default::default()
        };
        node.cri
            .create_and_start(&sandbox, &config, container)
            .await
            .unwrap();
        starts.push(t.elapsed());
        runtime
            .stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: sandbox.clone(),
            })
            .await
            .unwrap();
        runtime
            .remove_pod_sandbox(api::RemovePodSandboxRequest {
                pod_sandbox_id: sandbox,
            })
            .await
            .unwrap();
    }
    starts
}
