//! An S3 bucket (or prefix) laid out like an OCI image layout: `PREFIX/blobs/sha256/HEX` and
//! `PREFIX/manifests/TAG`. The archive is streamed from disk; credentials come from the AWS SDK's
//! usual chain (environment, profile, instance role), never from clouder's state.

use super::{Backend, BackendError, BlobReader, Parts, Result};
use crate::image::{Blob, Content};
use async_trait::async_trait;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use futures::{StreamExt as _, TryStreamExt as _};

pub struct S3 {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    parts: Parts,
}

impl S3 {
    /// `s3://BUCKET[/PREFIX]`. Path-style addressing, so S3-compatible servers work too.
    pub async fn new(url: &str) -> Result<Self> {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::with_config(url, &config)
    }

    /// As [`S3::new`], with an explicit SDK configuration (endpoint, credentials, region).
    pub fn with_config(url: &str, config: &aws_config::SdkConfig) -> Result<Self> {
        let rest = url
            .strip_prefix("s3://")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| BackendError::Unreachable {
                location: url.to_string(),
                reason: "an S3 location is s3://BUCKET[/PREFIX]".to_string(),
            })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build();
        Ok(S3 {
            client: aws_sdk_s3::Client::from_conf(s3),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            parts: Parts::default(),
        })
    }

    /// Uploads blobs larger than `parts.size` in parts (S3 takes at most 5 GB in one PUT).
    pub fn with_parts(mut self, parts: Parts) -> Self {
        self.parts = parts;
        self
    }

    fn key(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}/{path}", self.prefix)
        }
    }

    /// The object at `key`, streamed; `reference` names it when it is not there.
    async fn get(&self, key: &str, reference: &str) -> Result<ByteStream> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => Ok(object.body),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                Err(BackendError::NotFound {
                    location: self.location(),
                    reference: reference.to_string(),
                })
            }
            Err(e) => Err(self.error(&format!("reading {reference}"), e)),
        }
    }

    fn blob_key(&self, digest: &str) -> String {
        self.key(&format!("blobs/{}", digest.replacen(':', "/", 1)))
    }

    /// Maps an SDK error: no connection is "unreachable", 401/403 are credentials, the rest
    /// carries S3's status and code.
    fn error<E>(
        &self,
        operation: &str,
        e: aws_sdk_s3::error::SdkError<E, HttpResponse>,
    ) -> BackendError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        use aws_sdk_s3::error::SdkError;
        let location = self.location();
        match &e {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => BackendError::Unreachable {
                location,
                reason: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            },
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let err = service.err();
                let body = match err.code() {
                    Some(code) => format!("{code}: {}", err.message().unwrap_or_default()),
                    // Not S3's own error document: what the SDK made of the answer.
                    None => aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                };
                if status == 401 || status == 403 {
                    BackendError::Auth {
                        location,
                        reason: format!("{operation}: {body}"),
                    }
                } else {
                    BackendError::Status {
                        location,
                        operation: operation.to_string(),
                        status,
                        body,
                    }
                }
            }
            _ => BackendError::Unreachable {
                location,
                reason: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            },
        }
    }
}

