//! `kubeadm join`: token discovery with the CA pinned, the certificate key for control planes,
//! then the kubelet.

use super::certs::mac;
use super::node::{mark_control_plane, start_kubelet, wait_for_node};
use super::{CERTS_MAC, CERTS_SECRET, KUBELET_CONF, MANIFESTS, data, file_available, preflight};
use crate::standin::config::{self, JoinConfiguration};
use crate::standin::{Host, client, cluster_of, insecure_client, kubeconfig, pki};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;

/// Token discovery: cluster-info fetched without trusting the server, its CA checked against
/// the pinned hashes, then fetched again over TLS verified with that CA. Returns (server, CA).
pub async fn discover(d: &config::TokenDiscovery) -> Result<(String, String), String> {
    let endpoint = d.api_server_endpoint.clone().unwrap_or_default();
    let fail = |e: String| {
        format!(
            "error execution phase preflight: couldn't validate the identity of the API Server: {e}"
        )
    };
    let insecure = insecure_client(&endpoint, &d.token).map_err(fail)?;
    let info: Api<ConfigMap> = Api::namespaced(insecure, "kube-public");
    let cm = info
        .get("cluster-info")
        .await
        .map_err(|e| fail(format!("failed to request the cluster-info ConfigMap: {e}")))?;
    let text = cm
        .data
        .and_then(|d| d.get("kubeconfig").cloned())
        .ok_or_else(|| fail("there is no kubeconfig key in the cluster-info ConfigMap".into()))?;
    let (server, ca) = cluster_of(&text).map_err(fail)?;
    let hash = pki::spki_hash(&ca).map_err(fail)?;
    if !d.unsafe_skip_ca_verification
        && !d
            .ca_cert_hashes
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&hash))
    {
        return Err(fail(format!(
            "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys {hash:?} are pinned"
        )));
    }
    let secure = client(&kubeconfig(
        "kubernetes",
        &format!("https://{endpoint}"),
        &ca,
        "tls-bootstrap-token-user",
        Some(&d.token),
    ))
    .await
    .map_err(fail)?;
    Api::<ConfigMap>::namespaced(secure, "kube-public")
        .get("cluster-info")
        .await
        .map_err(|e| {
            fail(format!(
                "failed to request the cluster-info ConfigMap over the pinned CA: {e}"
            ))
        })?;
    Ok((server, ca))
}

pub(super) async fn join(host: &Host, text: &str) -> Result<String, String> {
    let docs = config::parse(text)?;
    let join: JoinConfiguration = docs
        .join
        .ok_or("no JoinConfiguration found in the config file")?;
    config::validate_join(&join)?;
    let mut errors: Vec<String> = [KUBELET_CONF, "/etc/kubernetes/pki/ca.crt"]
        .iter()
        .filter_map(|p| file_available(host, p))
        .collect();
    if join.control_plane.is_some() {
        errors.extend(
            MANIFESTS.iter().filter_map(|m| {
                file_available(host, &format!("/etc/kubernetes/manifests/{m}.yaml"))
            }),
        );
    }
    preflight(errors)?;
    let d = join.discovery.bootstrap_token.as_ref().expect("validated");
    let (server, ca) = discover(d).await?;
    let conf = kubeconfig(
        "kubernetes",
        &server,
        &ca,
        "tls-bootstrap-token-user",
        Some(&d.token),
    );
    let bootstrap = client(&conf).await?;
    if let Some(cp) = &join.control_plane {
        let key = cp.certificate_key.clone().ok_or("error execution phase control-plane-prepare/download-certs: certificateKey is required to download the certificates")?;
        let certs = Api::<Secret>::namespaced(bootstrap.clone(), "kube-system")
            .get(CERTS_SECRET)
            .await
            .map_err(|e| format!("error execution phase control-plane-prepare/download-certs: error downloading certs: error downloading the secret: {e}"))?;
        if mac(&key, &data(&certs, "ca.crt"))? != data(&certs, CERTS_MAC) {
            return Err("error execution phase control-plane-prepare/download-certs: error downloading certs: error decoding certs: cipher: message authentication failed".into());
        }
    }
    host.write("/etc/kubernetes/pki/ca.crt", &ca, 0o644)?;
    let name = join
        .node_registration
        .name
        .clone()
        .unwrap_or_else(|| host.hostname());
    start_kubelet(
        host,
        &name,
        &join.node_registration,
        docs.kubelet.as_ref(),
        &conf,
    )?;
    if host.systemd {
        match &join.control_plane {
            Some(_) => {
                let taints = join.node_registration.taints.clone().unwrap_or_default();
                mark_control_plane(&bootstrap, &name, &taints).await?;
            }
            None => wait_for_node(&Api::all(bootstrap), &name).await?,
        }
    }
    Ok("\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a response was received.\n* The Kubelet was informed of the new secure connection details.\n\nRun 'kubectl get nodes' on the control-plane to see this node join the cluster.\n".into())
}
