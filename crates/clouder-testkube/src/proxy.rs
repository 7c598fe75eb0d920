//! What the API server forwards to a node's kubelet: `pods/NAME/log` (to `/containerLogs/…`) and
//! `nodes/NAME/proxy/PATH`, at the InternalIP address and `daemonEndpoints` port the Node reports,
//! with the kubelet client certificate (`--kubelet-client-certificate`). As kubeadm's API server
//! (no `--kubelet-certificate-authority`), it does not verify the kubelet's serving certificate.

use crate::App;
use crate::http::{Body, Query, bytes_response};
use crate::objects;
use crate::status::ApiError;
use bytes::Bytes;
use http::{Method, Response};
use serde_json::Value;

/// A request this module forwards.
pub enum Forward {
    /// `/api/v1/namespaces/NS/pods/NAME/log`
    Log { namespace: String, pod: String },
    /// `/api/v1/nodes/NAME/proxy/REST`
    Node { node: String, rest: String },
}

/// Pure: whether `path` is one the API server forwards to a kubelet.
pub fn forwarded(path: &str) -> Option<Forward> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", pod, "log"] => Some(Forward::Log {
            namespace: ns.to_string(),
            pod: pod.to_string(),
        }),
        ["api", "v1", "nodes", node, "proxy", rest @ ..] => Some(Forward::Node {
            node: node.to_string(),
            rest: rest.join("/"),
        }),
        _ => None,
    }
}

/// The client the API server talks to kubelets with.
pub fn kubelet_client(identity: Option<&(String, String)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .danger_accept_invalid_certs(true);
    if let Some((cert, key)) = identity {
        match reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes()) {
            Ok(id) => builder = builder.identity(id),
            Err(e) => tracing::warn!("the kubelet client certificate is not usable: {e}"),
        }
    }
    builder.build().expect("a TLS client builds")
}

fn get(app: &App, rt_plural: &str, namespace: Option<&str>, name: &str) -> Result<Value, ApiError> {
    let types = app.types();
    let rt = types
        .iter()
        .find(|t| t.group.is_empty() && t.plural == rt_plural)
        .expect("built in");
    app.store
        .lock()
        .get(&objects::key(rt, namespace, name))
        .cloned()
        .ok_or_else(|| ApiError::not_found("", rt_plural, name))
}

/// The address types kubeadm's API server tries, in order (its
/// `--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname`).
const PREFERRED: [&str; 3] = ["InternalIP", "ExternalIP", "Hostname"];

/// `https://ADDRESS:PORT` of the node's kubelet.
fn kubelet_of(app: &App, node: &str) -> Result<String, ApiError> {
    let node = get(app, "nodes", None, node)?;
    let addresses = node["status"]["addresses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ip = PREFERRED
        .iter()
        .find_map(|kind| {
            addresses
                .iter()
                .find(|a| a["type"] == *kind)
                .and_then(|a| a["address"].as_str())
        })
        .ok_or_else(|| {
            ApiError::bad_request("the node reports no address to reach its kubelet at")
        })?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .unwrap_or(10250);
    Ok(format!("https://{ip}:{port}"))
}

/// Pure: the container whose log is asked for, or the API server's refusal.
fn log_target(pod: &Value, container: Option<&str>) -> Result<(String, String), ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match container {
        Some(c) if names.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if names.len() == 1 => names[0].to_string(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    let node = pod["spec"]["nodeName"].as_str().ok_or_else(|| {
        ApiError::bad_request(format!("pod {name} does not have a host assigned"))
    })?;
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == container.as_str());
    let waiting = status.map_or(Some("ContainerCreating"), |s| {
        s["state"]["waiting"]
            .as_object()
            .map(|w| w.get("reason").and_then(Value::as_str).unwrap_or_default())
    });
    if let Some(reason) = waiting {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    Ok((container, node.to_string()))
}

/// Forwards the request and answers with the kubelet's status, type and body.
pub async fn serve(
    app: &App,
    forward: Forward,
    method: Method,
    query: Option<&str>,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    let (node, path, query) = match forward {
        Forward::Log { namespace, pod } => {
            if method != Method::GET {
                return Err(ApiError::method_not_allowed(method.as_str()));
            }
            let object = get(app, "pods", Some(&namespace), &pod)?;
            let q = Query::parse(query);
            let (container, node) = log_target(&object, q.get("container"))?;
            let mut kubelet_query = Vec::new();
            for key in ["tailLines", "timestamps", "sinceSeconds", "limitBytes"] {
                if let Some(v) = q.get(key) {
                    kubelet_query.push(format!("{key}={v}"));
                }
            }
            (
                node,
                format!("/containerLogs/{namespace}/{pod}/{container}"),
                kubelet_query.join("&"),
            )
        }
        Forward::Node { node, rest } => (node, format!("/{rest}"), query.unwrap_or("").to_string()),
    };
    let mut url = format!("{}{path}", kubelet_of(app, &node)?);
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    let response = app
        .kubelet_client
        .request(method, &url)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            ApiError::new(
                503,
                "ServiceUnavailable",
                format!(
                    "error trying to reach service: {:#}",
                    anyhow::Error::from(e)
                ),
            )
        })?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/plain")
        .to_string();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ApiError::internal(format!("{:#}", anyhow::Error::from(e))))?;
    Ok(bytes_response(status, &content_type, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_requests_name_a_started_container_on_a_node() {
        let pod = |state: Value| {
            json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
                "status": {"containerStatuses": [{"name": "a", "state": state}]}})
        };
        let running = pod(json!({"running": {}}));
        assert_eq!(
            log_target(&running, Some("a")).unwrap(),
            ("a".into(), "n1".into())
        );
        let e = log_target(&running, None).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(
            log_target(&running, Some("c")).unwrap_err().message,
            "container c is not valid for pod p"
        );
        assert_eq!(
            log_target(&running, Some("b")).unwrap_err().message,
            "container \"b\" in pod \"p\" is waiting to start: ContainerCreating"
        );
        let pulling = pod(json!({"waiting": {"reason": "ErrImagePull"}}));
        assert_eq!(
            log_target(&pulling, Some("a")).unwrap_err().message,
            "container \"a\" in pod \"p\" is waiting to start: ErrImagePull"
        );
        assert!(
            matches!(forwarded("/api/v1/nodes/n1/proxy/checkpoint/ns/p/c"), Some(Forward::Node { rest, .. }) if rest == "checkpoint/ns/p/c")
        );
        assert!(forwarded("/api/v1/namespaces/ns/pods/p").is_none());
    }
}
