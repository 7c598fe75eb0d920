//! Server-side apply and field ownership: `managedFields` entries, conflicts, and the merge itself.

use crate::fields::{self, FieldSet, ListKind, Path, Step};
use crate::schema::Node;
use serde_json::{Value, json};

/// One `managedFields` entry, parsed.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    subresource: Option<String>,
    api_version: String,
    time: String,
    set: FieldSet,
}

fn parse(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().to_string(),
            operation: e["operation"].as_str().unwrap_or("Update").to_string(),
            subresource: e["subresource"].as_str().map(String::from),
            api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: e["time"].as_str().unwrap_or_default().to_string(),
            set: fields::from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

fn render(entries: &[Entry]) -> Value {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version, "time": e.time,
                "fieldsType": "FieldsV1", "fieldsV1": fields::to_fields_v1(&e.set),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    json!(list)
}

fn store(obj: &mut Value, entries: &[Entry]) {
    let rendered = render(entries);
    let meta = obj["metadata"]
        .as_object_mut()
        .expect("objects have metadata");
    if rendered.as_array().is_some_and(|a| a.is_empty()) {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), rendered);
    }
}

/// Who is writing, and through which operation.
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: Option<&'a str>,
    pub now: &'a str,
    /// Server-side apply already set `managedFields`; do not record an Update.
    pub apply: bool,
    /// `dryRun=All`: compute the result, store nothing.
    pub dry_run: bool,
}

/// Records an Update (create, PUT, non-apply PATCH): the changed fields move to `writer`.
pub fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer) {
    let mut entries = old.map(parse).unwrap_or_default();
    let changed_scope = |v: &Value| {
        if w.subresource == Some("status") {
            fields::status_leaves(v)
        } else {
            fields::leaves(v)
        }
    };
    let new_leaves = changed_scope(new);
    let old_leaves = old.map(changed_scope).unwrap_or_default();
    let changed: FieldSet = new_leaves
        .iter()
        .filter(|p| old.is_none_or(|o| differs(o, new, p)))
        .cloned()
        .collect();
    let gone: FieldSet = old_leaves.difference(&new_leaves).cloned().collect();
    if changed.is_empty() && gone.is_empty() {
        store(new, &entries);
        return;
    }
    for e in entries.iter_mut() {
        e.set
            .retain(|p| !changed.contains(p) && !gone.iter().any(|g| p.starts_with(g)));
    }
    let sub = w.subresource.map(String::from);
    match entries
        .iter_mut()
        .find(|e| e.manager == w.manager && e.operation == "Update" && e.subresource == sub)
    {
        Some(e) => {
            e.set.extend(changed);
            e.time = w.now.to_string();
        }
        None => entries.push(Entry {
            manager: w.manager.to_string(),
            operation: "Update".into(),
            subresource: sub,
            api_version: w.api_version.to_string(),
            time: w.now.to_string(),
            set: changed,
        }),
    }
    store(new, &entries);
}

/// Whether a field differs between two objects. A list element is a container, not a value: it
/// differs only by being absent from one side.
fn differs(a: &Value, b: &Value, p: &Path) -> bool {
    if matches!(p.last(), Some(Step::Key(_))) {
        return fields::get(a, p).is_some() != fields::get(b, p).is_some();
    }
    fields::get(a, p) != fields::get(b, p)
}

/// Fields another manager owns with a different value than the apply configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub field: String,
}

/// `.spec.containers[name="c"].image`, the way the real server names a conflicting field.
pub fn path_string(path: &Path) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Step::Key(k) => {
                let m: serde_json::Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            Step::Value(v) => s.push_str(&format!("[={v}]")),
        }
    }
    s
}

