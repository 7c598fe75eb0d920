//! The namespace controller: a Terminating namespace's contents are deleted (their finalizers
//! honoured), then its `kubernetes` finalizer is dropped and the namespace goes.

use super::{Ctx, deleting, name};
use crate::objects;
use crate::store::Key;
use serde_json::{Value, json};

pub fn reconcile(cx: &mut Ctx) {
    for ns in cx.list("", "namespaces") {
        if !deleting(&ns) {
            continue;
        }
        let contents: Vec<Key> =
            cx.s.all_keys()
                .into_iter()
                .filter(|k| k.namespace == name(&ns))
                .collect();
        let mut remaining = 0;
        for k in &contents {
            remaining += 1;
            let Some(rt) = cx
                .types
                .iter()
                .find(|t| t.group == k.group && t.plural == k.resource)
                .cloned()
            else {
                continue;
            };
            if cx.s.get(k).is_some_and(|o| !deleting(o))
                && let Err(e) = objects::delete(cx.s, &rt, k, Default::default())
            {
                tracing::debug!(
                    "namespace controller could not delete {}: {}",
                    k.name,
                    e.message
                );
            }
            if cx.s.get(k).is_none() {
                remaining -= 1;
            }
        }
        let conditions = if remaining == 0 {
            json!([])
        } else {
            json!([{"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
                "message": format!("Some resources are remaining: {remaining} objects"), "lastTransitionTime": cx.now}])
        };
        if remaining > 0 {
            let status = json!({"phase": "Terminating", "conditions": conditions});
            if ns["status"]["conditions"] != status["conditions"] {
                cx.set_status("", "namespaces", &ns, status);
            }
            continue;
        }
        finalize(cx, &ns);
    }
}

/// Drops the `kubernetes` finalizer; without metadata finalizers the namespace is removed.
fn finalize(cx: &mut Ctx, ns: &Value) {
    let Some(live) = cx.get("", "namespaces", ns) else {
        return;
    };
    let mut done = live.clone();
    done["spec"]["finalizers"] = json!([]);
    let held = live["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if held {
        cx.update("", "namespaces", &live, done);
    } else if let Some(rt) = cx.rt("", "namespaces") {
        let key = objects::key(&rt, None, name(&live));
        cx.s.put(key.clone(), done, "MODIFIED");
        cx.s.remove(&key);
    }
}
