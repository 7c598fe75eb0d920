//! An OCI registry through the distribution API: `HEAD` a blob before uploading it, monolithic
//! streamed uploads, manifests by tag; basic or bearer-token authentication, as the registry asks.

use super::{Backend, BackendError, Result, body};
use crate::image::{Blob, Content};
use async_trait::async_trait;
use clouder_oci::{Error, IMAGE_MANIFEST, Scope};
use reqwest::{Method, RequestBuilder, Response, StatusCode, header};

pub use clouder_oci::Credentials;

/// One repository in a registry, e.g. `localhost:5000/checkpoints`.
pub struct Registry {
    client: clouder_oci::Registry,
    host: String,
    repo: String,
    /// Pushing asks for one token good for pull and push.
    scope: Scope,
}

impl Registry {
    /// `repository` is `HOST[:PORT]/NAME`; plain HTTP for localhost and 127.0.0.1 (as Docker
    /// and containerd do), HTTPS otherwise.
    pub fn new(repository: &str, credentials: Option<Credentials>) -> Result<Self> {
        let (host, repo) = repository
            .split_once('/')
            .filter(|(h, r)| !h.is_empty() && !r.is_empty())
            .ok_or_else(|| BackendError::Unreachable {
                location: repository.to_string(),
                reason: "a registry repository is HOST[:PORT]/NAME".to_string(),
            })?;
        Ok(Registry {
            client: clouder_oci::Registry::new(host, credentials, clouder_oci::is_local(host)),
            host: host.to_string(),
            repo: repo.to_string(),
            scope: Scope::push(repo),
        })
    }

    fn location(&self) -> String {
        format!("{}/{}", self.host, self.repo)
    }

    /// The shared client's error, named for this repository and operation.
    fn error(&self, operation: &str, e: Error) -> BackendError {
        let location = self.location();
        match e {
            Error::Unreachable(reason) => BackendError::Unreachable { location, reason },
            Error::CredentialsRequired => BackendError::Auth {
                location,
                reason: e.to_string(),
            },
            Error::Auth(reason) => BackendError::Auth { location, reason },
            Error::Refused { status, body } => BackendError::Auth {
                location,
                reason: format!("{operation}: {status}: {body}"),
            },
            Error::Status { status, body } => BackendError::Status {
                location,
                operation: operation.to_string(),
                status: status.as_u16(),
                body,
            },
            Error::Digest { .. } => BackendError::Status {
                location,
                operation: operation.to_string(),
                status: StatusCode::OK.as_u16(),
                body: e.to_string(),
            },
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, &format!("{}/{path}", self.repo))
    }

    /// Sends with the repository's push authorization; failures named by `operation`.
    async fn send(&self, request: RequestBuilder, operation: &str) -> Result<Response> {
        self.client
            .send(&self.scope, request)
            .await
            .map_err(|e| self.error(operation, e))
    }
}

#[async_trait]
impl Backend for Registry {
    fn location(&self) -> String {
        Registry::location(self)
    }

    async fn has_blob(&self, digest: &str) -> Result<bool> {
        self.client
            .has_blob(&self.scope, &self.repo, digest)
            .await
            .map_err(|e| self.error("checking a blob", e))
    }

    async fn put_blob(&self, blob: &Blob, content: &Content) -> Result<()> {
        let start = self.request(Method::POST, "blobs/uploads/");
        let started = self.send(start, "starting an upload").await?;
        let location = started
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| BackendError::Status {
                location: self.location(),
                operation: "starting an upload".to_string(),
                status: started.status().as_u16(),
                body: "no Location header".to_string(),
            })?;
        // The upload URL may be relative and may already carry a query (the registry's state).
        let mut url = location.to_string();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", blob.digest));
        let data = body(content).await.map_err(|source| BackendError::Io {
            location: self.location(),
            operation: format!("reading blob {}", blob.digest),
            source,
        })?;
        let upload = self
            .client
            .request(Method::PUT, &url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, blob.size)
            .body(data);
        self.send(upload, &format!("uploading blob {}", blob.digest))
            .await?;
        Ok(())
    }

    async fn put_manifest(&self, tag: &str, manifest: &Blob, json: &bytes::Bytes) -> Result<()> {
        let request = self
            .request(Method::PUT, &format!("manifests/{tag}"))
            .header(header::CONTENT_TYPE, &manifest.media_type)
            .body(json.clone());
        self.send(request, &format!("writing manifest {tag}"))
            .await?;
        Ok(())
    }

    async fn delete(&self, tag: &str) -> Result<()> {
        // The distribution API deletes manifests by digest: resolve the tag first.
        let digest = self
            .client
            .resolve(&self.repo, tag, IMAGE_MANIFEST)
            .await
            .map_err(|e| self.error(&format!("resolving {tag}"), e))?
            .ok_or_else(|| BackendError::NotFound {
                location: self.location(),
                reference: tag.to_string(),
            })?;
        let delete = self.request(Method::DELETE, &format!("manifests/{digest}"));
        self.send(delete, &format!("deleting {tag}")).await?;
        Ok(())
    }

    fn pulled_by_nodes(&self) -> bool {
        true
    }

    fn reference(&self, _tag: &str, manifest_digest: &str) -> String {
        format!("{}/{}@{manifest_digest}", self.host, self.repo)
    }
}
