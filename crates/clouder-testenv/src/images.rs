//! Images built in the test and pushed to a real registry with the distribution API: blob
//! uploads (POST, then PUT with `?digest=`) and manifests by tag.

use serde_json::{Value, json};
use sha2::Digest;

pub struct Pusher {
    http: reqwest::Client,
    base: String,
    repo: String,
    auth: Option<String>,
}

/// A descriptor for a pushed blob.
pub fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": digest(bytes), "size": bytes.len()})
}

pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";

impl Pusher {
    /// Pushes to `http://HOST/v2/REPO/…`, as `user:password` when given.
    pub fn new(host: &str, repo: &str, user: Option<(&str, &str)>) -> Self {
        use base64::Engine;
        let auth = user.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        Self::with_authorization(host, repo, auth)
    }

    /// Pushes with this `Authorization` header (e.g. a bearer token).
    pub fn with_authorization(host: &str, repo: &str, authorization: Option<String>) -> Self {
        Pusher {
            http: reqwest::Client::new(),
            base: format!("http://{host}"),
            repo: repo.to_string(),
            auth: authorization,
        }
    }

    fn with_auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some(a) => r.header("authorization", a),
            None => r,
        }
    }

    pub async fn blob(&self, bytes: &[u8]) -> String {
        let start = self
            .with_auth(
                self.http
                    .post(format!("{}/v2/{}/blobs/uploads/", self.base, self.repo)),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), 202, "{}", start.text().await.unwrap());
        let location = start.headers()["location"].to_str().unwrap().to_string();
        let mut url = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", digest(bytes)));
        let put = self
            .with_auth(self.http.put(url))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201, "{}", put.text().await.unwrap());
        digest(bytes)
    }

    /// Puts `manifest` under `tag`; returns its digest.
    pub async fn manifest(&self, tag: &str, media_type: &str, manifest: &Value) -> String {
        let body = serde_json::to_vec(manifest).unwrap();
        let put = self
            .with_auth(
                self.http
                    .put(format!("{}/v2/{}/manifests/{tag}", self.base, self.repo)),
            )
            .header("content-type", media_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201, "{}", put.text().await.unwrap());
        digest(&body)
    }

    /// An image: its config (`config` merged into the OCI config's `config`), layers of the
    /// given sizes (pseudo-random bytes, so none compress or repeat); returns the manifest's
    /// digest and the layer digests.
    pub async fn image(
        &self,
        tag: &str,
        platform: (&str, &str, Option<&str>),
        config: Value,
        layer_sizes: &[usize],
    ) -> (String, Vec<String>) {
        let mut layers = Vec::new();
        let mut layer_digests = Vec::new();
        for (i, size) in layer_sizes.iter().enumerate() {
            let bytes = noise(&format!("{}/{tag}/{i}/{:?}", self.repo, platform), *size);
            layer_digests.push(self.blob(&bytes).await);
            layers.push(descriptor(LAYER, &bytes));
        }
        let mut image = json!({
            "architecture": platform.1,
            "os": platform.0,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": layer_digests},
        });
        if let Some(v) = platform.2 {
            image["variant"] = json!(v);
        }
        let config = serde_json::to_vec(&image).unwrap();
        self.blob(&config).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": descriptor(CONFIG, &config),
            "layers": layers,
        });
        (self.manifest(tag, MANIFEST, &manifest).await, layer_digests)
    }

    /// A multi-platform index over images already pushed: (digest, os, arch, variant).
    pub async fn index(&self, tag: &str, images: &[(String, &str, &str, Option<&str>)]) -> String {
        let mut manifests = Vec::new();
        for (digest, os, arch, variant) in images {
            let (_, body) = self.get_manifest(digest).await;
            let mut platform = json!({"os": os, "architecture": arch});
            if let Some(v) = variant {
                platform["variant"] = json!(v);
            }
            manifests.push(json!({
                "mediaType": MANIFEST, "digest": digest, "size": body.len(), "platform": platform,
            }));
        }
        let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests});
        self.manifest(tag, INDEX, &index).await
    }

    async fn get_manifest(&self, digest: &str) -> (String, Vec<u8>) {
        let r = self
            .with_auth(
                self.http
                    .get(format!("{}/v2/{}/manifests/{digest}", self.base, self.repo)),
            )
            .header("accept", MANIFEST)
            .send()
            .await
            .unwrap();
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        (ct, r.bytes().await.unwrap().to_vec())
    }
}

/// `size` bytes that do not repeat: SHA-256 in counter mode over `seed`.
pub fn noise(seed: &str, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 32);
    let mut i = 0u64;
    while out.len() < size {
        out.extend_from_slice(&sha2::Sha256::digest(format!("{seed}/{i}")));
        i += 1;
    }
    out.truncate(size);
    out
}
