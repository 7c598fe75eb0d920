//! Watches: newline-delimited JSON events from a resourceVersion, with bookmarks, selectors,
//! timeouts, and 410 Expired for history that is gone or a watcher that fell behind.

use crate::App;
use crate::http::{Body, Call};
use crate::list::Filter;
use crate::status::ApiError;
use crate::store::Event;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(1);
/// The longest a watch runs when the client does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).expect("JSON values serialize");
    b.push(b'\n');
    Bytes::from(b)
}

fn expired(message: String) -> Value {
    json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": "Expired", "code": 410}})
}

/// What a watcher is interested in.
struct Scope {
    group: String,
    resource: String,
    namespace: Option<String>,
    filter: Filter,
}

impl Scope {
    /// The line this watcher sends for an event, if any: objects entering or leaving a selection
    /// are ADDED/DELETED.
    fn view(&self, ev: &Event) -> Option<Bytes> {
        if ev.key.group != self.group || ev.key.resource != self.resource {
            return None;
        }
        if self
            .namespace
            .as_ref()
            .is_some_and(|n| *n != ev.key.namespace)
        {
            return None;
        }
        let now = self.filter.matches(&ev.object);
        let before = ev.old.as_ref().map(|o| self.filter.matches(o));
        let kind = match (ev.kind, before, now) {
            ("MODIFIED", Some(false), true) => "ADDED",
            ("MODIFIED", Some(true), false) => "DELETED",
            (_, _, true) => ev.kind,
            _ => return None,
        };
        Some(ev.line(kind))
    }
}

pub fn serve(app: &App, call: &Call) -> Result<Response<Body>, ApiError> {
    let t = &call.target;
    let scope = Scope {
        group: t.rt.group.clone(),
        resource: t.rt.plural.clone(),
        namespace: t.namespace.clone(),
        filter: Filter::from_query(&call.query)?,
    };
    let timeout = match call.query.get("timeoutSeconds") {
        Some(s) => Duration::from_secs(
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {s}")))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    let bookmarks = call.query.flag("allowWatchBookmarks");
    let send_initial = call.query.flag("sendInitialEvents");
    let requested = match call.query.get("resourceVersion") {
        None | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion: {rv}")))?,
        ),
    };
    // Small: the backlog belongs in the broadcast channel, where falling behind is detected.
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let kind = t.rt.kind.clone();
    let api_version = t.rt.api_version();
    let setup = {
        let s = app.store.lock();
        let from = requested
            .filter(|_| !send_initial)
            .unwrap_or_else(|| s.current_rv());
        // Without a resourceVersion the watch starts with the current state, like the real server.
        let initial: Vec<Value> = if requested.is_none() || send_initial {
            s.list(&scope.group, &scope.resource, scope.namespace.as_deref())
                .into_iter()
                .filter(|(_, o)| scope.filter.matches(o))
                .map(|(_, o)| json!({"type": "ADDED", "object": o}))
                .collect()
        } else {
            Vec::new()
        };
        s.subscribe(from)
            .map(|sub| (initial, sub, from))
            .map_err(|oldest| {
                expired(format!(
                    "too old resource version: {} ({})",
                    requested.unwrap_or_default(),
                    oldest.saturating_sub(1)
                ))
            })
    };
    tokio::spawn(async move {
        let (initial, sub, mut last_rv) = match setup {
            Ok(x) => x,
            Err(e) => {
                let _ = tx.send(line(&e)).await;
                return;
            }
        };
        let bookmark = |rv: u64, initial_end: bool| {
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if initial_end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            line(
                &json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": meta}}),
            )
        };
        for ev in initial {
            if tx.send(line(&ev)).await.is_err() {
                return;
            }
        }
        if send_initial && bookmarks && tx.send(bookmark(last_rv, true)).await.is_err() {
            return;
        }
        for ev in &sub.replay {
            last_rv = ev.rv;
            if let Some(v) = scope.view(ev)
                && tx.send(v).await.is_err()
            {
                return;
            }
        }
        run_live(
            sub.live,
            &scope,
            &tx,
            timeout,
            bookmarks.then_some(&bookmark),
            last_rv,
        )
        .await;
    });
    let body = StreamBody::new(
        ReceiverStream::new(rx).map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b))),
    );
    let mut r = Response::new(BodyExt::boxed(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

async fn run_live(
    mut live: broadcast::Receiver<Arc<Event>>,
    scope: &Scope,
    tx: &mpsc::Sender<Bytes>,
    timeout: Duration,
    bookmark: Option<&(dyn Fn(u64, bool) -> Bytes + Sync)>,
    mut last_rv: u64,
) {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(BOOKMARK_EVERY);
    tick.tick().await;
    loop {
        let out = tokio::select! {
            _ = &mut deadline => return,
            _ = tx.closed() => return,
            _ = tick.tick(), if bookmark.is_some() => bookmark.map(|b| b(last_rv, false)),
            r = live.recv() => match r {
                Ok(ev) => {
                    last_rv = ev.rv;
                    scope.view(&ev)
                }
                // A watcher that fell behind starts over, as after a compaction.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx.send(line(&expired(format!("too old resource version: {last_rv}")))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if let Some(b) = out
            && tx.send(b).await.is_err()
        {
            return;
        }
    }
}