/// Applies `config` for `w.manager` onto `live` (None when creating). Returns the new object, or
/// the conflicts when `force` is false and other managers own fields with other values.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    w: &Writer,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let mut entries = live.map(parse).unwrap_or_default();
    // Through the status subresource a manager applies (and owns) status only.
    let status_only = w.subresource == Some("status");
    let applied = if status_only {
        fields::status_leaves(config)
    } else {
        fields::leaves(config)
    };
    let base = live.cloned().unwrap_or_else(|| json!({"metadata": {}}));
    let mut conflicts = Vec::new();
    let mut taken: FieldSet = FieldSet::new();
    for e in entries.iter().filter(|e| e.manager != w.manager) {
        for p in applied.intersection(&e.set) {
            if differs(&base, config, p) {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    field: path_string(p),
                });
                taken.insert(p.clone());
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let sub = w.subresource.map(String::from);
    let mine = |e: &Entry| e.manager == w.manager && e.operation == "Apply" && e.subresource == sub;
    let previous: FieldSet = entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let mut obj = base;
    // Fields this manager applied before and no longer applies go away unless someone else owns them.
    let dropped: Vec<&Path> = previous.difference(&applied).collect();
    for p in dropped.into_iter().rev() {
        let shared = entries.iter().any(|e| !mine(e) && e.set.contains(p));
        if !shared {
            fields::remove(&mut obj, p);
        }
    }
    merge(&mut obj, config, Node::of(config), "");
    for e in entries.iter_mut().filter(|e| !mine(e)) {
        e.set.retain(|p| !taken.contains(p));
    }
    match entries.iter_mut().find(|e| mine(e)) {
        Some(e) if e.set == applied => {}
        Some(e) => {
            e.set = applied;
            e.time = w.now.to_string();
        }
        None => entries.push(Entry {
            manager: w.manager.to_string(),
            operation: "Apply".into(),
            subresource: sub.clone(),
            api_version: w.api_version.to_string(),
            time: w.now.to_string(),
            set: applied,
        }),
    }
    store(&mut obj, &entries);
    Ok(obj)
}

/// Merges an apply configuration into an object: maps field by field, keyed lists element by element.
fn merge(dst: &mut Value, src: &Value, node: Node, field: &str) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, v) in s {
                match d.get_mut(k) {
                    Some(existing) if !v.is_null() => merge(existing, v, node.field(k), k),
                    _ => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(d), Value::Array(s)) => match fields::list_kind(node, field, s, false) {
            ListKind::Map(keys) => {
                for item in s {
                    let key = fields::element_key(item, &keys);
                    match d
                        .iter_mut()
                        .find(|x| key.is_some() && fields::element_key(x, &keys) == key)
                    {
                        Some(existing) => merge(existing, item, node.items(), ""),
                        None => d.push(item.clone()),
                    }
                }
            }
            ListKind::Set => {
                for item in s {
                    if !d.contains(item) {
                        d.push(item.clone());
                    }
                }
            }
            ListKind::Atomic => *d = s.clone(),
        },
        (d, s) => *d = s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w<'a>(manager: &'a str) -> Writer<'a> {
        Writer {
            manager,
            api_version: "v1",
            subresource: None,
            now: "2026-01-01T00:00:00Z",
            apply: true,
            dry_run: false,
        }
    }

    #[test]
    fn apply_records_ownership_and_is_idempotent() {
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"x": "1"}});
        let first = apply(None, &cfg, &w("one"), false).unwrap();
        assert_eq!(
            first["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:data": {"f:x": {}}})
        );
        let second = apply(Some(&first), &cfg, &w("one"), false).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn another_manager_conflicts_unless_forced() {
        let one = json!({"metadata": {"name": "s"}, "data": {"x": "1"}});
        let two = json!({"metadata": {"name": "s"}, "data": {"x": "2"}});
        let live = apply(None, &one, &w("one"), false).unwrap();
        let err = apply(Some(&live), &two, &w("two"), false).unwrap_err();
        assert_eq!(
            err,
            vec![Conflict {
                manager: "one".into(),
                field: ".data.x".into()
            }]
        );
        let forced = apply(Some(&live), &two, &w("two"), true).unwrap();
        assert_eq!(forced["data"]["x"], "2");
        let mf = forced["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mf.len(), 1);
        assert_eq!(mf[0]["manager"], "two");
    }

    #[test]
    fn dropping_a_field_from_the_config_removes_it() {
        let live = apply(
            None,
            &json!({"metadata": {}, "data": {"a": "1", "b": "2"}}),
            &w("m"),
            false,
        )
        .unwrap();
        let next = apply(
            Some(&live),
            &json!({"metadata": {}, "data": {"a": "1"}}),
            &w("m"),
            false,
        )
        .unwrap();
        assert_eq!(next["data"], json!({"a": "1"}));
    }

    #[test]
    fn list_elements_conflict_only_on_their_fields() {
        let pod = |image: &str| json!({"metadata": {}, "spec": {"containers": [{"name": "c", "image": image}]}});
        let live = apply(None, &pod("a"), &w("one"), false).unwrap();
        let err = apply(Some(&live), &pod("b"), &w("two"), false).unwrap_err();
        assert_eq!(
            err,
            vec![Conflict {
                manager: "one".into(),
                field: ".spec.containers[name=\"c\"].image".into()
            }]
        );
    }
}
