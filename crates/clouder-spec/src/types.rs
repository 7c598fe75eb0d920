use ipnet::Ipv4Net;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A cluster document: `apiVersion`, `kind: Cluster`, `metadata.name`, `spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: ClusterSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// DNS-1123 label, at most 28 characters (cloud object names derive from it).
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Aws,
    Azure,
    Ssh,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Azure => "azure",
            Provider::Ssh => "ssh",
        }
    }
}

impl std::str::FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "aws" => Ok(Provider::Aws),
            "azure" => Ok(Provider::Azure),
            "ssh" => Ok(Provider::Ssh),
            other => Err(format!(
                "unknown provider `{other}` (expected aws, azure or ssh)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    pub provider: Provider,
    /// Cloud region; when absent, the context's region or the SDK's default is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Azure: the resource group to create everything in (default `<name>-rg`). An existing
    /// group is used and kept; one clouder creates is deleted on terminate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    /// The `clouder ctx` to take cloud account references from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default)]
    pub network: Network,
    /// Networks allowed to reach SSH (22) and the API server (6443). Required by `create`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub admin_cidrs: Vec<Ipv4Net>,
    #[serde(default)]
    pub control_plane: ControlPlane,
    #[serde(default = "default_node_pools")]
    pub node_pools: Vec<NodePool>,
    #[serde(default)]
    pub kubernetes: Kubernetes,
    /// Machine image: an alias (`Ubuntu2204`, `Ubuntu2404`, `Debian12`) or a cloud image id.
    #[serde(default = "default_image")]
    pub image: String,
    /// Login user on the machines; defaults from the image (`ubuntu`, `admin`).
    #[serde(default)]
    pub admin_user: String,
    #[serde(default)]
    pub ssh: Ssh,
    /// The machines of a `provider: ssh` cluster (hosts the user already has).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostSpec>,
    /// Where nodes install their software from; each absent entry takes the upstream default.
    #[serde(default, skip_serializing_if = "Sources::is_default")]
    pub sources: Sources,
    /// What clouder installs through the Kubernetes API once the cluster is up (the cloud's
    /// storage and load-balancer integration always; these on request).
    #[serde(default, skip_serializing_if = "Addons::is_default")]
    pub addons: Addons,
    /// The shared filesystem for users' folders, as a service of the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
}

/// The shared filesystem: one of `nfs` or `ceph`, and how user folders sit on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Storage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<NfsStorage>,
    /// Rook Ceph (CephFS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceph: Option<CephStorage>,
    /// Size of the one ReadWriteMany claim that holds every folder.
    #[serde(default = "default_storage_capacity")]
    pub capacity: String,
    /// Namespace of the runtime pods, where the claim is made.
    #[serde(default = "default_storage_namespace")]
    pub namespace: String,
    /// Where a user's folder appears in a runtime container.
    #[serde(default = "default_storage_mount_path")]
    pub mount_path: String,
    /// The runtime's group: owns the folders, and pods run with it as `fsGroup`.
    #[serde(default = "default_storage_fs_group")]
    pub fs_group: i64,
    /// A new user's quota.
    #[serde(default = "default_storage_quota")]
    pub default_quota: String,
    /// The image the node agent DaemonSet runs (clouder itself); absent: clouder's release image
    /// of this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_image: Option<String>,
}

/// clouder's own image, which the in-cluster parts (the node agent) run.
pub const AGENT_IMAGE: &str = concat!("ghcr.io/datalayer/clouder:v", env!("CARGO_PKG_VERSION"));

impl Storage {
    pub fn agent_image(&self) -> &str {
        self.agent_image.as_deref().unwrap_or(AGENT_IMAGE)
    }
}

/// NFS: one of `inCluster` or `existing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NfsStorage {
    /// An NFS server in the cluster on a cloud disk (EBS gp3, Azure Disk), XFS with project quotas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_cluster: Option<NfsInCluster>,
    /// An export that exists: AWS EFS, Azure Files NFS, any NFS server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing: Option<NfsExport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NfsInCluster {
    /// The disk's StorageClass; absent: the cluster's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// The disk's size.
    pub size: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NfsExport {
    pub server: String,
    /// The exported path (absolute).
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CephStorage {
    /// The CephFS filesystem's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Addons {
    /// An ingress controller behind the cloud's load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Ingress>,
    /// cert-manager with a ClusterIssuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager: Option<CertManager>,
    /// AWS: EFS CSI with an `aws-efs` class on this file system (`fs-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efs_file_system_id: Option<String>,
}

impl Addons {
    fn is_default(&self) -> bool {
        *self == Addons::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ingress {
    Nginx,
    Traefik,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertManager {
    /// The ClusterIssuer's name.
    #[serde(default = "default_issuer_name")]
    pub issuer_name: String,
    /// `selfSigned`, or `acme` with `email` (and optionally `server`, default Let's Encrypt).
    pub issuer: IssuerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

fn default_issuer_name() -> String {
    "clouder".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum IssuerKind {
    SelfSigned,
    Acme,
}

/// Software sources per node component, for mirrors and air-gapped sites.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sources {
    /// containerd 2.x and runc; default Docker's apt repository (`containerd.io`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containerd: Option<Source>,
    /// CRIU 4.x; default the CRIU project's repository on the openSUSE Build Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criu: Option<Source>,
    /// kubeadm, kubelet and kubectl; default pkgs.k8s.io for the cluster's minor version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<Source>,
    /// The CNI (Calico's operator); default its upstream manifest for the pinned version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<CniSource>,
}

/// Where the control plane reads the CNI's manifest from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CniSource {
    /// `tigera-operator.yaml`: an `http(s)://` URL, or an absolute path on the first control plane.
    pub manifest: String,
}

impl Sources {
    fn is_default(&self) -> bool {
        *self == Sources::default()
    }
}

/// One component's source: exactly one of `apt` or `archive` (validation says which is missing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// An apt repository; its packages are installed from it and held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt: Option<AptSource>,
    /// A tarball of the component's binaries, verified by its digest before it is unpacked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveSource>,
}

impl Source {
    pub fn apt(apt: AptSource) -> Self {
        Source {
            apt: Some(apt),
            archive: None,
        }
    }

    pub fn archive(archive: ArchiveSource) -> Self {
        Source {
            apt: None,
            archive: Some(archive),
        }
    }
}

/// A release tarball (`.tar`, `.tar.gz`, `.tar.xz`…) of a component's binaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchiveSource {
    /// An `http(s)://` URL the host downloads, or an absolute path on the host.
    pub url: String,
    /// The tarball's SHA-256 (hex): checked before anything is unpacked.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AptSource {
    /// Repository URL (`http://`, `https://` or `file:/`).
    pub uri: String,
    /// Distribution (`trixie`, `sid`…), or a path ending in `/` for a flat repository.
    pub suite: String,
    /// Components; empty for a flat repository.
    #[serde(default)]
    pub components: Vec<String>,
    /// URL of the repository's ASCII-armoured signing key; absent: the system's keyring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Packages to install from it; absent: the component's usual package names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<Vec<String>>,
}

/// One existing machine, reached over SSH.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostSpec {
    /// IP address or DNS name.
    pub address: String,
    #[serde(default = "ssh_port")]
    pub port: u16,
    /// Login user; default `spec.adminUser`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub role: Role,
    /// Node pool of a worker (its labels and taints); default `workers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Where the machine comes from, as its `clouder.io/provenance` label says: `ssh` (default),
    /// `onprem` or `laptop` (tainted non-production).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<String>,
    /// Who owns the machine (`clouder.io/owner`); default the login user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Worker,
}

fn ssh_port() -> u16 {
    22
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Network {
    #[serde(default = "default_vpc_cidr")]
    #[schemars(with = "String")]
    pub vpc_cidr: Ipv4Net,
    #[serde(default = "default_subnet_cidr")]
    #[schemars(with = "String")]
    pub subnet_cidr: Ipv4Net,
    #[serde(default = "default_pod_cidr")]
    #[schemars(with = "String")]
    pub pod_cidr: Ipv4Net,
    #[serde(default = "default_service_cidr")]
    #[schemars(with = "String")]
    pub service_cidr: Ipv4Net,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            vpc_cidr: default_vpc_cidr(),
            subnet_cidr: default_subnet_cidr(),
            pod_cidr: default_pod_cidr(),
            service_cidr: default_service_cidr(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControlPlane {
    #[serde(default = "one")]
    pub count: u32,
    /// Machine size; defaults per provider.
    #[serde(default)]
    pub size: String,
    #[serde(default = "default_os_disk_gb")]
    pub os_disk_gb: u32,
}

impl Default for ControlPlane {
    fn default() -> Self {
        ControlPlane {
            count: 1,
            size: String::new(),
            os_disk_gb: default_os_disk_gb(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodePool {
    pub name: String,
    #[serde(default = "three")]
    pub count: u32,
    #[serde(default)]
    pub size: String,
    #[serde(default = "default_os_disk_gb")]
    pub os_disk_gb: u32,
    /// Node labels, on top of the default worker labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
    /// Machine indexes removed by a scale-down that drained them; skipped so that the machines
    /// left keep their names. Kept in clouder's state, carried over to later applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: TaintEffect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kubernetes {
    /// `MAJOR.MINOR` or `MAJOR.MINOR.PATCH`, optionally with a leading `v`.
    #[serde(default = "default_k8s_version")]
    pub version: String,
}

impl Default for Kubernetes {
    fn default() -> Self {
        Kubernetes {
            version: default_k8s_version(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ssh {
    /// Public key installed on the machines; default `~/.ssh/id_ed25519.pub`, then `id_rsa.pub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_path: Option<String>,
    /// Which address of a cloud machine clouder connects to: `public` (default) or `private`,
    /// from inside the network (a bastion, a VPN, a runner in the VPC).
    #[serde(default, skip_serializing_if = "AddressKind::is_public")]
    pub address: AddressKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AddressKind {
    #[default]
    Public,
    Private,
}

impl AddressKind {
    fn is_public(&self) -> bool {
        *self == AddressKind::Public
    }
}

impl std::str::FromStr for AddressKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "public" => Ok(AddressKind::Public),
            "private" => Ok(AddressKind::Private),
            other => Err(format!(
                "`{other}` is not an address kind: public or private"
            )),
        }
    }
}

/// Labels every worker carries unless its pool overrides them.
pub const DEFAULT_WORKER_LABELS: [(&str, &str); 3] = [
    ("role.datalayer.io/runtime", "true"),
    ("node.datalayer.io/variant", "medium"),
    ("xpu.datalayer.io/cpu", "true"),
];

pub const DEFAULT_VERSION: &str = "1.32";

fn one() -> u32 {
    1
}
fn three() -> u32 {
    3
}
fn default_os_disk_gb() -> u32 {
    100
}
fn default_k8s_version() -> String {
    DEFAULT_VERSION.to_string()
}
fn default_storage_capacity() -> String {
    "1Ti".into()
}
fn default_storage_namespace() -> String {
    "runtimes".into()
}
fn default_storage_mount_path() -> String {
    "/home/user".into()
}
fn default_storage_fs_group() -> i64 {
    100
}
fn default_storage_quota() -> String {
    "10Gi".into()
}
fn default_image() -> String {
    "Ubuntu2404".to_string()
}
fn default_vpc_cidr() -> Ipv4Net {
    "10.0.0.0/16".parse().expect("valid")
}
fn default_subnet_cidr() -> Ipv4Net {
    "10.0.0.0/24".parse().expect("valid")
}
fn default_pod_cidr() -> Ipv4Net {
    "10.244.0.0/16".parse().expect("valid")
}
fn default_service_cidr() -> Ipv4Net {
    "10.96.0.0/12".parse().expect("valid")
}
fn default_node_pools() -> Vec<NodePool> {
    vec![NodePool::workers(3)]
}

/// The control plane's pool name, beside the node pools'.
pub const CONTROL_PLANE_POOL: &str = "control-plane";

/// One pool of machines as the clouds build them: the control plane or a node pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachinePool<'a> {
    pub name: &'a str,
    pub count: u32,
    pub size: &'a str,
    pub os_disk_gb: u32,
    /// Indexes a drained scale-down retired (none for the control plane).
    pub retired: &'a [u32],
}

impl ClusterSpec {
    /// The control plane, then the node pools.
    pub fn machine_pools(&self) -> Vec<MachinePool<'_>> {
        let cp = &self.control_plane;
        std::iter::once(MachinePool {
            name: CONTROL_PLANE_POOL,
            count: cp.count,
            size: &cp.size,
            os_disk_gb: cp.os_disk_gb,
            retired: &[],
        })
        .chain(self.node_pools.iter().map(|p| MachinePool {
            name: &p.name,
            count: p.count,
            size: &p.size,
            os_disk_gb: p.os_disk_gb,
            retired: &p.retired,
        }))
        .collect()
    }
}

impl NodePool {
    /// The default pool, `workers`, with `count` machines.
    pub fn workers(count: u32) -> Self {
        NodePool {
            name: "workers".to_string(),
            count,
            size: String::new(),
            os_disk_gb: default_os_disk_gb(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            retired: Vec::new(),
        }
    }

    /// The indexes of the pool's `count` machines: the lowest ones not retired.
    pub fn indexes(&self) -> Vec<u32> {
        (0..)
            .filter(|i| !self.retired.contains(i))
            .take(self.count as usize)
            .collect()
    }
}

impl Cluster {
    /// A spec with every default, as `clouder kubeadm create NAME` starts from.
    pub fn new(name: &str, provider: Provider) -> Self {
        Cluster {
            api_version: crate::API_VERSION.to_string(),
            kind: "Cluster".to_string(),
            metadata: Metadata {
                name: name.to_string(),
            },
            spec: ClusterSpec {
                provider,
                region: None,
                resource_group: None,
                context: None,
                network: Network::default(),
                admin_cidrs: Vec::new(),
                control_plane: ControlPlane::default(),
                node_pools: default_node_pools(),
                kubernetes: Kubernetes::default(),
                image: default_image(),
                admin_user: String::new(),
                ssh: Ssh::default(),
                hosts: Vec::new(),
                sources: Sources::default(),
                addons: Addons::default(),
                storage: None,
            },
        }
    }

    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Fills values whose default depends on other fields (provider, image).
    pub fn apply_defaults(&mut self) {
        let spec = &mut self.spec;
        let (cp_size, worker_size) = match spec.provider {
            Provider::Aws => ("t3.large", "t3.xlarge"),
            Provider::Azure => ("Standard_B4ms", "Standard_B4ms"),
            Provider::Ssh => ("", ""),
        };
        if spec.control_plane.size.is_empty() {
            spec.control_plane.size = cp_size.to_string();
        }
        for pool in &mut spec.node_pools {
            if pool.size.is_empty() {
                pool.size = worker_size.to_string();
            }
            for (key, value) in DEFAULT_WORKER_LABELS {
                pool.labels
                    .entry(key.to_string())
                    .or_insert_with(|| value.to_string());
            }
        }
        if spec.admin_user.is_empty() {
            spec.admin_user = match spec.image.as_str() {
                "Debian12" => "admin",
                _ => "ubuntu",
            }
            .to_string();
        }
    }

    /// Workers across all pools.
    pub fn worker_count(&self) -> u32 {
        self.spec.node_pools.iter().map(|p| p.count).sum()
    }
}
