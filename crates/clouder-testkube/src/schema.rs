//! The built-in types' OpenAPI v3 schemas, walked alongside an object so that strategic merge patch
//! and server-side apply treat each list as the real server does: by its
//! `x-kubernetes-patch-merge-key`/`x-kubernetes-patch-strategy` and
//! `x-kubernetes-list-type`/`x-kubernetes-list-map-keys` markers.

use crate::discovery;
use crate::fields::ListKind;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

struct Schemas {
    /// `io.k8s.api.core.v1.Pod` → its schema.
    by_name: HashMap<&'static str, &'static Value>,
    /// (apiVersion, kind) → its schema.
    by_kind: HashMap<(String, String), &'static Value>,
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut by_name = HashMap::new();
        let mut by_kind = HashMap::new();
        for doc in discovery::openapi_documents() {
            let Some(all) = doc["components"]["schemas"].as_object() else {
                continue;
            };
            for (name, schema) in all {
                by_name.insert(name.as_str(), schema);
                for gvk in schema["x-kubernetes-group-version-kind"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let (g, v) = (
                        gvk["group"].as_str().unwrap_or(""),
                        gvk["version"].as_str().unwrap_or(""),
                    );
                    let api_version = if g.is_empty() {
                        v.to_string()
                    } else {
                        format!("{g}/{v}")
                    };
                    let kind = gvk["kind"].as_str().unwrap_or_default().to_string();
                    by_kind.entry((api_version, kind)).or_insert(schema);
                }
            }
        }
        Schemas { by_name, by_kind }
    })
}

/// Where in a type's schema a walk stands; `None` off the known schemas (custom resources,
/// fields the schema does not declare).
#[derive(Debug, Clone, Copy)]
pub struct Node(Option<&'static Value>);

impl Node {
    /// The schema of an object's type, from its `apiVersion` and `kind`.
    pub fn of(obj: &Value) -> Self {
        let key = (
            obj["apiVersion"].as_str().unwrap_or_default().to_string(),
            obj["kind"].as_str().unwrap_or_default().to_string(),
        );
        Self(schemas().by_kind.get(&key).copied())
    }

    /// Follows `$ref` (directly or as the one `allOf` entry) to the referenced schema.
    fn resolved(self) -> Option<&'static Value> {
        let mut cur = self.0?;
        for _ in 0..8 {
            let r = cur["$ref"]
                .as_str()
                .or_else(|| cur["allOf"][0]["$ref"].as_str());
            match r.and_then(|r| r.strip_prefix("#/components/schemas/")) {
                Some(name) => cur = schemas().by_name.get(name)?,
                None => return Some(cur),
            }
        }
        None
    }

    /// The schema of a map field (a declared property, or the values of a string-keyed map).
    pub fn field(self, name: &str) -> Self {
        let Some(s) = self.resolved() else {
            return Self(None);
        };
        Self(
            s["properties"]
                .get(name)
                .or_else(|| s.get("additionalProperties").filter(|a| a.is_object())),
        )
    }

    /// The schema of a list's elements.
    pub fn items(self) -> Self {
        Self(self.0.and_then(|p| p.get("items")))
    }

    /// How the list here merges: for a strategic merge patch by its patch strategy and merge key,
    /// for server-side apply by its list type. None when the schema does not say (then the caller
    /// falls back on the field's name).
    pub fn list_kind(self, strategic: bool) -> Option<ListKind> {
        let p = self.0?;
        p.get("items")?;
        if strategic {
            let merge = p["x-kubernetes-patch-strategy"]
                .as_str()
                .is_some_and(|s| s.split(',').any(|s| s == "merge"));
            return Some(match (merge, p["x-kubernetes-patch-merge-key"].as_str()) {
                (true, Some(key)) => ListKind::Map(vec![key]),
                (true, None) => ListKind::Set,
                (false, _) => ListKind::Atomic,
            });
        }
        Some(match p["x-kubernetes-list-type"].as_str() {
            Some("map") => ListKind::Map(
                p["x-kubernetes-list-map-keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect(),
            ),
            Some("set") => ListKind::Set,
            _ => ListKind::Atomic,
        })
    }
}

/// Drops empty maps and lists from optional fields, as the real server's Go types (`omitempty`)
/// do when they encode what they decoded: `"data": {}` is stored as no `data` at all.
pub fn drop_empty_optionals(obj: &mut Value) {
    let root = Node::of(obj);
    if root.0.is_some() {
        prune(obj, root);
    }
}

fn prune(v: &mut Value, node: Node) {
    let Some(schema) = node.resolved() else {
        return;
    };
    match v {
        Value::Object(m) => {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let declared = schema["properties"].is_object();
            m.retain(|k, child| {
                let field = node.field(k);
                let Some(prop) = field.0 else {
                    return true;
                };
                let collection = prop.get("items").is_some()
                    || prop.get("additionalProperties").is_some()
                        && prop.get("properties").is_none();
                let empty = child.as_object().is_some_and(|o| o.is_empty())
                    || child.as_array().is_some_and(|a| a.is_empty());
                !(declared && collection && empty && !required.contains(&k.as_str()))
            });
            if declared {
                for (k, child) in m.iter_mut() {
                    prune(child, node.field(k));
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                prune(item, node.items());
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_semantics_come_from_the_schema() {
        let pod = Node::of(&json!({"apiVersion": "v1", "kind": "Pod"}));
        let spec = pod.field("spec");
        let containers = spec.field("containers");
        assert_eq!(
            containers.list_kind(true),
            Some(ListKind::Map(vec!["name"]))
        );
        let ports = containers.items().field("ports");
        assert_eq!(
            ports.list_kind(true),
            Some(ListKind::Map(vec!["containerPort"]))
        );
        assert_eq!(
            ports.list_kind(false),
            Some(ListKind::Map(vec!["containerPort", "protocol"]))
        );
        assert_eq!(
            spec.field("tolerations").list_kind(true),
            Some(ListKind::Atomic)
        );
        let finalizers = pod.field("metadata").field("finalizers");
        assert_eq!(finalizers.list_kind(true), Some(ListKind::Set));
        assert_eq!(finalizers.list_kind(false), Some(ListKind::Set));
        let svc = Node::of(&json!({"apiVersion": "v1", "kind": "Service"}));
        assert_eq!(
            svc.field("spec").field("ports").list_kind(true),
            Some(ListKind::Map(vec!["port"]))
        );
        assert!(
            Node::of(&json!({"apiVersion": "example.com/v1", "kind": "Widget"}))
                .list_kind(true)
                .is_none()
        );
    }

    #[test]
    fn empty_optional_collections_are_dropped() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {}}, "data": {}});
        drop_empty_optionals(&mut cm);
        assert_eq!(
            cm,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
        );
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c", "args": [], "resources": {}}]}});
        drop_empty_optionals(&mut pod);
        assert_eq!(
            pod["spec"]["containers"],
            json!([{"name": "c", "resources": {}}])
        );
    }
}
