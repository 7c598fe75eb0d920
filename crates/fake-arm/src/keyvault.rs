//! Key Vault's secrets data plane, shaped like the published REST API (api-version 7.4):
//! `PUT {vault}/secrets/{name}` with `{"value": …}` adds a version, `GET {vault}/secrets/{name}`
//! reads the newest, `GET {vault}/secrets/{name}/{version}` a given one; answers are
//! `{value, id, attributes}` with `id = {vault}/secrets/{name}/{version}`. One vault per server,
//! at its root. A request without a bearer token is refused (401), as the service does.

use super::{App, lock};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

const API_VERSION: &str = "7.4";

#[derive(Default)]
pub(crate) struct Vault {
    /// Versions of each secret, oldest first: (version, value, created).
    secrets: BTreeMap<String, Vec<(String, String, i64)>>,
}

#[derive(Deserialize)]
pub(crate) struct ApiVersion {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct SetBody {
    value: String,
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// Token, api-version and name checks shared by every call.
fn check(headers: &HeaderMap, q: &ApiVersion, name: &str) -> Result<String, Box<Response>> {
    let bearer = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.starts_with("Bearer ") && h.len() > 7);
    if !bearer {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.".into(),
        )));
    }
    if q.api_version.as_deref() != Some(API_VERSION) {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            format!(
                "The specified version ({}) is not recognized. Consider using the latest supported version ({API_VERSION}).",
                q.api_version.as_deref().unwrap_or("")
            ),
        )));
    }
    if name.is_empty()
        || name.len() > 127
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            format!("The request URI contains an invalid name: {name}"),
        )));
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    Ok(format!("http://{host}"))
}

fn bundle(vault: &str, name: &str, (version, value, created): &(String, String, i64)) -> Value {
    json!({
        "value": value,
        "id": format!("{vault}/secrets/{name}/{version}"),
        "attributes": {
            "enabled": true,
            "created": created,
            "updated": created,
            "recoveryLevel": "Recoverable+Purgeable",
        },
    })
}

fn not_found(name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "SecretNotFound",
        format!(
            "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
    )
}

pub(crate) async fn set(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(q): Query<ApiVersion>,
    headers: HeaderMap,
    Json(body): Json<SetBody>,
) -> Response {
    let vault = match check(&headers, &q, &name) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let version = uuid::Uuid::new_v4().simple().to_string();
    let mut store = lock(&app.vault);
    let versions = store.secrets.entry(name.clone()).or_default();
    versions.push((version, body.value, created));
    Json(bundle(&vault, &name, versions.last().expect("just pushed"))).into_response()
}

pub(crate) async fn latest(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(q): Query<ApiVersion>,
    headers: HeaderMap,
) -> Response {
    read(&app, &headers, &q, &name, None)
}

pub(crate) async fn version(
    State(app): State<Arc<App>>,
    Path((name, version)): Path<(String, String)>,
    Query(q): Query<ApiVersion>,
    headers: HeaderMap,
) -> Response {
    read(&app, &headers, &q, &name, Some(&version))
}

/// The newest version of `name`, or the one asked for.
fn read(
    app: &App,
    headers: &HeaderMap,
    q: &ApiVersion,
    name: &str,
    version: Option<&str>,
) -> Response {
    let vault = match check(headers, q, name) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let store = lock(&app.vault);
    let versions = store.secrets.get(name);
    let found = match version {
        None => versions.and_then(|all| all.last()),
        Some(wanted) => versions.and_then(|all| all.iter().find(|v| v.0 == wanted)),
    };
    match found {
        Some(v) => Json(bundle(&vault, name, v)).into_response(),
        None => not_found(&version.map_or(name.to_string(), |v| format!("{name}/{v}"))),
    }
}
