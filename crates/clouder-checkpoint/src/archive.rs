//! A stored image read back as an OCI image archive — a tar of an OCI image layout, what
//! `ctr images import` reads — streamed from the backend into a writer (e.g. an SSH channel to
//! the node), one blob at a time, never whole in memory.

use crate::backend::{Backend, BackendError};
use oci_spec::image::{ImageManifest, MediaType};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// `ctr` arguments that import an archive read from stdin into the namespace the kubelet's
/// images live in (`k8s.io`), naming its image `BASE:TAG`. ctr ships with containerd (its
/// release archives and distribution packages alike), so every containerd node has it; the
/// transfer service then unpacks with the CRI's snapshotter.
pub fn import_command_args(base: &str) -> Vec<String> {
    ["-n", "k8s.io", "images", "import", "--base-name", base, "-"]
        .map(str::to_string)
        .to_vec()
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("the stored manifest of {tag} is not an OCI image manifest: {reason}")]
    Manifest { tag: String, reason: String },
    #[error("blob {digest} is {actual} bytes, its manifest says {expected}")]
    Size {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("writing the image archive: {0}")]
    Write(#[source] std::io::Error),
}

/// Writes the image stored under `tag` to `out` as an OCI image archive whose one image is
/// named `tag` (the importer prefixes its base name). Returns the bytes written.
pub async fn write<W>(backend: &dyn Backend, tag: &str, out: &mut W) -> Result<u64, ArchiveError>
where
    W: AsyncWrite + Unpin,
{
    let manifest_json = backend.manifest(tag).await?;
    let bad = |reason: String| ArchiveError::Manifest {
        tag: tag.to_string(),
        reason,
    };
    let manifest: ImageManifest =
        serde_json::from_slice(&manifest_json).map_err(|e| bad(e.to_string()))?;
    let manifest_digest = format!("sha256:{}", hex::encode(Sha256::digest(&manifest_json)));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::ImageIndex.to_string(),
        "manifests": [{
            "mediaType": MediaType::ImageManifest.to_string(),
            "digest": manifest_digest,
            "size": manifest_json.len(),
            "annotations": {REF_NAME: tag},
        }],
    });
    let mut tar = Tar { out, written: 0 };
    tar.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .await?;
    tar.file(
        "index.json",
        &serde_json::to_vec(&index).expect("JSON values serialize"),
    )
    .await?;
    tar.file(&blob_path(&manifest_digest), &manifest_json)
        .await?;
    for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
        let digest = blob.digest().to_string();
        let reader = backend.open_blob(&digest).await?;
        tar.stream(&blob_path(&digest), blob.size(), reader).await?;
    }
    tar.finish().await
}

fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

/// A tar stream written as it goes: a ustar header, the bytes, padding to 512.
struct Tar<'a, W> {
    out: &'a mut W,
    written: u64,
}

impl<W: AsyncWrite + Unpin> Tar<'_, W> {
    async fn put(&mut self, bytes: &[u8]) -> Result<(), ArchiveError> {
        self.out
            .write_all(bytes)
            .await
            .map_err(ArchiveError::Write)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    async fn header(&mut self, path: &str, size: u64) -> Result<(), ArchiveError> {
        let mut header = tar::Header::new_ustar();
        header.set_path(path).map_err(ArchiveError::Write)?;
        header.set_size(size);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        self.put(header.as_bytes()).await
    }

    async fn pad(&mut self, size: u64) -> Result<(), ArchiveError> {
        let rest = (512 - size % 512) % 512;
        self.put(&[0; 512][..rest as usize]).await
    }

    async fn file(&mut self, path: &str, bytes: &[u8]) -> Result<(), ArchiveError> {
        self.header(path, bytes.len() as u64).await?;
        self.put(bytes).await?;
        self.pad(bytes.len() as u64).await
    }

    /// An entry of `size` bytes read from `reader`, which must hold exactly that many.
    async fn stream(
        &mut self,
        path: &str,
        size: u64,
        reader: crate::backend::BlobReader,
    ) -> Result<(), ArchiveError> {
        self.header(path, size).await?;
        // One more byte than announced is enough to tell a blob that is too long.
        let mut limited = tokio::io::AsyncReadExt::take(reader, size + 1);
        let copied = tokio::io::copy(&mut limited, self.out)
            .await
            .map_err(ArchiveError::Write)?;
        self.written += copied;
        if copied != size {
            let digest = path.trim_start_matches("blobs/").replacen('/', ":", 1);
            return Err(ArchiveError::Size {
                digest,
                expected: size,
                actual: copied,
            });
        }
        self.pad(size).await
    }

    /// The two zero blocks that end a tar archive.
    async fn finish(mut self) -> Result<u64, ArchiveError> {
        self.put(&[0; 1024]).await?;
        self.out.flush().await.map_err(ArchiveError::Write)?;
        Ok(self.written)
    }
}
