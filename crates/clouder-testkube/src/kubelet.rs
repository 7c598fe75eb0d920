//! A stand-in for the kubelet, for tests: registers Nodes with capacity and reports pods Running and
//! Ready (or not) by writing their status through the API, as a real kubelet does. No containers run.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tokio::task::JoinHandle;

const MANAGER: &str = "kubelet";

/// A Node to register: capacity, labels and taints. Capacity is also what is allocatable.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    pub labels: BTreeMap<String, String>,
    /// (key, value, effect)
    pub taints: Vec<(String, String, String)>,
    /// The InternalIP address; absent, one from 10.0.0.0/24 by registration order.
    pub internal_ip: Option<String>,
    /// What `nodeInfo.kubeletVersion` reports.
    pub kubelet_version: String,
    /// Where the kubelet API is served (`daemonEndpoints`), on the InternalIP address.
    pub kubelet_port: u16,
    /// What `nodeInfo.containerRuntimeVersion` reports, e.g. `containerd://2.1.0`.
    pub runtime_version: String,
}

impl NodeConfig {
    /// 4 CPUs, 8Gi of memory, 110 pods, the well-known hostname/os/arch labels.
    pub fn new(name: &str) -> Self {
        let labels = [
            ("kubernetes.io/hostname", name),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Self {
            name: name.into(),
            cpu: "4".into(),
            memory: "8Gi".into(),
            pods: 110,
            labels,
            taints: Vec::new(),
            internal_ip: None,
            kubelet_version: "v1.36.0".into(),
            kubelet_port: 10250,
            runtime_version: "containerd://2.1.0".into(),
        }
    }

    /// A control-plane node as kubeadm makes one: its role label and NoSchedule taint.
    pub fn control_plane(name: &str) -> Self {
        const ROLE: &str = "node-role.kubernetes.io/control-plane";
        Self::new(name)
            .label(ROLE, "")
            .taint(ROLE, "", "NoSchedule")
    }

    pub fn cpu(mut self, cpu: &str) -> Self {
        self.cpu = cpu.into();
        self
    }

    pub fn memory(mut self, memory: &str) -> Self {
        self.memory = memory.into();
        self
    }

    pub fn pods(mut self, pods: u32) -> Self {
        self.pods = pods;
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn internal_ip(mut self, ip: &str) -> Self {
        self.internal_ip = Some(ip.into());
        self
    }

    pub fn kubelet_version(mut self, version: &str) -> Self {
        self.kubelet_version = version.into();
        self
    }

    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        self.taints.push((key.into(), value.into(), effect.into()));
        self
    }

    fn to_node(&self, index: u8) -> Value {
        let capacity = json!({"cpu": self.cpu, "memory": self.memory, "pods": self.pods.to_string(), "ephemeral-storage": "100Gi"});
        let taints: Vec<Value> = self
            .taints
            .iter()
            .map(|(k, v, e)| {
                let mut t = json!({"key": k, "effect": e});
                if !v.is_empty() {
                    t["value"] = json!(v);
                }
                t
            })
            .collect();
        let mut spec = json!({"podCIDR": format!("10.244.{index}.0/24")});
        if !taints.is_empty() {
            spec["taints"] = json!(taints);
        }
        let address = self
            .internal_ip
            .clone()
            .unwrap_or_else(|| format!("10.0.0.{index}"));
        let now = crate::objects::now();
        let condition = |kind: &str, status: &str, reason: &str, message: &str| json!({"type": kind, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": now, "lastTransitionTime": now});
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.name, "labels": self.labels},
            "spec": spec,
            "status": {
                "capacity": capacity, "allocatable": capacity,
                "conditions": [
                    condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                ],
                "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": self.name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
                "nodeInfo": {
                    "kubeletVersion": self.kubelet_version, "kubeProxyVersion": "", "containerRuntimeVersion": self.runtime_version,
                    "osImage": "Debian GNU/Linux 12 (bookworm)", "operatingSystem": "linux", "architecture": "amd64",
                    "kernelVersion": "6.1.0", "machineID": "", "systemUUID": "", "bootID": "",
                },
            },
        })
    }
}

/// Plays the kubelet of every Node through a kube client.
#[derive(Clone)]
pub struct Kubelet {
    client: kube::Client,
}

fn as_kubelet() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

