//! Where, in a cluster, the shared filesystem can be worked on: the node and the path at which
//! the kubelet mounted it for a pod.
//!
//! With an in-cluster NFS server that is the server pod's own disk (XFS with project quotas:
//! quotas can be set there, never through an NFS client); with an existing export or CephFS it
//! is a node agent's mount of the same tree (usage is scanned). The kubelet mounts a pod's
//! volumes at `/var/lib/kubelet/pods/UID/volumes/PLUGIN/NAME` (CSI: `.../kubernetes.io~csi/PV/mount`).

use super::manifests::{AGENT, Backend, NAMESPACE, SERVER, agent_volume};
use crate::Error;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};
use std::path::PathBuf;

/// A node and the path on it where the shared filesystem's root is mounted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub node: String,
    /// The node's InternalIP.
    pub address: String,
    pub path: PathBuf,
}

/// Finds the shared filesystem in the cluster behind `client`.
pub async fn locate(client: &kube::Client, backend: &Backend) -> Result<Location, Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let failed = |what: &str, e: kube::Error| Error::Failed(format!("{what}: {e}"));
    let (pod, volume) = match backend {
        Backend::InCluster { .. } => {
            let name = format!("{SERVER}-0");
            let pod = pods
                .get_opt(&name)
                .await
                .map_err(|e| failed(&name, e))?
                .ok_or_else(|| not_running(&format!("the NFS server pod {NAMESPACE}/{name}")))?;
            // The StatefulSet's claim of its `exports` template, and the volume bound to it.
            let claim = format!("exports-{name}");
            let pv = Api::<PersistentVolumeClaim>::namespaced(client.clone(), NAMESPACE)
                .get(&claim)
                .await
                .map_err(|e| failed(&claim, e))?
                .spec
                .and_then(|s| s.volume_name)
                .ok_or_else(|| not_running(&format!("a volume bound to {NAMESPACE}/{claim}")))?;
            (pod, format!("kubernetes.io~csi/{pv}/mount"))
        }
        Backend::Existing { .. } | Backend::Ceph { .. } => {
            let agents = ListParams::default().labels(&format!("app.kubernetes.io/name={AGENT}"));
            let pod = pods
                .list(&agents)
                .await
                .map_err(|e| failed("the node agents", e))?
                .items
                .into_iter()
                .find(running)
                .ok_or_else(|| not_running(&format!("a node agent pod in {NAMESPACE}")))?;
            let volume = match backend {
                Backend::Ceph { .. } => format!("kubernetes.io~csi/{}/mount", agent_volume()),
                _ => "kubernetes.io~nfs/userdata".into(),
            };
            (pod, volume)
        }
    };
    if !running(&pod) {
        return Err(not_running(&format!(
            "pod {NAMESPACE}/{}",
            pod.metadata.name.unwrap_or_default()
        )));
    }
    let node = pod
        .spec
        .and_then(|s| s.node_name)
        .expect("a running pod is bound");
    let uid = pod.metadata.uid.unwrap_or_default();
    let address = Api::<Node>::all(client.clone())
        .get(&node)
        .await
        .map_err(|e| failed(&node, e))?
        .status
        .and_then(|s| s.addresses)
        .into_iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
        .ok_or_else(|| Error::Failed(format!("node {node} reports no InternalIP")))?;
    Ok(Location {
        node,
        address,
        path: PathBuf::from(format!("/var/lib/kubelet/pods/{uid}/volumes/{volume}")),
    })
}

fn running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

fn not_running(what: &str) -> Error {
    Error::Failed(format!(
        "{what} is not running: the shared filesystem cannot be reached through the cluster \
         (roll out `spec.storage`, or run on a node that mounts it with --root)"
    ))
}
