//! OCI checkpoint images: one uncompressed layer holding the checkpoint archive's content at `/`,
//! annotated so that containerd (`org.criu.checkpoint.container.name`) and CRI-O (the legacy
//! `io.kubernetes.cri-o.annotations.checkpoint.name`) restore from it.
//!
//! The archive is the layer as it is: no copy, no compression, and its digest is the archive's,
//! so the same archive always gives the same image (manifest and config are canonical JSON with
//! the checkpoint's own time, never "now").

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, Digest, ImageConfigurationBuilder, ImageManifestBuilder,
    MediaType, Os, RootFsBuilder,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub const ANNOTATION_CONTAINER_NAME: &str = "org.criu.checkpoint.container.name";
pub const ANNOTATION_LEGACY_NAME: &str = "io.kubernetes.cri-o.annotations.checkpoint.name";
const ANNOTATION_PREFIX: &str = "org.criu.checkpoint.";
pub const ANNOTATION_NODE: &str = "io.clouder.checkpoint.node";
const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("checkpoint archive {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint archive {path} is not a readable tar archive: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path} is not a container checkpoint archive: it has no {file}")]
    NotCheckpoint { path: PathBuf, file: &'static str },
    #[error("checkpoint archive {path}: {file} is not valid: {reason}")]
    BadMetadata {
        path: PathBuf,
        file: &'static str,
        reason: String,
    },
    #[error("building the OCI image: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
}

pub type Result<T> = std::result::Result<T, ImageError>;

/// What a checkpoint is of, read from the archive's `config.dump` and `status.dump`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub container: String,
    pub container_id: String,
    pub pod: Option<String>,
    pub namespace: Option<String>,
    /// The image the container ran, as the user named it, and as the pullable `NAME@DIGEST`
    /// that a restore pulls again.
    pub image: String,
    pub image_ref: String,
    pub runtime: String,
    /// RFC 3339, from the runtime.
    pub checkpointed_at: String,
    pub node: Option<String>,
}

/// A content-addressed blob of an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

/// Where a blob's bytes are: the archive file for the layer, memory for config and manifest.
#[derive(Debug, Clone)]
pub enum Content {
    File(PathBuf),
    Bytes(bytes::Bytes),
}

/// An OCI image: its blobs (layers and config) with where their bytes are, and its manifest.
#[derive(Debug, Clone)]
pub struct OciImage {
    pub blobs: Vec<(Blob, Content)>,
    pub manifest: Blob,
    pub manifest_json: bytes::Bytes,
}

impl OciImage {
    /// An image of `layers` (uncompressed tars, already digested) with `config`, for this
    /// machine's architecture. Manifest and config are canonical JSON: same input, same digests.
    pub fn build(
        config: ImageConfigurationBuilder,
        layers: Vec<(Blob, Content)>,
        annotations: HashMap<String, String>,
    ) -> Result<Self> {
        let diff_ids: Vec<String> = layers.iter().map(|(b, _)| b.digest.clone()).collect();
        let config_json = canonical_json(
            &config
                .architecture(Arch::default())
                .os(Os::Linux)
                .rootfs(
                    RootFsBuilder::default()
                        .typ("layers")
                        .diff_ids(diff_ids)
                        .build()?,
                )
                .build()?,
        );
        let config_blob = blob_of(&config_json, MediaType::ImageConfig);
        let descriptor = |blob: &Blob, media_type| -> Result<Descriptor> {
            Ok(Descriptor::new(
                media_type,
                blob.size,
                digest(&blob.digest)?,
            ))
        };
        let mut manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(descriptor(&config_blob, MediaType::ImageConfig)?)
            .layers(
                layers
                    .iter()
                    .map(|(b, _)| descriptor(b, MediaType::ImageLayer))
                    .collect::<Result<Vec<_>>>()?,
            );
        if !annotations.is_empty() {
            manifest = manifest.annotations(annotations);
        }
        let manifest_json = canonical_json(&manifest.build()?);
        let mut blobs = layers;
        blobs.push((config_blob, Content::Bytes(config_json)));
        Ok(OciImage {
            blobs,
            manifest: blob_of(&manifest_json, MediaType::ImageManifest),
            manifest_json,
        })
    }
}

/// A checkpoint image ready to store.
#[derive(Debug, Clone)]
pub struct CheckpointImage {
    pub metadata: Metadata,
    /// The archive, which is the image's only layer.
    pub layer: Blob,
    pub oci: OciImage,
    /// The last line the container wrote before the checkpoint (its log in the archive).
    pub last_output: Option<String>,
}

