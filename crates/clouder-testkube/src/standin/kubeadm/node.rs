//! kubelet-start and mark-control-plane, as init and join both end.

use super::{CONTROL_PLANE_ROLE, FLAGS_ENV, KUBELET_CONF, KUBELET_CONFIG, wait_for};
use crate::standin::Host;
use crate::standin::config::{self, NodeRegistration};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

/// kubeadm-flags.env, config.yaml and kubelet.conf, then the kubelet (re)started.
pub(super) fn start_kubelet(
    host: &Host,
    name: &str,
    reg: &NodeRegistration,
    kubelet: Option<&Value>,
    conf: &str,
) -> Result<(), String> {
    let mut flags = vec![format!(
        "--container-runtime-endpoint={}",
        reg.cri_socket
            .clone()
            .unwrap_or_else(|| "unix:///var/run/containerd/containerd.sock".into())
    )];
    if name != host.hostname() {
        flags.push(format!("--hostname-override={name}"));
    }
    for arg in &reg.kubelet_extra_args {
        flags.push(format!("--{}={}", arg.name, arg.value));
    }
    let taints: Vec<String> = reg
        .taints
        .iter()
        .flatten()
        .map(|t| match &t.value {
            Some(v) => format!("{}={v}:{}", t.key, t.effect),
            None => format!("{}:{}", t.key, t.effect),
        })
        .collect();
    if !taints.is_empty() {
        flags.push(format!("--register-with-taints={}", taints.join(",")));
    }
    host.write(
        FLAGS_ENV,
        &format!("KUBELET_KUBEADM_ARGS=\"{}\"\n", flags.join(" ")),
        0o644,
    )?;
    let mut kubelet = kubelet.cloned().unwrap_or_else(
        || json!({"apiVersion": config::KUBELET_API, "kind": "KubeletConfiguration"}),
    );
    // kubeadm's default: the kubelet API trusts client certificates of the cluster CA.
    if kubelet["authentication"]["x509"]["clientCAFile"].is_null() {
        kubelet["authentication"]["x509"]["clientCAFile"] = json!(format!("{}/ca.crt", super::PKI));
    }
    host.write(
        KUBELET_CONFIG,
        &serde_yaml_ng::to_string(&kubelet).expect("YAML"),
        0o644,
    )?;
    host.write(KUBELET_CONF, conf, 0o600)?;
    host.systemctl(&["restart", "kubelet"])
        .map_err(|e| format!("error execution phase kubelet-start: {e}"))
}

pub(super) async fn wait_for_node(api: &Api<Node>, name: &str) -> Result<(), String> {
    wait_for(
        &format!("the kubelet to register Node {name:?}"),
        || async { api.get_opt(name).await.ok().flatten() },
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("error execution phase kubelet-start: {e}"))
}

/// mark-control-plane: the role label (and kubeadm's exclusion from load balancers) and taints.
pub(super) async fn mark_control_plane(
    client: &kube::Client,
    name: &str,
    taints: &[config::Taint],
) -> Result<(), String> {
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for_node(&nodes, name).await?;
    let node = nodes.get(name).await.map_err(|e| e.to_string())?;
    let mut all: Vec<Value> = node
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .iter()
        .map(|t| json!(t))
        .collect();
    for t in taints {
        let taint = json!({"key": t.key, "value": t.value, "effect": t.effect});
        if !all
            .iter()
            .any(|x| x["key"] == taint["key"] && x["effect"] == taint["effect"])
        {
            all.push(taint);
        }
    }
    let patch = json!({
        "metadata": {"labels": {CONTROL_PLANE_ROLE: "", "node.kubernetes.io/exclude-from-external-load-balancers": ""}},
        "spec": {"taints": all},
    });
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("error execution phase mark-control-plane: {e}"))
}
