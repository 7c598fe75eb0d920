//! S3 objects with conditional writes: `If-None-Match: *` and `If-Match: ETAG` on PutObject
//! (S3 answers 412 PreconditionFailed, or 409 ConditionalRequestConflict when two such writes
//! race). The endpoint comes from `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`), so tests run
//! against the moto server.

use crate::lock::{self, Holder, Locking};
use crate::{Expect, ObjectStore, StoreError, Versioned};
use async_trait::async_trait;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Store {
    /// A store in `bucket`, with the SDK's usual credentials and region; path-style
    /// addressing when an endpoint override is set (moto, MinIO).
    pub async fn connect(bucket: &str) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let path_style = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
            .iter()
            .any(|var| std::env::var_os(var).is_some());
        let client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(path_style)
                .build(),
        );
        S3Store {
            client,
            bucket: bucket.to_string(),
        }
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }
}

fn failure<E: ProvideErrorMetadata + std::error::Error + 'static>(
    what: &str,
    key: &str,
    err: aws_sdk_s3::error::SdkError<E>,
) -> StoreError {
    match err.code() {
        Some("PreconditionFailed" | "ConditionalRequestConflict") => {
            StoreError::Conflict(key.to_string())
        }
        _ => StoreError::Other(format!(
            "{what} s3 object {key}: {}",
            aws_sdk_s3::error::DisplayErrorContext(&err)
        )),
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(failure("reading", key, e)),
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Other(format!("reading s3 object {key}: {e}")))?
            .into_bytes()
            .to_vec();
        Ok(Some(Versioned { body, etag }))
    }

    async fn put(&self, key: &str, body: Vec<u8>, expect: Expect) -> Result<String, StoreError> {
        let call = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body));
        let call = match expect {
            Expect::Absent => call.if_none_match("*"),
            Expect::Etag(etag) => call.if_match(etag),
            Expect::Any => call,
        };
        let out = call.send().await.map_err(|e| failure("writing", key, e))?;
        Ok(out.e_tag().unwrap_or_default().to_string())
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
        let call = self.client.delete_object().bucket(&self.bucket).key(key);
        let call = match expect {
            Expect::Etag(etag) => call.if_match(etag),
            Expect::Absent | Expect::Any => call,
        };
        call.send().await.map_err(|e| failure("deleting", key, e))?;
        Ok(())
    }
}

/// The lock is an object written only if absent.
#[async_trait]
impl Locking for S3Store {
    async fn try_lock(&self, key: &str, holder: &Holder) -> Result<bool, StoreError> {
        lock::object::try_lock(self, key, holder).await
    }

    async fn held_by(&self, key: &str) -> Result<Option<Holder>, StoreError> {
        lock::object::held_by(self, key).await
    }

    async fn release(&self, key: &str, holder: &Holder) -> Result<(), StoreError> {
        lock::object::release(self, key, holder).await
    }

    async fn force_unlock(&self, key: &str, id: &str) -> Result<Holder, StoreError> {
        lock::object::force_unlock(self, key, id).await
    }
}
