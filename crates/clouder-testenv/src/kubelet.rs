//! A fake kubelet serving the checkpoint API over TLS that demands a client certificate signed
//! by its CA, answering as the real one does (kubelet server.go `checkpoint`): success with the
//! archive path, go-restful's 404 when the feature gate is off, 404 with the kubelet's message
//! for an unknown pod or container, 500 with the runtime's message when CRIU fails, and no
//! answer while the runtime is still at work.

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::endpoint::Ca;

/// What the fake kubelet's node runs and how it behaves.
#[derive(Clone, Default)]
pub struct Behaviour {
    /// The ContainerCheckpoint feature gate is off: the route does not exist.
    pub gate_off: bool,
    /// The archive path container `app`'s checkpoint answers (the test put the file there);
    /// a fixed path under /var/lib/kubelet/checkpoints otherwise.
    pub archive: Option<String>,
    /// The pod it runs, `NAMESPACE/NAME`: `default/web` unless given.
    pub pod: Option<String>,
}

const ARCHIVE: &str =
    "/var/lib/kubelet/checkpoints/checkpoint-web_default-app-2026-11-25T18:30:00Z.tar";

pub struct FakeKubelet {
    pub url: String,
    pub ca: Arc<Ca>,
    /// Request targets (path and query) received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeKubelet {
    /// Serves one pod (`default/web` unless the behaviour names another) with containers `app` (checkpoints), `broken` (CRIU fails) and
    /// `slow` (never finishes within a test's timeout).
    pub async fn start(behaviour: Behaviour) -> Self {
        Self::start_with(Arc::new(Ca::new("kubelet-ca")), behaviour).await
    }

    /// A kubelet whose serving certificate `ca` signs and that trusts the client certificates
    /// it signs: several kubelets of one cluster.
    pub async fn start_with(ca: Arc<Ca>, behaviour: Behaviour) -> Self {
        let (_, server_der, server_key) = ca.sign("node-1", &["127.0.0.1", "localhost"]);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![server_der],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key)),
            )
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, seen, behaviour) =
                    (acceptor.clone(), seen.clone(), behaviour.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let (seen, behaviour) = (seen.clone(), behaviour.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(answer(req, &seen, &behaviour).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        FakeKubelet {
            url,
            ca,
            requests,
            task,
        }
    }
}

type Body = http_body_util::Full<bytes::Bytes>;

fn reply(status: u16, body: &str) -> hyper::Response<Body> {
    hyper::Response::builder()
        .status(status)
        .body(Body::new(bytes::Bytes::from(body.to_string())))
        .unwrap()
}

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    seen: &Mutex<Vec<String>>,
    behaviour: &Behaviour,
) -> hyper::Response<Body> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    seen.lock().unwrap().push(target);
    let path: Vec<_> = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .collect();
    let ["checkpoint", namespace, pod, container] = path[..] else {
        return reply(404, "404 page not found");
    };
    if behaviour.gate_off || req.method() != hyper::Method::POST {
        return reply(404, "404 page not found");
    }
    if format!("{namespace}/{pod}") != behaviour.pod.as_deref().unwrap_or("default/web") {
        return reply(404, "pod does not exist");
    }
    let timeout = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.strip_prefix("timeout="))
        .next_back();
    if let Some(t) = timeout
        && t.parse::<i64>().is_err()
    {
        return reply(404, "cannot parse value of timeout parameter");
    }
    match container {
        "app" => {
            let path = behaviour.archive.as_deref().unwrap_or(ARCHIVE);
            reply(200, &serde_json::json!({"items": [path]}).to_string())
        }
        "broken" => reply(
            500,
            "checkpointing of default/web/broken failed (rpc error: code = Unknown desc = checkpointing container \"4f1d\" failed: criu failed: type NOTIFY errno 0 path= /run/containerd/io.containerd.runtime.v2.task/k8s.io/4f1d/criu-dump.log: unknown)",
        ),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            reply(500, "context deadline exceeded")
        }
        other => reply(404, &format!("container {other} does not exist")),
    }
}
