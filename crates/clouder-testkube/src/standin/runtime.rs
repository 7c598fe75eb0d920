//! The stand-in kubelet's pods, run for real through CRI when it is given a live runtime socket:
//! for each pod bound to the node, RunPodSandbox, PullImage, CreateContainer and StartContainer
//! as the kubelet does; the containers' real state reported in the pod's status; stop and remove
//! when the pod goes, confirming a graceful deletion with grace 0. A pod whose image is a
//! checkpoint image is created the same way: containerd ≥ 2.1 restores it in CreateContainer.
//!
//! Simpler than the kubelet: the pod shares the node's network (no CNI), containers are not
//! restarted, and a pod whose start failed stays failed (its reason in the status).

use super::Host;
use clouder_cri::{Cri, api};
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

/// A pod's sandbox and containers in the runtime.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub id: String,
    pub namespace: String,
    pub name: String,
    /// Under the host's root, e.g. `/var/log/pods/NS_NAME_UID`.
    pub log_dir: String,
    /// Container name → runtime id.
    pub containers: BTreeMap<String, String>,
    /// Why the pod's containers could not start: (reason, message), as the kubelet reports them.
    failure: Option<(String, String)>,
    /// The status last written, so that only changes are written.
    reported: Value,
}

impl Sandbox {
    /// The CRI log of a container: `LOG_DIR/NAME/0.log` (no restarts here).
    pub fn log_path(&self, container: &str) -> String {
        format!("{}/{container}/0.log", self.log_dir)
    }
}

pub struct Runtime {
    pub cri: Cri,
    client: kube::Client,
    node: String,
    node_ip: Option<String>,
    pub host: Host,
    /// By pod uid.
    pods: Mutex<HashMap<String, Sandbox>>,
}

fn labels_for(pod: &Pod) -> HashMap<String, String> {
    let m = &pod.metadata;
    let mut labels: HashMap<String, String> =
        m.labels.clone().unwrap_or_default().into_iter().collect();
    labels.insert(
        "io.kubernetes.pod.name".into(),
        m.name.clone().unwrap_or_default(),
    );
    labels.insert(
        "io.kubernetes.pod.namespace".into(),
        m.namespace.clone().unwrap_or_default(),
    );
    labels.insert(
        "io.kubernetes.pod.uid".into(),
        m.uid.clone().unwrap_or_default(),
    );
    labels
}

/// Pure: the CRI sandbox configuration the kubelet makes of a pod.
pub fn sandbox_config(pod: &Pod) -> api::PodSandboxConfig {
    let m = &pod.metadata;
    let (ns, name, uid) = (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
        m.uid.clone().unwrap_or_default(),
    );
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.clone(),
            uid: uid.clone(),
            namespace: ns.clone(),
            attempt: 0,
        }),
        // No hostname: on the node's network the pod has the node's (as for hostNetwork pods).
        log_directory: format!("/var/log/pods/{ns}_{name}_{uid}"),
        labels: labels_for(pod),
        annotations: m
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(clouder_cri::node_network_sandbox()),
        ..Default::default()
    }
}

/// Pure: the CRI container configuration of one of the pod's containers.
pub fn container_config(pod: &Pod, c: &Container) -> api::ContainerConfig {
    let mut labels = labels_for(pod);
    labels.retain(|k, _| k.starts_with("io.kubernetes.pod."));
    labels.insert("io.kubernetes.container.name".into(), c.name.clone());
    let image = c.image.clone().unwrap_or_default();
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: c.name.clone(),
            attempt: 0,
        }),
        image: Some(clouder_cri::image_spec(&image)),
        command: c.command.clone().unwrap_or_default(),
        args: c.args.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: c
            .env
            .iter()
            .flatten()
            .filter_map(|e| {
                Some(api::KeyValue {
                    key: e.name.clone(),
                    value: e.value.clone()?,
                })
            })
            .collect(),
        labels,
        annotations: HashMap::from([("io.kubernetes.container.restartCount".into(), "0".into())]),
        log_path: format!("{}/0.log", c.name),
        linux: Some(clouder_cri::node_network_container()),
        ..Default::default()
    }
}

