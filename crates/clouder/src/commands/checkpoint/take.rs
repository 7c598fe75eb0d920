//! One checkpoint, from the running container to a stored image in the catalogue: the kubelet
//! checkpoints it (through the API server's node proxy, or directly on its node), the archive
//! is fetched from the node over SSH, turned into an OCI checkpoint image and stored, and
//! retention applied. `checkpoint create`, the policy controller and the drain hooks all call
//! [`take`].

use super::node;
use crate::Usage;
use crate::cli::{Global, NodeAccess};
use crate::home::Home;
use anyhow::{Context as _, Result, anyhow};
use base64::Engine as _;
use clouder_checkpoint::catalogue::{self, Retention};
use clouder_checkpoint::kubelet::{self, Auth, KubeletClient};
use clouder_checkpoint::{CheckpointImage, backend};
use clouder_state::CheckpointRecord;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to checkpoint and where to keep it.
#[derive(Debug, Clone)]
pub struct Request {
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    /// Default: the pod's first container.
    pub container: Option<String>,
    /// A backend location, as `--to` takes it.
    pub to: String,
    /// Seconds the runtime may take.
    pub timeout: u64,
    pub labels: BTreeMap<String, String>,
    pub retention: Retention,
    /// An archive already taken: the kubelet is not asked.
    pub archive: Option<PathBuf>,
    /// Through the API server's node proxy (`/api/v1/nodes/NODE/proxy`, needs `nodes/proxy`)
    /// or on the node's kubelet port; and how the node is logged in to.
    pub access: NodeAccess,
}

/// A stored checkpoint.
#[derive(Debug, serde::Serialize)]
pub struct Taken {
    pub checkpoint: CheckpointRecord,
    pub uploaded_bytes: u64,
    pub reused_blobs: usize,
    /// Checkpoints retention dropped.
    pub dropped: Vec<String>,
    /// The last line the container wrote before the checkpoint (its log in the archive).
    pub last_output: Option<String>,
    pub seconds: f64,
}

/// The container to checkpoint and the node it runs on.
#[derive(Debug, PartialEq)]
pub struct Target {
    pub container: String,
    pub node: String,
}

/// Pure: checks that `pod` has the container (default: its first) and that it runs on a node.
pub fn target(pod: &Pod, container: Option<&str>) -> std::result::Result<Target, String> {
    let name = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    let spec = pod.spec.as_ref().ok_or(format!("pod {name} has no spec"))?;
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    let container = match container {
        Some(c) if names.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(format!(
                "pod {name} has no container {c} (it has: {})",
                names.join(", ")
            ));
        }
        None => names
            .first()
            .ok_or(format!("pod {name} has no containers"))?
            .to_string(),
    };
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|s| s.name == container));
    let state = status.and_then(|s| s.state.as_ref());
    if state.and_then(|s| s.running.as_ref()).is_none() {
        let why = match state {
            Some(s) if s.waiting.is_some() => {
                let reason = s.waiting.as_ref().and_then(|w| w.reason.clone());
                format!("waiting: {}", reason.unwrap_or_default())
            }
            Some(s) if s.terminated.is_some() => "terminated".to_string(),
            _ => "no status yet".to_string(),
        };
        return Err(format!(
            "container {container} of pod {name} is not running ({why}): only running containers can be checkpointed"
        ));
    }
    let node = spec
        .node_name
        .clone()
        .ok_or(format!("pod {name} is not scheduled on a node"))?;
    Ok(Target { container, node })
}

