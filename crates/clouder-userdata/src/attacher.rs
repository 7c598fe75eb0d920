//! The node agent's loop (`clouder node-agent run`, one per node as a DaemonSet). It watches the
//! pods bound to its node: a warm runtime pod handed to a user gets the annotation
//! `clouder.io/user: USER`; the agent finds the container's process through the CRI, binds
//! `users/USER` from its mount of the shared filesystem at the pod's mount path, gives it the
//! user's secrets as files (see [`crate::secret_files`]) and records `clouder.io/attached: USER`.
//! When the assignment goes, changes, or the pod goes, the folder and the secrets are taken out
//! again. It also watches the users' Secrets, and rewrites the files of attached pods in place
//! when one changes.

use crate::Error;
use crate::agent::{Policy, attach, attach_read_only, detach_if_mounted};
use crate::podspec::SECRETS_DIR;
use crate::secret_files::SecretFiles;
use crate::secrets::SECRET_NAME;
use crate::storage::folders::Folders;
use crate::storage::place::Local;
use crate::storage::{USERS_DIR, check_user, user_namespace};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
/// the `pid` (containerd and CRI-O both report it), in the runtime's pid namespace (see
/// [`Policy::proc`]).
pub struct CriPids(pub clouder_cri::Cri);

#[async_trait::async_trait]
impl Pids for CriPids {
    async fn pid(&self, container_id: &str) -> Result<u32, Error> {
        let status = self
            .0
            .runtime()
            .container_status(clouder_cri::api::ContainerStatusRequest {
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

/// What the agent bound into a pod of this node.
struct Attached {
    user: String,
    pid: u32,
    secrets: Option<SecretFiles>,
}

enum Change {
    Pod(Box<watcher::Result<watcher::Event<Pod>>>),
    Secret(Box<watcher::Result<watcher::Event<Secret>>>),
}

/// The node agent.
pub struct Agent<'a> {
    client: kube::Client,
    node: String,
    policy: Policy,
    mount_path: PathBuf,
    pids: &'a dyn Pids,
    /// Where each pod's secrets tmpfs is mounted in the agent's own namespace; `None`: the
    /// agent binds folders only.
    secrets_root: Option<PathBuf>,
    /// By pod uid.
    attached: Mutex<HashMap<String, Attached>>,
}

impl<'a> Agent<'a> {
    /// The agent of node `node`: folders under the policy's storage root at `mount_path` (the
    /// same path a new pod's mount gets), container processes found with `pids`.
    pub fn new(
        client: kube::Client,
        node: &str,
        policy: Policy,
        mount_path: &Path,
        pids: &'a dyn Pids,
    ) -> Agent<'a> {
        Agent {
            client,
            node: node.into(),
            policy,
            mount_path: mount_path.into(),
            pids,
            secrets_root: None,
            attached: Mutex::new(HashMap::new()),
        }
    }

    /// Also gives attached pods their user's secrets, on tmpfs mounts made under `root`.
    pub fn with_secrets(mut self, root: &Path) -> Agent<'a> {
        self.secrets_root = Some(root.into());
        self
    }

    /// Handles every change to this node's pods (and users' Secrets) as it comes, until
    /// stopped; the watches resume by themselves after errors.
    pub async fn run(&self) {
        let on_node = watcher::Config::default().fields(&format!("spec.nodeName={}", self.node));
        let pods = watcher(Api::<Pod>::all(self.client.clone()), on_node)
            .default_backoff()
            .map(|event| Change::Pod(Box::new(event)))
            .boxed();
        let secrets = match self.secrets_root {
            Some(_) => {
                // The only Secrets the agent may read (its ClusterRole names this one).
                let named =
                    watcher::Config::default().fields(&format!("metadata.name={SECRET_NAME}"));
                watcher(Api::<Secret>::all(self.client.clone()), named)
                    .default_backoff()
                    .map(|event| Change::Secret(Box::new(event)))
                    .boxed()
            }
            None => futures::stream::pending().boxed(),
        };
        let mut changes = futures::stream::select(pods, secrets);
        while let Some(change) = changes.next().await {
            use watcher::Event::{Apply, Delete, InitApply};
            let outcome = match change {
                Change::Pod(event) => match *event {
                    Ok(Apply(pod) | InitApply(pod)) => self.pod_changed(&pod).await,
                    Ok(Delete(pod)) => self.pod_gone(&pod),
                    Ok(_) => Ok(None),
                    Err(e) => Err(self.watch_failed(e)),
                },
                Change::Secret(event) => match *event {
                    Ok(Apply(secret) | InitApply(secret)) => {
                        self.secret_changed(&secret, secret_data(&secret))
                    }
                    Ok(Delete(secret)) => self.secret_changed(&secret, BTreeMap::new()),
                    Ok(_) => Ok(None),
                    Err(e) => Err(self.watch_failed(e)),
                },
            };
            match outcome {
                Ok(Some(done)) => tracing::info!("{done}"),
                Ok(None) => {}
                Err(e) => tracing::warn!("node agent on {}: {e}", self.node),
            }
        }
    }

    /// Brings one pod in line with its assignment; says what was done, if anything.
    async fn pod_changed(&self, pod: &Pod) -> Result<Option<String>, Error> {
        if pod.metadata.deletion_timestamp.is_some() {
            return self.pod_gone(pod);
        }
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        let wanted = annotations.get(USER_ANNOTATION).cloned();
        let recorded = annotations.get(ATTACHED_ANNOTATION).cloned();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let known = self.known(&uid);
        if wanted == recorded && (wanted.is_none() || known == wanted) {
            return Ok(None);
        }
        let Some(container_id) = running_container(pod) else {
            return Ok(None);
        };
        let pid = self.pids.pid(&container_id).await?;
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let mut done = Vec::new();
        if let Some(user) = recorded.as_ref().or(known.as_ref()) {
            // Also after a restart of the agent (nothing known, the pod says attached): the
            // folder is bound afresh and the secrets get a new tmpfs the agent can update.
            self.take_out(&uid, pid)?;
            done.push(format!("detached {ns}/{name} {user}"));
        }
        let mut note = serde_json::json!({ATTACHED_ANNOTATION: null, REFUSED_ANNOTATION: null});
        if let Some(user) = &wanted {
            match self.bind_in(pod, &uid, pid, user).await {
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
        let unchanged = [ATTACHED_ANNOTATION, REFUSED_ANNOTATION]
            .iter()
            .all(|k| note[*k].as_str() == annotations.get(*k).map(String::as_str));
        if !unchanged {
            let patch = serde_json::json!({"metadata": {"annotations": note}});
            Api::<Pod>::namespaced(self.client.clone(), &ns)
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| Error::Failed(format!("annotating pod {ns}/{name}: {e}")))?;
        }
        Ok((!done.is_empty()).then(|| done.join("; ")))
    }

    /// A pod that is gone: whatever was bound into it is taken out, its secrets wiped.
    fn pod_gone(&self, pod: &Pod) -> Result<Option<String>, Error> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let Some(user) = self.known(&uid) else {
            return Ok(None);
        };
        let pid = self.attached.lock().expect("not poisoned")[&uid].pid;
        self.take_out(&uid, pid)?;
        Ok(Some(format!(
            "detached {}/{} {user}: the pod is gone",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        )))
    }

    /// A user's Secret changed: the files of their attached pods are rewritten in place.
    fn secret_changed(
        &self,
        secret: &Secret,
        data: BTreeMap<String, Vec<u8>>,
    ) -> Result<Option<String>, Error> {
        let ns = secret.metadata.namespace.as_deref().unwrap_or_default();
        let attached = self.attached.lock().expect("not poisoned");
        let mut rewritten = 0;
        for a in attached.values() {
            if let Some(files) = a.secrets.as_ref().filter(|_| user_namespace(&a.user) == ns) {
                files.write(&data)?;
                rewritten += 1;
            }
        }
        Ok((rewritten > 0)
            .then(|| format!("secrets of namespace {ns} rewritten in {rewritten} pod(s)")))
    }

    fn watch_failed(&self, e: watcher::Error) -> Error {
        Error::Failed(format!("watching node {}: {e}", self.node))
    }

    fn known(&self, uid: &str) -> Option<String> {
        let attached = self.attached.lock().expect("not poisoned");
        attached.get(uid).map(|a| a.user.clone())
    }

    /// Binds the user's folder (and secrets) into the pod's container process `pid`.
    async fn bind_in(&self, pod: &Pod, uid: &str, pid: u32, user: &str) -> Result<(), Error> {
        check_user(user)?;
        let root = &self.policy.storage_root;
        // Users the folder index knows are held to their quota.
        let folder = match Folders::open(&Local, root, 0).await {
            Ok(folders) => folders.show(user).await.ok(),
            Err(_) => None,
        };
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
        )?;
        let secrets = match &self.secrets_root {
            None => None,
            Some(root) => match self.bind_secrets(root, pod, uid, pid, user).await {
                Ok(files) => Some(files),
                Err(e) => {
                    detach_if_mounted(&self.policy, pid, &self.mount_path)?;
                    return Err(e);
                }
            },
        };
        let attached = Attached {
            user: user.into(),
            pid,
            secrets,
        };
        self.attached
            .lock()
            .expect("not poisoned")
            .insert(uid.into(), attached);
        Ok(())
    }

