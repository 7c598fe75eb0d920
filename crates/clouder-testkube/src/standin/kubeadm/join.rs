//! `kubeadm join`: token discovery with the CA pinned, the certificate key for control planes,
//! then the kubelet.

use super::certs::mac;
use super::node::{mark_control_plane, start_kubelet, wait_for_node};
use super::upgrade::{cluster_configuration, manifest_path, static_pod};
use super::{CERTS_MAC, CERTS_SECRET, KUBELET_CONF, MANIFESTS, data, file_available, preflight};
use crate::standin::config::{self, JoinConfiguration};
use crate::standin::{Host, client, cluster_of, insecure_client, kubeconfig, pki};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use std::time::{Duration, Instant};

/// How long discovery waits for the bootstrap signer to sign cluster-info for a token.
const SIGNED_WITHIN: Duration = Duration::from_secs(5);

/// Token discovery as kubeadm does it: cluster-info fetched anonymously without trusting the
/// server, its signature by this token checked (so the server knows the token), its CA checked
/// against the pinned hashes, then fetched again over TLS verified with that CA, as the token's
/// user. Returns (server, CA).
pub async fn discover(d: &config::TokenDiscovery) -> Result<(String, String), String> {
    let endpoint = d.api_server_endpoint.clone().unwrap_or_default();
    let fail = |e: String| {
        format!(
            "error execution phase preflight: couldn't validate the identity of the API Server: {e}"
        )
    };
    let (id, secret) =
        crate::bootstrap::split(&d.token).ok_or_else(|| fail("invalid token".into()))?;
    let insecure = insecure_client(&endpoint).map_err(fail)?;
    let info: Api<ConfigMap> = Api::namespaced(insecure, "kube-public");
    let deadline = Instant::now() + SIGNED_WITHIN;
    let (text, signature) = loop {
        let cm = info
            .get("cluster-info")
            .await
            .map_err(|e| fail(format!("failed to request the cluster-info ConfigMap: {e}")))?;
        let data = cm.data.unwrap_or_default();
        let text = data.get("kubeconfig").cloned().ok_or_else(|| {
            fail("there is no kubeconfig key in the cluster-info ConfigMap".into())
        })?;
        let key = format!("{}{id}", crate::bootstrap::SIGNATURE_PREFIX);
        match data.get(&key).filter(|s| !s.is_empty()) {
            Some(signature) => break (text, signature.clone()),
            None if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(300)).await
            }
            None => {
                return Err(fail(format!(
                    "token id {id:?} is invalid for this cluster or it has expired. Use \"kubeadm token create\" on the control-plane node to create a new valid token"
                )));
            }
        }
    };
    if signature != crate::bootstrap::detached_signature(&text, id, secret) {
        return Err(fail(
            "failed to verify JWS signature of received cluster info object, can't trust this API Server".into(),
        ));
    }
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
    if join.control_plane.is_some() {
        // Its control-plane manifests at the cluster's version (the API server runs on the
        // first control plane only: see the README).
        let (_, version) = cluster_configuration(&bootstrap).await?;
        host.write(
            &manifest_path("kube-apiserver"),
            &static_pod("kube-apiserver", &version, &["kube-apiserver".into()]),
            0o600,
        )?;
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
