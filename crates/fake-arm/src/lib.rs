//! A small, in-memory Azure Resource Manager: the resource types clouder creates, served the
//! way ARM serves them, so the Azure provider is tested against behaviour rather than mocks.
//!
//! - `PUT` creates (201) or updates (200); long-running types answer with
//!   `Azure-AsyncOperation` and `provisioningState` Updating/Creating until the operation is
//!   polled to `Succeeded` (or its time is up). `GET`, `DELETE` (202 + polling, 204 when absent)
//!   and `LIST` by resource group; `api-version` is required and checked per type.
//! - Referential rules as the real service has them: references must exist
//!   (`InvalidResourceReference`), a public IP or NIC serves one owner, a resource in use cannot
//!   be deleted (`InUseSubnetCannotBeDeleted`, `PublicIPAddressCannotBeDeleted`, `NicInUse`, ...),
//!   a missing resource group is `ResourceGroupNotFound`; errors use ARM's `{"error":{code,message}}`.
//! - Key Vault's secrets data plane at the server's root (`keyvault`), for secret sources.
//! - Fault knobs ([`Config`], also `PUT /fake/config`): 429 with `Retry-After`, 500s, 409
//!   `AnotherOperationInProgress`, and a fixed latency per request.

mod keyvault;
mod kinds;
mod store;

pub use kinds::{KINDS, Kind};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::Store;

/// Timing and fault knobs; every field defaults to "behave, quickly".
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Added to every request, as a cloud's round trip.
    pub latency_ms: u64,
    /// Every K-th request is refused with 429 and `Retry-After: retry_after_s`.
    pub throttle_every: u64,
    pub retry_after_s: u64,
    /// Every K-th request fails with 500.
    pub fail_every: u64,
    /// Every K-th write (PUT/DELETE) is refused with 409 `AnotherOperationInProgress`.
    pub conflict_every: u64,
    /// A long-running operation succeeds at its `polls`-th poll or after `op_ms`, whichever is first.
    pub polls: u32,
    pub op_ms: u64,
    /// The `Retry-After` on operation status answers.
    pub op_retry_after_s: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            latency_ms: 0,
            throttle_every: 0,
            retry_after_s: 1,
            fail_every: 0,
            conflict_every: 0,
            polls: 2,
            op_ms: 200,
            op_retry_after_s: 0,
        }
    }
}

/// What the server has seen, for tests.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub writes: u64,
    pub throttled: u64,
    pub failed: u64,
    pub conflicts: u64,
}

struct App {
    config: Mutex<Config>,
    store: Mutex<Store>,
    vault: Mutex<keyvault::Vault>,
}

/// A running server; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    app: Arc<App>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `127.0.0.1:port` (0: any free port) and serves in the current runtime.
    pub async fn start(port: u16, config: Config) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let app = Arc::new(App {
            config: Mutex::new(config),
            store: Mutex::new(Store::default()),
            vault: Mutex::new(keyvault::Vault::default()),
        });
        let router = router(app.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Server { addr, app, task })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_config(&self, config: Config) {
        *lock(&self.app.config) = config;
    }

    pub fn stats(&self) -> Stats {
        lock(&self.app.store).stats.clone()
    }

    /// Every resource's id, lower-cased, sorted (resource groups included).
    pub fn ids(&self) -> Vec<String> {
        lock(&self.app.store).ids()
    }

    /// The resource as a GET would show it.
    pub fn resource(&self, id: &str) -> Option<Value> {
        lock(&self.app.store).render_id(id)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/fake/config",
            get(|State(app): State<Arc<App>>| async move {
                axum::Json(lock(&app.config).clone())
            })
            .put(
                |State(app): State<Arc<App>>, axum::Json(c): axum::Json<Config>| async move {
                    *lock(&app.config) = c;
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/fake/stats",
            get(|State(app): State<Arc<App>>| async move {
                axum::Json(lock(&app.store).stats.clone())
            }),
        )
        .route(
            "/secrets/{name}",
            get(keyvault::latest).put(keyvault::set),
        )
        .route("/secrets/{name}/{version}", get(keyvault::version))
        .fallback(handle)
        .with_state(app)
}

/// ARM's error body.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "error": { "code": code, "message": message.into(), "details": [] } });
    (status, axum::Json(body)).into_response()
}

async fn handle(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let config = lock(&app.config).clone();
    if config.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(config.latency_ms)).await;
    }
    let base = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_default();
    let mut store = lock(&app.store);
    store.stats.requests += 1;
    let n = store.stats.requests;
    if config.throttle_every > 0 && n.is_multiple_of(config.throttle_every) {
        store.stats.throttled += 1;
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "SubscriptionRequestsThrottled",
            format!(
                "Number of requests for subscription exceeded. Please try again after '{}' seconds.",
                config.retry_after_s
            ),
        );
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(config.retry_after_s));
        return r;
    }
    if config.fail_every > 0 && n.is_multiple_of(config.fail_every) {
        store.stats.failed += 1;
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "Encountered internal server error. Diagnostic information: injected by fake-arm.",
        );
    }
    let write = method == Method::PUT || method == Method::DELETE;
    if write {
        store.stats.writes += 1;
        if config.conflict_every > 0 && store.stats.writes.is_multiple_of(config.conflict_every) {
            store.stats.conflicts += 1;
            return error(
                StatusCode::CONFLICT,
                "AnotherOperationInProgress",
                "Another operation on this or dependent resource is in progress. Retry later.",
            );
        }
    }
    let query = uri.query().unwrap_or_default();
    let api_version = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("api-version="))
        .map(str::to_string);
    let request = store::Request {
        method,
        path: uri.path().to_string(),
        api_version,
        body: &body,
        base,
        config: &config,
    };
    store.handle(request)
}
