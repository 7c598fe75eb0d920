//! Test helpers shared with other crates' tests: not part of the API.

use crate::image::{Content, OciImage, layer_of};
use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A checkpoint archive shaped like the runtime's (metadata files, CRIU images, the container
/// log) with `pages` bytes of memory image: for tests of images and backends that need no
/// runtime. The proof test uses a real one.
pub fn fake_archive(dir: &Path, name: &str, pages: usize, checkpointed_at: &str) -> PathBuf {
    let path = dir.join(name);
    let mut tar = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let config = serde_json::json!({
        "id": "0123abcd", "name": "app", "rootfsImage": "localhost:5000/app:1",
        "rootfsImageRef": "localhost:5000/app@sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "rootfsImageName": "localhost:5000/app:1", "runtime": "io.containerd.runc.v2",
        "createdTime": "2026-11-25T18:00:00Z", "checkpointedTime": checkpointed_at,
    });
    let status = serde_json::json!({
        "metadata": {"name": "app"},
        "labels": {"io.kubernetes.container.name": "app", "io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop"},
    });
    let memory: Vec<u8> = (0..pages).map(|i| (i * 7 % 251) as u8).collect();
    let (config, status) = (config.to_string(), status.to_string());
    let files: [(&str, &[u8]); 5] = [
        ("config.dump", config.as_bytes()),
        ("status.dump", status.as_bytes()),
        ("spec.dump", b"{}"),
        ("checkpoint/pages-1.img", &memory),
        ("container.log", b"2026-11-25T18:04:59Z stdout F 41\n"),
    ];
    for (file, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o600);
        header.set_size(bytes.len() as u64);
        header.set_mtime(0);
        tar.append_data(&mut header, file, bytes).unwrap();
    }
    tar.into_inner().unwrap();
    path
}

/// An image with `busybox` (static) and its applets as symlinks, whose entrypoint sleeps: the
/// pods' sandbox image and the counter's image. Written as a layer tar under `dir`.
pub fn busybox_image(dir: &Path, busybox: &Path) -> OciImage {
    let layer = dir.join("busybox-layer.tar");
    let mut tar = tar::Builder::new(std::fs::File::create(&layer).unwrap());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    header.set_mtime(0);
    for d in ["bin", "tmp", "proc", "sys", "dev", "etc"] {
        tar.append_data(&mut header.clone(), d, std::io::empty())
            .unwrap();
    }
    let bytes = std::fs::read(busybox).unwrap();
    let mut file = tar::Header::new_gnu();
    file.set_mode(0o755);
    file.set_size(bytes.len() as u64);
    file.set_mtime(0);
    tar.append_data(&mut file, "bin/busybox", bytes.as_slice())
        .unwrap();
    for applet in ["sh", "sleep", "cat", "echo", "head", "tr", "ls", "ps"] {
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_mode(0o777);
        link.set_size(0);
        link.set_mtime(0);
        tar.append_link(&mut link, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    tar.into_inner().unwrap();
    let config = ImageConfigurationBuilder::default().config(
        ConfigBuilder::default()
            .entrypoint(vec![
                "/bin/sh".to_string(),
                "-c".to_string(),
                "while :; do sleep 3600; done".to_string(),
            ])
            .env(vec!["PATH=/bin".to_string()])
            .build()
            .unwrap(),
    );
    OciImage::build(
        config,
        vec![(layer_of(&layer).unwrap(), Content::File(layer))],
        HashMap::new(),
    )
    .unwrap()
}
