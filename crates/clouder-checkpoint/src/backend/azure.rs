//! An Azure Blob container (or prefix in it) laid out like an OCI image layout, over the Blob
//! REST API with Shared Key authorization (signed by `clouder_remote::shared_key`, as the shared
//! state is). Works against Azure and Azurite alike.

use super::{Backend, BackendError, BlobReader, Parts, Result, body};
use crate::image::{Blob, Content};
use async_trait::async_trait;
use clouder_remote::shared_key::{AccountKey, BlobAccount, error_code};
use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::{Method, StatusCode, header};

pub struct AzureBlob {
    http: reqwest::Client,
    account: BlobAccount,
    container: String,
    prefix: String,
    parts: Parts,
}

/// The digest of no bytes: the one blob that may be empty.
const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

impl AzureBlob {
    pub fn new(
        endpoint: &str,
        account: &str,
        key: AccountKey,
        container: &str,
        prefix: &str,
    ) -> Self {
        Self::in_account(BlobAccount::new(endpoint, account, key), container, prefix)
    }

    pub fn in_account(account: BlobAccount, container: &str, prefix: &str) -> Self {
        AzureBlob {
            http: reqwest::Client::new(),
            account,
            container: container.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            parts: Parts::default(),
        }
    }

    /// Uploads blobs larger than `parts.size` as blocks (Put Block, then Put Block List).
    pub fn with_parts(mut self, parts: Parts) -> Self {
        self.parts = parts;
        self
    }

