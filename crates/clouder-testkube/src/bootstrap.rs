//! Bootstrap-token authentication, as kube-apiserver's `--enable-bootstrap-token-auth` does it:
//! `Bearer ID.SECRET` names the Secret `kube-system/bootstrap-token-ID`, valid while it is of type
//! `bootstrap.kubernetes.io/token`, holds that secret, allows authentication and has not expired.
//! What such a user may do is kept narrow: discovery, and what a joining node needs.

use crate::http::Target;
use crate::store::{Inner, Key};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// `[a-z0-9]{6}.[a-z0-9]{16}`: the token's id and secret.
pub fn split(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

fn data<'a>(secret: &'a Value, field: &str) -> Option<String> {
    let raw: &'a str = secret["data"][field].as_str()?;
    String::from_utf8(STANDARD.decode(raw).ok()?).ok()
}

/// The token id when `token` is a valid bootstrap token in `store` right now.
pub fn authenticate(store: &Inner, token: &str) -> Option<String> {
    let (id, secret) = split(token)?;
    let key = Key {
        group: String::new(),
        version: "v1".into(),
        resource: "secrets".into(),
        namespace: "kube-system".into(),
        name: format!("bootstrap-token-{id}"),
    };
    let stored = store.get(&key)?;
    if stored["type"] != "bootstrap.kubernetes.io/token"
        || stored["metadata"]["deletionTimestamp"].is_string()
        || data(stored, "token-id").as_deref() != Some(id)
        || data(stored, "token-secret").as_deref() != Some(secret)
        || data(stored, "usage-bootstrap-authentication").as_deref() != Some("true")
    {
        return None;
    }
    if let Some(expiration) = data(stored, "expiration") {
        let at: jiff::Timestamp = expiration.parse().ok()?;
        if at <= jiff::Timestamp::now() {
            return None;
        }
    }
    Some(id.to_string())
}

/// What a bootstrap user may do: read the public cluster-info and the control-plane certificates
/// kubeadm uploads for joins; and, as testkube has no client certificates to hand a node, what the
/// joined node's kubelet does with it: its Node, its Lease, the status of the pods bound to it.
pub fn allowed(verb: &str, t: &Target) -> bool {
    let (group, plural) = (t.rt.group.as_str(), t.rt.plural.as_str());
    let ns = t.namespace.as_deref();
    let name = t.name.as_deref();
    let read = matches!(verb, "get" | "list" | "watch");
    match (group, plural, ns) {
        ("", "configmaps", Some("kube-public")) => verb == "get" && name == Some("cluster-info"),
        ("", "secrets", Some("kube-system")) => verb == "get" && name == Some("kubeadm-certs"),
        ("", "nodes", None) => read || matches!(verb, "create" | "update" | "patch"),
        ("coordination.k8s.io", "leases", Some("kube-node-lease")) => {
            read || matches!(verb, "create" | "update" | "patch")
        }
        ("", "pods", _) => {
            read || (t.subresource.as_deref() == Some("status")
                && matches!(verb, "update" | "patch"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn tokens_have_kubeadms_shape() {
        assert_eq!(
            split("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde",
            "",
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }
}
