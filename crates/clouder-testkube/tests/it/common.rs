//! Helpers shared by the integration tests.

use clouder_testkube::TestKube;
use http_body_util::BodyExt;
use kube::Client;
use serde_json::Value;

pub async fn start() -> (TestKube, Client) {
    let kube = TestKube::start().await.expect("testkube starts");
    let client = kube.client().await.expect("admin client");
    (kube, client)
}

/// The `Status` of a failed call; panics when the call succeeded or failed otherwise.
pub fn status_of<T: std::fmt::Debug>(r: kube::Result<T>) -> Box<kube::core::Status> {
    match r {
        Err(kube::Error::Api(s)) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A raw request through the admin client: the status code and the JSON body.
pub async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = http::Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let body = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let resp = client
        .send(req.body(kube::client::Body::from(body)).unwrap())
        .await
        .expect("request sent");
    let code = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .expect("body read")
        .to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (code, v)
}
