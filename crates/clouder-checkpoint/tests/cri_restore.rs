//! THE PROOF: a counter runs in real containerd 2.1 under runc, is checkpointed through CRI (the
//! call the kubelet makes), becomes an OCI checkpoint image pushed to a real registry, is removed,
//! and is restored through CRI from that image — and counts on from where it was, so its memory
//! survived.

mod support;

use clouder_checkpoint::backend::{LocalDir, Registry};
use clouder_checkpoint::cri::api;
use clouder_checkpoint::{CheckpointImage, push};
use std::collections::HashMap;
use std::time::Duration;
use support::{Node, RegistryPeer, busybox_image, remove_pod};

const COUNTER: &str = "i=0; while :; do echo $i; i=$((i+1)); sleep 0.2; done";

fn counter(image: &str, pod: &api::PodSandboxConfig) -> api::ContainerConfig {
    let pod_name = pod.metadata.as_ref().unwrap().name.clone();
    let labels = HashMap::from([
        ("io.kubernetes.container.name".into(), "counter".into()),
        ("io.kubernetes.pod.name".into(), pod_name),
        ("io.kubernetes.pod.namespace".into(), "default".into()),
    ]);
    support::counter_container(image, COUNTER, labels)
}

/// The counter values in a CRI log (`TIME STREAM TAG VALUE`) written at or after `since`.
fn counts(log: &str, since: jiff::Timestamp) -> Vec<u64> {
    log.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(4, ' ');
            let time: jiff::Timestamp = fields.next()?.parse().ok()?;
            let value = fields.nth(2)?.trim().parse().ok()?;
            (time >= since).then_some(value)
        })
        .collect()
}

/// The last counter value in the container log that the runtime put into the archive.
fn last_count_in_archive(archive: &std::path::Path) -> u64 {
    clouder_checkpoint::image::last_output(archive)
        .unwrap()
        .expect("the archived log has counts")
        .trim()
        .parse()
        .unwrap()
}

