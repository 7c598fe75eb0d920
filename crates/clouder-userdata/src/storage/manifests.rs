//! The shared filesystem as Kubernetes objects: an in-cluster NFS server (a StatefulSet on a
//! cloud-disk claim, formatted XFS with project quotas, behind a Service), an existing NFS
//! export, or CephFS from Rook; in every case a `Retain` PersistentVolume and the one
//! ReadWriteMany claim that carries every user's folder.

use crate::Error;
use crate::secrets::SECRET_NAME;
use clouder_spec::Provider;
use serde_json::{Value, json};

pub const NAMESPACE: &str = "clouder-storage";
pub const CLAIM: &str = "clouder-userdata";
pub(crate) const SERVER: &str = "clouder-nfs";
/// Kubernetes' own NFS server test image: exports `/exports` as the NFSv4 root (`fsid=0`), so
/// the export path is `/`. (`registry.k8s.io/volume-nfs:0.8`, assumed before, is a Docker
/// schema 1 image that containerd 2, which the nodes run, no longer pulls.)
pub const DEFAULT_SERVER_IMAGE: &str = "registry.k8s.io/e2e-test-images/volume/nfs:1.4";

/// The Rook operator, as a Helm release for the services rollout (before the objects below).
pub const ROOK_CHART: RookChart = RookChart {
    repo: "https://charts.rook.io/release",
    chart: "rook-ceph",
    version: "v1.16.6",
    namespace: ROOK_NAMESPACE,
};
/// Where the operator, the Ceph cluster and its CSI secrets live.
pub const ROOK_NAMESPACE: &str = "rook-ceph";
const CEPH_IMAGE: &str = "quay.io/ceph/ceph:v19.2.2";
const CEPHFS_DRIVER: &str = "rook-ceph.cephfs.csi.ceph.com";
/// The StorageClass for other shared claims on the same CephFS (reclaim policy `Retain`).
pub const CEPHFS_CLASS: &str = "clouder-cephfs";

/// A Helm chart release.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RookChart {
    pub repo: &'static str,
    pub chart: &'static str,
    pub version: &'static str,
    pub namespace: &'static str,
}

/// The in-cluster NFS server's disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disk {
    /// A StorageClass the spec names (XFS mounted with `prjquota` for enforced quotas).
    Class(String),
    /// [`XFS_CLASS`] on the cloud's disk CSI driver, made with the server: XFS with project
    /// quotas, `Retain`.
    Xfs(Provider),
    /// The cluster's default class (no cloud disk known: quotas are watched, not enforced).
    Default,
}

/// The StorageClass of the NFS server's disk on AWS and Azure.
pub const XFS_CLASS: &str = "clouder-nfs-xfs";

/// Where the shared filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// An NFS server in the cluster, on a `size` disk.
    InCluster {
        disk: Disk,
        size: String,
        image: String,
    },
    /// An export that exists already (EFS, Azure Files NFS, any NFS server).
    Existing { server: String, path: String },
    /// CephFS `filesystem` of a Rook Ceph cluster made with it.
    Ceph { filesystem: String },
}

impl Backend {
    /// The NFS server and exported path (none for Ceph).
    fn export(&self) -> Option<(String, String)> {
        Some(match self {
            Backend::InCluster { .. } => (
                format!("{SERVER}.{NAMESPACE}.svc.cluster.local"),
                "/".to_string(),
            ),
            Backend::Existing { server, path } => (server.clone(), path.clone()),
            Backend::Ceph { .. } => return None,
        })
    }

    /// The backend the spec's `storage:` section names (checked by clouder-spec already), on
    /// the cluster's `provider`.
    pub fn from_spec(
        storage: &clouder_spec::Storage,
        provider: Provider,
    ) -> Result<Backend, Error> {
        if let Some(ceph) = &storage.ceph {
            return Ok(Backend::Ceph {
                filesystem: ceph.filesystem.clone().unwrap_or_else(|| CLAIM.into()),
            });
        }
        let nfs = storage
            .nfs
            .as_ref()
            .ok_or_else(|| Error::Invalid("spec.storage: needs `nfs` or `ceph`".into()))?;
        match (&nfs.in_cluster, &nfs.existing) {
            (Some(server), _) => Ok(Backend::InCluster {
                disk: match (&server.storage_class, provider) {
                    (Some(class), _) => Disk::Class(class.clone()),
                    (None, Provider::Aws | Provider::Azure) => Disk::Xfs(provider),
                    (None, Provider::Ssh) => Disk::Default,
                },
                size: server.size.clone(),
                image: DEFAULT_SERVER_IMAGE.into(),
            }),
            (None, Some(export)) => Ok(Backend::Existing {
                server: export.server.clone(),
                path: export.path.clone(),
            }),
            (None, None) => Err(Error::Invalid(
                "spec.storage.nfs: needs `inCluster` or `existing`".into(),
            )),
        }
    }
}

/// What the spec's `storage:` section asks `kubeadm apply` to converge: the shared filesystem,
/// then the node agent that attaches its folders.
pub struct ForSpec {
    pub shared: Vec<Value>,
    pub agent: Vec<Value>,
}

