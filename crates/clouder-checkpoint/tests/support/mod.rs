//! Real peers for the checkpoint tests: Debian's docker-registry and containerd 2.1 + runc +
//! CRIU 4.x (clouder-testenv's [`Node`]). Each test starts its own, on free ports and in
//! temporary directories, and stops them when dropped.

#![allow(dead_code)]

#[allow(unused_imports)]
pub use clouder_testenv::kubelet;

use clouder_checkpoint::cri::api;
use clouder_checkpoint::image::OciImage;
use std::collections::HashMap;
use std::path::Path;

#[allow(unused_imports)]
pub use clouder_testenv::cri::{CriNode as Node, cri_rootfs, node_script};
#[allow(unused_imports)]
pub use clouder_testenv::registry::{RegistryPeer, free_port, installed, wait_for};

/// The busybox image of the trixie root filesystem: the pods' sandbox image and the counter's.
pub fn busybox_image(dir: &Path) -> OciImage {
    clouder_checkpoint::testing::busybox_image(dir, &cri_rootfs().join("usr/bin/busybox"))
}

#[allow(unused_imports)]
pub use clouder_checkpoint::testing::fake_archive;

/// The moto server (S3), one per test binary.
pub fn moto() -> String {
    clouder_testenv::moto::endpoint().to_string()
}

/// Azurite's blob service, one per test binary: its endpoint for the well-known dev account.
pub fn azurite() -> String {
    clouder_testenv::azurite::endpoint().to_string()
}

#[allow(unused_imports)]
pub use clouder_testenv::azurite::{ACCOUNT as AZURITE_ACCOUNT, KEY as AZURITE_KEY};

/// A container named `counter` running `script` with busybox's shell, its own pid namespace,
/// logging to `counter/0.log`.
pub fn counter_container(
    image: &str,
    script: &str,
    labels: HashMap<String, String>,
) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: "counter".into(),
            attempt: 0,
        }),
        image: Some(clouder_checkpoint::cri::image_spec(image)),
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        log_path: "counter/0.log".into(),
        labels,
        linux: Some(clouder_checkpoint::cri::node_network_container()),
        ..Default::default()
    }
}

/// Stops and removes pod sandbox `pod` with its containers.
pub async fn remove_pod(node: &Node, pod: &str) {
    let mut runtime = node.cri.runtime();
    runtime
        .stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: pod.to_string(),
        })
        .await
        .unwrap();
    runtime
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: pod.to_string(),
        })
        .await
        .unwrap();
}
