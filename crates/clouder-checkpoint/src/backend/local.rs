//! A local directory holding an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`),
//! readable by skopeo, crane and `ctr images import`. Every file is written to a temporary name
//! and renamed, so a crash never leaves a partial blob or index.

use super::{Backend, BackendError, BlobReader, Result};
use crate::image::{Blob, Content};
use async_trait::async_trait;
use std::path::{Path, PathBuf};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDir { root: root.into() }
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
        self.root.join("blobs").join(algorithm).join(hex)
    }

    fn io(&self, operation: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackendError {
        let location = self.root.display().to_string();
        let operation = operation.into();
        move |source| BackendError::Io {
            location,
            operation,
            source,
        }
    }

    /// `index.json`, or an empty index when the layout is new.
    async fn index(&self) -> Result<serde_json::Value> {
        match tokio::fs::read(self.root.join("index.json")).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                self.io("reading index.json")(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    e,
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(
                serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}),
            ),
            Err(e) => Err(self.io("reading index.json")(e)),
        }
    }

    async fn write_index(&self, index: &serde_json::Value) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(index).expect("JSON values serialize");
        write_atomic(&self.root.join("index.json"), |tmp| {
            tokio::fs::write(tmp.to_path_buf(), bytes)
        })
        .await
        .map_err(self.io("writing index.json"))?;
        write_atomic(&self.root.join("oci-layout"), |tmp| {
            tokio::fs::write(tmp.to_path_buf(), br#"{"imageLayoutVersion":"1.0.0"}"#)
        })
        .await
        .map_err(self.io("writing oci-layout"))
    }
}

/// Writes through `write` to a temporary sibling of `path`, then renames it into place.
async fn write_atomic<F, Fut, T>(path: &Path, write: F) -> std::io::Result<()>
where
    F: FnOnce(&Path) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<T>>,
{
    let dir = path.parent().expect("layout files live in a directory");
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(
        ".{}.partial",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let result = write(&tmp).await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    tokio::fs::rename(&tmp, path).await
}

#[async_trait]
impl Backend for LocalDir {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn has_blob(&self, digest: &str) -> Result<bool> {
        tokio::fs::try_exists(self.blob_path(digest))
            .await
            .map_err(self.io(format!("checking blob {digest}")))
    }

    async fn put_blob(&self, blob: &Blob, content: &Content) -> Result<()> {
        let path = self.blob_path(&blob.digest);
        write_atomic(&path, |tmp| {
            let tmp = tmp.to_path_buf();
            async move {
                match content {
                    // A hard link costs nothing when the archive is on the same file system.
                    Content::File(source) => match tokio::fs::hard_link(source, &tmp).await {
                        Ok(()) => Ok(()),
                        Err(_) => tokio::fs::copy(source, &tmp).await.map(drop),
                    },
                    Content::Bytes(bytes) => tokio::fs::write(&tmp, bytes).await,
                }
            }
        })
        .await
        .map_err(self.io(format!("writing blob {}", blob.digest)))
    }

    async fn put_manifest(&self, tag: &str, manifest: &Blob, json: &bytes::Bytes) -> Result<()> {
        self.put_blob(manifest, &Content::Bytes(json.clone()))
            .await?;
        let mut index = self.index().await?;
        let manifests = index["manifests"]
            .as_array_mut()
            .expect("an index has manifests");
        manifests.retain(|m| m["annotations"][REF_NAME] != tag);
        manifests.push(serde_json::json!({
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": manifest.size,
            "annotations": {REF_NAME: tag},
        }));
        self.write_index(&index).await
    }

    async fn delete(&self, tag: &str) -> Result<()> {
        let mut index = self.index().await?;
        let manifests = index["manifests"]
            .as_array_mut()
            .expect("an index has manifests");
        let before = manifests.len();
        manifests.retain(|m| m["annotations"][REF_NAME] != tag);
        if manifests.len() == before {
            return Err(BackendError::NotFound {
                location: self.location(),
                reference: tag.to_string(),
            });
        }
        self.write_index(&index).await
    }

    fn reference(&self, tag: &str, _manifest_digest: &str) -> String {
        format!("oci:{}:{tag}", self.root.display())
    }

    async fn manifest(&self, tag: &str) -> Result<bytes::Bytes> {
        let index = self.index().await?;
        let digest = index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["annotations"][REF_NAME] == tag)
            .and_then(|m| m["digest"].as_str())
            .ok_or_else(|| BackendError::NotFound {
                location: self.location(),
                reference: tag.to_string(),
            })?;
        tokio::fs::read(self.blob_path(digest))
            .await
            .map(Into::into)
            .map_err(self.io(format!("reading manifest {digest}")))
    }

    async fn open_blob(&self, digest: &str) -> Result<BlobReader> {
        let file = tokio::fs::File::open(self.blob_path(digest))
            .await
            .map_err(self.io(format!("reading blob {digest}")))?;
        Ok(Box::pin(file))
    }
}