fn node_ip(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl Kubelet {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    /// Creates the Node, Ready, with its capacity as allocatable.
    pub async fn register(&self, node: &NodeConfig) -> kube::Result<Node> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let index = nodes.list(&ListParams::default()).await?.items.len() as u8 + 1;
        let obj: Node =
            serde_json::from_value(node.to_node(index)).map_err(kube::Error::SerdeError)?;
        nodes.create(&PostParams::default(), &obj).await
    }

    /// Reports what a restarted kubelet reports of itself on an existing Node: its version.
    pub async fn set_kubelet_version(&self, name: &str, version: &str) -> kube::Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"status": {"nodeInfo": {"kubeletVersion": version}}});
        nodes
            .patch_status(name, &as_kubelet(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Sets the Node's Ready condition (False when the kubelet reports a problem).
    pub async fn set_node_ready(&self, name: &str, ready: bool) -> kube::Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = nodes.get(name).await?;
        let now = crate::objects::now();
        let mut conditions: Vec<Value> = node
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.type_ != "Ready")
            .map(|c| serde_json::to_value(c).expect("conditions serialize"))
            .collect();
        let (status, reason, message) = if ready {
            ("True", "KubeletReady", "kubelet is posting ready status")
        } else {
            ("False", "KubeletNotReady", "container runtime is down")
        };
        conditions.push(json!({"type": "Ready", "status": status, "reason": reason, "message": message, "lastHeartbeatTime": now, "lastTransitionTime": now}));
        let patch = json!({"status": {"conditions": conditions}});
        nodes
            .patch_status(name, &as_kubelet(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Reports the pod Running with every container started and Ready (or not ready).
    pub async fn set_pod_ready(
        &self,
        namespace: &str,
        name: &str,
        ready: bool,
    ) -> kube::Result<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod = pods.get(name).await?;
        let host_ip = match pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
            Some(n) => node_ip(&Api::<Node>::all(self.client.clone()).get(&n).await?),
            None => None,
        };
        let now = crate::objects::now();
        let flag = if ready { "True" } else { "False" };
        let containers: Vec<Value> = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .map(|c| {
                json!({
                    "name": c.name, "image": c.image, "imageID": "", "ready": ready, "started": true, "restartCount": 0,
                    "containerID": format!("containerd://{}", uuid::Uuid::new_v4().simple()),
                    "state": {"running": {"startedAt": now}},
                })
            })
            .collect();
        let cond = |kind: &str, status: &str| json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ip = format!(
            "10.244.{}.{}",
            uid.as_bytes().first().copied().unwrap_or(0) % 250,
            uid.as_bytes().get(1).copied().unwrap_or(1) % 250 + 2
        );
        let mut status = json!({
            "phase": "Running", "startTime": now, "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [cond("PodReadyToStartContainers", "True"), cond("Initialized", "True"), cond("Ready", flag), cond("ContainersReady", flag), cond("PodScheduled", "True")],
            "containerStatuses": containers, "qosClass": "BestEffort",
        });
        if let Some(ip) = host_ip {
            status["hostIP"] = json!(ip);
            status["hostIPs"] = json!([{"ip": ip}]);
        }
        let patch = json!({"status": status});
        pods.patch_status(name, &as_kubelet(), &Patch::Merge(&patch))
            .await
    }

    /// Reports every pod bound to `node` Running and Ready; returns their names.
    pub async fn run_pods_on(&self, node: &str) -> kube::Result<Vec<String>> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
        let mut ran = Vec::new();
        for p in pods.list(&lp).await? {
            if pod_ready(&p) || p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let (ns, name) = (
                p.metadata.namespace.unwrap_or_default(),
                p.metadata.name.unwrap_or_default(),
            );
            self.set_pod_ready(&ns, &name, true).await?;
            ran.push(name);
        }
        Ok(ran)
    }

    /// Finishes the graceful deletion of every pod on `node` that is being deleted, as the kubelet
    /// does once the pod's containers are gone (none run here): a delete with grace period 0 and
    /// the pod's uid as precondition. Returns their names.
    pub async fn finish_deletions_on(&self, node: &str) -> kube::Result<Vec<String>> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
        let mut gone = Vec::new();
        for p in pods.list(&lp).await? {
            if p.metadata.deletion_timestamp.is_none() {
                continue;
            }
            let (ns, name) = (
                p.metadata.namespace.unwrap_or_default(),
                p.metadata.name.unwrap_or_default(),
            );
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: p.metadata.uid,
                    resource_version: None,
                }),
                ..Default::default()
            };
            match Api::<Pod>::namespaced(self.client.clone(), &ns)
                .delete(&name, &dp)
                .await
            {
                Ok(_) => gone.push(name),
                // Gone already, or a new pod of the same name: nothing of this one is left.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(gone)
    }

    /// Runs in the background: every pod bound to a Ready Node is reported Running and Ready as
    /// soon as it is bound, and a pod being deleted there is finished, as a healthy kubelet
    /// would. Stops when the handle is dropped.
    pub fn start(&self) -> AutoKubelet {
        self.spawn(true)
    }

    /// Like [`Kubelet::start`], but only finishes graceful deletions on Ready nodes: for tests
    /// that write the running pods' statuses themselves.
    pub fn start_finishing_deletions(&self) -> AutoKubelet {
        self.spawn(false)
    }

    fn spawn(&self, runs_pods: bool) -> AutoKubelet {
        let me = self.clone();
        let task = tokio::spawn(async move {
            // With backoff: once the server is gone, errors must not come back-to-back, or this
            // task never yields and its runtime cannot shut down.
            let pods = watcher(
                Api::<Pod>::all(me.client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .map(|_| ());
            let nodes = watcher(
                Api::<Node>::all(me.client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .map(|_| ());
            let mut changes = std::pin::pin!(futures::stream::select(pods, nodes));
            while changes.next().await.is_some() {
                if let Err(e) = me.sweep(runs_pods).await {
                    tracing::debug!("kubelet sweep: {e}");
                }
            }
        });
        AutoKubelet { task }
    }

    async fn sweep(&self, runs_pods: bool) -> kube::Result<()> {
        let nodes = Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await?;
        for node in nodes.items.iter().filter(|n| node_ready(n)) {
            let name = node.metadata.name.as_deref().unwrap_or_default();
            self.finish_deletions_on(name).await?;
            if runs_pods {
                self.run_pods_on(name).await?;
            }
        }
        Ok(())
    }
}

/// The background kubelet started by [`Kubelet::start`]; dropping it stops it.
pub struct AutoKubelet {
    task: JoinHandle<()>,
}

impl Drop for AutoKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}
