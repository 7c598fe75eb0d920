//! Field paths and `managedFields` (FieldsV1): which manager owns which field, as server-side apply needs.

use crate::schema::Node;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// One step into an object: a map field, a list element by its key fields, or a set member.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    Field(String),
    /// Canonical JSON of the element's key fields, e.g. `{"name":"c"}`.
    Key(String),
    /// Canonical JSON of a set member, e.g. `"kubernetes"`.
    Value(String),
}

pub type Path = Vec<Step>;
pub type FieldSet = BTreeSet<Path>;

/// How a list merges: by key fields, as a set of scalars, or replaced whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    Map(Vec<&'static str>),
    Set,
    Atomic,
}

/// How a list merges: as its schema says, or for types without one (custom resources) as the
/// well-known list of that name does.
pub fn list_kind(node: Node, field: &str, items: &[Value], strategic: bool) -> ListKind {
    node.list_kind(strategic)
        .unwrap_or_else(|| list_kind_by_name(field, items, strategic))
}

/// The list semantics of the well-known lists by their field name.
fn list_kind_by_name(field: &str, items: &[Value], strategic: bool) -> ListKind {
    let first = items.iter().find(|v| v.is_object());
    let keys: &[&'static str] = match field {
        "finalizers" => return ListKind::Set,
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => &["name"],
        "volumeMounts" => &["mountPath"],
        "volumeDevices" => &["devicePath"],
        "conditions" => &["type"],
        "ownerReferences" => &["uid"],
        "hostAliases" => &["ip"],
        "tolerations" if strategic => &["key"],
        "ports" if first.is_some_and(|f| f.get("containerPort").is_some()) => &["containerPort"],
        "ports" if first.is_some_and(|f| f.get("port").is_some()) => &["port"],
        _ => return ListKind::Atomic,
    };
    ListKind::Map(keys.to_vec())
}

/// The canonical key of a list element under the given key fields; None when it has none of them.
pub fn element_key(item: &Value, keys: &[&str]) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(*k) {
            m.insert((*k).to_string(), v.clone());
        }
    }
    (!m.is_empty()).then(|| Value::Object(m).to_string())
}

/// Metadata fields a manager can own; the rest of `metadata` belongs to the server.
const OWNED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// The leaf fields an object (or an apply configuration) sets, excluding server-owned ones.
pub fn leaves(obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let root = Node::of(obj);
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            match k.as_str() {
                "apiVersion" | "kind" | "status" => {}
                "metadata" => {
                    for f in OWNED_METADATA {
                        if let Some(v) = v.get(f) {
                            walk(
                                v,
                                root.field(k).field(f),
                                f,
                                vec![Step::Field(k.clone()), Step::Field(f.to_string())],
                                &mut out,
                            );
                        }
                    }
                }
                _ => walk(v, root.field(k), k, vec![Step::Field(k.clone())], &mut out),
            }
        }
    }
    out
}

/// Leaves of `status` only, for writes through the status subresource.
pub fn status_leaves(obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Some(s) = obj.get("status") {
        let node = Node::of(obj).field("status");
        walk(
            s,
            node,
            "status",
            vec![Step::Field("status".into())],
            &mut out,
        );
    }
    out
}

fn walk(v: &Value, node: Node, field: &str, path: Path, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                let mut p = path.clone();
                p.push(Step::Field(k.clone()));
                walk(c, node.field(k), k, p, out);
            }
        }
        Value::Array(items) => match list_kind(node, field, items, false) {
            ListKind::Map(keys) => {
                for item in items {
                    let Some(key) = element_key(item, &keys) else {
                        continue;
                    };
                    let mut p = path.clone();
                    p.push(Step::Key(key));
                    out.insert(p.clone());
                    walk(item, node.items(), "", p, out);
                }
            }
            ListKind::Set => {
                for item in items {
                    let mut p = path.clone();
                    p.push(Step::Value(item.to_string()));
                    out.insert(p);
                }
            }
            ListKind::Atomic => {
                out.insert(path);
            }
        },
        _ => {
            out.insert(path);
        }
    }
}

