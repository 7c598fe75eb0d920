//! One OCI distribution client for clouder's three registry users (BYOC image validation,
//! checkpoint images, service manifests): authentication as the registry asks in its
//! `WWW-Authenticate` challenge — basic credentials, or a bearer token from the challenge's
//! realm, fetched once per scope and cached — and manifests and blobs by GET/HEAD.
//! Writes (uploads, manifest PUTs) go through [`Registry::send`] with the same authentication.

mod challenge;

pub use challenge::Challenge;

use bytes::Bytes;
use reqwest::{Method, RequestBuilder, Response, StatusCode, header};
use std::collections::HashMap;
use tokio::sync::Mutex;

/// Manifest media types for any image: OCI and Docker, single images and indexes.
pub const ANY_MANIFEST: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Manifest media types for one image (no index).
pub const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// How the registry's answers went wrong. Callers name the registry and the operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The registry asks for credentials and none were given.
    #[error("the registry requires credentials and none were given")]
    CredentialsRequired,
    /// The challenge could not be answered (a token service refusing, a malformed challenge).
    #[error("{0}")]
    Auth(String),
    /// 401 or 403 with the challenge answered: wrong credentials or no access.
    #[error("{status}: {body}")]
    Refused { status: StatusCode, body: String },
    /// Any other non-success answer (404 included), with the registry's own message.
    #[error("{status}: {body}")]
    Status { status: StatusCode, body: String },
    /// The content does not hash to the digest it was asked for.
    #[error("served {got} for {expected}")]
    Digest { expected: String, got: String },
}

pub type Result<T> = std::result::Result<T, Error>;

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

impl Credentials {
    fn basic(&self) -> String {
        use base64::Engine;
        let pair = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

/// What a bearer token is asked for: `repository:NAME:ACTIONS`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(String);

impl Scope {
    pub fn pull(repository: &str) -> Scope {
        Scope(format!("repository:{repository}:pull"))
    }
    pub fn push(repository: &str) -> Scope {
        Scope(format!("repository:{repository}:pull,push"))
    }
}

/// `localhost`, `127.0.0.1` or `[::1]`, with or without a port: Docker and containerd speak
/// plain HTTP to these without being told.
pub fn is_local(host: &str) -> bool {
    ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|l| host == *l || host.starts_with(&format!("{l}:")))
}

/// A manifest or index as served.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The registry's `Docker-Content-Digest`, or the body's SHA-256.
    pub digest: String,
    pub body: Bytes,
}

/// A client for one registry host.
pub struct Registry {
    http: reqwest::Client,
    /// `https://host[:port]` (or `http://` when plain HTTP was chosen).
    base: String,
    credentials: Option<Credentials>,
    /// The `Authorization` value per scope once settled: `None` when the registry asked for none.
    auth: Mutex<HashMap<Scope, Option<String>>>,
}

impl Registry {
    /// HTTPS to `host` (Docker Hub's API host for `docker.io`); plain HTTP only when the
    /// caller's rule says so (`--insecure-registry`, or [`is_local`]).
    pub fn new(host: &str, credentials: Option<Credentials>, plain_http: bool) -> Registry {
        let host = if host == "docker.io" {
            "registry-1.docker.io"
        } else {
            host
        };
        let scheme = if plain_http { "http" } else { "https" };
        Registry {
            http: reqwest::Client::new(),
            base: format!("{scheme}://{host}"),
            credentials,
            auth: Mutex::new(HashMap::new()),
        }
    }

    /// The same, through a client of the caller's (timeouts, trust roots).
    pub fn with_http(mut self, http: reqwest::Client) -> Registry {
        self.http = http;
        self
    }

