//! A token service for a real docker-registry configured with `auth: token`: no token server
//! is packaged for these machines, so this fixture issues what distribution's token auth
//! verifies (docs/spec/auth/jwt.md): an ES256 JWT whose `x5c` header carries the signing
//! certificate (the registry's `rootcertbundle`), with `iss`, `aud` (the service), `exp`, `nbf`
//! and the granted `access`. Anonymous pulls are granted for `public/*` (Docker Hub style);
//! everything else needs the user's basic credentials, which get the actions asked for.

use crate::RegistryPeer;
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const SERVICE: &str = "test-registry";
const ISSUER: &str = "test-token-issuer";
pub const USER: (&str, &str) = ("ci", "s3cret");

struct Signer {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
}

impl Signer {
    /// A JWT granting `actions` on `repository`.
    fn token(&self, repository: &str, actions: &[&str]) -> String {
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let header = json!({
            "typ": "JWT", "alg": "ES256",
            "x5c": [base64::engine::general_purpose::STANDARD.encode(&self.cert_der)],
        });
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({
            "iss": ISSUER, "sub": USER.0, "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{repository}"),
            "access": [{"type": "repository", "name": repository, "actions": actions}],
        });
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = ring::rand::SystemRandom::new();
        let signature = self.key.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", b64(signature.as_ref()))
    }
}

/// What the token service was asked: the query, and whether credentials came along.
pub type Asked = Arc<Mutex<Vec<(HashMap<String, String>, bool)>>>;

/// A registry that demands bearer tokens, and the token service that issues them.
pub struct TokenRegistry {
    pub registry: RegistryPeer,
    pub asked: Asked,
    signer: Arc<Signer>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenRegistry {
    pub async fn start() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, ISSUER);
        let cert = params.self_signed(&key).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let signer = Arc::new(Signer {
            key: EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &key.serialize_der(),
                &rng,
            )
            .unwrap(),
            cert_der: cert.der().to_vec(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let realm = format!(
            "http://127.0.0.1:{}/token",
            listener.local_addr().unwrap().port()
        );
        let asked = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (signer.clone(), asked.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (s, a) = (s.clone(), a.clone());
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |r| issue(r, s.clone(), a.clone()));
                    let io = hyper_util::rt::TokioIo::new(tcp);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("token-ca.pem");
        std::fs::write(&bundle, cert.pem()).unwrap();
        let auth = format!(
            "auth: {{token: {{realm: \"{realm}\", service: {SERVICE}, issuer: {ISSUER}, rootcertbundle: {}}}}}\n",
            bundle.display()
        );
        TokenRegistry {
            registry: RegistryPeer::start_in(dir, &auth),
            asked,
            signer,
            task,
        }
    }

    /// A push token for `repository`, as a CI system would hold.
    pub fn push_token(&self, repository: &str) -> String {
        format!(
            "Bearer {}",
            self.signer.token(repository, &["pull", "push"])
        )
    }
}

async fn issue(
    request: Request<hyper::body::Incoming>,
    signer: Arc<Signer>,
    asked: Asked,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let query: HashMap<String, String> = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = v
                .replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%2C", ",");
            (k.to_string(), v)
        })
        .collect();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", USER.0, USER.1))
    );
    let given = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    asked.lock().unwrap().push((query.clone(), given.is_some()));
    let (repository, asked_actions) = query
        .get("scope")
        .and_then(|s| s.strip_prefix("repository:"))
        .and_then(|s| s.rsplit_once(':'))
        .map(|(repo, actions)| (repo.to_string(), actions.to_string()))
        .unwrap_or_default();
    let user = given == Some(basic.as_str());
    let authorised = user || (given.is_none() && repository.starts_with("public/"));
    let respond = |status: StatusCode, body: serde_json::Value| {
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap())
    };
    if query.get("service").map(String::as_str) != Some(SERVICE) || !authorised {
        return respond(StatusCode::UNAUTHORIZED, json!({"details": "unauthorized"}));
    }
    let actions: Vec<&str> = if user {
        asked_actions.split(',').collect()
    } else {
        vec!["pull"]
    };
    let token = signer.token(&repository, &actions);
    respond(
        StatusCode::OK,
        json!({"token": token, "access_token": token, "expires_in": 300}),
    )
}
