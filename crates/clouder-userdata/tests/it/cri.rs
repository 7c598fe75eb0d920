//! The node agent against real containerd 2.1 (clouder-testenv's CRI node, with a busybox image
//! pushed to a real registry): the container's pid comes from the runtime through CRI, the
//! folder is bound into the running container, which reads what the node wrote and writes back,
//! and detach takes it out again.

use clouder_checkpoint::backend::Registry;
use clouder_cri::api;
use clouder_testenv::cri::{CriNode, cri_rootfs};
use clouder_testenv::registry::RegistryPeer;
use clouder_userdata::agent::{Policy, attach, detach};
use clouder_userdata::attacher::{CriPids, Pids};
use std::path::{Path, PathBuf};

/// Runs `cmd` in the container (CRI ExecSync): its exit code and output.
async fn exec(node: &CriNode, container: &str, cmd: &[&str]) -> (i32, String) {
    let out = node
        .cri
        .runtime()
        .exec_sync(api::ExecSyncRequest {
            container_id: container.into(),
            cmd: cmd.iter().map(|c| c.to_string()).collect(),
            timeout: 10,
        })
        .await
        .unwrap_or_else(|e| panic!("ExecSync {cmd:?}: {e}\n{}", node.log()))
        .into_inner();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.exit_code, text)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_attaches_into_a_container_found_through_cri() {
    let registry = RegistryPeer::start(None);
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let busybox = clouder_checkpoint::testing::busybox_image(
        work.path(),
        &cri_rootfs().join("usr/bin/busybox"),
    );
    let repo = format!("{}/clouder-test/busybox", registry.host());
    clouder_checkpoint::push(&Registry::new(&repo, None).unwrap(), &busybox, "1")
        .await
        .unwrap();
    let image = format!("{repo}:1");
    let node = CriNode::start(&image).await;
    node.cri.pull(&image).await.unwrap();
    let (pod, pod_config) = node.run_pod("warm-0", "uid-warm-0").await;
    // The image's entrypoint sleeps: a warm runtime waiting for its user.
    let config = api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: "runtime".into(),
            attempt: 0,
        }),
        image: Some(clouder_cri::image_spec(&image)),
        log_path: "runtime/0.log".into(),
        linux: Some(clouder_cri::node_network_container()),
        ..Default::default()
    };
    let id = node
        .cri
        .create_and_start(&pod, &pod_config, config)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", node.log()));

    let pid = CriPids(node.cri.clone()).pid(&id).await.unwrap();
    // containerd runs in its own pid namespace here: its pids are seen through its /proc.
    let policy = Policy {
        proc: PathBuf::from(format!("/proc/{}/root/proc", node.runtime_pid())),
        ..Policy::new(work.path(), Path::new("/home"))
    };
    let cmdline = std::fs::read(policy.proc.join(format!("{pid}/cmdline"))).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("sleep 3600"),
        "pid {pid} is the container's entrypoint: {cmdline:?}"
    );

    let folder = work.path().join("users/alice");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("notes.txt"), "written on the node").unwrap();
    let target = Path::new("/home/user");
    attach(&policy, pid, &folder, target).unwrap();
    assert_eq!(
        exec(&node, &id, &["cat", "/home/user/notes.txt"]).await,
        (0, "written on the node".into())
    );
    let (code, _) = exec(
        &node,
        &id,
        &["sh", "-c", "echo from the container > /home/user/back.txt"],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read_to_string(folder.join("back.txt")).unwrap(),
        "from the container\n"
    );

    detach(&policy, pid, target).unwrap();
    assert_eq!(
        exec(&node, &id, &["ls", "-A", "/home/user"]).await,
        (0, String::new()),
        "the container's own (empty) folder is back"
    );
    assert!(folder.join("notes.txt").exists(), "the user's data stays");
}
