//! The Kubernetes objects that represent an enrolled endpoint, built as pure functions (golden
//! tested): the `RemoteContainer` resource and its CRD, a virtual Node that ordinary scheduling
//! and kubectl see with its Lease, the token Secret and the NetworkPolicy that lets runtime pods
//! reach exactly that endpoint.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ApiResource;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::IpAddr;

pub const GROUP: &str = "clouder.io";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "RemoteContainer";
pub const PLURAL: &str = "remotecontainers";
/// Where the token Secrets and the egress policies live.
pub const NAMESPACE: &str = "clouder-byoc";
/// The taint (and label) key on virtual Nodes; its value is the endpoint's name.
pub const BYOC_KEY: &str = "clouder.io/byoc";
/// Where kubelets keep their Node Leases; virtual Nodes keep theirs there too.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// A kubelet's default (`nodeLeaseDurationSeconds`).
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// Set on a Node the heartbeat controller cordoned, so that it only uncordons its own.
pub const CORDONED_BY: &str = "clouder.io/cordoned-by";
/// The extended resource GPUs are counted in.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "clouder");

pub fn api_resource() -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: VERSION.into(),
        api_version: format!("{GROUP}/{VERSION}"),
        kind: KIND.into(),
        plural: PLURAL.into(),
    }
}

/// What an endpoint offers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capability {
    /// Whole CPUs.
    pub cpu: u32,
    /// Bytes.
    pub memory: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpu: u32,
    /// `containerd`, `docker`, `podman`, `gvisor`, … (free-form).
    pub runtime: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A `RemoteContainer`'s spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteContainerSpec {
    pub endpoint: String,
    /// Plain HTTP: marked so everywhere the endpoint is shown.
    #[serde(default)]
    pub insecure: bool,
    /// The image pinned by digest.
    pub image: String,
    /// PEM CA certificates that sign the endpoint's certificate (public; none: system roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// The Secret (in [`NAMESPACE`]) holding the enrollment token.
    pub token_secret: String,
    /// The image's platform (its config's `os` and `architecture`): what the virtual Node reports.
    #[serde(default = "linux")]
    pub os: String,
    #[serde(default = "amd64")]
    pub architecture: String,
    #[serde(flatten)]
    pub capability: Capability,
    /// Cordoned by a person: the heartbeat controller leaves it cordoned.
    #[serde(default)]
    pub cordoned: bool,
}

// Endpoints enrolled before the platform was recorded reported linux/amd64.
fn linux() -> String {
    "linux".into()
}
fn amd64() -> String {
    "amd64".into()
}

/// A condition as Kubernetes writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    pub last_transition_time: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteContainerStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<String>,
    #[serde(default)]
    pub consecutive_misses: u32,
}

impl RemoteContainerStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// `Ready`, `Stale`, `Unreachable` or `Unknown` (never probed): the condition that is True.
    pub fn state(&self) -> &str {
        ["Unreachable", "Stale", "Ready"]
            .into_iter()
            .find(|t| self.condition(t).is_some_and(|c| c.status == "True"))
            .unwrap_or("Unknown")
    }
}

pub fn node_name(name: &str) -> String {
    format!("byoc-{name}")
}

pub fn secret_name(name: &str) -> String {
    format!("byoc-{name}-token")
}

pub fn policy_name(name: &str) -> String {
    format!("byoc-{name}-egress")
}

fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (BYOC_KEY.to_string(), name.to_string()),
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
    ])
}

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("objects built here match their types")
}

/// The CRD: cluster-scoped like Nodes, with a status subresource and kubectl columns.
pub fn crd() -> CustomResourceDefinition {
    let string = json!({"type": "string"});
    let condition = json!({
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": string, "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": string, "message": string,
            "lastTransitionTime": {"type": "string", "format": "date-time"},
        },
    });
    from_json(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{PLURAL}.{GROUP}"), "labels": {MANAGED_BY.0: MANAGED_BY.1}},
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "plural": PLURAL, "singular": "remotecontainer", "kind": KIND,
                "listKind": "RemoteContainerList", "shortNames": ["byoc"],
            },
            "versions": [{
                "name": VERSION, "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Endpoint", "type": "string", "jsonPath": ".spec.endpoint"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                    {"name": "Last Heartbeat", "type": "date", "jsonPath": ".status.lastHeartbeat"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["endpoint", "image", "tokenSecret", "cpu", "memory", "runtime"],
                            "properties": {
                                "endpoint": string, "insecure": {"type": "boolean"},
                                "image": string, "caBundle": string, "tokenSecret": string,
                                "os": string, "architecture": string,
                                "cpu": {"type": "integer", "minimum": 1},
                                "memory": {"type": "integer", "minimum": 1},
                                "gpu": {"type": "integer", "minimum": 0},
                                "runtime": string,
                                "classes": {"type": "array", "items": string},
                                "labels": {"type": "object", "additionalProperties": string},
                                "cordoned": {"type": "boolean"},
                            },
                        },
                        "status": {
                            "type": "object",
                            "properties": {
                                "conditions": {"type": "array", "items": condition},
                                "lastHeartbeat": {"type": "string", "format": "date-time"},
                                "consecutiveMisses": {"type": "integer", "minimum": 0},
                            },
                        },
                    },
                }},
            }],
        },
    }))
}

pub fn namespace() -> Namespace {
    from_json(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
    }))
}

/// The `RemoteContainer` object (without status) as JSON for a dynamic client.
pub fn remote_container(name: &str, spec: &RemoteContainerSpec) -> serde_json::Value {
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": {"name": name, "labels": labels(name)},
        "spec": spec,
    })
}