/// The value at a path, if the object has it.
pub fn get<'a>(obj: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut cur = obj;
    for step in path {
        cur = match step {
            Step::Field(f) => cur.get(f)?,
            Step::Key(k) => {
                let key: Map<String, Value> = serde_json::from_str(k).ok()?;
                cur.as_array()?
                    .iter()
                    .find(|i| key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)))?
            }
            Step::Value(v) => {
                let want: Value = serde_json::from_str(v).ok()?;
                cur.as_array()?.iter().find(|i| **i == want)?
            }
        };
    }
    Some(cur)
}

/// Removes the field, list element or set member at a path; a missing path is left alone.
pub fn remove(obj: &mut Value, path: &[Step]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for step in parent_path {
        let next = match step {
            Step::Field(f) => cur.get_mut(f),
            Step::Key(k) => {
                let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                cur.as_array_mut().and_then(|a| {
                    a.iter_mut()
                        .find(|i| key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)))
                })
            }
            Step::Value(_) => None,
        };
        let Some(n) = next else { return };
        cur = n;
    }
    match last {
        Step::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        Step::Key(k) => {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            if let Some(a) = cur.as_array_mut() {
                a.retain(|i| !key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)));
            }
        }
        Step::Value(v) => {
            let want: Value = serde_json::from_str(v).unwrap_or(Value::Null);
            if let Some(a) = cur.as_array_mut() {
                a.retain(|i| *i != want);
            }
        }
    }
}

/// Renders a field set as FieldsV1 (`{"f:data": {"f:x": {}}}`).
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = json!({});
    for path in set {
        let mut cur = &mut root;
        for step in path {
            let name = match step {
                Step::Field(f) => format!("f:{f}"),
                Step::Key(k) => format!("k:{k}"),
                Step::Value(v) => format!("v:{v}"),
            };
            cur = cur
                .as_object_mut()
                .expect("fields nodes are objects")
                .entry(name)
                .or_insert_with(|| json!({}));
        }
        // A list element is owned as a whole as well as field by field.
        if matches!(path.last(), Some(Step::Key(_))) {
            cur.as_object_mut()
                .expect("fields nodes are objects")
                .insert(".".into(), json!({}));
        }
    }
    root
}

/// Parses FieldsV1 back into the set of owned paths.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    fn rec(v: &Value, path: Path, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        let children: Vec<_> = m.iter().filter(|(k, _)| k.as_str() != ".").collect();
        if (children.is_empty() || m.contains_key(".")) && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, c) in children {
            let step = if let Some(f) = k.strip_prefix("f:") {
                Step::Field(f.to_string())
            } else if let Some(kk) = k.strip_prefix("k:") {
                Step::Key(kk.to_string())
            } else if let Some(vv) = k.strip_prefix("v:") {
                Step::Value(vv.to_string())
            } else {
                continue;
            };
            let mut p = path.clone();
            p.push(step);
            rec(c, p, out);
        }
    }
    rec(v, Vec::new(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_follow_list_semantics() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["x"]},
            "spec": {"containers": [{"name": "c", "image": "i", "args": ["1", "2"]}]},
            "status": {"phase": "Running"}
        });
        let fv = to_fields_v1(&leaves(&obj));
        assert_eq!(
            fv,
            json!({
                "f:metadata": {"f:labels": {"f:a": {}}, "f:finalizers": {"v:\"x\"": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:image": {}, "f:args": {}}}}
            })
        );
        assert_eq!(from_fields_v1(&fv), leaves(&obj));
    }

    #[test]
    fn get_and_remove_by_key() {
        let mut obj = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}});
        let path = vec![
            Step::Field("spec".into()),
            Step::Field("containers".into()),
            Step::Key(r#"{"name":"b"}"#.into()),
        ];
        assert_eq!(get(&obj, &path).unwrap()["image"], "2");
        remove(&mut obj, &path);
        assert_eq!(obj["spec"]["containers"].as_array().unwrap().len(), 1);
    }
}
