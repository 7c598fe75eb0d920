//! The verbs on a resource URL: get, list, create, update, patch, delete, deletecollection.

use crate::apply::{self, Writer};
use crate::http::{Body, Call, json_response};
use crate::list::{self, Filter};
use crate::objects::{self, now};
use crate::status::{self, ApiError};
use crate::{App, patch, protobuf, subresources, watch};
use http::{Method, Response};
use serde_json::{Value, json};

pub fn dispatch(app: &App, call: Call) -> Result<Response<Body>, ApiError> {
    let t = &call.target;
    let sub = t.subresource.as_deref();
    match (&call.method, &t.name, sub) {
        (&Method::GET, None, _) if call.query.flag("watch") => watch::serve(app, &call),
        (&Method::GET, None, _) => list::serve(app, &call),
        (&Method::GET, Some(_), Some("scale")) => subresources::get_scale(app, &call),
        (&Method::GET, Some(name), _) => {
            let s = app.store.lock();
            let obj = s
                .get(&objects::key(&t.rt, t.namespace.as_deref(), name))
                .ok_or_else(|| ApiError::not_found(&t.rt.group, &t.rt.plural, name))?;
            Ok(list::render_one(&call, obj.clone()))
        }
        (&Method::POST, None, None) => create(app, &call),
        (&Method::POST, Some(_), Some("eviction")) => subresources::evict(app, &call),
        (&Method::PUT, Some(_), Some("scale")) | (&Method::PATCH, Some(_), Some("scale")) => {
            subresources::write_scale(app, &call)
        }
        (&Method::PUT, Some(name), _) => update(app, &call, name),
        (&Method::PATCH, Some(name), _) => patch(app, &call, name),
        (&Method::DELETE, Some(name), None) => delete(app, &call, name),
        (&Method::DELETE, None, None) if t.rt.delete_collection() => delete_collection(app, &call),
        (m, _, _) => Err(ApiError::method_not_allowed(m.as_str())),
    }
}

/// The writer for a call: its field manager and whether it is a dry run.
pub fn writer<'a>(
    call: &'a Call,
    manager: &'a str,
    api_version: &'a str,
    now: &'a str,
) -> Writer<'a> {
    Writer {
        manager,
        api_version,
        subresource: call.target.subresource.as_deref(),
        now,
        apply: false,
        dry_run: call.query.get("dryRun") == Some("All"),
    }
}

/// A JSON, YAML or (for the types kubectl's generators send) protobuf object body; others get 415.
pub fn parse_body(call: &Call) -> Result<Value, ApiError> {
    let ct = call
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    match ct {
        "" | "application/json" | "*/*" => serde_json::from_slice(&call.body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}"))),
        "application/yaml" => serde_yaml_ng::from_slice(&call.body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}"))),
        protobuf::CONTENT_TYPE => protobuf::decode(&call.body).map_err(|e| match e {
            protobuf::ProtoError::Malformed(_) => ApiError::bad_request(e.to_string()),
            protobuf::ProtoError::Unsupported(_) => {
                ApiError::new(415, "UnsupportedMediaType", e.to_string()).with_details(json!({}))
            }
        }),
        _ => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        )
        .with_details(json!({}))),
    }
}

fn create(app: &App, call: &Call) -> Result<Response<Body>, ApiError> {
    let t = &call.target;
    let body = parse_body(call)?;
    let (manager, av, now) = (call.manager(), t.rt.api_version(), now());
    let w = writer(call, &manager, &av, &now);
    let obj = objects::create(
        &mut app.store.lock(),
        &t.rt,
        t.namespace.as_deref(),
        body,
        &w,
    )?;
    Ok(json_response(201, &obj))
}

