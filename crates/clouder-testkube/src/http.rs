//! Request plumbing: bodies, query strings, authentication, authorization and routing.

use crate::resources::ResourceType;
use crate::status::ApiError;
use crate::{App, discovery, verbs};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use serde_json::Value;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

pub type Body = BoxBody<Bytes, Infallible>;

pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    bytes_response(
        code,
        "application/json",
        Bytes::from(serde_json::to_vec(v).expect("JSON values serialize")),
    )
}

pub fn bytes_response(code: u16, content_type: &str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("static content types"),
    );
    r
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

/// Query parameters, percent-decoded; later repeats win.
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        let mut m = HashMap::new();
        for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.insert(decode(k), decode(v));
        }
        Self(m)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("1" | "true" | "True"))
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(x) => {
                        out.push(x);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Who is calling: the admin may do anything, the reader only get, list and watch, a bootstrap
/// token (by its id) what [`crate::bootstrap::allowed`] lets it; no token at all, only what
/// kubeadm's RBAC lets `system:anonymous` do: read the public cluster-info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    Admin,
    Reader,
    Bootstrap(String),
    Anonymous,
}

impl User {
    pub fn name(&self) -> String {
        match self {
            User::Admin => "admin".into(),
            User::Reader => "reader".into(),
            User::Bootstrap(id) => format!("system:bootstrap:{id}"),
            User::Anonymous => "system:anonymous".into(),
        }
    }

    fn may(&self, verb: &str, target: &Target) -> bool {
        match self {
            User::Admin => true,
            User::Reader => matches!(verb, "get" | "list" | "watch"),
            User::Bootstrap(_) => crate::bootstrap::allowed(verb, target),
            User::Anonymous => crate::bootstrap::public(verb, target),
        }
    }
}

/// A parsed resource URL.
pub struct Target {
    pub rt: ResourceType,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Everything a verb handler needs from the request.
pub struct Call {
    pub method: Method,
    pub target: Target,
    pub query: Query,
    pub content_type: String,
    pub accept: String,
    pub user_agent: String,
    pub body: Bytes,
}

impl Call {
    /// The field manager for writes: `fieldManager`, else the user agent's program name.
    pub fn manager(&self) -> String {
        if let Some(m) = self.query.get("fieldManager") {
            return m.to_string();
        }
        let ua = self.user_agent.split('/').next().unwrap_or_default();
        if ua.is_empty() {
            "unknown".into()
        } else {
            ua.to_string()
        }
    }
}

pub async fn handle(
    app: Arc<App>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let credentials = req.headers().get(header::AUTHORIZATION);
    let user = match credentials {
        // Without credentials, only the one public object (a wrong token is 401 all the same).
        None if req.method() == Method::GET
            && req.uri().path() == crate::bootstrap::CLUSTER_INFO_PATH =>
        {
            Some(User::Anonymous)
        }
        _ => credentials
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .and_then(|t| app.user_for(t.trim())),
    };
    let Some(user) = user else {
        return Ok(error_response(&ApiError::unauthorized()));
    };
    let path = req.uri().path().trim_end_matches('/').to_string();
    if let Some(forward) = crate::proxy::forwarded(&path) {
        return Ok(forward_to_kubelet(&app, &user, forward, req).await);
    }
    let query = Query::parse(req.uri().query());
    if let Some(r) = discovery::serve(&app, &path, &query) {
        return Ok(r);
    }
    let target = match route(&app, &path) {
        Ok(t) => t,
        Err(e) => return Ok(error_response(&e)),
    };
    let header = |n: header::HeaderName| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (content_type, accept, user_agent) = (
        header(header::CONTENT_TYPE),
        header(header::ACCEPT),
        header(header::USER_AGENT),
    );
    let method = req.method().clone();
    let verb = verb_of(&method, &target, &query);
    if !user.may(verb, &target) {
        return Ok(error_response(&forbidden(&user, verb, &target)));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(error_response(&ApiError::bad_request(format!(
                "reading the request body: {e}"
            ))));
        }
    };
    let call = Call {
        method,
        target,
        query,
        content_type,
        accept,
        user_agent,
        body,
    };
    let method = call.method.clone();
    let response = verbs::dispatch(&app, call).unwrap_or_else(|e| error_response(&e));
    tracing::debug!(%method, %path, status = response.status().as_u16(), user = user.name(), "request");
    Ok(response)
}

