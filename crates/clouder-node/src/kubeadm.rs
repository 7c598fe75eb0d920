//! kubeadm's configuration (v1beta4) and the kubelet's, rendered from typed structs — never from
//! string templates — so every value is escaped and every field name is checked by the compiler.

use crate::encryption;
use serde::Serialize;
use std::collections::BTreeMap;

pub const KUBEADM_API: &str = "kubeadm.k8s.io/v1beta4";
pub const KUBELET_API: &str = "kubelet.config.k8s.io/v1beta1";
pub const CRI_SOCKET: &str = "unix:///run/containerd/containerd.sock";
pub const API_PORT: u16 = 6443;
/// Worker bootstrap tokens live no longer than one run needs.
pub const TOKEN_TTL: &str = "30m";

/// What a cluster's control plane is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterInputs {
    pub name: String,
    /// Full version as installed, e.g. `v1.32.3`.
    pub version: String,
    /// `host:port` every node and client uses: the load balancer, or the first control plane.
    pub endpoint: String,
    pub pod_cidr: String,
    pub service_cidr: String,
    /// Extra names and addresses for the API server certificate (public IPs, DNS names).
    pub cert_sans: Vec<String>,
    /// The CNI operator's manifest: a URL or a path on the first control plane.
    pub cni_manifest: String,
}

/// One node's registration.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInputs {
    pub name: String,
    pub advertise_address: String,
    pub labels: BTreeMap<String, String>,
    /// `key[=value]:Effect`
    pub taints: Vec<(String, Option<String>, String)>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    name: String,
    value: String,
}

