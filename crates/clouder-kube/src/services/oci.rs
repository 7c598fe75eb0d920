//! Manifests from an OCI artifact, pulled with the distribution API: the manifest by tag or
//! digest, then each layer; a layer is YAML, or a (gzipped) tar of YAML files. Anonymous pulls,
//! or a bearer token the registry hands out anonymously (clouder-oci's client); plain HTTP for
//! localhost as Docker does.

use flate2::read::GzDecoder;
use serde_json::Value;
use std::io::Read;

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

    fn registry(&self) -> clouder_oci::Registry {
        clouder_oci::Registry::new(&self.host, None, clouder_oci::is_local(&self.host))
    }

    /// What went wrong, for the user: anonymous pulls only.
    fn error(&self, path: &str, e: clouder_oci::Error) -> String {
        use clouder_oci::Error;
        match e {
            Error::Unreachable(reason) => format!("{self} is unreachable: {reason}"),
            Error::CredentialsRequired | Error::Auth(_) => {
                format!("{self}: the registry requires credentials (anonymous pulls only)")
            }
            Error::Status { status, .. } if status == reqwest::StatusCode::NOT_FOUND => {
                let url = self.registry().url(&format!("{}/{path}", self.repo));
                format!("{self}: not found in the registry ({url})")
            }
            Error::Refused { status, body } | Error::Status { status, body } => {
                format!("{self}: the registry answered {status}: {body}")
            }
            Error::Digest { .. } => format!("{self}: {e}"),
        }
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
    let registry = reference.registry();
    let manifest = registry
        .manifest(&reference.repo, &reference.pin, clouder_oci::IMAGE_MANIFEST)
        .await
        .map_err(|e| reference.error(&format!("manifests/{}", reference.pin), e))?;
    let manifest: Value = serde_json::from_slice(&manifest.body)
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
        let blob = registry
            .blob(&reference.repo, digest)
            .await
            .map_err(|e| reference.error(&format!("blobs/{digest}"), e))?;
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
        assert_eq!(
            r.registry().url("charts/ingress"),
            "http://localhost:5000/v2/charts/ingress"
        );
        assert_eq!(r.to_string(), "localhost:5000/charts/ingress:1.2.0");
        let d = Reference::parse("ghcr.io/x/y@sha256:abc").unwrap();
        assert_eq!(
            (d.pin(), d.registry().url("x/y").as_str()),
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
