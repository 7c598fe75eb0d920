//! Node readiness read from a cluster's API server, for `ls --details` and `info`.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// Ready and total nodes by role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub masters_ready: usize,
    pub masters: usize,
    pub workers_ready: usize,
    pub workers: usize,
}

pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Counts `nodes` by role and readiness (a pure function of what the API returned).
pub fn count(nodes: &[Node]) -> Readiness {
    let mut r = Readiness::default();
    for node in nodes {
        let master = node
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(CONTROL_PLANE_LABEL));
        let ready = is_ready(node) as usize;
        if master {
            r.masters += 1;
            r.masters_ready += ready;
        } else {
            r.workers += 1;
            r.workers_ready += ready;
        }
    }
    r
}

/// Asks the API server behind `kubeconfig`; `None` when it cannot be reached in time.
pub async fn read(kubeconfig: &Path) -> Option<Readiness> {
    // The AWS SDK brings a second TLS backend; kube's client needs one chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ask = async {
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(kubeconfig).ok()?,
            &KubeConfigOptions::default(),
        )
        .await
        .ok()?;
        let client = kube::Client::try_from(config).ok()?;
        let nodes = Api::<Node>::all(client)
            .list(&ListParams::default())
            .await
            .ok()?;
        Some(count(&nodes.items))
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
}