/// Logs for admins and readers, the node proxy for admins only (as `nodes/proxy` is granted).
async fn forward_to_kubelet(
    app: &App,
    user: &User,
    forward: crate::proxy::Forward,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let allowed = match forward {
        crate::proxy::Forward::Log { .. } => matches!(user, User::Admin | User::Reader),
        crate::proxy::Forward::Node { .. } => *user == User::Admin,
    };
    if !allowed {
        return error_response(&ApiError::new(
            403,
            "Forbidden",
            format!(
                "User \"{}\" cannot reach the kubelet through the API server",
                user.name()
            ),
        ));
    }
    let method = req.method().clone();
    let query = req.uri().query().map(String::from);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return error_response(&ApiError::bad_request(format!(
                "reading the request body: {e}"
            )));
        }
    };
    crate::proxy::serve(app, forward, method, query.as_deref(), body)
        .await
        .unwrap_or_else(|e| error_response(&e))
}

fn verb_of(method: &Method, t: &Target, q: &Query) -> &'static str {
    match (method.as_str(), t.name.is_some()) {
        ("GET", _) if q.flag("watch") => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

/// The real server's RBAC refusal, e.g. `configmaps is forbidden: User "reader" cannot create …`.
fn forbidden(user: &User, verb: &str, t: &Target) -> ApiError {
    let resource = match &t.subresource {
        Some(s) => format!("{}/{s}", t.rt.plural),
        None => t.rt.plural.clone(),
    };
    let scope = match &t.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".into(),
    };
    let mut details = serde_json::json!({"kind": t.rt.plural});
    if let Some(n) = &t.name {
        details["name"] = serde_json::json!(n);
    }
    if !t.rt.group.is_empty() {
        details["group"] = serde_json::json!(t.rt.group);
    }
    let name = t
        .name
        .as_ref()
        .map(|n| format!(" \"{n}\""))
        .unwrap_or_default();
    ApiError::new(
        403,
        "Forbidden",
        format!(
            "{}{name} is forbidden: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
            crate::status::qualified(&t.rt.group, &t.rt.plural),
            user.name(),
            t.rt.group
        ),
    )
    .with_details(details)
}

/// `/api/v1/...` and `/apis/GROUP/VERSION/...` to a resource type, namespace, name and subresource.
fn route(app: &App, path: &str) -> Result<Target, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route()),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, r, ..] if !(rest.len() == 3 && matches!(*r, "status" | "finalize")) => {
            (Some(ns.to_string()), &rest[2..])
        }
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(ApiError::no_route()),
    };
    let types = app.types();
    let rt = types
        .iter()
        .find(|t| t.group == group && t.version == version && t.plural == plural)
        .ok_or_else(ApiError::no_route)?;
    // A namespaced resource without a namespace is only a cross-namespace list or watch.
    if (namespace.is_some() && !rt.namespaced)
        || (rt.namespaced && namespace.is_none() && name.is_some())
    {
        return Err(ApiError::no_route());
    }
    let known_sub = match sub.as_deref() {
        None => true,
        Some("status") => rt.status,
        Some("scale") => rt.scale,
        Some("eviction") => rt.eviction,
        Some(_) => false,
    };
    if !known_sub {
        return Err(ApiError::no_route());
    }
    Ok(Target {
        rt: rt.clone(),
        namespace,
        name,
        subresource: sub,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some("labelSelector=app%3Da%2Ctier+in+(x)&watch=1&limit="));
        assert_eq!(q.get("labelSelector"), Some("app=a,tier in (x)"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("limit"), None);
    }
}
