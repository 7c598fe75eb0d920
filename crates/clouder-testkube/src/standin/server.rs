//! The stand-in kubelet's API on its port (10250): HTTPS whose clients must present a
//! certificate signed by the `clientCAFile` CA (the API server's `apiserver-kubelet-client`),
//! serving what the kubelet's server.go serves for checkpoint/restore and logs:
//! `POST /checkpoint/{ns}/{pod}/{container}?timeout=S` (when the ContainerCheckpoint gate is on)
//! and `GET /containerLogs/{ns}/{pod}/{container}?tailLines=N&timestamps=true`.

use super::runtime::Runtime;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Method, Request, Response};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

type Body = BoxBody<Bytes, Infallible>;

/// Where the kubelet has the runtime write checkpoint archives (the kubelet's root dir).
pub const CHECKPOINTS: &str = "/var/lib/kubelet/checkpoints";

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .expect("a valid response")
}

/// go-restful's answer to an unknown route, and the kubelet's errors (plain text).
fn text(status: u16, body: &str) -> Response<Body> {
    reply(status, "text/plain; charset=utf-8", body.to_string())
}

/// The TLS config: a serving certificate for the node's names (self-signed, as the kubelet makes
/// its own when none is given) and client certificates verified against `client_ca_pem`.
pub fn tls_config(
    client_ca_pem: &str,
    names: Vec<String>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = rcgen::CertificateParams::new(names)
        .and_then(|p| p.self_signed(&key))
        .map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(|e| format!("clientCAFile: {e}"))?)
            .map_err(|e| format!("clientCAFile: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| e.to_string())?;
    let key =
        PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).map_err(|e| e.to_string())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert.der().clone()], key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves the kubelet API until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    runtime: Arc<Runtime>,
    checkpoint_gate: bool,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, runtime) = (acceptor.clone(), runtime.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let runtime = runtime.clone();
                async move { Ok::<_, Infallible>(answer(req, &runtime, checkpoint_gate).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    runtime: &Runtime,
    checkpoint_gate: bool,
) -> Response<Body> {
    let query = crate::http::Query::parse(req.uri().query());
    let path: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    match (req.method(), path.as_slice()) {
        (&Method::GET, ["healthz"]) => text(200, "ok"),
        (&Method::POST, ["checkpoint", ns, pod, container]) if checkpoint_gate => {
            checkpoint(runtime, ns, pod, container, query.get("timeout")).await
        }
        (&Method::GET, ["containerLogs", ns, pod, container]) => {
            logs(runtime, ns, pod, container, &query)
        }
        _ => text(404, "404 page not found"),
    }
}

/// The archive's path as the kubelet names it: `checkpoint-POD_NS-CONTAINER-TIME.tar`.
pub fn archive_path(namespace: &str, pod: &str, container: &str, now: jiff::Timestamp) -> String {
    format!(
        "{CHECKPOINTS}/checkpoint-{pod}_{namespace}-{container}-{}.tar",
        now.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
}

async fn checkpoint(
    runtime: &Runtime,
    ns: &str,
    pod: &str,
    container: &str,
    timeout: Option<&str>,
) -> Response<Body> {
    let Some(sandbox) = runtime.pod(ns, pod) else {
        return text(404, "pod does not exist");
    };
    let Some(id) = sandbox.containers.get(container) else {
        return text(404, &format!("container {container} does not exist"));
    };
    let timeout = match timeout.map(str::parse::<u64>) {
        None => Duration::ZERO,
        Some(Ok(s)) => Duration::from_secs(s),
        Some(Err(_)) => return text(404, "cannot parse value of timeout parameter"),
    };
    let location = archive_path(ns, pod, container, jiff::Timestamp::now());
    if let Err(e) = std::fs::create_dir_all(runtime.host.path(CHECKPOINTS)) {
        return text(
            500,
            &format!("checkpointing of {ns}/{pod}/{container} failed ({CHECKPOINTS}: {e})"),
        );
    }
    match runtime.cri.checkpoint(id, &location, timeout).await {
        Ok(()) => reply(
            200,
            "application/json",
            format!("{{\"items\":[\"{location}\"]}}"),
        ),
        Err(e) => text(
            500,
            &format!("checkpointing of {ns}/{pod}/{container} failed ({e})"),
        ),
    }
}

/// Pure: a CRI log (`TIME STREAM TAG MESSAGE` lines, tag P for a partial line) as the kubelet
/// serves it: the messages, optionally after their timestamps, the last `tail` lines only.
pub fn render_log(cri_log: &str, timestamps: bool, tail: Option<usize>) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut partial = String::new();
    for line in cri_log.lines() {
        let mut fields = line.splitn(4, ' ');
        let (Some(time), Some(_stream), Some(tag)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let message = fields.next().unwrap_or_default();
        if partial.is_empty() && timestamps {
            partial = format!("{time} ");
        }
        partial.push_str(message);
        if tag != "P" {
            lines.push(std::mem::take(&mut partial) + "\n");
        }
    }
    let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
    lines[skip..].concat()
}

fn logs(
    runtime: &Runtime,
    ns: &str,
    pod: &str,
    container: &str,
    query: &crate::http::Query,
) -> Response<Body> {
    let Some(sandbox) = runtime.pod(ns, pod) else {
        return text(404, &format!("pod {ns}/{pod} does not exist"));
    };
    if !sandbox.containers.contains_key(container) {
        return text(
            404,
            &format!("container {container} is not found in pod {ns}/{pod}"),
        );
    }
    let cri_log = match runtime.host.read(&sandbox.log_path(container)) {
        Ok(log) => log,
        Err(e) => return text(500, &e),
    };
    let tail = query.get("tailLines").and_then(|n| n.parse().ok());
    reply(
        200,
        "text/plain",
        render_log(&cri_log, query.flag("timestamps"), tail),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_named_as_the_kubelet_names_them() {
        let t: jiff::Timestamp = "2026-11-25T18:30:00Z".parse().unwrap();
        assert_eq!(
            archive_path("default", "web", "app", t),
            "/var/lib/kubelet/checkpoints/checkpoint-web_default-app-2026-11-25T18:30:00Z.tar"
        );
    }

    #[test]
    fn cri_logs_render_as_the_kubelet_serves_them() {
        let log = "2026-11-25T18:00:00.1Z stdout F 1\n2026-11-25T18:00:00.2Z stdout P par\n2026-11-25T18:00:00.3Z stdout F tial\n2026-11-25T18:00:00.4Z stderr F 3\n";
        assert_eq!(render_log(log, false, None), "1\npartial\n3\n");
        assert_eq!(render_log(log, false, Some(2)), "partial\n3\n");
        assert_eq!(render_log(log, true, Some(1)), "2026-11-25T18:00:00.4Z 3\n");
        assert_eq!(render_log("", false, Some(3)), "");
    }
}
