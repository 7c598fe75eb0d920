//! Manifests from an OCI artifact, pulled with the distribution API: the manifest by tag or
//! digest, then each layer; a layer is YAML, or a (gzipped) tar of YAML files. Anonymous pulls,
//! or a bearer token the registry hands out anonymously; plain HTTP for localhost as Docker does.

use flate2::read::GzDecoder;
use reqwest::{StatusCode, header};
use serde_json::Value;
use std::io::Read;

const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// `HOST[:PORT]/REPO:TAG` or `HOST[:PORT]/REPO@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub host: String,
    pub repo: String,
    /// A tag or a digest.
    pub pin: String,
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference, String> {
        let bad =
            |why: &str| format!("`{text}`: {why} (HOST[:PORT]/REPO:TAG or HOST/REPO@sha256:…)");
        let (host, rest) = text
            .split_once('/')
            .filter(|(h, r)| !h.is_empty() && !r.is_empty())
            .ok_or_else(|| bad("no registry host"))?;
        let (repo, pin) = match rest.split_once('@') {
            Some((repo, digest)) if digest.starts_with("sha256:") => (repo, digest),
            Some(_) => return Err(bad("a digest is sha256:…")),
            None => rest
                .rsplit_once(':')
                .filter(|(_, tag)| !tag.contains('/'))
                .ok_or_else(|| bad("pin a tag or digest"))?,
        };
        if repo.is_empty() || pin.is_empty() {
            return Err(bad("pin a tag or digest"));
        }
        Ok(Reference {
            host: host.to_string(),
            repo: repo.to_string(),
            pin: pin.to_string(),
        })
    }

    pub fn pin(&self) -> &str {
        &self.pin
    }

    fn base(&self) -> String {
        let local = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .any(|l| self.host == *l || self.host.starts_with(&format!("{l}:")));
        format!(
            "{}://{}/v2/{}",
            if local { "http" } else { "https" },
            self.host,
            self.repo
        )
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.pin.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        write!(f, "{}/{}{sep}{}", self.host, self.repo, self.pin)
    }
}

/// One YAML text of the artifact: its name (layer title or file in the tar) and content.
pub type Document = (String, String);

/// The artifact's YAML documents, layer by layer.
pub async fn pull(reference: &Reference) -> Result<Vec<Document>, String> {
    let http = reqwest::Client::new();
    let mut auth: Option<String> = None;
    let manifest = get(
        &http,
        &mut auth,
        reference,
        &format!("{}/manifests/{}", reference.base(), reference.pin),
        MANIFEST_TYPES,
    )
    .await?;
    let manifest: Value = serde_json::from_slice(&manifest)
        .map_err(|e| format!("{reference}: the manifest is not JSON: {e}"))?;
    let layers = manifest["layers"].as_array().ok_or_else(|| {
        format!("{reference}: the manifest has no layers (an index? pin one platform's manifest)")
    })?;
    let mut documents = Vec::new();
    for layer in layers {
        let digest = layer["digest"].as_str().unwrap_or_default();
        let media_type = layer["mediaType"].as_str().unwrap_or_default();
        let title = layer
            .pointer("/annotations/org.opencontainers.image.title")
            .and_then(Value::as_str)
            .unwrap_or(digest);
        let blob = get(
            &http,
            &mut auth,
            reference,
            &format!("{}/blobs/{digest}", reference.base()),
            "*/*",
        )
        .await?;
        let name = format!("{reference}/{title}");
        documents.extend(unpack(&name, media_type, &blob)?);
    }
    Ok(documents)
}

/// YAML as it is; a tar (gzipped or not) gives its .yaml/.yml/.json files in order.
fn unpack(name: &str, media_type: &str, blob: &[u8]) -> Result<Vec<Document>, String> {
    let gzipped = blob.starts_with(&[0x1f, 0x8b]);
    let tar = media_type.contains("tar") || gzipped;
    if !tar {
        let text = String::from_utf8(blob.to_vec())
            .map_err(|_| format!("{name}: a {media_type} layer that is not UTF-8 text"))?;
        return Ok(vec![(name.to_string(), text)]);
    }
    let reader: Box<dyn Read> = if gzipped {
        Box::new(GzDecoder::new(blob))
    } else {
        Box::new(blob)
    };
    let mut archive = tar::Archive::new(reader);
    let mut documents = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| format!("{name}: not a tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("{name}: not a tar archive: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("{name}: {e}"))?
            .display()
            .to_string();
        let manifest = [".yaml", ".yml", ".json"].iter().any(|e| path.ends_with(e));
        if !entry.header().entry_type().is_file() || !manifest {
            continue;
        }
        let mut text = String::new();
        entry
            .read_to_string(&mut text)
            .map_err(|e| format!("{name}/{path}: {e}"))?;
        documents.push((format!("{name}/{path}"), text));
    }
    documents.sort();
    Ok(documents)
}