/// Checkpoints one container and stores it; nothing enters the catalogue unless the image is
/// stored whole.
pub async fn take(home: &Home, g: &Global, client: &kube::Client, req: &Request) -> Result<Taken> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &req.namespace);
    let pod = pods.get_opt(&req.pod).await?.ok_or_else(|| {
        anyhow!(
            "pod {}/{} not found in cluster {}",
            req.namespace,
            req.pod,
            req.cluster
        )
    })?;
    let target = target(&pod, req.container.as_deref()).map_err(|e| anyhow!(e))?;
    let started = Instant::now();
    // The image reads its layer from the archive: a fetched one lives until it is stored.
    let mut fetched = None;
    let archive = match &req.archive {
        Some(path) => path.clone(),
        None => {
            let node = Api::<Node>::all(client.clone())
                .get(&target.node)
                .await
                .with_context(|| format!("reading node {}", target.node))?;
            // Reached before the kubelet writes anything there.
            let ssh = &req.access.ssh;
            let reached = node::reach(home, &req.cluster, &node, ssh, node::Purpose::Fetch)?;
            let session = reached.connect(home, g, ssh).await?;
            let on_node = match req.access.kubelet.direct {
                false => through_api_server(client, req, &target).await,
                true => on_node(home, req, &target, &node).await,
            };
            let file = match on_node {
                Ok(path) => reached.fetch(&session, &path).await,
                Err(e) => Err(e),
            };
            session.close().await;
            let file = file?;
            fetched.insert(file).path().to_path_buf()
        }
    };
    let node = target.node.clone();
    let image =
        tokio::task::spawn_blocking(move || CheckpointImage::from_archive(&archive, Some(&node)))
            .await??;
    let last_output = image.last_output.clone();
    let m = &image.metadata;
    let archived = (
        m.namespace.as_deref(),
        m.pod.as_deref(),
        m.container.as_str(),
    );
    let asked = (
        req.namespace.as_str(),
        req.pod.as_str(),
        target.container.as_str(),
    );
    if archived.0.is_some_and(|n| n != asked.0)
        || archived.1.is_some_and(|p| p != asked.1)
        || archived.2 != asked.2
    {
        return Err(Usage(format!(
            "the archive is a checkpoint of {}/{}/{}, not of {}/{}/{}",
            archived.0.unwrap_or("?"),
            archived.1.unwrap_or("?"),
            archived.2,
            asked.0,
            asked.1,
            asked.2
        ))
        .into());
    }
    let store = home.store()?;
    let backend = backend::open(&req.to).await?;
    let (record, report, dropped) = catalogue::store(
        &store,
        backend.as_ref(),
        &image,
        &req.cluster,
        req.labels.clone(),
        Some(&clouder_checkpoint::pod::record(&pod)),
        req.retention,
    )
    .await?;
    drop(fetched);
    Ok(Taken {
        checkpoint: record,
        uploaded_bytes: report.bytes_uploaded,
        reused_blobs: report.skipped.len(),
        dropped,
        last_output,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Asks the pod's kubelet, through the API server's node proxy, to checkpoint the container.
async fn through_api_server(
    client: &kube::Client,
    req: &Request,
    target: &Target,
) -> Result<String> {
    let path = format!(
        "/api/v1/nodes/{}/proxy/checkpoint/{}/{}/{}?timeout={}",
        target.node, req.namespace, req.pod, target.container, req.timeout
    );
    let request = http::Request::post(&path).body(Vec::new())?;
    let endpoint = format!("node {} (through the API server)", target.node);
    let (status, body) = match client.request_text(request).await {
        Ok(body) => (200, body),
        Err(kube::Error::Api(e)) => (e.code, e.message),
        Err(e) => return Err(e.into()),
    };
    let paths = kubelet::classify(&endpoint, status, body.trim())?;
    paths
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("{endpoint} answered without an archive path"))
}

/// Address types in the order the API server prefers them to reach a kubelet (its
/// `--kubelet-preferred-address-types` default).
const PREFERRED: [&str; 5] = [
    "Hostname",
    "InternalDNS",
    "InternalIP",
    "ExternalDNS",
    "ExternalIP",
];

/// Pure: `https://ADDRESS:PORT` of the Node's kubelet, as the API server would reach it.
fn kubelet_url(node: &Node) -> Option<String> {
    let status = node.status.as_ref()?;
    let addresses = status.addresses.as_deref().unwrap_or_default();
    let address = PREFERRED.iter().find_map(|kind| {
        addresses
            .iter()
            .find(|a| a.type_ == *kind && !a.address.is_empty())
    })?;
    let port = status
        .daemon_endpoints
        .as_ref()
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map(|e| e.port)
        .filter(|p| *p > 0)
        .unwrap_or(10250);
    let host = match address.address.contains(':') {
        true => format!("[{}]", address.address),
        false => address.address.clone(),
    };
    Some(format!("https://{host}:{port}"))
}

/// The CA certificates (PEM) of the kubeconfig's current cluster.
fn cluster_ca(home: &Home, cluster: &str) -> Result<Vec<u8>> {
    let path = home.kubeconfig(cluster);
    let config = kube::config::Kubeconfig::read_from(&path)?;
    let current = config.current_context.as_deref().unwrap_or_default();
    let context = config
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone());
    let entry = config
        .clusters
        .iter()
        .find(|c| Some(&c.name) == context.as_ref())
        .or(config.clusters.first())
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| anyhow!("{} names no cluster", path.display()))?;
    match (
        &entry.certificate_authority_data,
        &entry.certificate_authority,
    ) {
        (Some(data), _) => base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .with_context(|| format!("{}: certificate-authority-data", path.display())),
        (None, Some(file)) => std::fs::read(file).with_context(|| format!("reading {file}")),
        (None, None) => Err(Usage(format!(
            "{} has no cluster CA to check the kubelet with: pass --kubelet-ca",
            path.display()
        ))
        .into()),
    }
}

