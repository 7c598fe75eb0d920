//! The pod a checkpoint was taken of, kept in the catalogue so that a restore recreates it:
//! labels, annotations and the whole spec (resources, ports, volumes and mounts, security
//! contexts, service account, scheduling constraints, the other containers and init
//! containers) — without what ties it to one node or one run, and without literal env values,
//! which may be secrets: the checkpointed process has them in its memory (in the archive),
//! and `valueFrom`/`envFrom` references are kept.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// kubectl's copy of the applied object: it holds env values, so it is never kept.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
pub const ANNOTATION_CHECKPOINT: &str = "clouder.io/checkpoint";
pub const LABEL_RESTORED_FROM: &str = "clouder.io/restored-from";

/// What the catalogue keeps of a checkpointed pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub spec: PodSpec,
    /// `CONTAINER/NAME` of each env var whose literal value was left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_env: Vec<String>,
}

/// Pure: what is kept of `pod`.
pub fn record(pod: &Pod) -> PodRecord {
    let mut spec = pod.spec.clone().unwrap_or_default();
    // Bound to the node it ran on; ephemeral (debug) containers cannot be created with a pod.
    spec.node_name = None;
    spec.ephemeral_containers = None;
    let mut dropped_env = Vec::new();
    let containers = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut());
    for c in containers {
        // A literal is left out whole: kept without its value it would set the variable empty.
        if let Some(env) = &mut c.env {
            env.retain(|e| {
                let literal = e.value.is_some();
                if literal {
                    dropped_env.push(format!("{}/{}", c.name, e.name));
                }
                !literal
            });
        }
        c.env = c.env.take().filter(|env| !env.is_empty());
    }
    let mut annotations: BTreeMap<String, String> =
        pod.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(LAST_APPLIED);
    annotations.remove(ANNOTATION_CHECKPOINT);
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
    labels.remove(LABEL_RESTORED_FROM);
    PodRecord {
        labels,
        annotations,
        spec,
        dropped_env,
    }
}

/// How the restored pod gets its checkpoint image.
#[derive(Debug, Clone, PartialEq)]
pub struct Restore<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    /// The checkpointed pod and container, and the checkpoint's id.
    pub pod: &'a str,
    pub container: &'a str,
    pub checkpoint: &'a str,
    pub image: &'a str,
    /// `Never` for an image imported on the node; otherwise the API server's default.
    pub pull_policy: Option<&'a str>,
    pub node: Option<&'a str>,
}

/// Pure: the pod a restore creates: the recorded one (or, for a checkpoint recorded without
/// its pod, just the container) with the checkpointed container's image replaced.
pub fn restored(recorded: Option<&PodRecord>, r: &Restore) -> Pod {
    let mut kept = recorded.cloned().unwrap_or_else(|| PodRecord {
        spec: PodSpec {
            containers: vec![Container {
                name: r.container.to_string(),
                ..Default::default()
            }],
            ..Default::default()
        },
        ..Default::default()
    });
    kept.labels
        .insert(LABEL_RESTORED_FROM.to_string(), r.pod.to_string());
    kept.annotations
        .insert(ANNOTATION_CHECKPOINT.to_string(), r.checkpoint.to_string());
    let mut spec = kept.spec;
    spec.node_name = r.node.map(str::to_string);
    for c in spec.containers.iter_mut().filter(|c| c.name == r.container) {
        c.image = Some(r.image.to_string());
        c.image_pull_policy = r.pull_policy.map(str::to_string);
    }
    Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(r.name.to_string()),
            namespace: Some(r.namespace.to_string()),
            labels: Some(kept.labels),
            annotations: Some(kept.annotations),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}
