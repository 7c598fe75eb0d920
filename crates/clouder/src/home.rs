//! `CLOUDER_HOME` (default `~/.clouder`): the state database, per-cluster files under
//! `kubeadm/NAME/`, and `clouder.yaml` (default cluster, current context, shared state URL)
//! whose other keys are kept as they are. Directories are 0700 and files 0600.

use anyhow::{Context as _, Result};
use clouder_state::SqliteStore;
use serde_yaml_ng::{Mapping, Value};
use std::path::{Path, PathBuf};

pub struct Home {
    pub root: PathBuf,
    /// The SQLite state: `ROOT/state.db`, or the working copy of a remote state (`--state`).
    pub state_db: PathBuf,
}

const DEFAULT_CLUSTER_KEY: &str = "default_kubeadm_cluster";
const CURRENT_CONTEXT_KEY: &str = "current_context";
const STATE_KEY: &str = "state";

impl Home {
    pub fn from_env() -> Self {
        let root = std::env::var_os("CLOUDER_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home_dir().join(".clouder"));
        Home {
            state_db: root.join("state.db"),
            root,
        }
    }

    pub fn store(&self) -> Result<SqliteStore> {
        private_dir(&self.root)?;
        Ok(SqliteStore::open(&self.state_db)?)
    }

    pub fn cluster_dir(&self, name: &str) -> PathBuf {
        self.root.join("kubeadm").join(name)
    }

    pub fn kubeconfig(&self, name: &str) -> PathBuf {
        self.cluster_dir(name).join("kubeconfig")
    }

    fn config_path(&self) -> PathBuf {
        self.root.join("clouder.yaml")
    }

    fn config(&self) -> Result<Value> {
        match std::fs::read_to_string(self.config_path()) {
            Ok(text) => serde_yaml_ng::from_str(&text)
                .with_context(|| format!("reading {}", self.config_path().display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Value::Mapping(Mapping::new()))
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", self.config_path().display())),
        }
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .config()?
            .get("clouder")
            .and_then(|c| c.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_string))
    }

    /// Sets `clouder.KEY` (or removes it for `None`), keeping every other key of the file.
    fn set_setting(&self, key: &str, value: Option<&str>) -> Result<()> {
        let mut config = self.config()?;
        if !config.is_mapping() {
            config = Value::Mapping(Mapping::new());
        }
        let root = config.as_mapping_mut().expect("mapping");
        let section = root
            .entry("clouder".into())
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if !section.is_mapping() {
            *section = Value::Mapping(Mapping::new());
        }
        let section = section.as_mapping_mut().expect("mapping");
        match value {
            Some(v) => section.insert(key.into(), v.into()),
            None => section.remove(key),
        };
        private_dir(&self.root)?;
        write_private(
            &self.config_path(),
            serde_yaml_ng::to_string(&config)?.as_bytes(),
        )
    }

    pub fn default_cluster(&self) -> Result<Option<String>> {
        self.setting(DEFAULT_CLUSTER_KEY)
    }

    pub fn set_default_cluster(&self, name: Option<&str>) -> Result<()> {
        self.set_setting(DEFAULT_CLUSTER_KEY, name)
    }

    /// `clouder.state`: the shared state every command uses when neither `--state` nor
    /// `CLOUDER_STATE` names one.
    pub fn state_url(&self) -> Result<Option<String>> {
        self.setting(STATE_KEY)
    }

    pub fn current_context(&self) -> Result<Option<String>> {
        self.setting(CURRENT_CONTEXT_KEY)
    }

    pub fn set_current_context(&self, name: Option<&str>) -> Result<()> {
        self.set_setting(CURRENT_CONTEXT_KEY, name)
    }
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Creates `dir` (and parents) readable by its owner only.
pub fn private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `path` with mode 0600, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `~/` expanded.
pub fn expand(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => home_dir().join(rest),
        None => PathBuf::from(path),
    }
}
