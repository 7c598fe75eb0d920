//! A read-only OCI distribution client: resolves a reference to its manifest digest, picks a
//! platform from an index, reads the image's config blob. It never asks for a layer: the
//! compressed size is the sum of the layer sizes the manifest declares.
//!
//! Authentication as the registry asks (`WWW-Authenticate`): basic, or a bearer token from the
//! challenge's realm (Docker Hub style, anonymous unless credentials are given).

use crate::reference::Reference;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use reqwest::{StatusCode, header};
use serde::Serialize;
use std::collections::BTreeMap;
use tokio::sync::Mutex;

/// Manifest media types asked for: OCI and Docker, single images and indexes.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("registry {registry} is unreachable: {reason}")]
    Unreachable { registry: String, reason: String },
    #[error("registry {registry} requires authentication: {reason}")]
    Auth { registry: String, reason: String },
    #[error("{reference}: not found in the registry")]
    NotFound { reference: String },
    #[error("registry {registry}: {what} failed with {status}: {body}")]
    Status {
        registry: String,
        what: String,
        status: u16,
        body: String,
    },
    #[error("{reference}: {reason}")]
    Invalid { reference: String, reason: String },
}

pub type Result<T> = std::result::Result<T, OciError>;

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

/// `os/architecture[/variant]`, e.g. `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: parts
                    .get(2)
                    .filter(|v| !v.is_empty())
                    .map(|v| v.to_string()),
            }),
            _ => Err(format!("`{s}` is not OS/ARCH[/VARIANT], e.g. linux/amd64")),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// What the registry says about an image, without its layers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageFacts {
    /// The reference as given, normalised.
    pub reference: String,
    /// The digest the reference resolves to (an index's, for a multi-platform image).
    pub digest: String,
    /// `REGISTRY/REPOSITORY@DIGEST`: what to run.
    pub pinned: String,
    /// The chosen platform's manifest digest (equal to `digest` for a single image).
    pub manifest_digest: String,
    /// Platforms an index offers (empty for a single image).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    pub os: String,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// Empty when the image does not say (it then runs as root).
    pub user: String,
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Sum of the compressed layer sizes the manifest declares, in bytes.
    pub compressed_size: u64,
    pub layers: usize,
}

/// A client for one registry host.
pub struct Registry {
    http: reqwest::Client,
    base: String,
    registry: String,
    credentials: Option<Credentials>,
    /// The `Authorization` value once a challenge was answered.
    auth: Mutex<Option<String>>,
}

