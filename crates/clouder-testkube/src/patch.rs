//! JSON patch, JSON merge patch and strategic merge patch on JSON objects.

use crate::fields::{self, ListKind};
use crate::schema::Node;
use serde_json::Value;

/// A patch body that does not apply to the object.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("invalid patch body: {0}")]
    Body(String),
    #[error("json patch failed: {0}")]
    Failed(String),
}

/// RFC 6902 JSON patch.
pub fn json_patch(doc: &mut Value, body: &[u8]) -> Result<(), PatchError> {
    let p: json_patch::Patch =
        serde_json::from_slice(body).map_err(|e| PatchError::Body(e.to_string()))?;
    json_patch::patch(doc, &p).map_err(|e| PatchError::Failed(e.to_string()))
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(doc: &mut Value, body: &[u8]) -> Result<(), PatchError> {
    let p: Value = serde_json::from_slice(body).map_err(|e| PatchError::Body(e.to_string()))?;
    json_patch::merge(doc, &p);
    Ok(())
}

/// Strategic merge patch: a merge patch whose well-known lists merge element by element by their
/// merge key (`containers` by name, `tolerations` by key, …), with `$patch: delete|replace` and the
/// `$setElementOrder`/`$retainKeys` directives kubectl sends (the latter are accepted and ignored).
pub fn strategic_merge_patch(doc: &mut Value, body: &[u8]) -> Result<(), PatchError> {
    let p: Value = serde_json::from_slice(body).map_err(|e| PatchError::Body(e.to_string()))?;
    if !p.is_object() {
        return Err(PatchError::Body(
            "a strategic merge patch must be a JSON object".into(),
        ));
    }
    let node = Node::of(doc);
    smp(doc, &p, node);
    Ok(())
}

fn smp(dst: &mut Value, patch: &Value, node: Node) {
    let Value::Object(pm) = patch else {
        *dst = patch.clone();
        return;
    };
    if pm.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch.clone();
        strip_directives(&mut replaced);
        *dst = replaced;
        return;
    }
    if !dst.is_object() {
        *dst = Value::Object(Default::default());
    }
    let d = dst.as_object_mut().expect("just made an object");
    for (k, v) in pm {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                d.remove(k);
            }
            Value::Array(items) => match (
                d.get_mut(k),
                fields::list_kind(node.field(k), k, items, true),
            ) {
                (Some(Value::Array(existing)), ListKind::Map(keys)) => {
                    merge_list(existing, items, &keys, node.field(k).items())
                }
                (Some(Value::Array(existing)), ListKind::Set) => {
                    for i in items {
                        if !existing.contains(i) {
                            existing.push(i.clone());
                        }
                    }
                }
                _ => {
                    let mut items = Value::Array(items.clone());
                    strip_directives(&mut items);
                    d.insert(k.clone(), items);
                }
            },
            Value::Object(_) => smp(d.entry(k.clone()).or_insert(Value::Null), v, node.field(k)),
            _ => {
                d.insert(k.clone(), v.clone());
            }
        }
    }
    // Directive keys such as `$deleteFromPrimitiveList/x` start with '$' and were skipped above.
    for (k, v) in pm
        .iter()
        .filter(|(k, _)| k.starts_with("$deleteFromPrimitiveList/"))
    {
        let field = &k["$deleteFromPrimitiveList/".len()..];
        if let (Some(Value::Array(list)), Value::Array(del)) = (d.get_mut(field), v) {
            list.retain(|x| !del.contains(x));
        }
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], keys: &[&str], node: Node) {
    for item in items {
        let key = fields::element_key(item, keys);
        let pos = existing
            .iter()
            .position(|x| key.is_some() && fields::element_key(x, keys) == key);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => smp(&mut existing[i], item, node),
            (None, false) => {
                let mut item = item.clone();
                strip_directives(&mut item);
                existing.push(item);
            }
        }
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_follows_the_schema_merge_keys() {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "spec": {
            "containers": [{"name": "a", "image": "1", "ports": [{"containerPort": 80}]}, {"name": "b", "image": "2"}],
            "tolerations": [{"key": "k", "effect": "NoSchedule"}, {"key": "j"}]
        }});
        let patch = json!({"spec": {
            "containers": [{"name": "b", "image": "3"}, {"name": "c", "image": "4"}, {"name": "a", "ports": [{"containerPort": 81}]}],
            "tolerations": [{"key": "k", "effect": "NoExecute"}],
            "$setElementOrder/containers": [{"name": "a"}]
        }});
        strategic_merge_patch(&mut pod, patch.to_string().as_bytes()).unwrap();
        assert_eq!(
            pod["spec"]["containers"],
            json!([{"name": "a", "image": "1", "ports": [{"containerPort": 80}, {"containerPort": 81}]}, {"name": "b", "image": "3"}, {"name": "c", "image": "4"}])
        );
        // Tolerations have no patch strategy in the schema: the patch replaces them.
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([{"key": "k", "effect": "NoExecute"}])
        );
        assert!(pod["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn strategic_patch_delete_directive_and_null() {
        let mut pod = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"env": [{"name": "X"}, {"name": "Y"}]}});
        let patch = json!({"metadata": {"labels": {"a": null}}, "spec": {"env": [{"name": "X", "$patch": "delete"}]}});
        strategic_merge_patch(&mut pod, patch.to_string().as_bytes()).unwrap();
        assert_eq!(
            pod,
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"env": [{"name": "Y"}]}})
        );
    }

    #[test]
    fn json_patch_test_failure_is_an_error() {
        let mut doc = json!({"data": {"a": "1"}});
        let body = br#"[{"op": "test", "path": "/data/a", "value": "nope"}]"#;
        assert!(matches!(
            json_patch(&mut doc, body),
            Err(PatchError::Failed(_))
        ));
    }
}
