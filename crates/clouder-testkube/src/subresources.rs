//! The `scale` subresource and pod eviction against PodDisruptionBudgets.

use crate::App;
use crate::http::{Body, Call, json_response};
use crate::objects::{self, now};
use crate::selectors::{labels_of, structured_matches};
use crate::status::{self, ApiError};
use crate::verbs::{parse_body, writer};
use crate::{patch, store};
use http::{Method, Response};
use serde_json::{Value, json};

fn scale_of(obj: &Value) -> Value {
    let selector: Vec<String> = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    let m = &obj["metadata"];
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"], "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector.join(",")},
    })
}

fn live(app: &App, call: &Call) -> Result<(store::Key, Value), ApiError> {
    let t = &call.target;
    let name = t.name.as_deref().unwrap_or_default();
    let key = objects::key(&t.rt, t.namespace.as_deref(), name);
    let obj = app
        .store
        .lock()
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&t.rt.group, &t.rt.plural, name))?;
    Ok((key, obj))
}

pub fn get_scale(app: &App, call: &Call) -> Result<Response<Body>, ApiError> {
    Ok(json_response(200, &scale_of(&live(app, call)?.1)))
}

/// PUT or PATCH of a Scale: only `spec.replicas` reaches the object.
pub fn write_scale(app: &App, call: &Call) -> Result<Response<Body>, ApiError> {
    let t = &call.target;
    let (key, old) = live(app, call)?;
    let mut scale = scale_of(&old);
    if call.method == Method::PUT {
        scale = parse_body(call)?;
    } else {
        let ct = call
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        let r = match ct {
            "application/json-patch+json" => patch::json_patch(&mut scale, &call.body),
            "application/strategic-merge-patch+json" => {
                patch::strategic_merge_patch(&mut scale, &call.body)
            }
            _ => patch::merge_patch(&mut scale, &call.body),
        };
        r.map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let Some(replicas) = scale["spec"]["replicas"].as_i64() else {
        return Err(ApiError::invalid(
            "Scale",
            "autoscaling",
            &key.name,
            "spec.replicas",
            "FieldValueRequired",
            "Required value",
        ));
    };
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(replicas);
    if let Some(rv) = scale["metadata"]["resourceVersion"].as_str() {
        new["metadata"]["resourceVersion"] = json!(rv);
    }
    let (manager, av, now) = (call.manager(), t.rt.api_version(), now());
    let w = crate::apply::Writer {
        subresource: None,
        ..writer(call, &manager, &av, &now)
    };
    let obj = objects::commit_update(&mut app.store.lock(), &t.rt, key, &old, new, &w)?;
    Ok(json_response(200, &scale_of(&obj)))
}

fn is_ready(pod: &Value) -> bool {
    pod["metadata"].get("deletionTimestamp").is_none()
        && pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// An `int` or `"N%"` of `total`; percentages round up, as the disruption controller does.
fn scaled(v: &Value, total: i64) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let pct: i64 = v.as_str()?.strip_suffix('%')?.parse().ok()?;
    Some((pct * total + 99) / 100)
}

/// What a budget allows now: (desired healthy, currently healthy).
fn budget(pdb: &Value, pods: &[&Value]) -> (i64, i64) {
    let expected = pods.len() as i64;
    let healthy = pods.iter().filter(|p| is_ready(p)).count() as i64;
    let desired = if let Some(min) = pdb["spec"]
        .get("minAvailable")
        .and_then(|v| scaled(v, expected))
    {
        min
    } else if let Some(max) = pdb["spec"]
        .get("maxUnavailable")
        .and_then(|v| scaled(v, expected))
    {
        (expected - max).max(0)
    } else {
        0
    };
    (desired, healthy)
}

/// POST pods/NAME/eviction: deletes the pod unless a matching budget would be violated.
pub fn evict(app: &App, call: &Call) -> Result<Response<Body>, ApiError> {
    let t = &call.target;
    let ns = t.namespace.clone().unwrap_or_default();
    let name = t.name.clone().unwrap_or_default();
    let mut s = app.store.lock();
    let key = objects::key(&t.rt, Some(&ns), &name);
    let pod = s
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found("", "pods", &name))?;
    // A pod already going, or finished, is deleted without asking its budget, as the real server does.
    let terminal = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    let skip_budget = terminal || pod["metadata"].get("deletionTimestamp").is_some();
    let labels = labels_of(&pod);
    let pdbs: Vec<Value> = s
        .list("policy", "poddisruptionbudgets", Some(&ns))
        .into_iter()
        .map(|(_, p)| p.clone())
        .filter(|p| {
            p["spec"]
                .get("selector")
                .is_some_and(|sel| structured_matches(sel, &labels))
        })
        .collect();
    if pdbs.len() > 1 {
        return Err(ApiError::internal(
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        ));
    }
    if let Some(pdb) = pdbs.first().filter(|_| !skip_budget) {
        let pods: Vec<&Value> = s
            .list("", "pods", Some(&ns))
            .into_iter()
            .map(|(_, p)| p)
            .filter(|p| structured_matches(&pdb["spec"]["selector"], &labels_of(p)))
            .collect();
        let (desired, healthy) = budget(pdb, &pods);
        // An unready pod does not count towards the budget, so it may go while the budget holds.
        let allowed = if is_ready(&pod) {
            healthy - desired > 0
        } else {
            healthy >= desired
        };
        if !allowed {
            let pdb_name = pdb["metadata"]["name"].as_str().unwrap_or_default();
            return Err(ApiError::new(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.").with_details(json!({
                "causes": [{"reason": "DisruptionBudget", "message": format!("The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently")}]
            })));
        }
    }
    // The Eviction carries the DeleteOptions (a grace period, say) for the pod's deletion.
    let eviction: Value = crate::verbs::parse_body(call).unwrap_or(Value::Null);
    let opts = crate::verbs::delete_options(call, &eviction["deleteOptions"])?;
    objects::delete(&mut s, &t.rt, &key, opts)?;
    Ok(json_response(201, &status::success(201, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ready: bool) -> Value {
        json!({"metadata": {"labels": {"app": "x"}}, "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn budgets_from_min_available_and_max_unavailable() {
        let (a, b, c) = (pod(true), pod(true), pod(false));
        let pods = [&a, &b, &c];
        assert_eq!(budget(&json!({"spec": {"minAvailable": 2}}), &pods), (2, 2));
        assert_eq!(
            budget(&json!({"spec": {"maxUnavailable": 1}}), &pods),
            (2, 2)
        );
        assert_eq!(
            budget(&json!({"spec": {"minAvailable": "50%"}}), &pods),
            (2, 2)
        );
        assert_eq!(
            budget(&json!({"spec": {"maxUnavailable": "10%"}}), &pods),
            (2, 2)
        );
    }
}