pub fn for_spec(storage: &clouder_spec::Storage, provider: Provider) -> Result<ForSpec, Error> {
    let backend = Backend::from_spec(storage, provider)?;
    Ok(ForSpec {
        shared: render(&backend, &storage.capacity, &storage.namespace),
        agent: node_agent(&backend, storage.agent_image(), &storage.mount_path),
    })
}

fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"clouder.io/managed": "true"}},
    })
}

/// The objects, in the order to apply them; the claim goes to `claim_namespace`, where the
/// runtime pods run (a pod can only mount a claim of its own namespace).
pub fn render(backend: &Backend, capacity: &str, claim_namespace: &str) -> Vec<Value> {
    let labels =
        json!({"app.kubernetes.io/name": SERVER, "app.kubernetes.io/managed-by": "clouder"});
    let mut objects = vec![namespace(NAMESPACE)];
    if claim_namespace != NAMESPACE {
        objects.push(namespace(claim_namespace));
    }
    if let Backend::InCluster { disk, size, image } = backend {
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVER, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "selector": {"app.kubernetes.io/name": SERVER},
                "ports": [
                    {"name": "nfs", "port": 2049, "protocol": "TCP"},
                    {"name": "mountd", "port": 20048, "protocol": "TCP"},
                    {"name": "rpcbind", "port": 111, "protocol": "TCP"},
                ],
            },
        }));
        let mut claim = json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
        });
        match disk {
            Disk::Class(class) => claim["storageClassName"] = json!(class),
            Disk::Xfs(provider) => {
                objects.push(xfs_class(*provider));
                claim["storageClassName"] = json!(XFS_CLASS);
            }
            Disk::Default => {}
        }
        objects.push(json!({
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": SERVER, "namespace": NAMESPACE, "labels": labels},
                "spec": {
                    "serviceName": SERVER,
                    "replicas": 1,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": SERVER}},
                    // The server's disk outlives the StatefulSet.
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "containers": [{
                                "name": "nfs",
                                "image": image,
                                "securityContext": {"privileged": true},
                                "ports": [
                                    {"name": "nfs", "containerPort": 2049},
                                    {"name": "mountd", "containerPort": 20048},
                                    {"name": "rpcbind", "containerPort": 111},
                                ],
                                "volumeMounts": [{"name": "exports", "mountPath": "/exports"}],
                            }],
                        },
                    },
                    "volumeClaimTemplates": [{
                        "metadata": {"name": "exports"},
                        "spec": claim,
                    }],
                },
            }));
    }
    if let Backend::Ceph { filesystem } = backend {
        objects.extend(rook_objects(filesystem));
        // The node agent mounts the same tree from its own namespace.
        objects.push(shared_volume(backend, &agent_volume(), capacity, NAMESPACE));
        objects.push(claim(&agent_volume(), capacity, NAMESPACE));
    }
    objects.push(shared_volume(backend, CLAIM, capacity, claim_namespace));
    objects.push(claim(CLAIM, capacity, claim_namespace));
    objects
}

/// A cloud disk formatted XFS and mounted with project quotas, kept when its claim goes.
fn xfs_class(provider: Provider) -> Value {
    let (provisioner, parameters) = match provider {
        Provider::Azure => (
            "disk.csi.azure.com",
            json!({"skuName": "Premium_LRS", "fsType": "xfs"}),
        ),
        _ => (
            "ebs.csi.aws.com",
            json!({"type": "gp3", "csi.storage.k8s.io/fstype": "xfs"}),
        ),
    };
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": XFS_CLASS},
        "provisioner": provisioner,
        "parameters": parameters,
        "mountOptions": ["prjquota"],
        "reclaimPolicy": "Retain",
        "allowVolumeExpansion": true,
        "volumeBindingMode": "WaitForFirstConsumer",
    })
}

/// The `Retain` volume of the shared filesystem's root, bound to claim `name` in `namespace`.
/// CephFS is provisioned statically too (Rook's static CephFS volume of the filesystem's root):
/// a dynamically provisioned subvolume would be reachable from one claim, in one namespace,
/// while the runtime pods and the node agent both need the same tree.
fn shared_volume(backend: &Backend, name: &str, capacity: &str, namespace: &str) -> Value {
    let mut spec = json!({
        "capacity": {"storage": capacity},
        "accessModes": ["ReadWriteMany"],
        // Users' data is never deleted with the claim.
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": "",
        "claimRef": {"namespace": namespace, "name": name},
    });
    if let Backend::Ceph { filesystem } = backend {
        spec["csi"] = json!({
            "driver": CEPHFS_DRIVER,
            "volumeHandle": name,
            "nodeStageSecretRef": {"name": "rook-csi-cephfs-node", "namespace": ROOK_NAMESPACE},
            "volumeAttributes": {
                "clusterID": ROOK_NAMESPACE,
                "fsName": filesystem,
                "staticVolume": "true",
                "rootPath": "/",
            },
        });
    } else if let Some((server, path)) = backend.export() {
        spec["mountOptions"] = json!(["nfsvers=4.1", "hard"]);
        spec["nfs"] = json!({"server": server, "path": path});
    }
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"clouder.io/managed": "true"}},
        "spec": spec,
    })
}

