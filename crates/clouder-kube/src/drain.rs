//! Taking workers out of service: choose the least-loaded, cordon, evict through the Eviction API
//! (so PodDisruptionBudgets hold), wait until the moved pods are gone, delete the Node.

use crate::manifest::ObjectRef;
use crate::{Error, Result};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams};
use serde::Serialize;
use std::collections::HashSet;
use std::time::{Duration, Instant};

pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

const EVICTIONS_IN_FLIGHT: usize = 16;

#[derive(Debug, Clone)]
pub struct DrainOptions {
    /// How long evictions may be refused (by a PodDisruptionBudget) before giving up.
    pub timeout: Duration,
    /// Pause between rounds of evictions.
    pub retry: Duration,
}

impl Default for DrainOptions {
    fn default() -> Self {
        DrainOptions {
            timeout: Duration::from_secs(300),
            retry: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DrainReport {
    pub node: String,
    /// `namespace/name` of each pod evicted, in order.
    pub evicted: Vec<String>,
    /// How many PodDisruptionBudget refusals were waited out.
    pub refusals: usize,
    /// DaemonSet and mirror pods left in place (they belong to the node).
    pub left_in_place: usize,
}

/// A worker's load: the pods a drain would have to move and their CPU requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Load {
    pub node: String,
    /// The node's InternalIP, by which clouder knows its machine.
    pub address: Option<String>,
    pub pods: usize,
    pub cpu_millis: i64,
    pub cordoned: bool,
}

/// Pods a drain moves: not finished, not a node's own (DaemonSet-owned or mirror pods).
pub fn evictable(pod: &Pod) -> bool {
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    let daemon = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet");
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    !finished && !daemon && !mirror
}

fn cpu_millis(q: &Quantity) -> i64 {
    let s = q.0.as_str();
    match s.strip_suffix('m') {
        Some(m) => m.parse().unwrap_or(0),
        None => s.parse::<f64>().map(|c| (c * 1000.0) as i64).unwrap_or(0),
    }
}

fn requested_cpu(pod: &Pod) -> i64 {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get("cpu"))
        .map(cpu_millis)
        .sum()
}

fn is_worker(node: &Node) -> bool {
    !node
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(CONTROL_PLANE_LABEL))
}

/// Workers from least to most loaded: cordoned ones first (already on their way out), then by
/// pods to move, CPU requested, and the newest name last-in-first-out.
pub fn by_load(nodes: &[Node], pods: &[Pod]) -> Vec<Load> {
    let mut loads: Vec<Load> = nodes
        .iter()
        .filter(|n| is_worker(n))
        .map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            let on_node: Vec<&Pod> = pods
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
                .filter(|p| evictable(p))
                .collect();
            let address = n
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
                .map(|a| a.address.clone());
            Load {
                address,
                cordoned: n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true),
                pods: on_node.len(),
                cpu_millis: on_node.iter().map(|p| requested_cpu(p)).sum(),
                node: name,
            }
        })
        .collect();
    loads.sort_by(|a, b| {
        (!a.cordoned, a.pods, a.cpu_millis)
            .cmp(&(!b.cordoned, b.pods, b.cpu_millis))
            .then_with(|| b.node.cmp(&a.node))
    });
    loads
}

/// The cluster's workers from least to most loaded.
pub async fn workers_by_load(client: &kube::Client) -> Result<Vec<Load>> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(Error::api("listing nodes"))?;
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(Error::api("listing pods"))?;
    Ok(by_load(&nodes.items, &pods.items))
}

/// Marks `node` unschedulable (or schedulable again).
pub async fn cordon(client: &kube::Client, node: &str, unschedulable: bool) -> Result<()> {
    let patch = serde_json::json!({"spec": {"unschedulable": unschedulable}});
    Api::<Node>::all(client.clone())
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::api(format!("cordoning node {node}")))?;
    Ok(())
}