impl CheckpointImage {
    /// Reads a checkpoint archive (as written by CRI `CheckpointContainer` or the kubelet) and
    /// builds its image. Blocking: it reads the archive once, digesting it as it finds the
    /// runtime's metadata and the container's log.
    pub fn from_archive(archive: &Path, node: Option<&str>) -> Result<Self> {
        let scan = scan(archive)?;
        let mut metadata = scan.metadata(archive)?;
        metadata.node = node.map(str::to_string);
        let last_output = scan.last_output();
        let layer = Blob {
            digest: scan.digest,
            size: scan.size,
            media_type: MediaType::ImageLayer.to_string(),
        };
        let config = ImageConfigurationBuilder::default()
            .created(metadata.checkpointed_at.clone())
            .config(
                ConfigBuilder::default()
                    .labels(annotations(&metadata))
                    .build()?,
            );
        let oci = OciImage::build(
            config,
            vec![(layer.clone(), Content::File(archive.to_path_buf()))],
            annotations(&metadata),
        )?;
        Ok(CheckpointImage {
            metadata,
            layer,
            oci,
            last_output,
        })
    }
}

/// The last line the container wrote before its checkpoint: the last message of the archive's
/// `container.log` (CRI format, `TIME STREAM TAG MESSAGE`), if it has one. Blocking.
pub fn last_output(archive: &Path) -> Result<Option<String>> {
    Ok(scan(archive)?.last_output())
}

/// An uncompressed tar file as a layer blob.
pub fn layer_of(tar: &Path) -> Result<Blob> {
    let (digest, size) = sha256_file(tar).map_err(|source| ImageError::Read {
        path: tar.to_path_buf(),
        source,
    })?;
    Ok(Blob {
        digest,
        size,
        media_type: MediaType::ImageLayer.to_string(),
    })
}

fn digest(s: &str) -> Result<Digest> {
    Ok(Digest::from_str(s)?)
}

/// The image's annotations (manifest) and labels (config): the runtime's and clouder's metadata.
fn annotations(m: &Metadata) -> HashMap<String, String> {
    let mut a = HashMap::from([
        (ANNOTATION_CONTAINER_NAME.to_string(), m.container.clone()),
        (ANNOTATION_LEGACY_NAME.to_string(), m.container.clone()),
        (
            format!("{ANNOTATION_PREFIX}container.id"),
            m.container_id.clone(),
        ),
        (
            format!("{ANNOTATION_PREFIX}rootfsImageName"),
            m.image.clone(),
        ),
        (
            format!("{ANNOTATION_PREFIX}rootfsImageRef"),
            m.image_ref.clone(),
        ),
        (
            format!("{ANNOTATION_PREFIX}runtime.name"),
            m.runtime.clone(),
        ),
        (ANNOTATION_CREATED.to_string(), m.checkpointed_at.clone()),
    ]);
    let optional = [("pod.name", &m.pod), ("pod.namespace", &m.namespace)];
    for (key, value) in optional {
        if let Some(v) = value {
            a.insert(format!("{ANNOTATION_PREFIX}{key}"), v.clone());
        }
    }
    if let Some(node) = &m.node {
        a.insert(ANNOTATION_NODE.to_string(), node.clone());
    }
    a
}

/// JSON with object keys sorted, so equal content always hashes the same.
fn canonical_json<T: Serialize>(value: &T) -> bytes::Bytes {
    fn sort(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let sorted: std::collections::BTreeMap<_, _> =
                    map.into_iter().map(|(k, v)| (k, sort(v))).collect();
                serde_json::Value::Object(sorted.into_iter().collect())
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sort).collect())
            }
            other => other,
        }
    }
    let value = sort(serde_json::to_value(value).expect("OCI types serialize"));
    serde_json::to_vec(&value)
        .expect("JSON values serialize")
        .into()
}

fn blob_of(bytes: &[u8], media_type: MediaType) -> Blob {
    Blob {
        digest: format!("sha256:{}", hex::encode(Sha256::digest(bytes))),
        size: bytes.len() as u64,
        media_type: media_type.to_string(),
    }
}

/// `sha256:<hex>` and size of a file, read in large chunks.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), size))
}

/// A reader that digests what passes through it.
struct Digesting<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> Read for Digesting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// What one sequential read of a checkpoint archive finds: the runtime's metadata files, the
/// container's log, whether it holds CRIU images, and its digest and size.
struct Scan {
    config: Option<String>,
    status: Option<String>,
    log: Option<String>,
    criu_images: bool,
    digest: String,
    size: u64,
}