async fn wait_until<T>(what: &str, node: &Node, mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = probe() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{what} did not happen in 15 s; containerd log:\n{}",
        node.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn restored_counter_continues_from_its_checkpoint() {
    let registry = RegistryPeer::start(None);
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let base = Registry::new(&format!("{}/clouder-test/busybox", registry.host()), None).unwrap();
    push(&base, &busybox_image(work.path()), "1").await.unwrap();
    let image = format!("{}/clouder-test/busybox:1", registry.host());
    let node = Node::start(&image).await;
    node.cri.pull(&image).await.unwrap();

    // A counter, running long enough that a restart from zero cannot pass for a restore.
    let (pod, pod_config) = node.run_pod("counter", "uid-original").await;
    let id = node
        .cri
        .create_and_start(&pod, &pod_config, counter(&image, &pod_config))
        .await
        .unwrap();
    wait_until("the counter reaching 10", &node, || {
        (counts(
            &node.container_log(&pod_config, "counter/0.log"),
            jiff::Timestamp::UNIX_EPOCH,
        )
        .last()
            >= Some(&10))
        .then_some(())
    })
    .await;

    let (inside, archive) = node.archive("counter.tar");
    node.cri
        .checkpoint(&id, &inside, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}\ncontainerd log:\n{}", node.log()));
    let checkpointed = last_count_in_archive(&archive);

    // The original goes away entirely.
    remove_pod(&node, &pod).await;
    let mut runtime = node.cri.runtime();
    let left = runtime
        .list_containers(api::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        left.containers.is_empty(),
        "the original container is gone: {left:?}"
    );

    // The archive becomes an OCI checkpoint image in the registry.
    let archive_path = archive.clone();
    let image_of = tokio::task::spawn_blocking(move || {
        CheckpointImage::from_archive(&archive_path, Some("node-1"))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(image_of.metadata.container, "counter");
    assert_eq!(image_of.metadata.pod.as_deref(), Some("counter"));
    assert_eq!(image_of.metadata.namespace.as_deref(), Some("default"));
    assert!(
        image_of
            .metadata
            .image_ref
            .starts_with(&format!("{}/clouder-test/busybox@sha256:", registry.host())),
        "the base image is recorded as a pullable NAME@DIGEST: {}",
        image_of.metadata.image_ref
    );
    let checkpoints = Registry::new(
        &format!("{}/clouder-test/checkpoints", registry.host()),
        None,
    )
    .unwrap();
    let pushed = push(&checkpoints, &image_of.oci, "counter-1")
        .await
        .unwrap();
    assert_eq!(
        pushed.uploaded.len(),
        2,
        "layer and config uploaded: {pushed:?}"
    );

    // Restore: a new pod whose container image is the checkpoint image.
    node.cri.pull(&pushed.reference).await.unwrap();
    let (pod, _) =
        restore_and_count(&node, &pushed.reference, "counter-restored", checkpointed).await;
    remove_pod(&node, &pod).await;

    // The same image kept in a local directory instead: read back as an OCI image archive and
    // streamed into the node's containerd (`ctr images import`, as restore does over SSH),
    // then restored without any pull.
    let layout = LocalDir::new(work.path().join("layout"));
    push(&layout, &image_of.oci, "counter-1").await.unwrap();
    let imported = import(&node, &layout, "counter-1").await;
    assert_eq!(imported, "localhost/clouder-checkpoint:counter-1");
    restore_and_count(&node, &imported, "counter-imported", checkpointed).await;
}

/// Streams the image `tag` of `backend` into the node's containerd (`k8s.io` namespace) through
/// the real `ctr images import -`; returns the image's name there.
async fn import(node: &Node, backend: &dyn clouder_checkpoint::Backend, tag: &str) -> String {
    use tokio::io::AsyncWriteExt as _;
    let socket = node.dir.path().join("run/containerd/containerd.sock");
    let mut ctr = tokio::process::Command::new(support::cri_rootfs().join("usr/bin/ctr"))
        .arg(format!("--address={}", socket.display()))
        .args(clouder_checkpoint::archive::import_command_args(
            "localhost/clouder-checkpoint",
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = ctr.stdin.take().unwrap();
    let written = clouder_checkpoint::archive::write(backend, tag, &mut stdin)
        .await
        .unwrap();
    stdin.shutdown().await.unwrap();
    drop(stdin);
    let out = ctr.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "ctr import: {}\n{}\ncontainerd log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
    eprintln!(
        "imported {written} bytes: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    format!("localhost/clouder-checkpoint:{tag}")
}

/// Restores `image` as pod `name` and checks that it counts on from `checkpointed`.
async fn restore_and_count(
    node: &Node,
    image: &str,
    name: &str,
    checkpointed: u64,
) -> (String, api::PodSandboxConfig) {
    let mut runtime = node.cri.runtime();
    let restore_started = jiff::Timestamp::now();
    let (pod, pod_config) = node.run_pod(name, &format!("uid-{name}")).await;
    let restored = node
        .cri
        .create_and_start(&pod, &pod_config, counter(image, &pod_config))
        .await
        .unwrap_or_else(|e| panic!("{e}\ncontainerd log:\n{}", node.log()));
    let status = runtime
        .container_status(api::ContainerStatusRequest {
            container_id: restored,
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(status.state, api::ContainerState::ContainerRunning as i32);
    assert_eq!(
        status.annotations.get("restored").map(String::as_str),
        Some("true"),
        "{status:?}"
    );

    let after = wait_until("three counts from the restored counter", node, || {
        let after = counts(
            &node.container_log(&pod_config, "counter/0.log"),
            restore_started,
        );
        (after.len() >= 3).then_some(after)
    })
    .await;
    // The dump happened before the runtime copied the log into the archive, so the first value
    // the restored process prints is the archived last value or the one after it — never 0.
    assert!(
        after[0] == checkpointed || after[0] == checkpointed + 1,
        "restored counter starts at {} but was checkpointed at {checkpointed}: {after:?}",
        after[0]
    );
    assert_eq!(after[1], after[0] + 1, "and keeps counting: {after:?}");
    assert_eq!(after[2], after[1] + 1, "and keeps counting: {after:?}");
    eprintln!("checkpointed at {checkpointed}, {name} counting {after:?}");
    (pod, pod_config)
}