fn update(app: &App, call: &Call, name: &str) -> Result<Response<Body>, ApiError> {
    let t = &call.target;
    let mut body = parse_body(call)?;
    objects::normalize_body(&t.rt, t.namespace.as_deref(), &mut body)?;
    if body["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    let (manager, av, now) = (call.manager(), t.rt.api_version(), now());
    let w = writer(call, &manager, &av, &now);
    let mut s = app.store.lock();
    let key = objects::key(&t.rt, t.namespace.as_deref(), name);
    let Some(old) = s.get(&key).cloned() else {
        return Err(ApiError::not_found(&t.rt.group, &t.rt.plural, name));
    };
    let obj = objects::commit_update(&mut s, &t.rt, key, &old, body, &w)?;
    Ok(json_response(200, &obj))
}

fn patch(app: &App, call: &Call, name: &str) -> Result<Response<Body>, ApiError> {
    let t = &call.target;
    let ct = call
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    if ct == "application/apply-patch+yaml" {
        return server_side_apply(app, call, name);
    }
    let (manager, av, now) = (call.manager(), t.rt.api_version(), now());
    let w = writer(call, &manager, &av, &now);
    let mut s = app.store.lock();
    let key = objects::key(&t.rt, t.namespace.as_deref(), name);
    let Some(old) = s.get(&key).cloned() else {
        return Err(ApiError::not_found(&t.rt.group, &t.rt.plural, name));
    };
    let mut new = old.clone();
    let result = match ct {
        "application/merge-patch+json" => patch::merge_patch(&mut new, &call.body),
        "application/strategic-merge-patch+json" => {
            patch::strategic_merge_patch(&mut new, &call.body)
        }
        "application/json-patch+json" => patch::json_patch(&mut new, &call.body),
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    result.map_err(|e| match e {
        patch::PatchError::Body(m) => ApiError::bad_request(m),
        // The real server answers a failed JSON patch (e.g. a `test` op) with a bare 422.
        patch::PatchError::Failed(_) => ApiError::new(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        )
        .with_details(json!({})),
    })?;
    let obj = objects::commit_update(&mut s, &t.rt, key, &old, new, &w)?;
    Ok(json_response(200, &obj))
}

fn server_side_apply(app: &App, call: &Call, name: &str) -> Result<Response<Body>, ApiError> {
    let t = &call.target;
    let Some(manager) = call.query.get("fieldManager") else {
        return Err(ApiError::bad_request(
            "PATCH with application/apply-patch+yaml requires the fieldManager query parameter",
        ));
    };
    let mut config: Value = serde_yaml_ng::from_slice(&call.body).map_err(|e| {
        ApiError::bad_request(format!("the apply configuration is not valid YAML: {e}"))
    })?;
    objects::normalize_body(&t.rt, t.namespace.as_deref(), &mut config)?;
    match config["metadata"]["name"].as_str() {
        Some(n) if n == name => {}
        None => config["metadata"]["name"] = json!(name),
        Some(_) => {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
    }
    if let Some(m) = config["metadata"].as_object_mut() {
        for server_owned in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            m.remove(server_owned);
        }
    }
    let (av, now) = (t.rt.api_version(), now());
    let w = Writer {
        apply: true,
        ..writer(call, manager, &av, &now)
    };
    let force = call.query.flag("force");
    let mut s = app.store.lock();
    let key = objects::key(&t.rt, t.namespace.as_deref(), name);
    let live = s.get(&key).cloned();
    let merged = apply::apply(live.as_ref(), &config, &w, force).map_err(conflict_status)?;
    match live {
        None => Ok(json_response(
            201,
            &objects::create(&mut s, &t.rt, t.namespace.as_deref(), merged, &w)?,
        )),
        Some(old) => Ok(json_response(
            200,
            &objects::commit_update(&mut s, &t.rt, key, &old, merged, &w)?,
        )),
    }
}

/// The real server's 409 for apply conflicts, one cause per field.
fn conflict_status(conflicts: Vec<apply::Conflict>) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\"", c.manager), "field": c.field}))
        .collect();
    let message = match conflicts.as_slice() {
        [one] => format!(
            "Apply failed with 1 conflict: conflict with \"{}\": {}",
            one.manager, one.field
        ),
        many => {
            let lines: Vec<String> = many
                .iter()
                .map(|c| format!("conflict with \"{}\": {}", c.manager, c.field))
                .collect();
            format!(
                "Apply failed with {} conflicts: {}",
                many.len(),
                lines.join("\n")
            )
        }
    };
    ApiError::new(409, "Conflict", message).with_details(json!({"causes": causes}))
}