    /// The user's Secret as files on a new tmpfs, bound read-only at [`SECRETS_DIR`].
    async fn bind_secrets(
        &self,
        root: &Path,
        pod: &Pod,
        uid: &str,
        pid: u32,
        user: &str,
    ) -> Result<SecretFiles, Error> {
        let ns = user_namespace(user);
        let secret = Api::<Secret>::namespaced(self.client.clone(), &ns)
            .get_opt(SECRET_NAME)
            .await
            .map_err(|e| Error::Failed(format!("reading the secrets of user {user}: {e}")))?;
        let group = pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref()?.fs_group)
            .and_then(|g| u32::try_from(g).ok())
            .unwrap_or(0);
        let files = SecretFiles::mount(root, uid, group)?;
        let bound = files
            .write(&secret.as_ref().map(secret_data).unwrap_or_default())
            .and_then(|()| {
                let target = Path::new(SECRETS_DIR);
                let parent = target.parent().expect("an absolute path");
                attach_read_only(&self.policy, pid, files.dir(), target, parent)
            });
        match bound {
            Ok(()) => Ok(files),
            Err(e) => {
                files.wipe()?;
                Err(e)
            }
        }
    }

    /// Takes the folder and the secrets out of process `pid` and wipes the secrets' tmpfs.
    fn take_out(&self, uid: &str, pid: u32) -> Result<(), Error> {
        // A process that is gone has nothing left to take out.
        let gone = |r: Result<bool, Error>| match r {
            Err(Error::Refused(why)) if why.starts_with("no process") => Ok(false),
            r => r,
        };
        gone(detach_if_mounted(&self.policy, pid, &self.mount_path))?;
        gone(detach_if_mounted(&self.policy, pid, Path::new(SECRETS_DIR)))?;
        let attached = self.attached.lock().expect("not poisoned").remove(uid);
        if let Some(files) = attached.and_then(|a| a.secrets) {
            files.wipe()?;
        }
        Ok(())
    }
}

/// A Secret's keys and values.
fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
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
