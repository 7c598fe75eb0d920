//! An OCI registry through the distribution API: `HEAD` a blob before uploading it, monolithic
//! streamed uploads, manifests by tag; basic or bearer-token authentication, as the registry asks.

use super::{Backend, BackendError, Result, body};
use crate::image::{Blob, Content};
use async_trait::async_trait;
use reqwest::{Method, RequestBuilder, Response, StatusCode, header};
use tokio::sync::Mutex;

/// A user name and password (or token) for a registry. Never logged or stored.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ****)", self.username)
    }
}

/// One repository in a registry, e.g. `localhost:5000/checkpoints`.
pub struct Registry {
    http: reqwest::Client,
    /// `http://host:port` or `https://host`.
    base: String,
    host: String,
    repo: String,
    credentials: Option<Credentials>,
    /// The `Authorization` header value, settled by the first request.
    auth: Mutex<Option<Option<String>>>,
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
        let local = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .any(|l| host == *l || host.starts_with(&format!("{l}:")));
        let scheme = if local { "http" } else { "https" };
        Ok(Registry {
            http: reqwest::Client::new(),
            base: format!("{scheme}://{host}"),
            host: host.to_string(),
            repo: repo.to_string(),
            credentials,
            auth: Mutex::new(None),
        })
    }

    fn location(&self) -> String {
        format!("{}/{}", self.host, self.repo)
    }

    fn unreachable(&self, e: reqwest::Error) -> BackendError {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason = format!("{reason}: {s}");
            source = s.source();
        }
        BackendError::Unreachable {
            location: self.location(),
            reason,
        }
    }

    /// The Authorization header for this repository: none when `/v2/` answers without a
    /// challenge, basic credentials, or a bearer token from the challenge's realm.
    async fn authorization(&self) -> Result<Option<String>> {
        let mut cached = self.auth.lock().await;
        if let Some(auth) = cached.as_ref() {
            return Ok(auth.clone());
        }
        let response = self
            .http
            .get(format!("{}/v2/", self.base))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let auth = if response.status() == StatusCode::UNAUTHORIZED {
            let challenge = response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let Some(credentials) = &self.credentials else {
                return Err(
                    self.auth_error("the registry requires credentials and none were given")
                );
            };
            Some(self.answer(&challenge, credentials).await?)
        } else {
            None
        };
        *cached = Some(auth.clone());
        Ok(auth)
    }

    fn auth_error(&self, reason: &str) -> BackendError {
        BackendError::Auth {
            location: self.location(),
            reason: reason.to_string(),
        }
    }

    async fn answer(&self, challenge: &str, credentials: &Credentials) -> Result<String> {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", credentials.username, credentials.password));
        let Some(params) = challenge.strip_prefix("Bearer ") else {
            return Ok(format!("Basic {basic}"));
        };
        let param = |key: &str| {
            params.split(',').find_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                (k == key).then(|| v.trim_matches('"').to_string())
            })
        };
        let realm =
            param("realm").ok_or_else(|| self.auth_error("bearer challenge without a realm"))?;
        let mut query = vec![(
            "scope".to_string(),
            format!("repository:{}:pull,push", self.repo),
        )];
        if let Some(service) = param("service") {
            query.push(("service".to_string(), service));
        }
        let response = self
            .http
            .get(&realm)
            .query(&query)
            .header(header::AUTHORIZATION, format!("Basic {basic}"))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            return Err(self.auth_error(&format!(
                "token service {realm} answered {}",
                response.status()
            )));
        }
        let token: serde_json::Value = response.json().await.map_err(|e| self.unreachable(e))?;
        let token = token
            .get("token")
            .or_else(|| token.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| self.auth_error("token service answered without a token"))?;
        Ok(format!("Bearer {token}"))
    }

    async fn request(&self, method: Method, url: &str) -> Result<RequestBuilder> {
        let mut request = self.http.request(method, url);
        if let Some(auth) = self.authorization().await? {
            request = request.header(header::AUTHORIZATION, auth);
        }
        Ok(request)
    }

    /// Sends and maps failures: 401/403 to an authentication error, other non-success to
    /// [`BackendError::Status`] with the registry's own message.
    async fn send(&self, request: RequestBuilder, operation: &str) -> Result<Response> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let body = response.text().await.unwrap_or_default();
            return Err(self.auth_error(&format!("{operation}: {status}: {}", body.trim())));
        }
        if !status.is_success() {
            return Err(BackendError::Status {
                location: self.location(),
                operation: operation.to_string(),
                status: status.as_u16(),
                body: response.text().await.unwrap_or_default().trim().to_string(),
            });
        }
        Ok(response)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repo)
    }
}

#[async_trait]
impl Backend for Registry {
    fn location(&self) -> String {
        Registry::location(self)
    }

    async fn has_blob(&self, digest: &str) -> Result<bool> {
        let request = self
            .request(Method::HEAD, &self.url(&format!("blobs/{digest}")))
            .await?;
        match self.send(request, "checking a blob").await {
            Ok(_) => Ok(true),
            Err(BackendError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn put_blob(&self, blob: &Blob, content: &Content) -> Result<()> {
        let start = self
            .request(Method::POST, &self.url("blobs/uploads/"))
            .await?;
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
        let mut url = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_string()
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", blob.digest));
        let data = body(content).await.map_err(|source| BackendError::Io {
            location: self.location(),
            operation: format!("reading blob {}", blob.digest),
            source,
        })?;
        let upload = self
            .request(Method::PUT, &url)
            .await?
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, blob.size)
            .body(data);
        self.send(upload, &format!("uploading blob {}", blob.digest))
            .await?;
        Ok(())
    }

    async fn put_manifest(&self, tag: &str, manifest: &Blob, json: &bytes::Bytes) -> Result<()> {
        let request = self
            .request(Method::PUT, &self.url(&format!("manifests/{tag}")))
            .await?
            .header(header::CONTENT_TYPE, &manifest.media_type)
            .body(json.clone());
        self.send(request, &format!("writing manifest {tag}"))
            .await?;
        Ok(())
    }

    async fn delete(&self, tag: &str) -> Result<()> {
        // The distribution API deletes manifests by digest: resolve the tag first.
        let head = self
            .request(Method::HEAD, &self.url(&format!("manifests/{tag}")))
            .await?
            .header(header::ACCEPT, "application/vnd.oci.image.manifest.v1+json");
        let response = match self.send(head, &format!("resolving {tag}")).await {
            Err(BackendError::Status { status: 404, .. }) => {
                return Err(BackendError::NotFound {
                    location: self.location(),
                    reference: tag.to_string(),
                });
            }
            other => other?,
        };
        let digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(tag)
            .to_string();
        let delete = self
            .request(Method::DELETE, &self.url(&format!("manifests/{digest}")))
            .await?;
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
