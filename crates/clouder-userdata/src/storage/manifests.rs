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

/// The objects, in the order to apply them; the claim goes to `claim_namespace`, where the
/// runtime pods run (a pod can only mount a claim of its own namespace).
pub fn render(backend: &Backend, capacity: &str, claim_namespace: &str) -> Vec<Value> {
    let labels =
        json!({"app.kubernetes.io/name": SERVER, "app.kubernetes.io/managed-by": "clouder"});
    let mut objects = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"clouder.io/managed": "true"}},
    })];
    let (server, path) = match backend {
        Backend::InCluster {
            storage_class,
            size,
            image,
        } => {
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
            (
                format!("{SERVER}.{NAMESPACE}.svc.cluster.local"),
                "/".to_string(),
            )
        }
        Backend::Existing { server, path } => (server.clone(), path.clone()),
    };
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