/// The enrollment token, only here and on the endpoint.
pub fn token_secret(name: &str, token: &str) -> Secret {
    from_json(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": secret_name(name), "namespace": NAMESPACE, "labels": labels(name)},
        "type": "Opaque",
        "stringData": {"token": token},
    }))
}

/// Egress for the runtime pods that opt in to this endpoint: exactly its addresses and port,
/// and DNS.
///
/// Why these pods and this DNS rule: NetworkPolicies are additive per selected pod, and a pod
/// selected by any egress policy may reach only what some policy allows. Selecting every runtime
/// pod would cut all of them off from DNS and the rest of the cluster the moment one endpoint is
/// enrolled; so the policy selects only pods labelled `clouder.io/byoc=NAME` (the pods meant to
/// use this endpoint, which carry that label next to their toleration of the Node's taint), and
/// lets them resolve names through kube-system's kube-dns on 53/UDP and 53/TCP. Pods that did
/// not opt in keep whatever egress they had.
pub fn network_policy(name: &str, addresses: &[IpAddr], port: u16) -> NetworkPolicy {
    let to: Vec<_> = addresses
        .iter()
        .map(|ip| {
            let prefix = if ip.is_ipv4() { 32 } else { 128 };
            json!({"ipBlock": {"cidr": format!("{ip}/{prefix}")}})
        })
        .collect();
    let dns = json!({
        "to": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    });
    from_json(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": policy_name(name), "namespace": NAMESPACE, "labels": labels(name)},
        "spec": {
            "podSelector": {"matchLabels": {BYOC_KEY: name}},
            "policyTypes": ["Egress"],
            "egress": [{"to": to, "ports": [{"protocol": "TCP", "port": port}]}, dns],
        },
    }))
}

/// The addresses a policy made by [`network_policy`] lets through to the endpoint.
pub fn policy_addresses(policy: &NetworkPolicy) -> Vec<IpAddr> {
    let rules = policy.spec.as_ref().and_then(|s| s.egress.as_ref());
    let mut found: Vec<IpAddr> = rules
        .and_then(|r| r.first())
        .and_then(|r| r.to.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|peer| {
            let cidr = &peer.ip_block.as_ref()?.cidr;
            cidr.split_once('/')
                .map_or(cidr.as_str(), |(ip, _)| ip)
                .parse()
                .ok()
        })
        .collect();
    found.sort();
    found
}

/// The virtual Node's Lease, as a kubelet keeps its own: held by the Node, renewed on each
/// heartbeat, and owned by the Node so that it goes with it.
pub fn node_lease(name: &str, node_uid: &str, renew_time: &str) -> Lease {
    from_json(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {
            "name": node_name(name),
            "namespace": LEASE_NAMESPACE,
            "labels": labels(name),
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Node", "name": node_name(name), "uid": node_uid,
            }],
        },
        "spec": {
            "holderIdentity": node_name(name),
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": renew_time,
        },
    }))
}

/// The well-known labels a kubelet sets from its platform; the image's, for a virtual Node.
pub fn platform_labels(os: &str, architecture: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kubernetes.io/os".to_string(), os.to_string()),
        ("kubernetes.io/arch".to_string(), architecture.to_string()),
    ])
}

/// The virtual Node: capacity, labels (user labels, runtime, classes), and the taint that keeps
/// every pod off it unless it tolerates `clouder.io/byoc=NAME`. Its Ready condition starts
/// Unknown: only a heartbeat makes it Ready.
pub fn virtual_node(name: &str, spec: &RemoteContainerSpec, now: &str) -> Node {
    let cap = &spec.capability;
    let mut node_labels = cap.labels.clone();
    node_labels.extend(labels(name));
    node_labels.insert("type".into(), "virtual-kubelet".into());
    node_labels.insert("kubernetes.io/hostname".into(), node_name(name));
    node_labels.extend(platform_labels(&spec.os, &spec.architecture));
    node_labels.insert("clouder.io/runtime".into(), cap.runtime.clone());
    for class in &cap.classes {
        node_labels.insert(format!("clouder.io/class.{class}"), "true".into());
    }
    if spec.insecure {
        node_labels.insert("clouder.io/insecure".into(), "true".into());
    }
    let mut capacity = json!({
        "cpu": cap.cpu.to_string(),
        "memory": cap.memory.to_string(),
        "pods": "110",
    });
    if cap.gpu > 0 {
        capacity[GPU_RESOURCE] = json!(cap.gpu.to_string());
    }
    from_json(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": node_name(name),
            "labels": node_labels,
            "annotations": {"clouder.io/endpoint": spec.endpoint, "clouder.io/image": spec.image},
        },
        "spec": {
            "taints": [{"key": BYOC_KEY, "value": name, "effect": "NoSchedule"}],
        },
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [node_ready("Unknown", "NodeStatusNeverUpdated", "no heartbeat yet", now)],
            "nodeInfo": {
                "architecture": spec.architecture, "operatingSystem": spec.os,
                "containerRuntimeVersion": cap.runtime, "kubeletVersion": "byoc",
                "bootID": "", "kernelVersion": "", "kubeProxyVersion": "", "machineID": "",
                "osImage": spec.image, "systemUUID": "",
            },
        },
    }))
}

/// The Node's `Ready` condition as the heartbeat controller writes it.
pub fn node_ready(status: &str, reason: &str, message: &str, now: &str) -> serde_json::Value {
    json!({
        "type": "Ready", "status": status, "reason": reason, "message": message,
        "lastHeartbeatTime": now, "lastTransitionTime": now,
    })
}
