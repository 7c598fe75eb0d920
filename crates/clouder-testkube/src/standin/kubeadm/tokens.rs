//! Bootstrap tokens: their Secrets, `kubeadm token create` and `kubeadm token list`.

use super::{DEFAULT_GROUP, TOKEN_TYPE, data};
use crate::standin::config;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

pub(super) fn random_token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut word = |n: usize| -> String {
        (0..n)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    format!("{}.{}", word(6), word(16))
}

/// Go's duration syntax as kubeadm's `--ttl` takes it (`30m`, `24h0m0s`); zero never expires.
pub(super) fn ttl(text: &str) -> Result<Option<jiff::SignedDuration>, String> {
    if text == "0" {
        return Ok(None);
    }
    let d: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("invalid duration {text:?}: {e}"))?;
    Ok((!d.is_zero()).then_some(d))
}

/// A bootstrap token's Secret, as `kubeadm token create` and init's bootstrapTokens make it.
pub async fn create_token(admin: &kube::Client, t: &config::BootstrapToken) -> Result<(), String> {
    let (id, secret) = crate::bootstrap::split(&t.token)
        .ok_or_else(|| format!("the bootstrap token {:?} was not of the form \"^([a-z0-9]{{6}})\\\\.([a-z0-9]{{16}})$\"", t.token))?;
    let mut data = serde_json::Map::new();
    let mut put = |k: &str, v: &str| {
        data.insert(k.into(), json!(STANDARD.encode(v)));
    };
    put("token-id", id);
    put("token-secret", secret);
    let expiration = match (&t.expires, t.ttl.as_deref()) {
        (Some(at), _) => Some(at.clone()),
        (None, ttl_text) => ttl(ttl_text.unwrap_or("24h0m0s"))?.map(|d| {
            (jiff::Timestamp::now() + d)
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        }),
    };
    if let Some(at) = &expiration {
        put("expiration", at);
    }
    if let Some(d) = &t.description {
        put("description", d);
    }
    let usages = if t.usages.is_empty() {
        vec!["signing".to_string(), "authentication".into()]
    } else {
        t.usages.clone()
    };
    for u in &usages {
        if !matches!(u.as_str(), "signing" | "authentication") {
            return Err(format!(
                "invalid bootstrap token usage string: {u}, valid usage options: signing,authentication"
            ));
        }
        put(&format!("usage-bootstrap-{u}"), "true");
    }
    let groups = if t.groups.is_empty() {
        vec![DEFAULT_GROUP.to_string()]
    } else {
        t.groups.clone()
    };
    put("auth-extra-groups", &groups.join(","));
    let body: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "data": data,
    }))
    .map_err(|e| e.to_string())?;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "kube-system");
    secrets
        .create(&PostParams::default(), &body)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 409 => {
                format!("a token with id {id:?} already exists")
            }
            e => {
                format!("failed to create bootstrap token with name \"bootstrap-token-{id}\": {e}")
            }
        })
}

pub(super) async fn token_list(admin: &kube::Client) -> Result<String, String> {
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "kube-system");
    let list = secrets
        .list(&ListParams::default().fields(&format!("type={TOKEN_TYPE}")))
        .await
        .map_err(|e| format!("failed to list bootstrap tokens: {e}"))?;
    let mut rows = vec![
        [
            "TOKEN",
            "TTL",
            "EXPIRES",
            "USAGES",
            "DESCRIPTION",
            "EXTRA GROUPS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for s in list
        .items
        .iter()
        .filter(|s| s.type_.as_deref() == Some(TOKEN_TYPE))
    {
        let expires = data(s, "expiration");
        let ttl = match expires.parse::<jiff::Timestamp>() {
            Ok(at) => {
                let left = at.duration_since(jiff::Timestamp::now());
                if left.is_negative() {
                    continue;
                }
                format!("{}m", left.as_secs() / 60)
            }
            Err(_) => "<forever>".into(),
        };
        let usages: Vec<&str> = ["authentication", "signing"]
            .into_iter()
            .filter(|u| data(s, &format!("usage-bootstrap-{u}")) == "true")
            .collect();
        rows.push(vec![
            format!("{}.{}", data(s, "token-id"), data(s, "token-secret")),
            ttl,
            if expires.is_empty() {
                "<never>".into()
            } else {
                expires
            },
            usages.join(","),
            match data(s, "description") {
                d if d.is_empty() => "<none>".into(),
                d => d,
            },
            data(s, "auth-extra-groups"),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    Ok(rows
        .iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("{}\n", cells.join("   ").trim_end())
        })
        .collect())
}