    fn blob_url(&self, name: &str) -> String {
        let path = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        };
        self.account.url(&format!("{}/{path}", self.container))
    }

    fn blob_name(digest: &str) -> String {
        format!("blobs/{}", digest.replacen(':', "/", 1))
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        extra: &[(&str, String)],
        content: Option<(reqwest::Body, u64)>,
        operation: &str,
    ) -> Result<reqwest::Response> {
        let location = self.location();
        let parsed = reqwest::Url::parse(url).map_err(|e| BackendError::Unreachable {
            location: location.clone(),
            reason: e.to_string(),
        })?;
        let mut request = self.http.request(method, parsed);
        for (k, v) in extra {
            request = request.header(*k, v);
        }
        if let Some((data, length)) = content {
            request = request.header(header::CONTENT_LENGTH, length).body(data);
        }
        let mut request = request.build().map_err(|e| BackendError::Unreachable {
            location: location.clone(),
            reason: e.to_string(),
        })?;
        self.account.sign(&mut request);
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| BackendError::Unreachable {
                location: location.clone(),
                reason: super::error_chain(&e),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let code = error_code(&response);
        if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
            return Err(BackendError::Auth {
                location,
                reason: format!("{operation}: {status} {code}"),
            });
        }
        Err(BackendError::Status {
            location,
            operation: operation.to_string(),
            status: status.as_u16(),
            body: code,
        })
    }

    /// Creates the container if it does not exist yet.
    pub async fn ensure_container(&self) -> Result<()> {
        let url = self
            .account
            .url(&format!("{}?restype=container", self.container));
        match self
            .send(Method::PUT, &url, &[], None, "creating the container")
            .await
        {
            Ok(_) | Err(BackendError::Status { status: 409, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn put(&self, name: &str, media_type: &str, content: &Content, size: u64) -> Result<()> {
        let operation = format!("writing {name}");
        if let Content::File(path) = content
            && size > self.parts.size
        {
            return self.put_in_blocks(name, media_type, path, size).await;
        }
        let data = body(content).await.map_err(|source| BackendError::Io {
            location: self.location(),
            operation: operation.clone(),
            source,
        })?;
        let headers = [
            ("x-ms-blob-type", "BlockBlob".to_string()),
            ("content-type", media_type.to_string()),
        ];
        self.send(
            Method::PUT,
            &self.blob_url(name),
            &headers,
            Some((data, size)),
            &operation,
        )
        .await
        .map(drop)
    }

    /// Blocks streamed from the file, `parts.concurrency` at a time, then the block list that
    /// commits them. On failure the uncommitted blocks are discarded (an empty block list
    /// commits none of them, and the empty blob it leaves is deleted), so nothing is left.
    async fn put_in_blocks(
        &self,
        name: &str,
        media_type: &str,
        path: &std::path::Path,
        size: u64,
    ) -> Result<()> {
        let url = self.blob_url(name);
        let parts = self.parts.split(size);
        let ids: Vec<String> = parts.iter().map(|(n, _, _)| block_id(*n)).collect();
        let uploaded = async {
            futures::stream::iter(parts)
                .map(|(n, offset, length)| self.put_block(&url, path, n, offset, length))
                .buffer_unordered(self.parts.concurrency)
                .try_collect::<Vec<()>>()
                .await?;
            self.put_block_list(&url, &ids, media_type, &format!("committing {name}"))
                .await
                .map(drop)
        }
        .await;
        if uploaded.is_err() {
            let discarded = async {
                self.put_block_list(&url, &[], media_type, "discarding its blocks")
                    .await?;
                self.send(Method::DELETE, &url, &[], None, "discarding its blocks")
                    .await
            };
            if let Err(e) = discarded.await {
                tracing::warn!(name, "discarding the uncommitted blocks: {e}");
            }
        }
        uploaded
    }

    async fn put_block(
        &self,
        url: &str,
        path: &std::path::Path,
        number: i32,
        offset: u64,
        length: u64,
    ) -> Result<()> {
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        let operation = format!("writing block {number}");
        let io = |source| BackendError::Io {
            location: self.location(),
            operation: operation.clone(),
            source,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(io)?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(length), 1 << 20);
        let url = format!("{url}?comp=block&blockid={}", block_id(number));
        self.send(
            Method::PUT,
            &url,
            &[],
            Some((reqwest::Body::wrap_stream(stream), length)),
            &operation,
        )
        .await
        .map(drop)
    }

    async fn put_block_list(
        &self,
        url: &str,
        ids: &[String],
        media_type: &str,
        operation: &str,
    ) -> Result<reqwest::Response> {
        let xml = block_list(ids);
        let length = xml.len() as u64;
        self.send(
            Method::PUT,
            &format!("{url}?comp=blocklist"),
            &[("x-ms-blob-content-type", media_type.to_string())],
            Some((reqwest::Body::from(xml), length)),
            operation,
        )
        .await
    }

    /// The blob `name`; `reference` names it when it is not there.
    async fn get(&self, name: &str, reference: &str) -> Result<reqwest::Response> {
        let operation = format!("reading {reference}");
        match self
            .send(Method::GET, &self.blob_url(name), &[], None, &operation)
            .await
        {
            Err(BackendError::Status { status: 404, .. }) => Err(BackendError::NotFound {
                location: self.location(),
                reference: reference.to_string(),
            }),
            other => other,
        }
    }

    async fn exists(&self, name: &str, operation: &str) -> Result<bool> {
        match self
            .send(Method::HEAD, &self.blob_url(name), &[], None, operation)
            .await
        {
            Ok(_) => Ok(true),
            Err(BackendError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Backend for AzureBlob {
    fn location(&self) -> String {
        format!(
            "{}/{}/{}",
            self.account.endpoint, self.container, self.prefix
        )
        .trim_end_matches('/')
        .to_string()
    }

    async fn has_blob(&self, digest: &str) -> Result<bool> {
        let name = Self::blob_name(digest);
        match self
            .send(
                Method::HEAD,
                &self.blob_url(&name),
                &[],
                None,
                "checking a blob",
            )
            .await
        {
            // Empty where it must not be: a discarded upload's, being deleted.
            Ok(r) => {
                let length = r.headers().get(header::CONTENT_LENGTH);
                Ok(digest == EMPTY || length.is_none_or(|l| l.as_bytes() != b"0"))
            }
            Err(BackendError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn put_blob(&self, blob: &Blob, content: &Content) -> Result<()> {
        self.put(
            &Self::blob_name(&blob.digest),
            &blob.media_type,
            content,
            blob.size,
        )
        .await
    }

    async fn put_manifest(&self, tag: &str, manifest: &Blob, json: &bytes::Bytes) -> Result<()> {
        let content = Content::Bytes(json.clone());
        self.put(
            &Self::blob_name(&manifest.digest),
            &manifest.media_type,
            &content,
            manifest.size,
        )
        .await?;
        self.put(
            &format!("manifests/{tag}"),
            &manifest.media_type,
            &content,
            manifest.size,
        )
        .await
    }

    async fn delete(&self, tag: &str) -> Result<()> {
        let name = format!("manifests/{tag}");
        if !self.exists(&name, &format!("resolving {tag}")).await? {
            return Err(BackendError::NotFound {
                location: self.location(),
                reference: tag.to_string(),
            });
        }
        self.send(
            Method::DELETE,
            &self.blob_url(&name),
            &[],
            None,
            &format!("deleting {tag}"),
        )
        .await
        .map(drop)
    }

    fn reference(&self, tag: &str, _manifest_digest: &str) -> String {
        self.blob_url(&format!("manifests/{tag}"))
    }

    async fn manifest(&self, tag: &str) -> Result<bytes::Bytes> {
        let response = self.get(&format!("manifests/{tag}"), tag).await?;
        response
            .bytes()
            .await
            .map_err(|e| BackendError::Unreachable {
                location: self.location(),
                reason: super::error_chain(&e),
            })
    }

    async fn open_blob(&self, digest: &str) -> Result<BlobReader> {
        let response = self.get(&Self::blob_name(digest), digest).await?;
        let stream = futures::TryStreamExt::map_err(response.bytes_stream(), |e| {
            std::io::Error::other(super::error_chain(&e))
        });
        Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
    }
}

/// Block `number`'s id: six digits, whose base64 has no `+`, `/` or `=` to escape in a URL,
/// and the same length for every block as Azure requires.
fn block_id(number: i32) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{number:06}"))
}

/// The Put Block List body committing `ids` in order.
fn block_list(ids: &[String]) -> String {
    let latest: String = ids
        .iter()
        .map(|id| format!("<Latest>{id}</Latest>"))
        .collect();
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{latest}</BlockList>")
}