async fn get(
    http: &reqwest::Client,
    auth: &mut Option<String>,
    reference: &Reference,
    url: &str,
    accept: &str,
) -> Result<Vec<u8>, String> {
    let unreachable = |e: reqwest::Error| {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason = format!("{reason}: {s}");
            source = s.source();
        }
        format!("{reference} is unreachable: {reason}")
    };
    for _ in 0..2 {
        let mut request = http.get(url).header(header::ACCEPT, accept);
        if let Some(token) = auth.as_ref() {
            request = request.header(header::AUTHORIZATION, token);
        }
        let response = request.send().await.map_err(unreachable)?;
        match response.status() {
            s if s.is_success() => {
                return Ok(response.bytes().await.map_err(unreachable)?.to_vec());
            }
            StatusCode::UNAUTHORIZED if auth.is_none() => {
                let challenge = response
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                *auth = Some(anonymous_token(http, reference, &challenge).await?);
            }
            StatusCode::NOT_FOUND => {
                return Err(format!("{reference}: not found in the registry ({url})"));
            }
            s => {
                let body = response.text().await.unwrap_or_default();
                return Err(format!(
                    "{reference}: the registry answered {s}: {}",
                    body.trim()
                ));
            }
        }
    }
    Err(format!(
        "{reference}: the registry refused an anonymous pull"
    ))
}

/// A pull token from the challenge's realm, asked for without credentials (public artifacts).
async fn anonymous_token(
    http: &reqwest::Client,
    reference: &Reference,
    challenge: &str,
) -> Result<String, String> {
    let refused =
        || format!("{reference}: the registry requires credentials (anonymous pulls only)");
    let params = challenge.strip_prefix("Bearer ").ok_or_else(refused)?;
    let param = |key: &str| {
        params.split(',').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == key).then(|| v.trim_matches('"').to_string())
        })
    };
    let realm = param("realm").ok_or_else(refused)?;
    let mut query = vec![("scope", format!("repository:{}:pull", reference.repo))];
    if let Some(service) = param("service") {
        query.push(("service", service));
    }
    let response = http
        .get(&realm)
        .query(&query)
        .send()
        .await
        .map_err(|_| refused())?;
    if !response.status().is_success() {
        return Err(refused());
    }
    let token: Value = response.json().await.map_err(|_| refused())?;
    token
        .get("token")
        .or_else(|| token.get("access_token"))
        .and_then(Value::as_str)
        .map(|t| format!("Bearer {t}"))
        .ok_or_else(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_pin_a_tag_or_digest() {
        let r = Reference::parse("localhost:5000/charts/ingress:1.2.0").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repo.as_str(), r.pin()),
            ("localhost:5000", "charts/ingress", "1.2.0")
        );
        assert_eq!(r.base(), "http://localhost:5000/v2/charts/ingress");
        assert_eq!(r.to_string(), "localhost:5000/charts/ingress:1.2.0");
        let d = Reference::parse("ghcr.io/x/y@sha256:abc").unwrap();
        assert_eq!(
            (d.pin(), d.base().as_str()),
            ("sha256:abc", "https://ghcr.io/v2/x/y")
        );
        assert!(
            Reference::parse("localhost:5000/x")
                .unwrap_err()
                .contains("pin a tag or digest")
        );
        assert!(
            Reference::parse("x:1")
                .unwrap_err()
                .contains("no registry host")
        );
    }

    #[test]
    fn a_gzipped_tar_layer_gives_its_yaml_files() {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, body) in [
            ("b/two.yaml", "b: 2\n"),
            ("README", "no"),
            ("a.yml", "a: 1\n"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, path, body.as_bytes()).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
        let docs = unpack(
            "r",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &gz.finish().unwrap(),
        )
        .unwrap();
        assert_eq!(
            docs,
            [
                ("r/a.yml".to_string(), "a: 1\n".to_string()),
                ("r/b/two.yaml".to_string(), "b: 2\n".to_string())
            ]
        );
        assert_eq!(
            unpack("r", "application/yaml", b"c: 3").unwrap()[0].1,
            "c: 3"
        );
    }
}