fn scan(archive: &Path) -> Result<Scan> {
    let corrupt = |reason: String| ImageError::Corrupt {
        path: archive.to_path_buf(),
        reason,
    };
    let read_error = |source| ImageError::Read {
        path: archive.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(archive).map_err(read_error)?;
    let length = file.metadata().map_err(read_error)?.len();
    let mut digesting = Digesting {
        inner: std::io::BufReader::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        size: 0,
    };
    let (mut config, mut status, mut log, mut criu_images) = (None, None, None, false);
    let mut tar = tar::Archive::new(&mut digesting);
    let entries = tar.entries().map_err(|e| corrupt(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| corrupt(e.to_string()))?
            .into_owned();
        // A cut-off archive still lists its first entries: check each one ends inside the file.
        if entry.raw_file_position() + entry.size() > length {
            return Err(corrupt(format!(
                "it is truncated ({} ends past the end of the file)",
                path.display()
            )));
        }
        let name = path.to_string_lossy();
        let slot = match name.trim_start_matches("./") {
            "config.dump" => &mut config,
            "status.dump" => &mut status,
            "container.log" => &mut log,
            other => {
                criu_images |= other.starts_with("checkpoint/") && other.ends_with(".img");
                continue;
            }
        };
        let mut text = String::new();
        entry
            .read_to_string(&mut text)
            .map_err(|e| corrupt(e.to_string()))?;
        *slot = Some(text);
    }
    // What follows the last entry (the end blocks) is part of the layer too.
    std::io::copy(&mut digesting, &mut std::io::sink()).map_err(read_error)?;
    Ok(Scan {
        config,
        status,
        log,
        criu_images,
        digest: format!("sha256:{}", hex::encode(digesting.hasher.finalize())),
        size: digesting.size,
    })
}

impl Scan {
    fn last_output(&self) -> Option<String> {
        self.log
            .as_deref()?
            .lines()
            .filter_map(|line| line.splitn(4, ' ').nth(3))
            .next_back()
            .map(str::to_string)
    }

    fn metadata(&self, archive: &Path) -> Result<Metadata> {
        if !self.criu_images {
            return Err(ImageError::NotCheckpoint {
                path: archive.to_path_buf(),
                file: "checkpoint/*.img (CRIU images)",
            });
        }
        let parse = |text: &Option<String>, file: &'static str| -> Result<serde_json::Value> {
            let text = text.as_deref().ok_or(ImageError::NotCheckpoint {
                path: archive.to_path_buf(),
                file,
            })?;
            serde_json::from_str(text).map_err(|e| ImageError::BadMetadata {
                path: archive.to_path_buf(),
                file,
                reason: e.to_string(),
            })
        };
        let config = parse(&self.config, "config.dump")?;
        let status = parse(&self.status, "status.dump")?;
        metadata_from(&config, &status).map_err(|reason| ImageError::BadMetadata {
            path: archive.to_path_buf(),
            file: "config.dump",
            reason,
        })
    }
}

/// Pure: the metadata from `config.dump` (checkpointctl's ContainerConfig) and `status.dump`
/// (the CRI ContainerStatus, whose labels name the Kubernetes pod when the kubelet made it).
fn metadata_from(
    config: &serde_json::Value,
    status: &serde_json::Value,
) -> std::result::Result<Metadata, String> {
    let text =
        |v: &serde_json::Value, key: &str| v.get(key).and_then(|s| s.as_str()).map(str::to_string);
    let required = |key: &str| {
        text(config, key)
            .filter(|s| !s.is_empty())
            .ok_or(format!("field {key} is missing"))
    };
    let label = |key: &str| status.get("labels").and_then(|l| text(l, key));
    let container = label("io.kubernetes.container.name")
        .or_else(|| status.get("metadata").and_then(|m| text(m, "name")))
        .or_else(|| text(config, "name"))
        .ok_or("no container name")?;
    Ok(Metadata {
        container,
        container_id: required("id")?,
        pod: label("io.kubernetes.pod.name"),
        namespace: label("io.kubernetes.pod.namespace"),
        image: required("rootfsImageName")?,
        image_ref: required("rootfsImageRef")?,
        runtime: text(config, "runtime").unwrap_or_default(),
        checkpointed_at: required("checkpointedTime")?,
        node: None,
    })
}
