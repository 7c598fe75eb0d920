//! Discovery as a real server answers it: `/version`, `/api`, `/apis`, group-versions, OpenAPI v3.

use crate::App;
use crate::http::{Body, Query, bytes_response, json_response};
use crate::resources::group_versions;
use bytes::Bytes;
use http::Response;
use serde_json::{Value, json};
use std::io::Read;
use std::sync::OnceLock;

/// OpenAPI v3 documents captured from a real v1.36 server, gzipped, by group-version path.
const OPENAPI: [(&str, &[u8]); 10] = [
    ("api/v1", include_bytes!("../openapi/api_v1.json.gz")),
    (
        "apis/apiextensions.k8s.io/v1",
        include_bytes!("../openapi/apis_apiextensions.k8s.io_v1.json.gz"),
    ),
    (
        "apis/apps/v1",
        include_bytes!("../openapi/apis_apps_v1.json.gz"),
    ),
    (
        "apis/batch/v1",
        include_bytes!("../openapi/apis_batch_v1.json.gz"),
    ),
    (
        "apis/coordination.k8s.io/v1",
        include_bytes!("../openapi/apis_coordination.k8s.io_v1.json.gz"),
    ),
    (
        "apis/networking.k8s.io/v1",
        include_bytes!("../openapi/apis_networking.k8s.io_v1.json.gz"),
    ),
    (
        "apis/policy/v1",
        include_bytes!("../openapi/apis_policy_v1.json.gz"),
    ),
    (
        "apis/rbac.authorization.k8s.io/v1",
        include_bytes!("../openapi/apis_rbac.authorization.k8s.io_v1.json.gz"),
    ),
    (
        "apis/scheduling.k8s.io/v1",
        include_bytes!("../openapi/apis_scheduling.k8s.io_v1.json.gz"),
    ),
    (
        "apis/storage.k8s.io/v1",
        include_bytes!("../openapi/apis_storage.k8s.io_v1.json.gz"),
    ),
];

/// Decompressed once per process, on first use, so that start-up stays fast.
fn openapi_doc(i: usize) -> &'static Bytes {
    static DOCS: [OnceLock<Bytes>; 10] = [const { OnceLock::new() }; 10];
    DOCS[i].get_or_init(|| {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(OPENAPI[i].1)
            .read_to_end(&mut out)
            .expect("embedded OpenAPI documents are valid gzip");
        Bytes::from(out)
    })
}

/// The OpenAPI documents parsed, for the list semantics of strategic merge and apply.
pub fn openapi_documents() -> &'static [Value] {
    static PARSED: OnceLock<Vec<Value>> = OnceLock::new();
    PARSED.get_or_init(|| {
        (0..OPENAPI.len())
            .map(|i| {
                serde_json::from_slice(openapi_doc(i)).expect("embedded OpenAPI documents are JSON")
            })
            .collect()
    })
}

/// A stable content hash for `serverRelativeURL`, which clients use as a cache key.
fn hash(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// The Kubernetes version whose API this server serves.
pub const KUBERNETES_VERSION: &str = "v1.36.0";

pub fn version() -> Value {
    json!({
        "major": "1", "minor": "36", "emulationMajor": "1", "emulationMinor": "36",
        "minCompatibilityMajor": "1", "minCompatibilityMinor": "35",
        "gitVersion": KUBERNETES_VERSION, "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z", "goVersion": "go1.27.3", "compiler": "gc", "platform": "linux/amd64",
    })
}

fn resource_list(app: &App, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = app
        .types()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .flat_map(|t| t.discovery())
        .collect();
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut list = json!({"kind": "APIResourceList", "groupVersion": gv, "resources": resources});
    if !group.is_empty() {
        list["apiVersion"] = json!("v1");
    }
    Some(list)
}

fn api_group(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs[0]})
}

fn groups(app: &App) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (g, v) in group_versions(&app.types())
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
    {
        match out.iter_mut().find(|(og, _)| *og == g) {
            Some((_, vs)) => vs.push(v),
            None => out.push((g, vec![v])),
        }
    }
    out
}

/// The response for a discovery path, or None when the path is not discovery.
pub fn serve(app: &App, path: &str, _query: &Query) -> Option<Response<Body>> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let r = match segs.as_slice() {
        ["version"] => json_response(200, &version()),
        ["healthz"] | ["livez"] | ["readyz"] => {
            bytes_response(200, "text/plain; charset=utf-8", Bytes::from_static(b"ok"))
        }
        ["api"] => json_response(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": app.address}]}),
        ),
        ["api", v] => json_response(200, &resource_list(app, "", v)?),
        ["apis"] => {
            let gs: Vec<Value> = groups(app).iter().map(|(g, vs)| api_group(g, vs)).collect();
            json_response(
                200,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs}),
            )
        }
        ["apis", g] => {
            let (name, vs) = groups(app).into_iter().find(|(name, _)| name == g)?;
            let mut group = api_group(&name, &vs);
            group["kind"] = json!("APIGroup");
            group["apiVersion"] = json!("v1");
            json_response(200, &group)
        }
        ["apis", g, v] => json_response(200, &resource_list(app, g, v)?),
        ["openapi", "v3"] => {
            let paths: serde_json::Map<String, Value> = OPENAPI
                .iter()
                .map(|(p, gz)| {
                    (
                        p.to_string(),
                        json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(gz))}),
                    )
                })
                .collect();
            json_response(200, &json!({"paths": paths}))
        }
        ["openapi", "v3", rest @ ..] => {
            let gv = rest.join("/");
            let i = OPENAPI.iter().position(|(p, _)| *p == gv)?;
            bytes_response(200, "application/json", openapi_doc(i).clone())
        }
        _ => return None,
    };
    Some(r)
}
