//! Lists: selectors, `limit`/`continue` paging, and the `Table` form kubectl asks for.

use crate::App;
use crate::http::{Body, Call, Query, json_response};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Response;
use serde_json::{Value, json};

/// `labelSelector` and `fieldSelector` of a request.
#[derive(Default)]
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub fn from_query(q: &Query) -> Result<Self, ApiError> {
        let bad = |e: crate::selectors::SelectorError| ApiError::bad_request(e.to_string());
        Ok(Self {
            labels: LabelSelector::parse(q.get("labelSelector").unwrap_or_default())
                .map_err(bad)?,
            fields: FieldSelector::parse(q.get("fieldSelector").unwrap_or_default())
                .map_err(bad)?,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches_object(obj)
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields == FieldSelector::default()
    }
}

/// List items carry no `kind`/`apiVersion`, as the real server encodes them.
pub fn strip_type(mut obj: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    obj
}

/// The continue token: where the next page starts, in the real server's encoding.
fn encode_continue(rv: u64, start: &str) -> String {
    URL_SAFE_NO_PAD.encode(
        json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{start}\u{0}")}).to_string(),
    )
}

fn decode_continue(token: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok(v["start"]
        .as_str()
        .ok_or_else(bad)?
        .trim_end_matches('\u{0}')
        .to_string())
}

fn wants_table(call: &Call) -> bool {
    call.accept.contains("as=Table")
}

pub fn serve(app: &App, call: &Call) -> Result<Response<Body>, ApiError> {
    let t = &call.target;
    let filter = Filter::from_query(&call.query)?;
    let limit: usize = match call.query.get("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?,
        None => 0,
    };
    let start = call
        .query
        .get("continue")
        .map(decode_continue)
        .transpose()?;
    let s = app.store.lock();
    let rv = s.current_rv();
    // Paging walks `namespace/name` order, which is the store's key order within a resource.
    let sort_key = |k: &crate::store::Key| format!("{}/{}", k.namespace, k.name);
    let candidates: Vec<(&crate::store::Key, &Value)> = s
        .list(&t.rt.group, &t.rt.plural, t.namespace.as_deref())
        .into_iter()
        .filter(|(k, _)| start.as_ref().is_none_or(|st| sort_key(k) > *st))
        .collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    let mut page: Vec<Value> = Vec::new();
    let mut scanned = 0;
    for (_, o) in &candidates {
        if limit > 0 && page.len() == limit {
            break;
        }
        scanned += 1;
        if filter.matches(o) {
            page.push((*o).clone());
        }
    }
    // Like the real server, a page ends where the scan stopped: a token whenever objects remain,
    // whether or not they match, and a count only when there is no selector.
    let remaining = candidates.len() - scanned;
    if limit > 0 && remaining > 0 {
        let last = sort_key(candidates[scanned - 1].0);
        meta["continue"] = json!(encode_continue(rv, &last));
        if filter.is_empty() {
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    drop(s);
    let items = page;
    if wants_table(call) {
        return Ok(json_response(
            200,
            &crate::printers::table(&t.rt, &items, meta),
        ));
    }
    let items: Vec<Value> = items.into_iter().map(strip_type).collect();
    Ok(json_response(
        200,
        &json!({"kind": format!("{}List", t.rt.kind), "apiVersion": t.rt.api_version(), "metadata": meta, "items": items}),
    ))
}

/// One object, or a one-row Table when kubectl asks for one.
pub fn render_one(call: &Call, obj: Value) -> Response<Body> {
    if wants_table(call) {
        let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
        return json_response(200, &crate::printers::table(&call.target.rt, &[obj], meta));
    }
    json_response(200, &obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_token_round_trips_and_matches_the_real_encoding() {
        assert_eq!(
            decode_continue(&encode_continue(68, "ns/c")).unwrap(),
            "ns/c"
        );
        // A token captured from a real kube-apiserver.
        assert_eq!(
            decode_continue("eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NjgsInN0YXJ0IjoiL2NcdTAwMDAifQ")
                .unwrap(),
            "/c"
        );
    }
}
