//! Bootstrap-token authentication, as kube-apiserver's `--enable-bootstrap-token-auth` does it:
//! `Bearer ID.SECRET` names the Secret `kube-system/bootstrap-token-ID`, valid while it is of type
//! `bootstrap.kubernetes.io/token`, holds that secret, allows authentication and has not expired.
//! What such a user may do is kept narrow: discovery, and what a joining node needs. Tokens meant
//! for signing also sign `kube-public/cluster-info` (the bootstrap signer, see [`signatures`]).

use crate::http::Target;
use crate::store::{Inner, Key};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use std::collections::BTreeMap;

const TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";
/// cluster-info's data keys that hold a token's signature: `jws-kubeconfig-ID`.
pub const SIGNATURE_PREFIX: &str = "jws-kubeconfig-";

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

/// A token Secret that is live (not expiring, deleted or malformed): its id and secret, when it
/// allows `usage` (`authentication`, `signing`).
fn live(stored: &Value, usage: &str) -> Option<(String, String)> {
    if stored["type"] != TOKEN_TYPE || stored["metadata"]["deletionTimestamp"].is_string() {
        return None;
    }
    let (id, secret) = (data(stored, "token-id")?, data(stored, "token-secret")?);
    let name_matches =
        stored["metadata"]["name"].as_str() == Some(&format!("bootstrap-token-{id}"));
    let usable = data(stored, &format!("usage-bootstrap-{usage}")).as_deref() == Some("true");
    let unexpired = match data(stored, "expiration") {
        Some(at) => at
            .parse::<jiff::Timestamp>()
            .is_ok_and(|at| at > jiff::Timestamp::now()),
        None => true,
    };
    (name_matches && usable && unexpired && split(&format!("{id}.{secret}")).is_some())
        .then_some((id, secret))
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
    let (live_id, live_secret) = live(store.get(&key)?, "authentication")?;
    (live_id == id && live_secret == secret).then_some(live_id)
}

/// A detached JWS (HS256, `kid` the token id, keyed with its secret) of `content`, as the
/// bootstrap signer writes it and kubeadm's discovery checks it: `HEADER..SIGNATURE`.
pub fn detached_signature(content: &str, id: &str, secret: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!("{{\"alg\":\"HS256\",\"kid\":\"{id}\"}}"));
    let payload = URL_SAFE_NO_PAD.encode(content);
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(format!("{header}.{payload}").as_bytes());
    format!(
        "{header}..{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// The signatures cluster-info's `kubeconfig` should carry: one per live signing token.
pub fn signatures(store: &Inner, kubeconfig: &str) -> BTreeMap<String, String> {
    store
        .list("", "secrets", Some("kube-system"))
        .into_iter()
        .filter_map(|(_, s)| live(s, "signing"))
        .map(|(id, secret)| {
            let jws = detached_signature(kubeconfig, &id, &secret);
            (format!("{SIGNATURE_PREFIX}{id}"), jws)
        })
        .collect()
}

/// Where kubeadm's discovery reads cluster-info before it trusts the server.
pub const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

/// What anyone may do: get the public cluster-info (kubeadm's RBAC grants it to anonymous users).
pub fn public(verb: &str, t: &Target) -> bool {
    t.rt.group.is_empty()
        && t.rt.plural == "configmaps"
        && t.namespace.as_deref() == Some("kube-public")
        && t.name.as_deref() == Some("cluster-info")
        && verb == "get"
}

/// What a bootstrap user may do: read the public cluster-info, the cluster's and the kubelet's
/// configuration and the control-plane certificates kubeadm uploads for joins; and, as testkube has no client certificates to hand a node, what the
/// joined node's kubelet does with it: its Node, its Lease, the status of the pods bound to it and
/// the end of their graceful deletion.
pub fn allowed(verb: &str, t: &Target) -> bool {
    let (group, plural) = (t.rt.group.as_str(), t.rt.plural.as_str());
    let ns = t.namespace.as_deref();
    let name = t.name.as_deref();
    let read = matches!(verb, "get" | "list" | "watch");
    match (group, plural, ns) {
        ("", "configmaps", Some("kube-public")) => public(verb, t),
        ("", "secrets", Some("kube-system")) => verb == "get" && name == Some("kubeadm-certs"),
        // kubeadm's nodes-kubeadm-config and kubelet-config Roles: joins and `upgrade node`.
        ("", "configmaps", Some("kube-system")) => {
            verb == "get" && matches!(name, Some("kubeadm-config" | "kubelet-config"))
        }
        ("", "nodes", None) => read || matches!(verb, "create" | "update" | "patch"),
        ("coordination.k8s.io", "leases", Some("kube-node-lease")) => {
            read || matches!(verb, "create" | "update" | "patch")
        }
        ("", "pods", _) => match t.subresource.as_deref() {
            None => read || verb == "delete",
            Some("status") => matches!(verb, "get" | "update" | "patch"),
            Some(_) => false,
        },
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