fn arg(name: &str, value: impl Into<String>) -> Arg {
    Arg {
        name: name.into(),
        value: value.into(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Taint {
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    effect: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeRegistration {
    name: String,
    cri_socket: &'static str,
    kubelet_extra_args: Vec<Arg>,
    /// Always written: an absent list would make kubeadm taint control planes on its own terms.
    taints: Vec<Taint>,
}

impl NodeRegistration {
    fn of(node: &NodeInputs) -> Self {
        let labels: Vec<String> = node
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut kubelet_extra_args = vec![arg("node-ip", &node.advertise_address)];
        if !labels.is_empty() {
            kubelet_extra_args.push(arg("node-labels", labels.join(",")));
        }
        NodeRegistration {
            name: node.name.clone(),
            cri_socket: CRI_SOCKET,
            kubelet_extra_args,
            taints: node
                .taints
                .iter()
                .map(|(key, value, effect)| Taint {
                    key: key.clone(),
                    value: value.clone(),
                    effect: effect.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    advertise_address: String,
    bind_port: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BootstrapToken {
    token: String,
    ttl: &'static str,
    usages: [&'static str; 2],
    groups: [&'static str; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InitConfiguration {
    api_version: &'static str,
    kind: &'static str,
    bootstrap_tokens: Vec<BootstrapToken>,
    node_registration: NodeRegistration,
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: Endpoint,
    certificate_key: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Networking {
    pod_subnet: String,
    service_subnet: String,
    dns_domain: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ControlPlaneComponent {
    #[serde(rename = "certSANs", skip_serializing_if = "Vec::is_empty")]
    cert_sans: Vec<String>,
    extra_args: Vec<Arg>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extra_volumes: Vec<serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfiguration {
    api_version: &'static str,
    kind: &'static str,
    cluster_name: String,
    kubernetes_version: String,
    control_plane_endpoint: String,
    networking: Networking,
    api_server: ControlPlaneComponent,
    controller_manager: ControlPlaneComponent,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeletConfiguration {
    api_version: &'static str,
    kind: &'static str,
    cgroup_driver: &'static str,
    feature_gates: BTreeMap<&'static str, bool>,
    /// kubeadm expects swap off; say so instead of relying on the default.
    fail_swap_on: bool,
}

fn kubelet() -> KubeletConfiguration {
    KubeletConfiguration {
        api_version: KUBELET_API,
        kind: "KubeletConfiguration",
        cgroup_driver: "systemd",
        feature_gates: [("ContainerCheckpoint", true)].into(),
        fail_swap_on: true,
    }
}

fn documents(parts: &[serde_yaml_ng::Value]) -> String {
    parts
        .iter()
        .map(|p| serde_yaml_ng::to_string(p).expect("configuration serializes"))
        .collect::<Vec<_>>()
        .join("---\n")
}

fn value(v: impl Serialize) -> serde_yaml_ng::Value {
    serde_yaml_ng::to_value(v).expect("configuration serializes")
}

/// `kubeadm init --config` for the first control plane. `token` and `certificate_key` are
/// secrets of this run: they go to the host over SSH stdin, never into state or logs.
pub fn init_config(
    cluster: &ClusterInputs,
    node: &NodeInputs,
    token: &str,
    certificate_key: &str,
) -> String {
    let gates = arg("feature-gates", "ContainerCheckpoint=true");
    documents(&[
        value(InitConfiguration {
            api_version: KUBEADM_API,
            kind: "InitConfiguration",
            bootstrap_tokens: vec![BootstrapToken {
                token: token.into(),
                ttl: TOKEN_TTL,
                usages: ["signing", "authentication"],
                groups: ["system:bootstrappers:kubeadm:default-node-token"],
            }],
            node_registration: NodeRegistration::of(node),
            local_api_endpoint: Endpoint {
                advertise_address: node.advertise_address.clone(),
                bind_port: API_PORT,
            },
            certificate_key: certificate_key.into(),
        }),
        value(ClusterConfiguration {
            api_version: KUBEADM_API,
            kind: "ClusterConfiguration",
            cluster_name: cluster.name.clone(),
            kubernetes_version: cluster.version.clone(),
            control_plane_endpoint: cluster.endpoint.clone(),
            networking: Networking {
                pod_subnet: cluster.pod_cidr.clone(),
                service_subnet: cluster.service_cidr.clone(),
                dns_domain: "cluster.local",
            },
            // Secrets encrypted at rest with the key `encryption::host_script` makes.
            api_server: ControlPlaneComponent {
                cert_sans: cluster.cert_sans.clone(),
                extra_args: vec![
                    gates,
                    arg(encryption::API_SERVER_ARG.0, encryption::API_SERVER_ARG.1),
                ],
                extra_volumes: vec![encryption::api_server_volume()],
            },
            controller_manager: ControlPlaneComponent {
                cert_sans: Vec::new(),
                extra_volumes: Vec::new(),
                extra_args: vec![
                    arg("feature-gates", "ContainerCheckpoint=true"),
                    arg("allocate-node-cidrs", "true"),
                ],
            },
        }),
        value(kubelet()),
    ])
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenDiscovery {
    api_server_endpoint: String,
    token: String,
    ca_cert_hashes: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Discovery {
    bootstrap_token: TokenDiscovery,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinControlPlane {
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: Endpoint,
    certificate_key: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinConfiguration {
    api_version: &'static str,
    kind: &'static str,
    discovery: Discovery,
    node_registration: NodeRegistration,
    #[serde(skip_serializing_if = "Option::is_none")]
    control_plane: Option<JoinControlPlane>,
}

/// `kubeadm join --config`: a worker, or a control plane when `certificate_key` is given. The CA
/// is pinned by its hash, so a node never trusts an API server it reached by mistake.
pub fn join_config(
    cluster: &ClusterInputs,
    node: &NodeInputs,
    token: &str,
    ca_cert_hash: &str,
    certificate_key: Option<&str>,
) -> String {
    documents(&[
        value(JoinConfiguration {
            api_version: KUBEADM_API,
            kind: "JoinConfiguration",
            discovery: Discovery {
                bootstrap_token: TokenDiscovery {
                    api_server_endpoint: cluster.endpoint.clone(),
                    token: token.into(),
                    ca_cert_hashes: vec![ca_cert_hash.into()],
                },
            },
            node_registration: NodeRegistration::of(node),
            control_plane: certificate_key.map(|key| JoinControlPlane {
                local_api_endpoint: Endpoint {
                    advertise_address: node.advertise_address.clone(),
                    bind_port: API_PORT,
                },
                certificate_key: key.into(),
            }),
        }),
        value(kubelet()),
    ])
}
