//! The shared filesystem as Kubernetes objects: an in-cluster NFS server (a StatefulSet on a
//! cloud-disk claim, formatted XFS with project quotas, behind a Service), or an existing NFS
//! export; either way a `Retain` PersistentVolume and the one ReadWriteMany claim that carries
//! every user's folder.

use crate::Error;
use serde_json::{Value, json};

pub const NAMESPACE: &str = "clouder-storage";
pub const CLAIM: &str = "clouder-userdata";
const SERVER: &str = "clouder-nfs";
/// A small NFS server image that exports `/exports` (NFSv4).
pub const DEFAULT_SERVER_IMAGE: &str = "registry.k8s.io/volume-nfs:0.8";

/// Where the shared filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// An NFS server in the cluster, on a `size` disk of `storage_class`.
    InCluster {
        /// Absent: the cluster's default StorageClass.
        storage_class: Option<String>,
        size: String,
        image: String,
    },
    /// An export that exists already (EFS, Azure Files NFS, any NFS server).
    Existing { server: String, path: String },
}

impl Backend {
    /// The NFS server and exported path.
    pub fn export(&self) -> (String, String) {
        match self {
            Backend::InCluster { .. } => (
                format!("{SERVER}.{NAMESPACE}.svc.cluster.local"),
                "/".to_string(),
            ),
            Backend::Existing { server, path } => (server.clone(), path.clone()),
        }
    }

    /// The backend the spec's `storage:` section names (checked by clouder-spec already).
    pub fn from_spec(storage: &clouder_spec::Storage) -> Result<Backend, Error> {
        let nfs = storage.nfs.as_ref().ok_or_else(|| {
            Error::Invalid(
                "spec.storage.ceph: Rook Ceph manifests are not rendered yet; use nfs".into(),
            )
        })?;
        match (&nfs.in_cluster, &nfs.existing) {
            (Some(server), _) => Ok(Backend::InCluster {
                storage_class: server.storage_class.clone(),
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

pub fn for_spec(storage: &clouder_spec::Storage) -> Result<ForSpec, Error> {
    let backend = Backend::from_spec(storage)?;
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
    if let Backend::InCluster {
        storage_class,
        size,
        image,
    } = backend
    {
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
        let mut disk = json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
        });
        if let Some(class) = storage_class {
            disk["storageClassName"] = json!(class);
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
                        "spec": disk,
                    }],
                },
            }));
    }
    let (server, path) = backend.export();
    objects.push(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": CLAIM, "labels": {"clouder.io/managed": "true"}},
        "spec": {
            "capacity": {"storage": capacity},
            "accessModes": ["ReadWriteMany"],
            // Users' data is never deleted with the claim.
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "mountOptions": ["nfsvers=4.1", "hard"],
            "nfs": {"server": server, "path": path},
            "claimRef": {"namespace": claim_namespace, "name": CLAIM},
        },
    }));
    objects.push(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM, "namespace": claim_namespace},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "volumeName": CLAIM,
            "resources": {"requests": {"storage": capacity}},
        },
    }));
    objects
}

/// Where the agent's container sees the shared filesystem.
pub const AGENT_STORAGE_ROOT: &str = "/mnt/clouder-userdata";
const AGENT: &str = "clouder-node-agent";

/// The node agent: a DaemonSet (host PID namespace and privileges to enter containers' mount
/// namespaces, the shared filesystem mounted over NFS, the CRI socket) with a service account
/// that may read and annotate pods.
pub fn node_agent(backend: &Backend, image: &str, mount_path: &str) -> Vec<Value> {
    let (server, path) = backend.export();
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
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]}],
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
                            {"name": "userdata", "nfs": {"server": server, "path": path}},
                            {"name": "cri", "hostPath": {"path": "/run/containerd/containerd.sock", "type": "Socket"}},
                        ],
                    },
                },
            },
        }),
    ]
}