fn claim(name: &str, capacity: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "volumeName": name,
            "resources": {"requests": {"storage": capacity}},
        },
    })
}

/// The node agent's volume and claim of the shared filesystem (Ceph).
pub(crate) fn agent_volume() -> String {
    format!("{CLAIM}-agent")
}

/// A Ceph cluster on every node's free disks, the CephFS filesystem (kept when its object is
/// deleted), and a `Retain` StorageClass for further shared claims on it. The operator and its
/// CRDs come first, from [`ROOK_CHART`].
fn rook_objects(filesystem: &str) -> Vec<Value> {
    let replicated = json!({"size": 3, "requireSafeReplicaSize": true});
    vec![
        json!({
            "apiVersion": "ceph.rook.io/v1",
            "kind": "CephCluster",
            "metadata": {"name": ROOK_NAMESPACE, "namespace": ROOK_NAMESPACE},
            "spec": {
                "cephVersion": {"image": CEPH_IMAGE},
                "dataDirHostPath": "/var/lib/rook",
                "mon": {"count": 3, "allowMultiplePerNode": false},
                "mgr": {"count": 2},
                "storage": {"useAllNodes": true, "useAllDevices": true},
            },
        }),
        json!({
            "apiVersion": "ceph.rook.io/v1",
            "kind": "CephFilesystem",
            "metadata": {"name": filesystem, "namespace": ROOK_NAMESPACE},
            "spec": {
                "metadataPool": {"replicated": replicated},
                "dataPools": [{"name": "replicated", "replicated": replicated}],
                // Users' data outlives the object.
                "preserveFilesystemOnDelete": true,
                "metadataServer": {"activeCount": 1, "activeStandby": true},
            },
        }),
        json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": CEPHFS_CLASS},
            "provisioner": CEPHFS_DRIVER,
            "reclaimPolicy": "Retain",
            "allowVolumeExpansion": true,
            "parameters": {
                "clusterID": ROOK_NAMESPACE,
                "fsName": filesystem,
                "pool": format!("{filesystem}-replicated"),
                "csi.storage.k8s.io/provisioner-secret-name": "rook-csi-cephfs-provisioner",
                "csi.storage.k8s.io/provisioner-secret-namespace": ROOK_NAMESPACE,
                "csi.storage.k8s.io/controller-expand-secret-name": "rook-csi-cephfs-provisioner",
                "csi.storage.k8s.io/controller-expand-secret-namespace": ROOK_NAMESPACE,
                "csi.storage.k8s.io/node-stage-secret-name": "rook-csi-cephfs-node",
                "csi.storage.k8s.io/node-stage-secret-namespace": ROOK_NAMESPACE,
            },
        }),
    ]
}

/// Where the agent's container sees the shared filesystem.
pub const AGENT_STORAGE_ROOT: &str = "/mnt/clouder-userdata";
pub(crate) const AGENT: &str = "clouder-node-agent";

/// The node agent: a DaemonSet (host PID namespace and privileges to enter containers' mount
/// namespaces, the shared filesystem mounted over NFS, the CRI socket) with a service account
/// that may read and annotate pods.
pub fn node_agent(backend: &Backend, image: &str, mount_path: &str) -> Vec<Value> {
    let userdata = match backend.export() {
        Some((server, path)) => {
            json!({"name": "userdata", "nfs": {"server": server, "path": path}})
        }
        None => json!({"name": "userdata", "persistentVolumeClaim": {"claimName": agent_volume()}}),
    };
    let labels =
        json!({"app.kubernetes.io/name": AGENT, "app.kubernetes.io/managed-by": "clouder"});
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": AGENT, "namespace": NAMESPACE},
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": AGENT},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
                // The users' secrets, for warm pods (see `secret_files`), and no other Secret.
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [SECRET_NAME], "verbs": ["get", "list", "watch"]},
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": AGENT},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": AGENT},
            "subjects": [{"kind": "ServiceAccount", "name": AGENT, "namespace": NAMESPACE}],
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": AGENT, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": AGENT}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": AGENT,
                        // Container processes must be visible in /proc.
                        "hostPID": true,
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [{
                            "name": "agent",
                            "image": image,
                            "args": ["node-agent", "run", "--mount-path", mount_path, "--storage-root", AGENT_STORAGE_ROOT],
                            "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                            // setns into other mount namespaces needs CAP_SYS_ADMIN and CAP_SYS_CHROOT.
                            "securityContext": {"privileged": true},
                            "volumeMounts": [
                                {"name": "userdata", "mountPath": AGENT_STORAGE_ROOT},
                                {"name": "cri", "mountPath": "/run/containerd/containerd.sock"},
                            ],
                        }],
                        "volumes": [
                            userdata,
                            {"name": "cri", "hostPath": {"path": "/run/containerd/containerd.sock", "type": "Socket"}},
                        ],
                    },
                },
            },
        }),
    ]
}
