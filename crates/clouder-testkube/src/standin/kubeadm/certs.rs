//! `kubeadm init phase upload-certs`: the Secret a joining control plane proves its key against.

use super::{CERTS_MAC, CERTS_SECRET, PKI, random_hex};
use crate::standin::Host;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

pub(super) fn mac(key: &str, ca_pem: &str) -> Result<String, String> {
    let key = hex_bytes(key).ok_or("error decoding certificate key: encoding/hex: invalid byte")?;
    let mut mac =
        <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(ca_pem.as_bytes());
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}

pub(super) fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    text.len().is_multiple_of(2).then_some(())?;
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Secret `kube-system/kubeadm-certs`: the control-plane certificates under the certificate key.
/// (Here only the CA and a MAC of it under the key: a joining control plane proves its key.)
pub(super) async fn upload_certs_with(
    host: &Host,
    admin: &kube::Client,
    key: Option<String>,
) -> Result<String, String> {
    let key = key.unwrap_or_else(|| random_hex(32));
    if key.len() != 64 || hex_bytes(&key).is_none() {
        return Err("error execution phase upload-certs: error uploading certs: error decoding certificate key: certificate key size must be 32 bytes, hex-encoded".into());
    }
    let ca = host.read(&format!("{PKI}/ca.crt"))?;
    let body: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": CERTS_SECRET, "namespace": "kube-system"},
        "data": {"ca.crt": STANDARD.encode(&ca), CERTS_MAC: STANDARD.encode(mac(&key, &ca)?)},
    }))
    .map_err(|e| e.to_string())?;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "kube-system");
    secrets
        .patch(
            CERTS_SECRET,
            &PatchParams::apply("kubeadm").force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| format!("error execution phase upload-certs: error uploading certs: {e}"))?;
    Ok(key)
}