/// Asks the kubelet on its node, with the `apiserver-kubelet-client` certificate.
async fn on_node(home: &Home, req: &Request, target: &Target, node: &Node) -> Result<String> {
    let dir = home.cluster_dir(&req.cluster);
    let read = |file: &str| {
        std::fs::read(dir.join(file)).map_err(|e| {
            anyhow!(Usage(format!(
                "{}: {e}: fetch the kubelet client certificate with `clouder kubeadm get-config {}`",
                dir.join(file).display(),
                req.cluster
            )))
        })
    };
    let auth = Auth::ClientCertificate {
        cert_pem: read("apiserver-kubelet-client.crt")?,
        key_pem: read("apiserver-kubelet-client.key")?,
    };
    let ca = match &req.access.kubelet.kubelet_ca {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => cluster_ca(home, &req.cluster)?,
    };
    let url = kubelet_url(node).ok_or_else(|| {
        anyhow!(
            "node {} reports no address to reach its kubelet",
            target.node
        )
    })?;
    let paths = KubeletClient::new(&url, &ca, auth)?
        .checkpoint(
            &req.namespace,
            &req.pod,
            &target.container,
            Duration::from_secs(req.timeout),
        )
        .await?;
    paths
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("kubelet {url} answered without an archive path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(state: serde_json::Value, node: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop"},
            "spec": {"nodeName": node, "containers": [{"name": "app"}, {"name": "sidecar"}]},
            "status": {"containerStatuses": [{"name": "app", "state": state, "ready": true, "restartCount": 0, "image": "i", "imageID": "i"}]},
        }))
        .unwrap()
    }

    #[test]
    fn the_target_is_a_running_container_on_a_node() {
        let running = serde_json::json!({"running": {}});
        let node = Target {
            container: "app".into(),
            node: "w-0".into(),
        };
        assert_eq!(target(&pod(running.clone(), Some("w-0")), None), Ok(node));
        assert_eq!(
            target(&pod(running.clone(), Some("w-0")), Some("db")),
            Err("pod shop/web-0 has no container db (it has: app, sidecar)".into())
        );
        assert_eq!(
            target(&pod(running.clone(), Some("w-0")), Some("sidecar")),
            Err("container sidecar of pod shop/web-0 is not running (no status yet): only running containers can be checkpointed".into())
        );
        let waiting = serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}});
        assert_eq!(
            target(&pod(waiting, Some("w-0")), None),
            Err("container app of pod shop/web-0 is not running (waiting: CrashLoopBackOff): only running containers can be checkpointed".into())
        );
        assert_eq!(
            target(&pod(running, None), None),
            Err("pod shop/web-0 is not scheduled on a node".into())
        );
    }

    #[test]
    fn the_kubelet_is_reached_at_the_address_the_api_server_prefers() {
        let node = |addresses: serde_json::Value, port: i32| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "w-0"},
                "status": {"addresses": addresses, "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}},
            }))
            .unwrap()
        };
        let both = serde_json::json!([
            {"type": "InternalIP", "address": "10.0.1.5"},
            {"type": "Hostname", "address": "w-0.lan"},
        ]);
        assert_eq!(
            kubelet_url(&node(both, 10250)).as_deref(),
            Some("https://w-0.lan:10250")
        );
        let v6 = serde_json::json!([{"type": "InternalIP", "address": "fd00::5"}]);
        assert_eq!(
            kubelet_url(&node(v6, 0)).as_deref(),
            Some("https://[fd00::5]:10250"),
            "no port reported: the kubelet's default"
        );
        assert_eq!(kubelet_url(&node(serde_json::json!([]), 10250)), None);
    }
}
