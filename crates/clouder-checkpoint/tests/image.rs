//! OCI checkpoint images from archives: metadata, annotations, deterministic digests, and clear
//! errors for what is not a checkpoint archive.

mod support;

use clouder_checkpoint::image::{ANNOTATION_CONTAINER_NAME, ANNOTATION_LEGACY_NAME, ImageError};
use clouder_checkpoint::{CheckpointImage, Metadata};
use support::fake_archive;

const AT: &str = "2026-11-25T18:05:00.123456789Z";

#[test]
fn an_archive_becomes_an_annotated_single_layer_image() {
    let dir = tempfile::tempdir().unwrap();
    let archive = fake_archive(dir.path(), "a.tar", 4096, AT);
    let image = CheckpointImage::from_archive(&archive, Some("node-1")).unwrap();
    assert_eq!(
        image.metadata,
        Metadata {
            container: "app".into(),
            container_id: "0123abcd".into(),
            pod: Some("web-0".into()),
            namespace: Some("shop".into()),
            image: "localhost:5000/app:1".into(),
            image_ref: "localhost:5000/app@sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
            runtime: "io.containerd.runc.v2".into(),
            checkpointed_at: "2026-11-25T18:05:00.123456789Z".into(),
            node: Some("node-1".into()),
        }
    );
    let manifest: serde_json::Value = serde_json::from_slice(&image.oci.manifest_json).unwrap();
    let annotations = &manifest["annotations"];
    assert_eq!(annotations[ANNOTATION_CONTAINER_NAME], "app");
    assert_eq!(annotations[ANNOTATION_LEGACY_NAME], "app");
    assert_eq!(annotations["org.criu.checkpoint.pod.name"], "web-0");
    assert_eq!(annotations["org.criu.checkpoint.pod.namespace"], "shop");
    assert_eq!(annotations["io.clouder.checkpoint.node"], "node-1");
    assert_eq!(
        annotations["org.opencontainers.image.created"],
        "2026-11-25T18:05:00.123456789Z"
    );
    // The archive itself is the one layer, uncompressed: its digest is the file's.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(layers[0]["digest"], image.layer.digest);
    // Digested in the same read that found the metadata: the whole file's, end blocks included.
    let (digest, size) = clouder_checkpoint::image::sha256_file(&archive).unwrap();
    assert_eq!((&image.layer.digest, image.layer.size), (&digest, size));
    assert_eq!(
        layers[0]["size"],
        std::fs::metadata(&archive).unwrap().len()
    );
    let config: serde_json::Value = serde_json::from_slice(match &image.oci.blobs[1].1 {
        clouder_checkpoint::image::Content::Bytes(b) => b,
        other => panic!("config is in memory: {other:?}"),
    })
    .unwrap();
    assert_eq!(config["rootfs"]["diff_ids"][0], image.layer.digest);
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
}

#[test]
fn the_same_archive_always_gives_the_same_digests() {
    let dir = tempfile::tempdir().unwrap();
    let archive = fake_archive(dir.path(), "a.tar", 4096, AT);
    let first = CheckpointImage::from_archive(&archive, Some("node-1")).unwrap();
    let second = CheckpointImage::from_archive(&archive, Some("node-1")).unwrap();
    assert_eq!(first.oci.manifest, second.oci.manifest);
    assert_eq!(first.oci.manifest_json, second.oci.manifest_json);
    let other_node = CheckpointImage::from_archive(&archive, Some("node-2")).unwrap();
    assert_ne!(first.oci.manifest.digest, other_node.oci.manifest.digest);
    assert_eq!(
        first.layer, other_node.layer,
        "the layer is the archive's, whatever the metadata"
    );
}

#[test]
fn what_is_not_a_checkpoint_archive_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.tar");
    std::fs::write(&garbage, vec![0x5a; 3000]).unwrap();
    let err = CheckpointImage::from_archive(&garbage, None).unwrap_err();
    assert!(matches!(err, ImageError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("garbage.tar is not a readable tar archive"),
        "{err}"
    );

    let mut tar = tar::Builder::new(std::fs::File::create(dir.path().join("plain.tar")).unwrap());
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    tar.append_data(&mut header, "hello.txt", &b"hello"[..])
        .unwrap();
    tar.into_inner().unwrap();
    let err = CheckpointImage::from_archive(&dir.path().join("plain.tar"), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is not a container checkpoint archive: it has no checkpoint/*.img (CRIU images)",
            dir.path().join("plain.tar").display()
        )
    );

    let truncated = dir.path().join("truncated.tar");
    let full = std::fs::read(fake_archive(dir.path(), "full.tar", 100_000, AT)).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let err = CheckpointImage::from_archive(&truncated, None).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("is truncated (checkpoint/pages-1.img ends past the end of the file)"),
        "{err}"
    );

    let err = CheckpointImage::from_archive(&dir.path().join("missing.tar"), None).unwrap_err();
    assert!(matches!(err, ImageError::Read { .. }), "{err:?}");
}

#[test]
fn the_last_output_before_the_checkpoint_is_read_from_the_archived_log() {
    let dir = tempfile::tempdir().unwrap();
    let archive = fake_archive(dir.path(), "a.tar", 4096, AT);
    assert_eq!(
        clouder_checkpoint::image::last_output(&archive)
            .unwrap()
            .as_deref(),
        Some("41")
    );
}