/// Cordons `node` and evicts the pods a drain moves that were on it, until they are gone. As
/// `kubectl drain`, only those: a replacement that tolerates the cordon and lands back on the
/// node (say, an operator tolerating every NoSchedule taint) is not chased forever.
pub async fn drain(
    client: &kube::Client,
    node: &str,
    options: &DrainOptions,
) -> Result<DrainReport> {
    cordon(client, node, true).await?;
    let start = Instant::now();
    let mut report = DrainReport {
        node: node.to_string(),
        ..DrainReport::default()
    };
    let on_node = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let uid = |p: &Pod| p.metadata.uid.clone().unwrap_or_default();
    let mut to_move: Option<HashSet<String>> = None;
    let mut evicted: HashSet<String> = HashSet::new();
    loop {
        let pods = Api::<Pod>::all(client.clone())
            .list(&on_node)
            .await
            .map_err(Error::api(format!("listing pods on {node}")))?;
        let (moving, staying): (Vec<Pod>, Vec<Pod>) = pods.items.into_iter().partition(evictable);
        report.left_in_place = staying.len();
        let to_move = to_move.get_or_insert_with(|| moving.iter().map(uid).collect());
        let moving: Vec<Pod> = moving
            .into_iter()
            .filter(|p| to_move.contains(&uid(p)))
            .collect();
        if moving.is_empty() {
            return Ok(report);
        }
        // Evicted ones still terminating are waited for, not evicted again.
        let pending: Vec<&Pod> = moving
            .iter()
            .filter(|p| !evicted.contains(&uid(p)))
            .collect();
        // Bounded, so the connections are reused rather than one TLS handshake per pod.
        let attempts: Vec<Result<Eviction>> = stream::iter(&pending)
            .map(|pod| evict(client, pod))
            .buffered(EVICTIONS_IN_FLIGHT)
            .collect()
            .await;
        let mut refused = Vec::new();
        for (pod, attempt) in pending.iter().zip(attempts) {
            let name = pod_name(pod);
            match attempt? {
                Eviction::Done => {
                    evicted.insert(uid(pod));
                    report.evicted.push(name)
                }
                Eviction::Gone => {}
                Eviction::Refused(why) => refused.push(format!("{name} ({why})")),
            }
        }
        report.refusals += refused.len();
        tracing::debug!(node, evicted = report.evicted.len(), refused = refused.len(), elapsed = ?start.elapsed(), "eviction round");
        if start.elapsed() >= options.timeout {
            let state = if refused.is_empty() {
                let names: Vec<String> = moving.iter().map(pod_name).collect();
                format!("evicted pods still there: {}", names.join(", "))
            } else {
                format!("evictions refused: {}", refused.join(", "))
            };
            return Err(Error::Timeout {
                object: Box::new(ObjectRef::new("v1", "Node", None, node)),
                waited: options.timeout,
                state,
                last_event: None,
            });
        }
        tokio::time::sleep(options.retry).await;
    }
}

enum Eviction {
    Done,
    Gone,
    Refused(String),
}

async fn evict(client: &kube::Client, pod: &Pod) -> Result<Eviction> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    match Api::<Pod>::namespaced(client.clone(), ns)
        .evict(name, &EvictParams::default())
        .await
    {
        Ok(_) => Ok(Eviction::Done),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Eviction::Gone),
        // 429: a PodDisruptionBudget does not allow it now; try again next round.
        Err(kube::Error::Api(s)) if s.code == 429 => Ok(Eviction::Refused(s.message)),
        Err(e) => Err(Error::api(format!("evicting pod {ns}/{name}"))(e)),
    }
}

fn pod_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Deletes the Node object (after its machine is drained).
pub async fn remove(client: &kube::Client, node: &str) -> Result<()> {
    match Api::<Node>::all(client.clone())
        .delete(node, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::api(format!("deleting node {node}"))(e)),
    }
}