impl S3 {
    /// A multipart upload streamed from the file, `parts.concurrency` parts at a time; aborted
    /// on any failure, so no half-uploaded object (or its parts) is left behind.
    async fn put_in_parts(&self, blob: &Blob, path: &std::path::Path) -> Result<()> {
        let key = self.blob_key(&blob.digest);
        let operation = format!("uploading blob {}", blob.digest);
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .content_type(&blob.media_type)
            .send()
            .await
            .map_err(|e| self.error(&operation, e))?;
        let id = upload.upload_id().unwrap_or_default().to_string();
        let uploaded = async {
            let parts = self.parts.split(blob.size);
            let mut done: Vec<CompletedPart> = futures::stream::iter(parts)
                .map(|(number, offset, length)| {
                    self.put_part(&key, &id, path, number, offset, length)
                })
                .buffer_unordered(self.parts.concurrency)
                .try_collect()
                .await?;
            done.sort_by_key(|p| p.part_number());
            let completed = self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&key)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(done))
                        .build(),
                )
                .send()
                .await;
            match completed {
                Ok(_) => Ok(()),
                // A 200 the SDK cannot read (S3-compatible servers vary: moto 5.2 names its
                // root element CompleteMultipartUploadResponse) completed the upload if the
                // object is there, whole.
                Err(e) if unreadable_success(&e) && self.size_of(&key).await == Some(blob.size) => {
                    Ok(())
                }
                Err(e) => Err(self.error(&format!("{operation} (completing it)"), e)),
            }
        }
        .await;
        if uploaded.is_err() {
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&key)
                .upload_id(&id)
                .send()
                .await;
            if let Err(e) = aborted {
                tracing::warn!(
                    key,
                    upload = id,
                    "aborting the multipart upload: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                );
            }
        }
        uploaded
    }

    async fn size_of(&self, key: &str) -> Option<u64> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        head.content_length().map(|l| l as u64)
    }

    /// Part `number`: `length` bytes of the file from `offset`, streamed.
    async fn put_part(
        &self,
        key: &str,
        id: &str,
        path: &std::path::Path,
        number: i32,
        offset: u64,
        length: u64,
    ) -> Result<CompletedPart> {
        let body = ByteStream::read_from()
            .path(path)
            .offset(offset)
            .length(Length::Exact(length))
            .build()
            .await
            .map_err(|e| BackendError::Io {
                location: self.location(),
                operation: format!("reading part {number} of {}", path.display()),
                source: std::io::Error::other(e),
            })?;
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(id)
            .part_number(number)
            .content_length(length as i64)
            .body(body)
            .send()
            .await
            .map_err(|e| self.error(&format!("uploading part {number} of {key}"), e))?;
        // The SDK checksums each part; the completion must name the same checksums.
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(part.e_tag().map(str::to_string))
            .set_checksum_crc32(part.checksum_crc32().map(str::to_string))
            .set_checksum_crc32_c(part.checksum_crc32_c().map(str::to_string))
            .set_checksum_crc64_nvme(part.checksum_crc64_nvme().map(str::to_string))
            .set_checksum_sha1(part.checksum_sha1().map(str::to_string))
            .set_checksum_sha256(part.checksum_sha256().map(str::to_string))
            .build())
    }
}

/// Whether the call got a 200 whose body is not S3's error document.
fn unreadable_success<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E, HttpResponse>,
) -> bool {
    e.as_service_error().is_some_and(|s| s.code().is_none())
        && e.raw_response().is_some_and(|r| r.status().as_u16() == 200)
}

#[async_trait]
impl Backend for S3 {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
            .trim_end_matches('/')
            .to_string()
    }

    async fn has_blob(&self, digest: &str) -> Result<bool> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.blob_key(digest))
            .send()
            .await;
        match head {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(self.error("checking a blob", e)),
        }
    }

    async fn put_blob(&self, blob: &Blob, content: &Content) -> Result<()> {
        if let Content::File(path) = content
            && blob.size > self.parts.size
        {
            return self.put_in_parts(blob, path).await;
        }
        let body = match content {
            Content::Bytes(bytes) => ByteStream::from(bytes.to_vec()),
            Content::File(path) => {
                ByteStream::from_path(path)
                    .await
                    .map_err(|e| BackendError::Io {
                        location: self.location(),
                        operation: format!("reading {}", path.display()),
                        source: std::io::Error::other(e),
                    })?
            }
        };
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.blob_key(&blob.digest))
            .content_type(&blob.media_type)
            .content_length(blob.size as i64)
            .body(body)
            .send()
            .await
            .map_err(|e| self.error(&format!("uploading blob {}", blob.digest), e))?;
        Ok(())
    }

    async fn put_manifest(&self, tag: &str, manifest: &Blob, json: &bytes::Bytes) -> Result<()> {
        self.put_blob(manifest, &Content::Bytes(json.clone()))
            .await?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(&format!("manifests/{tag}")))
            .content_type(&manifest.media_type)
            .body(ByteStream::from(json.to_vec()))
            .send()
            .await
            .map_err(|e| self.error(&format!("writing manifest {tag}"), e))?;
        Ok(())
    }

    async fn delete(&self, tag: &str) -> Result<()> {
        let key = self.key(&format!("manifests/{tag}"));
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await;
        match head {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                return Err(BackendError::NotFound {
                    location: self.location(),
                    reference: tag.to_string(),
                });
            }
            Err(e) => return Err(self.error(&format!("resolving {tag}"), e)),
        }
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error(&format!("deleting {tag}"), e))?;
        Ok(())
    }

    fn reference(&self, tag: &str, _manifest_digest: &str) -> String {
        format!("{}/manifests/{tag}", self.location())
    }

    async fn manifest(&self, tag: &str) -> Result<bytes::Bytes> {
        let body = self
            .get(&self.key(&format!("manifests/{tag}")), tag)
            .await?;
        let bytes = body.collect().await.map_err(|e| BackendError::Io {
            location: self.location(),
            operation: format!("reading manifest {tag}"),
            source: std::io::Error::other(e),
        })?;
        Ok(bytes.into_bytes())
    }

    async fn open_blob(&self, digest: &str) -> Result<BlobReader> {
        let body = self.get(&self.blob_key(digest), digest).await?;
        Ok(Box::pin(body.into_async_read()))
    }
}
