//! The real docker-registry peer (distribution 2.8, installed by `scripts/peers.sh`), one per
//! test on a free port, and artifacts pushed to it with the distribution API.

use sha2::{Digest, Sha256};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct RegistryPeer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl RegistryPeer {
    pub fn start() -> RegistryPeer {
        let root = PathBuf::from(
            std::env::var("CLOUDER_TEST_REGISTRY_DIR")
                .unwrap_or_else(|_| "/var/tmp/clouder-peers/docker-registry".into()),
        );
        let bin = root.join("usr/bin/docker-registry");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/peers.sh (or set CLOUDER_TEST_REGISTRY_DIR)",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{accesslog: {{disabled: false}}}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        RegistryPeer { child, port, dir }
    }

    pub fn host(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// Requests `METHOD …path…` in the access log.
    pub fn requests(&self, method: &str, path: &str) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap();
        let needle = format!("\"{method} ");
        log.lines()
            .filter_map(|l| l.split(&needle).nth(1))
            .filter(|rest| rest.split(' ').next().unwrap_or("").contains(path))
            .count()
    }

    /// Pushes an OCI artifact whose layers are `(media type, title, bytes)`.
    pub async fn push(&self, repo: &str, tag: &str, layers: &[(&str, &str, Vec<u8>)]) {
        let http = reqwest::Client::new();
        let base = format!("http://{}/v2/{repo}", self.host());
        let upload = |bytes: Vec<u8>| {
            let http = http.clone();
            let base = base.clone();
            async move {
                let digest = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
                let started = http
                    .post(format!("{base}/blobs/uploads/"))
                    .send()
                    .await
                    .unwrap();
                assert!(started.status().is_success(), "{}", started.status());
                let location = started.headers()["location"].to_str().unwrap().to_string();
                let url = if location.starts_with('/') {
                    format!("http://{}{location}", self.host())
                } else {
                    location
                };
                let sep = if url.contains('?') { '&' } else { '?' };
                let size = bytes.len();
                let put = http
                    .put(format!("{url}{sep}digest={digest}"))
                    .body(bytes)
                    .send()
                    .await
                    .unwrap();
                assert!(put.status().is_success(), "{}", put.status());
                (digest, size)
            }
        };
        let (config, config_size) = upload(b"{}".to_vec()).await;
        let mut descriptors = Vec::new();
        for (media_type, title, bytes) in layers {
            let (digest, size) = upload(bytes.clone()).await;
            descriptors.push(serde_json::json!({
                "mediaType": media_type, "digest": digest, "size": size,
                "annotations": {"org.opencontainers.image.title": title}
            }));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
            "layers": descriptors,
        });
        let put = http
            .put(format!("{base}/manifests/{tag}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.to_string())
            .send()
            .await
            .unwrap();
        assert!(
            put.status().is_success(),
            "{}: {}",
            put.status(),
            put.text().await.unwrap()
        );
    }
}

impl Drop for RegistryPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A gzipped tar of `(path, text)` files.
pub fn tgz(files: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, path, text.as_bytes()).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}