impl Registry {
    /// HTTPS with the system's roots; plain HTTP only when `insecure` is asked.
    pub fn new(registry: &str, credentials: Option<Credentials>, insecure: bool) -> Self {
        // Docker Hub's API lives at registry-1.docker.io.
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        let scheme = if insecure { "http" } else { "https" };
        Registry {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("an HTTP client with default settings"),
            base: format!("{scheme}://{host}"),
            registry: registry.to_string(),
            credentials,
            auth: Mutex::new(None),
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> OciError {
        OciError::Unreachable {
            registry: self.registry.clone(),
            reason: chain(&e),
        }
    }

    /// GET `path` under `/v2/`, answering an authentication challenge once.
    async fn get(&self, path: &str, accept: &str, what: &str) -> Result<reqwest::Response> {
        let url = format!("{}/v2/{path}", self.base);
        let send = |auth: Option<String>| {
            let mut request = self.http.get(&url).header(header::ACCEPT, accept);
            if let Some(auth) = auth {
                request = request.header(header::AUTHORIZATION, auth);
            }
            request.send()
        };
        let cached = self.auth.lock().await.clone();
        let mut response = send(cached.clone())
            .await
            .map_err(|e| self.unreachable(e))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let challenge = response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let auth = self.answer(&challenge, path).await?;
            *self.auth.lock().await = Some(auth.clone());
            response = send(Some(auth)).await.map_err(|e| self.unreachable(e))?;
        }
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.auth_error(&format!("{what}: the registry answered {status}")));
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default().trim().to_string();
            return Err(OciError::Status {
                registry: self.registry.clone(),
                what: what.to_string(),
                status: status.as_u16(),
                body,
            });
        }
        Ok(response)
    }

    fn auth_error(&self, reason: &str) -> OciError {
        OciError::Auth {
            registry: self.registry.clone(),
            reason: reason.to_string(),
        }
    }

    /// The `Authorization` value for a challenge: basic credentials, or a pull token.
    async fn answer(&self, challenge: &str, path: &str) -> Result<String> {
        use base64::Engine;
        let basic = self.credentials.as_ref().map(|c| {
            let pair = format!("{}:{}", c.username, c.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        let Some(params) = challenge.strip_prefix("Bearer ") else {
            return basic.ok_or_else(|| {
                self.auth_error(
                    "no credentials given (set CLOUDER_REGISTRY_USERNAME and CLOUDER_REGISTRY_PASSWORD)",
                )
            });
        };
        let param = |key: &str| {
            params.split(',').find_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                (k == key).then(|| v.trim_matches('"').to_string())
            })
        };
        let realm =
            param("realm").ok_or_else(|| self.auth_error("bearer challenge without a realm"))?;
        // The repository is the path up to `/manifests/` or `/blobs/`.
        let repository = path
            .split_once("/manifests/")
            .or_else(|| path.split_once("/blobs/"))
            .map_or(path, |(repo, _)| repo);
        let mut query = vec![("scope", format!("repository:{repository}:pull"))];
        if let Some(service) = param("service") {
            query.push(("service", service));
        }
        let mut request = self.http.get(&realm).query(&query);
        if let Some(basic) = basic {
            request = request.header(header::AUTHORIZATION, basic);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            return Err(self.auth_error(&format!(
                "token service {realm} answered {}",
                response.status()
            )));
        }
        let body: serde_json::Value = response.json().await.map_err(|e| self.unreachable(e))?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| self.auth_error("the token service answered without a token"))?;
        Ok(format!("Bearer {token}"))
    }

    /// A manifest or index by tag or digest: its digest, media type and body.
    async fn manifest(&self, reference: &Reference, target: &str) -> Result<(String, Vec<u8>)> {
        let path = format!("{}/manifests/{target}", reference.repository);
        let response = match self.get(&path, ACCEPT, "reading the manifest").await {
            Err(OciError::Status { status: 404, .. }) => {
                return Err(OciError::NotFound {
                    reference: reference.to_string(),
                });
            }
            other => other?,
        };
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.bytes().await.map_err(|e| self.unreachable(e))?;
        let digest = format!("sha256:{}", hex::encode(sha256(&body)));
        // A digest we asked for must be what we got.
        if target.starts_with("sha256:") && target != digest {
            return Err(invalid(
                reference,
                format!("the registry served {digest} for {target}"),
            ));
        }
        Ok((header_digest.unwrap_or(digest), body.to_vec()))
    }

    /// Reads what `reference` is for `platform`: manifest(s) and config, never a layer.
    pub async fn inspect(&self, reference: &Reference, platform: &Platform) -> Result<ImageFacts> {
        let (digest, body) = self.manifest(reference, reference.target()).await?;
        let media_type = media_type(&body);
        let (manifest_digest, manifest, platforms) =
            if media_type.contains("index") || media_type.contains("manifest.list") {
                let index: ImageIndex = serde_json::from_slice(&body)
                    .map_err(|e| invalid(reference, format!("unreadable index: {e}")))?;
                let offered: Vec<(String, String)> = index
                    .manifests()
                    .iter()
                    .filter_map(|m| {
                        let p = m.platform().as_ref()?;
                        let found = Platform {
                            os: p.os().to_string(),
                            architecture: p.architecture().to_string(),
                            variant: p.variant().clone(),
                        };
                        Some((found.to_string(), m.digest().to_string()))
                    })
                    .collect();
                let names: Vec<String> = offered.iter().map(|(p, _)| p.clone()).collect();
                // Without a variant asked for, any variant of the architecture will do.
                let chosen = offered.iter().find(|(p, _)| {
                    let p: Platform = p.parse().expect("formatted above");
                    p.os == platform.os
                        && p.architecture == platform.architecture
                        && (platform.variant.is_none() || p.variant == platform.variant)
                });
                let Some((_, chosen)) = chosen else {
                    return Err(OciError::Invalid {
                        reference: reference.to_string(),
                        reason: format!(
                            "no {platform} image in the index (it offers: {})",
                            names.join(", ")
                        ),
                    });
                };
                let (d, body) = self.manifest(reference, chosen).await?;
                (d, body, names)
            } else {
                (digest.clone(), body, Vec::new())
            };
        let manifest: ImageManifest = serde_json::from_slice(&manifest)
            .map_err(|e| invalid(reference, format!("unreadable manifest: {e}")))?;
        let config_digest = manifest.config().digest().to_string();
        let config = self
            .get(
                &format!("{}/blobs/{config_digest}", reference.repository),
                "application/vnd.oci.image.config.v1+json, application/vnd.docker.container.image.v1+json",
                "reading the image config",
            )
            .await?
            .bytes()
            .await
            .map_err(|e| self.unreachable(e))?;
        if format!("sha256:{}", hex::encode(sha256(&config))) != config_digest {
            return Err(invalid(
                reference,
                "the config blob does not match its digest".into(),
            ));
        }
        let config: ImageConfiguration = serde_json::from_slice(&config)
            .map_err(|e| invalid(reference, format!("unreadable image config: {e}")))?;
        let run = config.config().clone().unwrap_or_default();
        let mut exposed_ports = run.exposed_ports().clone().unwrap_or_default();
        exposed_ports.sort();
        Ok(ImageFacts {
            reference: reference.to_string(),
            pinned: reference.pinned(&digest),
            digest,
            manifest_digest,
            platforms,
            os: config.os().to_string(),
            architecture: config.architecture().to_string(),
            variant: config.variant().clone(),
            entrypoint: run.entrypoint().clone().unwrap_or_default(),
            cmd: run.cmd().clone().unwrap_or_default(),
            user: run.user().clone().unwrap_or_default(),
            exposed_ports,
            labels: run
                .labels()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            compressed_size: manifest.layers().iter().map(|l| l.size()).sum(),
            layers: manifest.layers().len(),
        })
    }
}

fn invalid(reference: &Reference, reason: String) -> OciError {
    OciError::Invalid {
        reference: reference.to_string(),
        reason,
    }
}

/// The media type a manifest body declares (`mediaType`), index or image.
fn media_type(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(body) {
        // An OCI index may leave out its mediaType; it still has `manifests`.
        Ok(p) if p.media_type.is_empty() && p.manifests.is_some() => {
            "application/vnd.oci.image.index.v1+json".into()
        }
        Ok(p) => p.media_type,
        Err(_) => String::new(),
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

/// An error with its sources, e.g. "error sending request: connection refused".
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !reason.contains(&s_text) {
            reason = format!("{reason}: {s_text}");
        }
        source = s.source();
    }
    reason
}
