//! The garbage collector: dependents whose owners are all gone are deleted; an owner deleted in the
//! foreground waits (finalizer `foregroundDeletion`) until its blocking dependents are gone; an owner
//! deleted with `Orphan` lets go of its dependents (finalizer `orphan`) before it goes.

use super::{Ctx, deleting, uid};
use crate::objects::{FOREGROUND, ORPHAN, Propagation};
use crate::store::Key;
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn reconcile(cx: &mut Ctx) {
    let keys = cx.s.all_keys();
    let objects: Vec<(Key, Value)> = keys
        .into_iter()
        .filter_map(|k| cx.s.get(&k).cloned().map(|v| (k, v)))
        .collect();
    let by_uid: HashMap<&str, &Value> = objects.iter().map(|(_, o)| (uid(o), o)).collect();
    let has_finalizer = |o: &Value, f: &str| {
        deleting(o)
            && o["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x == f))
    };
    // Dependents per owner uid: (dependent, blocks the owner's deletion).
    let mut dependents: HashMap<&str, Vec<(&Key, &Value, bool)>> = HashMap::new();
    for (k, o) in &objects {
        for r in o["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(u) = r["uid"].as_str() {
                dependents
                    .entry(u)
                    .or_default()
                    .push((k, o, r["blockOwnerDeletion"] == true));
            }
        }
    }
    for (key, o) in &objects {
        let refs = o["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if refs.is_empty() {
            continue;
        }
        let owner = |r: &Value| r["uid"].as_str().and_then(|u| by_uid.get(u)).copied();
        let orphaned_by = |r: &Value| owner(r).is_some_and(|ow| has_finalizer(ow, ORPHAN));
        if refs.iter().any(orphaned_by) {
            let kept: Vec<Value> = refs.iter().filter(|r| !orphaned_by(r)).cloned().collect();
            let mut new = o.clone();
            if kept.is_empty() {
                new["metadata"]
                    .as_object_mut()
                    .expect("metadata")
                    .remove("ownerReferences");
            } else {
                new["metadata"]["ownerReferences"] = json!(kept);
            }
            write(cx, key, o, new);
            continue;
        }
        // As the real collector, only owners of a served kind can be known to be gone.
        let resolvable = refs.iter().all(|r| {
            cx.types.iter().any(|t| {
                t.api_version() == r["apiVersion"].as_str().unwrap_or_default()
                    && t.kind == r["kind"].as_str().unwrap_or_default()
            })
        });
        let live: Vec<&Value> = refs.iter().filter_map(owner).collect();
        if live.is_empty() && !resolvable {
            continue;
        }
        let foreground = live.iter().any(|ow| has_finalizer(ow, FOREGROUND));
        if deleting(o) {
            continue;
        }
        if live.is_empty() || (foreground && live.iter().all(|ow| deleting(ow))) {
            // Dependents of a foreground deletion go in the foreground too when they own others.
            let policy = if foreground && dependents.contains_key(uid(o)) {
                Propagation::Foreground
            } else {
                Propagation::Background
            };
            remove(cx, key, policy);
        }
    }
    // Owners waiting on their dependents.
    for (key, o) in &objects {
        let waiting_fg = has_finalizer(o, FOREGROUND)
            && !dependents
                .get(uid(o))
                .is_some_and(|ds| ds.iter().any(|(_, _, blocks)| *blocks));
        let waiting_orphan = has_finalizer(o, ORPHAN) && !dependents.contains_key(uid(o));
        if waiting_fg || waiting_orphan {
            let done = if waiting_fg { FOREGROUND } else { ORPHAN };
            let mut new = o.clone();
            if let Some(l) = new["metadata"]["finalizers"].as_array_mut() {
                l.retain(|x| x != done);
            }
            write(cx, key, o, new);
        }
    }
}

fn rt_of(cx: &Ctx, key: &Key) -> Option<crate::resources::ResourceType> {
    cx.types
        .iter()
        .find(|t| t.group == key.group && t.plural == key.resource)
        .cloned()
}

fn write(cx: &mut Ctx, key: &Key, old: &Value, new: Value) {
    if let Some(rt) = rt_of(cx, key) {
        cx.write(&rt.group, &rt.plural, old, new, "garbage-collector", false);
    }
}

fn remove(cx: &mut Ctx, key: &Key, policy: Propagation) {
    if let Some(rt) = rt_of(cx, key)
        && let Err(e) = crate::objects::delete(
            cx.s,
            &rt,
            key,
            crate::objects::DeleteOptions {
                propagation: policy,
                ..Default::default()
            },
        )
    {
        tracing::debug!(
            "garbage collection of {} not taken: {}",
            key.name,
            e.message
        );
    }
}
