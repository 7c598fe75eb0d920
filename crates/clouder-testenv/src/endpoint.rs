//! Remote container endpoints as the tests need them: HTTPS with a certificate from a CA made
//! here (or plain HTTP), `GET /healthz` answering 200 to the right bearer token and 401 to any
//! other, and a behaviour the test changes at will: slow, stopped, restarted on the same port.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A certificate and its key, PEM-encoded.
pub struct Pem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

/// A certificate authority made for one test.
pub struct Ca {
    pub pem: String,
    pub der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `cn` and the DNS names or addresses `names`: as PEM, and as the DER
    /// certificate and PKCS#8 key rustls takes.
    pub fn sign(&self, cn: &str, names: &[&str]) -> (Pem, CertificateDer<'static>, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let pem = Pem {
            cert: cert.pem().into_bytes(),
            key: key.serialize_pem().into_bytes(),
        };
        (pem, cert.der().clone(), key.serialize_der())
    }

    /// A TLS server configuration with a certificate for 127.0.0.1 and localhost.
    pub fn server(&self) -> Arc<rustls::ServerConfig> {
        let (_, cert, key) = self.sign("endpoint", &["127.0.0.1", "localhost"]);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            )
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// What the endpoint does, changed by the test while it runs.
#[derive(Default)]
pub struct Behaviour {
    pub token: Mutex<String>,
    /// Wait this long before answering.
    pub delay: Mutex<Duration>,
    /// Answers 200 and 401.
    pub accepted: AtomicUsize,
    pub refused: AtomicUsize,
}

pub struct Endpoint {
    pub url: String,
    pub port: u16,
    pub behaviour: Arc<Behaviour>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Endpoint {
    /// HTTPS with `tls`, or plain HTTP without.
    pub async fn start(tls: Option<Arc<rustls::ServerConfig>>, token: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let behaviour = Arc::new(Behaviour::default());
        *behaviour.token.lock().unwrap() = token.to_string();
        let mut endpoint = Endpoint {
            url: format!("{scheme}://127.0.0.1:{port}"),
            port,
            behaviour,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            task: None,
        };
        endpoint.serve(listener);
        endpoint
    }

    pub fn set_token(&self, token: &str) {
        *self.behaviour.token.lock().unwrap() = token.to_string();
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.behaviour.delay.lock().unwrap() = delay;
    }

    /// Closes the port and every open connection.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        self.serve(listener);
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (tls, behaviour) = (self.tls.clone(), self.behaviour.clone());
        self.task = Some(tokio::spawn(async move {
            // Dropped with this task when stopped: every connection goes with it.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (tls, behaviour) = (tls.clone(), behaviour.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |r| answer(r, behaviour.clone()));
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(tcp).await {
                                let io = hyper_util::rt::TokioIo::new(stream);
                                let _ = http.serve_connection(io, service).await;
                            }
                        }
                        None => {
                            let io = hyper_util::rt::TokioIo::new(tcp);
                            let _ = http.serve_connection(io, service).await;
                        }
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        }));
    }
}

async fn answer(
    request: Request<hyper::body::Incoming>,
    behaviour: Arc<Behaviour>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let delay = *behaviour.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let expected = format!("Bearer {}", behaviour.token.lock().unwrap());
    let given = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let (status, body) = if request.uri().path() != "/healthz" {
        (StatusCode::NOT_FOUND, "not found")
    } else if given == Some(expected.as_str()) {
        behaviour.accepted.fetch_add(1, Ordering::Relaxed);
        (StatusCode::OK, "ok")
    } else {
        behaviour.refused.fetch_add(1, Ordering::Relaxed);
        (StatusCode::UNAUTHORIZED, "unauthorized")
    };
    Ok(Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap())
}
