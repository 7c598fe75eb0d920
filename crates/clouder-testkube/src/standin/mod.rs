//! Stand-ins for kubeadm and the kubelet on test hosts (no registry here ships the real ones).
//! They do what the real tools do to a host — files under /etc/kubernetes and /var/lib/kubelet,
//! systemd units, objects in the API — with testkube as the API server, so that a node bootstrap
//! over SSH runs end to end. Every kubeadm invocation is recorded in [`LOG`].

pub mod config;
pub mod kubeadm;
pub mod kubelet;
pub mod pki;
pub mod runtime;
pub mod server;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// One JSON line per kubeadm invocation: its arguments and the configuration it was given.
pub const LOG: &str = "/var/log/kubeadm-standin.log";
/// The environment variable the packages' wrappers set to the version they were built as.
pub const VERSION_ENV: &str = "CLOUDER_STANDIN_VERSION";
/// Where the stand-ins act instead of `/` (tests); units are then not started.
pub const ROOT_ENV: &str = "CLOUDER_STANDIN_ROOT";
/// Set to `1`, the kubelet stand-in runs pods through the CRI runtime of
/// `--container-runtime-endpoint` (when it answers). Otherwise it only reports them running:
/// hosts whose containerd is real but cannot pull images (lab hosts offline) keep working.
pub const CRI_ENV: &str = "CLOUDER_STANDIN_CRI";

/// The version the package says it is (`v1.33.2`), else the one whose API testkube serves.
pub fn version() -> String {
    match std::env::var(VERSION_ENV) {
        Ok(v) if !v.is_empty() => format!("v{}", v.trim_start_matches('v')),
        _ => crate::discovery::KUBERNETES_VERSION.into(),
    }
}

/// The machine the stand-ins change: a root directory, and whether systemd runs its units.
#[derive(Debug, Clone)]
pub struct Host {
    pub root: PathBuf,
    pub systemd: bool,
    /// The version of the installed tool ([`version`]; tests set their own).
    pub version: String,
}

impl Host {
    /// `/` with systemd, unless [`ROOT_ENV`] names another root.
    pub fn from_env() -> Self {
        match std::env::var_os(ROOT_ENV) {
            Some(root) => Self::at(PathBuf::from(root)),
            None => Self {
                root: "/".into(),
                systemd: true,
                version: version(),
            },
        }
    }

    /// A host rooted at `root`, without systemd (for tests).
    pub fn at(root: PathBuf) -> Self {
        Self {
            root,
            systemd: false,
            version: version(),
        }
    }

    pub fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    pub fn exists(&self, path: &str) -> bool {
        self.path(path).exists()
    }

    pub fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.path(path)).map_err(|e| format!("reading {path}: {e}"))
    }

    /// Writes `content` with `mode`, creating parent directories.
    pub fn write(&self, path: &str, content: &str, mode: u32) -> Result<(), String> {
        let full = self.path(path);
        let err = |e: std::io::Error| format!("writing {path}: {e}");
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let _ = std::fs::remove_file(&full);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&full)
            .map_err(err)?;
        f.write_all(content.as_bytes()).map_err(err)
    }

    /// Removes files and directories; missing ones are fine.
    pub fn remove(&self, paths: &[&str]) {
        for p in paths {
            let full = self.path(p);
            let _ = std::fs::remove_dir_all(&full).or_else(|_| std::fs::remove_file(&full));
        }
    }

    /// `systemctl ARGS`, when this host runs systemd.
    pub fn systemctl(&self, args: &[&str]) -> Result<(), String> {
        if !self.systemd {
            return Ok(());
        }
        let out = std::process::Command::new("systemctl")
            .args(args)
            .output()
            .map_err(|e| format!("systemctl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "systemctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The host's name, as the kubelet registers by default.
    pub fn hostname(&self) -> String {
        let name = if self.systemd {
            std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default()
        } else {
            self.read("/etc/hostname").unwrap_or_default()
        };
        name.trim().to_lowercase()
    }

    /// Appends one invocation to [`LOG`].
    pub fn record(&self, args: &[String], config: Option<&str>) {
        let line = json!({"time": crate::objects::now(), "args": args, "config": config});
        let path = self.path(LOG);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// A kubeconfig for one cluster and, when `token` is given, one token user.
pub fn kubeconfig(
    cluster: &str,
    server: &str,
    ca_pem: &str,
    user: &str,
    token: Option<&str>,
) -> String {
    let cluster_entry = json!({"name": cluster, "cluster": {"server": server, "certificate-authority-data": STANDARD.encode(ca_pem)}});
    let doc = match token {
        Some(token) => {
            let context = format!("{user}@{cluster}");
            json!({
                "apiVersion": "v1", "kind": "Config",
                "clusters": [cluster_entry],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
                "current-context": context,
                "preferences": {},
            })
        }
        None => {
            json!({"apiVersion": "v1", "kind": "Config", "clusters": [cluster_entry], "users": [], "contexts": [], "preferences": {}})
        }
    };
    serde_yaml_ng::to_string(&doc).expect("a JSON value renders as YAML")
}

/// The server and CA of a kubeconfig's first cluster.
pub fn cluster_of(kubeconfig: &str) -> Result<(String, String), String> {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).map_err(|e| e.to_string())?;
    let cluster = kc
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .ok_or("the kubeconfig names no cluster")?;
    let ca = cluster
        .certificate_authority_data
        .ok_or("the kubeconfig has no certificate-authority-data")?;
    let ca = String::from_utf8(STANDARD.decode(ca).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    Ok((cluster.server.unwrap_or_default(), ca))
}

/// A client from kubeconfig text; it does not retry, so callers see the server's answers.
pub async fn client(kubeconfig: &str) -> Result<kube::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).map_err(|e| e.to_string())?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| e.to_string())?;
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

/// An anonymous client for `https://endpoint` that does not check the server's certificate:
/// kubeadm's first look at cluster-info, before it trusts the server.
pub fn insecure_client(endpoint: &str) -> Result<kube::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = format!("https://{endpoint}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let mut config = kube::Config::new(url);
    config.accept_invalid_certs = true;
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

/// Reads a file given on the command line (relative to the working directory, as usual).
pub fn read_arg(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| {
        format!(
            "unable to read config from {:?} : {e}",
            path.display().to_string()
        )
    })
}
