//! What `info` shows from a cluster's API: its nodes (role, readiness, kubelet version) and the
//! health of each addon clouder installed.

use crate::addons::{ADDON_LABEL, VERSION_ANNOTATION};
use crate::drain::CONTROL_PLANE_LABEL;
use crate::wait::{self, Progress};
use crate::{Error, Result};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub role: &'static str,
    pub ready: bool,
    pub version: String,
    /// `clouder.io/provenance` (aws, azure, ssh, onprem, laptop), when set.
    pub provenance: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddonStatus {
    pub name: String,
    pub version: String,
    pub healthy: bool,
    /// The first workload not rolled out, and why.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    pub nodes: Vec<NodeStatus>,
    pub addons: Vec<AddonStatus>,
}

pub async fn read(client: &kube::Client) -> Result<ClusterStatus> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(Error::api("listing nodes"))?;
    let nodes = nodes
        .items
        .into_iter()
        .map(|n| {
            let labels = n.metadata.labels.clone().unwrap_or_default();
            let status = n.status.unwrap_or_default();
            NodeStatus {
                name: n.metadata.name.unwrap_or_default(),
                role: if labels.contains_key(CONTROL_PLANE_LABEL) {
                    "control-plane"
                } else {
                    "worker"
                },
                ready: status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True"),
                version: status
                    .node_info
                    .map(|i| i.kubelet_version)
                    .unwrap_or_default(),
                provenance: labels.get("clouder.io/provenance").cloned(),
            }
        })
        .collect();

    let selector = ListParams::default().labels(ADDON_LABEL);
    let mut addons: BTreeMap<String, AddonStatus> = BTreeMap::new();
    let deployments = Api::<Deployment>::all(client.clone())
        .list(&selector)
        .await
        .map_err(Error::api("listing deployments"))?;
    let daemon_sets = Api::<DaemonSet>::all(client.clone())
        .list(&selector)
        .await
        .map_err(Error::api("listing daemon sets"))?;
    let workloads = deployments
        .items
        .iter()
        .map(|d| (serde_json::to_value(d).expect("serialises"), "Deployment"))
        .chain(
            daemon_sets
                .items
                .iter()
                .map(|d| (serde_json::to_value(d).expect("serialises"), "DaemonSet")),
        );
    for (value, kind) in workloads {
        let meta = &value["metadata"];
        let name = meta["labels"][ADDON_LABEL]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let entry = addons.entry(name.clone()).or_insert_with(|| AddonStatus {
            name,
            version: meta["annotations"][VERSION_ANNOTATION]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            healthy: true,
            detail: None,
        });
        let progress = match kind {
            "Deployment" => wait::deployment(&value),
            _ => wait::daemon_set(&value),
        };
        if let Progress::Pending(why) | Progress::Failed(why) = progress
            && entry.healthy
        {
            entry.healthy = false;
            entry.detail = Some(format!(
                "{kind} {}/{}: {why}",
                meta["namespace"].as_str().unwrap_or_default(),
                meta["name"].as_str().unwrap_or_default()
            ));
        }
    }
    Ok(ClusterStatus {
        nodes,
        addons: addons.into_values().collect(),
    })
}
