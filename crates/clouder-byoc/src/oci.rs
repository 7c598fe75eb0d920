//! A read-only OCI distribution client: resolves a reference to its manifest digest, picks a
//! platform from an index, reads the image's config blob. It never asks for a layer: the
//! compressed size is the sum of the layer sizes the manifest declares.
//!
//! Authentication is clouder-oci's, as the registry asks: basic, or a bearer token from the
//! challenge's realm (Docker Hub style, anonymous unless credentials are given).

use crate::reference::Reference;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde::Serialize;
use std::collections::BTreeMap;

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

pub use clouder_oci::Credentials;

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
    client: clouder_oci::Registry,
    registry: String,
}

impl Registry {
    /// HTTPS with the system's roots; plain HTTP only when `insecure` is asked.
    pub fn new(registry: &str, credentials: Option<Credentials>, insecure: bool) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("an HTTP client with default settings");
        Registry {
            client: clouder_oci::Registry::new(registry, credentials, insecure).with_http(http),
            registry: registry.to_string(),
        }
    }

    /// The shared client's error, named for this registry and reference.
    fn error(&self, reference: &Reference, what: &str, e: clouder_oci::Error) -> OciError {
        use clouder_oci::Error;
        let auth = |reason: String| OciError::Auth {
            registry: self.registry.clone(),
            reason,
        };
        match e {
            Error::Unreachable(reason) => OciError::Unreachable {
                registry: self.registry.clone(),
                reason,
            },
            Error::CredentialsRequired => auth(
                "no credentials given (set CLOUDER_REGISTRY_USERNAME and CLOUDER_REGISTRY_PASSWORD)"
                    .into(),
            ),
            Error::Auth(reason) => auth(reason),
            Error::Refused { status, .. } => {
                auth(format!("{what}: the registry answered {status}"))
            }
            Error::Status { status, .. } if status == reqwest::StatusCode::NOT_FOUND => {
                OciError::NotFound {
                    reference: reference.to_string(),
                }
            }
            Error::Status { status, body } => OciError::Status {
                registry: self.registry.clone(),
                what: what.to_string(),
                status: status.as_u16(),
                body,
            },
            Error::Digest { expected, got } => invalid(
                reference,
                format!("the registry served {got} for {expected}"),
            ),
        }
    }

    /// A manifest or index by tag or digest: its digest and body.
    async fn manifest(&self, reference: &Reference, target: &str) -> Result<(String, Vec<u8>)> {
        let m = self
            .client
            .manifest(&reference.repository, target, clouder_oci::ANY_MANIFEST)
            .await
            .map_err(|e| self.error(reference, "reading the manifest", e))?;
        Ok((m.digest, m.body.to_vec()))
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
        let config = match self
            .client
            .blob(&reference.repository, &config_digest)
            .await
        {
            Err(clouder_oci::Error::Digest { .. }) => {
                return Err(invalid(
                    reference,
                    "the config blob does not match its digest".into(),
                ));
            }
            other => other.map_err(|e| self.error(reference, "reading the image config", e))?,
        };
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

pub(crate) use clouder_oci::chain;
