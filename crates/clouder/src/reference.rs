//! The reference Clouder's per-cluster file, `CLOUDER_HOME/kubeadm/NAME/kubeadm.json`: read so
//! its clusters show up here, written so the reference sees ours. Only `cloud` is required;
//! unknown fields are kept as they are when we write.

use crate::home::{Home, write_private};
use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KubeadmJson {
    pub cloud: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    #[serde(default)]
    pub setup_complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_workers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_user: Option<String>,
    /// Everything else the reference wrote, kept verbatim.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

pub fn path(home: &Home, name: &str) -> PathBuf {
    home.cluster_dir(name).join("kubeadm.json")
}

/// The file of cluster `name`, if there is one.
///
/// # Errors
/// A malformed file, naming the file and the field.
pub fn read(home: &Home, name: &str) -> Result<Option<KubeadmJson>> {
    let path = path(home, name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut de = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut de)
        .map(Some)
        .map_err(|e| {
            let field = e.path().to_string();
            anyhow::anyhow!(
                "{}: field `{}`: {}",
                path.display(),
                if field == "." { "(document)" } else { &field },
                e.inner()
            )
        })
}

/// Names of the clusters that have a folder with a `kubeadm.json`.
pub fn names(home: &Home) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(home.root.join("kubeadm")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("kubeadm.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Writes our fields over the existing file's, keeping the fields we do not know.
pub fn write(home: &Home, name: &str, ours: KubeadmJson) -> Result<()> {
    let merged = match read(home, name) {
        Ok(Some(mut existing)) => {
            let rest = std::mem::take(&mut existing.rest);
            KubeadmJson {
                rest: rest.into_iter().chain(ours.rest.clone()).collect(),
                ..ours
            }
        }
        _ => ours,
    };
    crate::home::private_dir(&home.cluster_dir(name))?;
    write_private(
        &path(home, name),
        serde_json::to_string_pretty(&merged)?.as_bytes(),
    )
}
