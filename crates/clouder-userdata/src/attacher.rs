//! The node agent's loop (`clouder node-agent run`, one per node as a DaemonSet): a warm runtime
//! pod handed to a user gets the annotation `clouder.io/user: USER`; the agent on the pod's node
//! finds the container's process through the CRI, binds `users/USER` from its mount of the
//! shared filesystem at the pod's mount path, and records `clouder.io/attached: USER`. When the
//! assignment goes (or changes), the folder is detached (and the new one attached).

use crate::Error;
use crate::agent::{Policy, attach, detach};
use crate::storage::folders::Folders;
use crate::storage::{USERS_DIR, check_user};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use std::path::{Path, PathBuf};

/// Set by whoever assigns a runtime pod to a user.
pub const USER_ANNOTATION: &str = "clouder.io/user";
/// Set by the agent: whose folder is attached.
pub const ATTACHED_ANNOTATION: &str = "clouder.io/attached";
/// Set by the agent when it refuses (over quota, bad name); cleared on success.
pub const REFUSED_ANNOTATION: &str = "clouder.io/attach-refused";
/// Optional: the container to attach into (default: the first).
pub const CONTAINER_ANNOTATION: &str = "clouder.io/user-container";

/// Finds a running container's process on this node from its CRI id.
#[async_trait::async_trait]
pub trait Pids: Send + Sync {
    async fn pid(&self, container_id: &str) -> Result<u32, Error>;
}

/// The CRI runtime's own answer: `ContainerStatus` with `verbose`, whose `info` JSON carries
/// the `pid` (containerd and CRI-O both report it).
pub struct CriPids(pub clouder_checkpoint::cri::Cri);

#[async_trait::async_trait]
impl Pids for CriPids {
    async fn pid(&self, container_id: &str) -> Result<u32, Error> {
        let status = self
            .0
            .runtime()
            .container_status(clouder_checkpoint::cri::api::ContainerStatusRequest {
                container_id: container_id.into(),
                verbose: true,
            })
            .await
            .map_err(|e| Error::Failed(format!("container {container_id}: {}", e.message())))?
            .into_inner();
        status
            .info
            .get("info")
            .and_then(|info| serde_json::from_str::<serde_json::Value>(info).ok())
            .and_then(|info| info["pid"].as_u64())
            .filter(|pid| *pid > 0)
            .map(|pid| pid as u32)
            .ok_or_else(|| {
                Error::Failed(format!(
                    "container {container_id}: the runtime reports no pid"
                ))
            })
    }
}

/// What the loop needs besides the cluster.
pub struct Agent<'a> {
    pub client: kube::Client,
    /// This node's name (the DaemonSet passes `spec.nodeName`).
    pub node: String,
    pub policy: Policy,
    /// Where the folder goes in the container (the same path a new pod's mount gets).
    pub mount_path: PathBuf,
    pub pids: &'a dyn Pids,
}

impl Agent<'_> {
    /// One pass over this node's pods; returns what was done (`attached ns/pod USER`, …).
    pub async fn reconcile(&self) -> Result<Vec<String>, Error> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let list = pods
            .list(&ListParams::default().fields(&format!("spec.nodeName={}", self.node)))
            .await
            .map_err(|e| Error::Failed(format!("listing the pods of node {}: {e}", self.node)))?;
        let mut done = Vec::new();
        for pod in list.items {
            let annotations = pod.metadata.annotations.clone().unwrap_or_default();
            let wanted = annotations.get(USER_ANNOTATION);
            let attached = annotations.get(ATTACHED_ANNOTATION);
            if wanted == attached {
                continue;
            }
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let Some(container_id) = running_container(&pod) else {
                continue;
            };
            let pid = self.pids.pid(&container_id).await?;
            if let Some(user) = attached {
                detach(&self.policy, pid, &self.mount_path)?;
                done.push(format!("detached {ns}/{name} {user}"));
            }
            let mut note = serde_json::json!({ATTACHED_ANNOTATION: null, REFUSED_ANNOTATION: null});
            if let Some(user) = wanted {
                match self.attach_user(pid, user) {
                    Ok(()) => {
                        note[ATTACHED_ANNOTATION] = user.as_str().into();
                        done.push(format!("attached {ns}/{name} {user}"));
                    }
                    Err(Error::Refused(why) | Error::Invalid(why)) => {
                        note[REFUSED_ANNOTATION] = why.clone().into();
                        done.push(format!("refused {ns}/{name} {user}: {why}"));
                    }
                    Err(e) => return Err(e),
                }
            }
            let patch = serde_json::json!({"metadata": {"annotations": note}});
            Api::<Pod>::namespaced(self.client.clone(), &ns)
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| Error::Failed(format!("annotating pod {ns}/{name}: {e}")))?;
        }
        Ok(done)
    }

    fn attach_user(&self, pid: u32, user: &str) -> Result<(), Error> {
        check_user(user)?;
        let root = &self.policy.storage_root;
        // Users the folder index knows are held to their quota.
        let folder = Folders::open(root, 0).and_then(|f| f.show(user)).ok();
        if let Some(f) = folder.filter(|f| f.over_quota) {
            return Err(Error::Refused(format!(
                "user {user} is over quota ({} of {} bytes)",
                f.used_bytes, f.quota_bytes
            )));
        }
        attach(
            &self.policy,
            pid,
            &Path::new(USERS_DIR).join(user),
            &self.mount_path,
        )
    }
}

/// The CRI id of the pod's user container (annotation, else the first), when it runs.
fn running_container(pod: &Pod) -> Option<String> {
    let wanted = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONTAINER_ANNOTATION).cloned())
        .or_else(|| {
            pod.spec
                .as_ref()?
                .containers
                .first()
                .map(|c| c.name.clone())
        })?;
    let status = pod
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == wanted)?;
    status.state.as_ref()?.running.as_ref()?;
    // `containerd://ID` → `ID`.
    let id = status.container_id.as_deref()?;
    Some(id.split_once("://").map_or(id, |(_, id)| id).to_string())
}
