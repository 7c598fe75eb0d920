//! The kubeconfig a server hands out: one cluster, an admin and a read-only token user.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

/// Context names in the kubeconfig.
pub const ADMIN_CONTEXT: &str = "testkube-admin";
pub const READ_ONLY_CONTEXT: &str = "testkube-read-only";

pub fn render(url: &str, ca_pem: &str, admin_token: &str, reader_token: &str) -> String {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testkube", "cluster": {"server": url, "certificate-authority-data": STANDARD.encode(ca_pem)}}],
        "users": [
            {"name": "admin", "user": {"token": admin_token}},
            {"name": "reader", "user": {"token": reader_token}},
        ],
        "contexts": [
            {"name": ADMIN_CONTEXT, "context": {"cluster": "testkube", "user": "admin", "namespace": "default"}},
            {"name": READ_ONLY_CONTEXT, "context": {"cluster": "testkube", "user": "reader", "namespace": "default"}},
        ],
        "current-context": ADMIN_CONTEXT,
        "preferences": {},
    });
    serde_yaml_ng::to_string(&doc).expect("a JSON value renders as YAML")
}