    /// A request to `path` under `/v2/`, or to an absolute URL the registry gave (an upload's
    /// `Location`, relative or not).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// The URL of `path` as [`Registry::request`] resolves it.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            format!("{}/v2/{path}", self.base)
        }
    }

    /// Sends with the scope's authorization, answering a challenge once; a non-success answer
    /// is an error. A body that cannot be sent twice (a stream) is sent only once the scope's
    /// authorization is settled.
    pub async fn send(&self, scope: &Scope, request: RequestBuilder) -> Result<Response> {
        let settled = self.auth.lock().await.get(scope).cloned();
        let cached = match settled {
            Some(cached) => cached,
            None if request.try_clone().is_none() => self.authorize(scope).await?,
            None => None,
        };
        let with = |auth: &Option<String>, request: RequestBuilder| match auth {
            Some(auth) => request.header(header::AUTHORIZATION, auth),
            None => request,
        };
        let retry = request.try_clone();
        let mut response = with(&cached, request).send().await.map_err(unreachable)?;
        if response.status() == StatusCode::UNAUTHORIZED
            && let Some(retry) = retry
        {
            let answer = Some(self.answer(&response, scope).await?);
            self.auth.lock().await.insert(scope.clone(), answer.clone());
            response = with(&answer, retry).send().await.map_err(unreachable)?;
        }
        let status = response.status();
        if status.is_success() {
            if cached.is_none() {
                // Answered without a challenge: this scope needs no authorization.
                self.auth.lock().await.entry(scope.clone()).or_insert(None);
            }
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default().trim().to_string();
        Err(
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                Error::Refused { status, body }
            } else {
                Error::Status { status, body }
            },
        )
    }

    /// Settles the scope's authorization before a request that cannot be repeated: `GET /v2/`
    /// and the answer to its challenge (none when it has none).
    async fn authorize(&self, scope: &Scope) -> Result<Option<String>> {
        let probe = self
            .request(Method::GET, "")
            .send()
            .await
            .map_err(unreachable)?;
        let answer = if probe.status() == StatusCode::UNAUTHORIZED {
            Some(self.answer(&probe, scope).await?)
        } else {
            None
        };
        self.auth.lock().await.insert(scope.clone(), answer.clone());
        Ok(answer)
    }

    /// The `Authorization` value for a 401's challenge: basic credentials, or a token from
    /// the realm for the scope (asked anonymously when no credentials were given).
    async fn answer(&self, unauthorized: &Response, scope: &Scope) -> Result<String> {
        let header = unauthorized
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let basic = self.credentials.as_ref().map(Credentials::basic);
        let (realm, service) = match Challenge::parse(header).map_err(Error::Auth)? {
            Challenge::Basic => return basic.ok_or(Error::CredentialsRequired),
            Challenge::Bearer { realm, service } => (realm, service),
        };
        let mut query = vec![("scope", scope.0.clone())];
        query.extend(service.map(|s| ("service", s)));
        let mut request = self.http.get(&realm).query(&query);
        if let Some(basic) = basic {
            request = request.header(header::AUTHORIZATION, basic);
        }
        let response = request.send().await.map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(Error::Auth(format!(
                "token service {realm} answered {}",
                response.status()
            )));
        }
        let body: serde_json::Value = response.json().await.map_err(unreachable)?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| Error::Auth("the token service answered without a token".into()))?;
        Ok(format!("Bearer {token}"))
    }

    /// A manifest (or index) by tag or digest, `accept`ing the given media types; a manifest
    /// asked for by digest must hash to it.
    pub async fn manifest(&self, repository: &str, target: &str, accept: &str) -> Result<Manifest> {
        let request = self
            .request(Method::GET, &format!("{repository}/manifests/{target}"))
            .header(header::ACCEPT, accept);
        let response = self.send(&Scope::pull(repository), request).await?;
        let served = content_digest(&response);
        let body = response.bytes().await.map_err(unreachable)?;
        let digest = sha256_digest(&body);
        if target.starts_with("sha256:") && target != digest {
            return Err(Error::Digest {
                expected: target.to_string(),
                got: digest,
            });
        }
        Ok(Manifest {
            digest: served.unwrap_or(digest),
            body,
        })
    }

    /// The digest a tag resolves to (`HEAD`), `None` when the registry does not have it.
    pub async fn resolve(
        &self,
        repository: &str,
        target: &str,
        accept: &str,
    ) -> Result<Option<String>> {
        let request = self
            .request(Method::HEAD, &format!("{repository}/manifests/{target}"))
            .header(header::ACCEPT, accept);
        match self.send(&Scope::pull(repository), request).await {
            Ok(response) => Ok(Some(
                content_digest(&response).unwrap_or_else(|| target.to_string()),
            )),
            Err(Error::Status { status, .. }) if status == StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A blob's content, checked against its digest. Layers are only read when asked for.
    pub async fn blob(&self, repository: &str, digest: &str) -> Result<Bytes> {
        let request = self.request(Method::GET, &format!("{repository}/blobs/{digest}"));
        let body = self
            .send(&Scope::pull(repository), request)
            .await?
            .bytes()
            .await
            .map_err(unreachable)?;
        let got = sha256_digest(&body);
        if digest.starts_with("sha256:") && got != digest {
            return Err(Error::Digest {
                expected: digest.to_string(),
                got,
            });
        }
        Ok(body)
    }

    /// Whether the repository holds the blob (`HEAD`), with `scope`'s authorization (a
    /// pusher asks with its push scope, so one token serves the whole upload).
    pub async fn has_blob(&self, scope: &Scope, repository: &str, digest: &str) -> Result<bool> {
        let request = self.request(Method::HEAD, &format!("{repository}/blobs/{digest}"));
        match self.send(scope, request).await {
            Ok(_) => Ok(true),
            Err(Error::Status { status, .. }) if status == StatusCode::NOT_FOUND => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn content_digest(response: &Response) -> Option<String> {
    response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `sha256:HEX` of the bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn unreachable(e: reqwest::Error) -> Error {
    Error::Unreachable(chain(&e))
}

/// An error with its sources, e.g. "error sending request: connection refused".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !reason.contains(&text) {
            reason = format!("{reason}: {text}");
        }
        source = s.source();
    }
    reason
}