fn delete(app: &App, call: &Call, name: &str) -> Result<Response<Body>, ApiError> {
    let t = &call.target;
    let key = objects::key(&t.rt, t.namespace.as_deref(), name);
    let mut s = app.store.lock();
    // DeleteOptions may carry preconditions, a propagation policy and a grace period.
    let options: Value = serde_json::from_slice(&call.body).unwrap_or(Value::Null);
    let opts = delete_options(call, &options)?;
    if let Some(live) = s.get(&key) {
        for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            let (want, have) = (&options["preconditions"][field], &live["metadata"][field]);
            if want.is_string() && want != have {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: {label} in precondition: {}, {label} in object meta: {}",
                        status::qualified(&t.rt.group, &t.rt.plural),
                        want.as_str().unwrap_or_default(),
                        have.as_str().unwrap_or_default()
                    ),
                )
                .with_details(json!({"name": name, "kind": t.rt.plural})));
            }
        }
    }
    let obj = objects::delete(&mut s, &t.rt, &key, opts)?;
    Ok(json_response(200, &deleted_body(&t.rt, obj)))
}

/// `propagationPolicy`, `gracePeriodSeconds` and `dryRun` from the query or the DeleteOptions
/// body (the body's win, as on the real server).
pub fn delete_options(call: &Call, options: &Value) -> Result<objects::DeleteOptions, ApiError> {
    let propagation = match options["propagationPolicy"]
        .as_str()
        .or(call.query.get("propagationPolicy"))
    {
        Some(p) => objects::Propagation::parse(p)?,
        None => objects::Propagation::default(),
    };
    let grace = match options["gracePeriodSeconds"].as_i64() {
        Some(g) => Some(g),
        None => match call.query.get("gracePeriodSeconds") {
            Some(g) => Some(g.parse().map_err(|_| {
                ApiError::bad_request(format!("gracePeriodSeconds: invalid value {g:?}"))
            })?),
            None => None,
        },
    };
    let dry_run = call.query.get("dryRun") == Some("All")
        || options["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "All"));
    Ok(objects::DeleteOptions {
        dry_run,
        propagation,
        grace,
    })
}

/// Pods, namespaces and objects held by finalizers come back whole; others as a Success Status.
fn deleted_body(rt: &crate::resources::ResourceType, obj: Value) -> Value {
    let held = obj["metadata"].get("deletionTimestamp").is_some();
    if held || (rt.group.is_empty() && matches!(rt.plural.as_str(), "pods" | "namespaces")) {
        return obj;
    }
    let mut details =
        json!({"name": obj["metadata"]["name"], "kind": rt.plural, "uid": obj["metadata"]["uid"]});
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    let mut st = status::success(200, Some(details));
    st.as_object_mut().expect("status is a map").remove("code");
    st
}

fn delete_collection(app: &App, call: &Call) -> Result<Response<Body>, ApiError> {
    let t = &call.target;
    let filter = Filter::from_query(&call.query)?;
    let options: Value = serde_json::from_slice(&call.body).unwrap_or(Value::Null);
    let opts = delete_options(call, &options)?;
    let mut s = app.store.lock();
    let keys: Vec<_> = s
        .list(&t.rt.group, &t.rt.plural, t.namespace.as_deref())
        .into_iter()
        .filter(|(_, o)| filter.matches(o))
        .map(|(k, _)| k.clone())
        .collect();
    let mut items = Vec::new();
    for k in keys {
        items.push(list::strip_type(objects::delete(&mut s, &t.rt, &k, opts)?));
    }
    let rv = s.current_rv().to_string();
    Ok(json_response(
        200,
        &json!({"kind": format!("{}List", t.rt.kind), "apiVersion": t.rt.api_version(), "metadata": {"resourceVersion": rv}, "items": items}),
    ))
}
