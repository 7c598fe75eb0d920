//! The bootstrap signer: `kube-public/cluster-info` carries a JWS of its kubeconfig for every live
//! bootstrap token meant for signing, so that a joining node can tell the cluster knows its token.

use super::Ctx;
use crate::bootstrap::{SIGNATURE_PREFIX, signatures};
use serde_json::{Value, json};

pub fn reconcile(cx: &mut Ctx) {
    let Some(info) = cx.list("", "configmaps").into_iter().find(|c| {
        c["metadata"]["namespace"] == "kube-public" && c["metadata"]["name"] == "cluster-info"
    }) else {
        return;
    };
    let Some(kubeconfig) = info["data"]["kubeconfig"].as_str() else {
        return;
    };
    let mut data: serde_json::Map<String, Value> = info["data"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !k.starts_with(SIGNATURE_PREFIX))
        .collect();
    for (k, v) in signatures(cx.s, kubeconfig) {
        data.insert(k, json!(v));
    }
    let mut signed = info.clone();
    signed["data"] = Value::Object(data);
    cx.update("", "configmaps", &info, signed);
}