fn time_of(nanos: i64) -> Option<String> {
    (nanos > 0)
        .then(|| jiff::Timestamp::from_nanosecond(nanos.into()).ok())
        .flatten()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Pure: the API server's default `imagePullPolicy`: `Always` for an image without a tag or
/// tagged `latest` (unless pinned by digest), `IfNotPresent` otherwise.
pub fn default_pull_policy(image: &str) -> String {
    let name = image.rsplit('/').next().unwrap_or(image);
    let tag = name.split_once(':').map(|(_, t)| t);
    let latest = !image.contains('@') && tag.is_none_or(|t| t == "latest");
    match latest {
        true => "Always",
        false => "IfNotPresent",
    }
    .to_string()
}

/// Pure: a container's status as the kubelet writes it, from the runtime's.
pub fn container_status(name: &str, image: &str, id: &str, s: &api::ContainerStatus) -> Value {
    let container_id = format!("containerd://{id}");
    let running = s.state == api::ContainerState::ContainerRunning as i32;
    let state = if running {
        json!({"running": {"startedAt": time_of(s.started_at)}})
    } else if s.state == api::ContainerState::ContainerExited as i32 {
        let reason = if s.reason.is_empty() {
            if s.exit_code == 0 {
                "Completed"
            } else {
                "Error"
            }
        } else {
            s.reason.as_str()
        };
        let mut t = json!({"exitCode": s.exit_code, "reason": reason, "containerID": container_id,
            "startedAt": time_of(s.started_at), "finishedAt": time_of(s.finished_at)});
        if !s.message.is_empty() {
            t["message"] = json!(s.message);
        }
        json!({"terminated": t})
    } else {
        json!({"waiting": {"reason": "ContainerCreating"}})
    };
    json!({
        "name": name, "image": image, "imageID": s.image_ref, "containerID": container_id,
        "ready": running, "started": running, "restartCount": 0, "state": state,
    })
}

/// Pure: the pod's phase and readiness from its containers' statuses.
pub fn phase_of(statuses: &[Value]) -> (&'static str, bool) {
    let state = |s: &Value, k: &str| s["state"].get(k).is_some();
    let all = |k: &str| !statuses.is_empty() && statuses.iter().all(|s| state(s, k));
    let ready = all("running");
    let phase = if all("terminated") {
        if statuses
            .iter()
            .all(|s| s["state"]["terminated"]["exitCode"] == 0)
        {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if statuses
        .iter()
        .any(|s| state(s, "running") || state(s, "terminated"))
    {
        "Running"
    } else {
        "Pending"
    };
    (phase, ready)
}

impl Runtime {
    pub fn new(
        cri: Cri,
        client: kube::Client,
        node: &str,
        node_ip: Option<String>,
        host: Host,
    ) -> Self {
        Runtime {
            cri,
            client,
            node: node.to_string(),
            node_ip,
            host,
            pods: Mutex::new(HashMap::new()),
        }
    }

    /// Takes over the sandboxes a previous run of the kubelet left in the runtime, as a restarted
    /// kubelet does, so that their pods are not started twice.
    pub async fn recover(&self) -> Result<usize, String> {
        let mut runtime = self.cri.runtime();
        let ready = api::PodSandboxFilter {
            state: Some(api::PodSandboxStateValue {
                state: api::PodSandboxState::SandboxReady as i32,
            }),
            ..Default::default()
        };
        let sandboxes = runtime
            .list_pod_sandbox(api::ListPodSandboxRequest {
                filter: Some(ready),
            })
            .await
            .map_err(|e| e.message().to_string())?
            .into_inner()
            .items;
        let containers = runtime
            .list_containers(api::ListContainersRequest::default())
            .await
            .map_err(|e| e.message().to_string())?
            .into_inner()
            .containers;
        let mut pods = self.pods.lock().expect("pods lock");
        for sb in sandboxes {
            let Some(uid) = sb.labels.get("io.kubernetes.pod.uid") else {
                continue;
            };
            let meta = sb.metadata.clone().unwrap_or_default();
            let containers = containers
                .iter()
                .filter(|c| c.pod_sandbox_id == sb.id)
                .filter_map(|c| Some((c.metadata.as_ref()?.name.clone(), c.id.clone())))
                .collect();
            pods.insert(
                uid.clone(),
                Sandbox {
                    id: sb.id.clone(),
                    log_dir: format!("/var/log/pods/{}_{}_{uid}", meta.namespace, meta.name),
                    namespace: meta.namespace,
                    name: meta.name,
                    containers,
                    failure: None,
                    reported: Value::Null,
                },
            );
        }
        Ok(pods.len())
    }

    /// The running pod `namespace/name`, if this node runs it.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Sandbox> {
        self.pods
            .lock()
            .expect("pods lock")
            .values()
            .find(|s| s.namespace == namespace && s.name == name)
            .cloned()
    }

    /// One round: starts the pods newly bound here, reports every pod's status, stops and
    /// removes those deleted (confirming graceful deletions).
    pub async fn sync(&self) -> Result<(), String> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let lp = ListParams::default().fields(&format!("spec.nodeName={}", self.node));
        let bound = pods.list(&lp).await.map_err(|e| e.to_string())?;
        let mut live = HashSet::new();
        for pod in &bound {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if pod.metadata.deletion_timestamp.is_some() {
                self.remove(&uid).await;
                self.confirm_deletion(pod).await;
                continue;
            }
            live.insert(uid.clone());
            let known = self.pods.lock().expect("pods lock").contains_key(&uid);
            if !known {
                let sandbox = self.start(pod).await;
                self.pods
                    .lock()
                    .expect("pods lock")
                    .insert(uid.clone(), sandbox);
            }
            if let Err(e) = self.report(pod).await {
                tracing::warn!(
                    "reporting pod {}: {e}",
                    pod.metadata.name.as_deref().unwrap_or_default()
                );
            }
        }
        let gone: Vec<String> = self
            .pods
            .lock()
            .expect("pods lock")
            .keys()
            .filter(|uid| !live.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            self.remove(&uid).await;
        }
        Ok(())
    }

    /// Runs the pod's sandbox and containers; a failure is kept in the sandbox for the status.
    async fn start(&self, pod: &Pod) -> Sandbox {
        let config = sandbox_config(pod);
        let mut sandbox = Sandbox {
            id: String::new(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            log_dir: config.log_directory.clone(),
            containers: BTreeMap::new(),
            failure: None,
            reported: Value::Null,
        };
        let mut runtime = self.cri.runtime();
        match runtime
            .run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
        {
            Ok(r) => sandbox.id = r.into_inner().pod_sandbox_id,
            Err(e) => {
                sandbox.failure = Some(("CreatePodSandboxError".into(), e.message().to_string()));
                return sandbox;
            }
        }
        for c in pod.spec.iter().flat_map(|s| &s.containers) {
            let image = c.image.clone().unwrap_or_default();
            if let Err(failure) = self
                .ensure_image(&image, c.image_pull_policy.as_deref())
                .await
            {
                sandbox.failure = Some(failure);
                return sandbox;
            }
            match self
                .cri
                .create_and_start(&sandbox.id, &config, container_config(pod, c))
                .await
            {
                Ok(id) => {
                    sandbox.containers.insert(c.name.clone(), id);
                }
                Err(e) => {
                    sandbox.failure = Some(("CreateContainerError".into(), e.to_string()));
                    return sandbox;
                }
            }
        }
        sandbox
    }

    /// Has the image in the runtime as `policy` says, as the kubelet's image manager does:
    /// `Always` pulls, `IfNotPresent` pulls when it is missing, `Never` only uses what is there.
    /// Fails with the kubelet's (reason, message).
    async fn ensure_image(
        &self,
        image: &str,
        policy: Option<&str>,
    ) -> Result<(), (String, String)> {
        let present = async || {
            self.cri
                .has_image(image)
                .await
                .map_err(|e| ("ErrImageInspect".to_string(), e.to_string()))
        };
        let policy = policy.map_or_else(|| default_pull_policy(image), str::to_string);
        if policy == "Never" {
            return match present().await? {
                true => Ok(()),
                false => Err((
                    "ErrImageNeverPull".into(),
                    format!("Container image \"{image}\" is not present with pull policy of Never"),
                )),
            };
        }
        if policy == "IfNotPresent" && present().await? {
            return Ok(());
        }
        self.cri
            .pull(image)
            .await
            .map(drop)
            .map_err(|e| ("ErrImagePull".into(), e.to_string()))
    }

    /// Writes the pod's status from the runtime's, when it changed.
    async fn report(&self, pod: &Pod) -> Result<(), String> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let Some(sandbox) = self.pods.lock().expect("pods lock").get(&uid).cloned() else {
            return Ok(());
        };
        let mut statuses = Vec::new();
        for c in pod.spec.iter().flat_map(|s| &s.containers) {
            let image = c.image.clone().unwrap_or_default();
            let status = match (sandbox.containers.get(&c.name), &sandbox.failure) {
                (Some(id), _) => {
                    let s = self
                        .cri
                        .runtime()
                        .container_status(api::ContainerStatusRequest {
                            container_id: id.clone(),
                            verbose: false,
                        })
                        .await
                        .map_err(|e| e.message().to_string())?
                        .into_inner()
                        .status
                        .ok_or("the runtime gave no container status")?;
                    container_status(&c.name, &image, id, &s)
                }
                (None, Some((reason, message))) => json!({
                    "name": c.name, "image": image, "imageID": "", "ready": false, "started": false, "restartCount": 0,
                    "state": {"waiting": {"reason": reason, "message": message}},
                }),
                (None, None) => json!({
                    "name": c.name, "image": image, "imageID": "", "ready": false, "started": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                }),
            };
            statuses.push(status);
        }
        let (phase, ready) = phase_of(&statuses);
        if sandbox.reported == json!([phase, statuses]) {
            return Ok(());
        }
        let now = crate::objects::now();
        let flag = if ready { "True" } else { "False" };
        let cond = |kind: &str, status: &str| json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
        let mut status = json!({
            "phase": phase,
            "startTime": pod.status.as_ref().and_then(|s| s.start_time.clone()).map(|t| json!(t)).unwrap_or(json!(now)),
            "conditions": [cond("PodReadyToStartContainers", if sandbox.id.is_empty() { "False" } else { "True" }),
                cond("Initialized", "True"), cond("Ready", flag), cond("ContainersReady", flag), cond("PodScheduled", "True")],
            "containerStatuses": statuses, "qosClass": "BestEffort",
        });
        // The pod shares the node's network.
        if let Some(ip) = &self.node_ip {
            for key in ["hostIP", "podIP"] {
                status[key] = json!(ip);
            }
            status["hostIPs"] = json!([{"ip": ip}]);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &sandbox.namespace);
        let params = PatchParams {
            field_manager: Some("kubelet".into()),
            ..Default::default()
        };
        pods.patch_status(
            &sandbox.name,
            &params,
            &Patch::Merge(&json!({"status": status})),
        )
        .await
        .map_err(|e| e.to_string())?;
        if let Some(s) = self.pods.lock().expect("pods lock").get_mut(&uid) {
            s.reported = json!([phase, statuses]);
        }
        Ok(())
    }

    /// Stops and removes the pod's sandbox (and so its containers).
    async fn remove(&self, uid: &str) {
        let Some(sandbox) = self.pods.lock().expect("pods lock").remove(uid) else {
            return;
        };
        if sandbox.id.is_empty() {
            return;
        }
        let mut runtime = self.cri.runtime();
        let id = sandbox.id.clone();
        if let Err(e) = runtime
            .stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
        {
            tracing::warn!(
                "stopping pod {}/{}: {}",
                sandbox.namespace,
                sandbox.name,
                e.message()
            );
        }
        if let Err(e) = runtime
            .remove_pod_sandbox(api::RemovePodSandboxRequest { pod_sandbox_id: id })
            .await
        {
            tracing::warn!(
                "removing pod {}/{}: {}",
                sandbox.namespace,
                sandbox.name,
                e.message()
            );
        }
    }

    /// A pod being deleted gracefully is gone once its kubelet says so: a delete with grace 0.
    async fn confirm_deletion(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match Api::<Pod>::namespaced(self.client.clone(), &ns)
            .delete(&name, &params)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => tracing::warn!("confirming the deletion of pod {ns}/{name}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pull_policy_is_the_api_servers() {
        for (image, policy) in [
            ("busybox", "Always"),
            ("busybox:latest", "Always"),
            ("localhost:5000/busybox", "Always"),
            ("localhost:5000/busybox:1", "IfNotPresent"),
            ("r/busybox@sha256:0123", "IfNotPresent"),
            (
                "localhost/clouder-checkpoint:default.counter.app.20261126t050000z",
                "IfNotPresent",
            ),
        ] {
            assert_eq!(default_pull_policy(image), policy, "{image}");
        }
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "counter", "namespace": "smoke", "uid": "u-1", "labels": {"app": "c"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "count", "image": "r/busybox:1",
                "command": ["/bin/sh", "-c"], "args": ["echo hi"], "env": [{"name": "A", "value": "1"}]}]},
        }))
        .unwrap()
    }

    #[test]
    fn sandboxes_and_containers_as_the_kubelet_asks_for_them() {
        let p = pod();
        let s = sandbox_config(&p);
        assert_eq!(s.log_directory, "/var/log/pods/smoke_counter_u-1");
        assert_eq!(s.labels["io.kubernetes.pod.uid"], "u-1");
        assert_eq!(s.labels["app"], "c");
        let c = container_config(&p, &p.spec.as_ref().unwrap().containers[0]);
        assert_eq!(c.log_path, "count/0.log");
        assert_eq!(c.command, ["/bin/sh", "-c"]);
        assert_eq!(c.args, ["echo hi"]);
        assert_eq!(c.labels["io.kubernetes.container.name"], "count");
        assert_eq!(c.labels["io.kubernetes.pod.namespace"], "smoke");
        assert!(
            !c.labels.contains_key("app"),
            "pod labels stay on the sandbox"
        );
        assert_eq!(c.envs[0].key, "A");
    }

    #[test]
    fn phases_follow_the_containers() {
        let status = |state: i32, exit: i32| api::ContainerStatus {
            state,
            exit_code: exit,
            started_at: 1_700_000_000_000_000_000,
            ..Default::default()
        };
        let running = container_status(
            "a",
            "i",
            "c1",
            &status(api::ContainerState::ContainerRunning as i32, 0),
        );
        assert_eq!(running["containerID"], "containerd://c1");
        assert_eq!(
            running["state"]["running"]["startedAt"],
            "2023-11-14T22:13:20Z"
        );
        let ok = container_status(
            "a",
            "i",
            "c1",
            &status(api::ContainerState::ContainerExited as i32, 0),
        );
        let failed = container_status(
            "b",
            "i",
            "c2",
            &status(api::ContainerState::ContainerExited as i32, 3),
        );
        assert_eq!(failed["state"]["terminated"]["exitCode"], 3);
        assert_eq!(failed["state"]["terminated"]["reason"], "Error");
        assert_eq!(phase_of(std::slice::from_ref(&running)), ("Running", true));
        assert_eq!(phase_of(&[running.clone(), ok.clone()]), ("Running", false));
        assert_eq!(phase_of(std::slice::from_ref(&ok)), ("Succeeded", false));
        assert_eq!(phase_of(&[ok, failed]), ("Failed", false));
        assert_eq!(phase_of(&[]), ("Pending", false));
    }
}
