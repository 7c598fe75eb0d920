//! Manifests: multi-document YAML turned into objects, checked before anything is sent.

use crate::{Error, Result};
use kube::api::{DynamicObject, GroupVersionKind};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which object: kind, namespace and name (and the apiVersion that resolves the kind).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn of(obj: &DynamicObject) -> ObjectRef {
        let types = obj.types.clone().unwrap_or_default();
        ObjectRef {
            api_version: types.api_version,
            kind: types.kind,
            namespace: obj.metadata.namespace.clone(),
            name: obj.metadata.name.clone().unwrap_or_default(),
        }
    }

    pub fn new(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(str::to_string),
            name: name.into(),
        }
    }

    pub fn gvk(&self) -> GroupVersionKind {
        let (group, version) = match self.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version.as_str()),
        };
        GroupVersionKind::gvk(group, version, &self.kind)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// The objects of a multi-document YAML text; `source_name` names it in errors. Empty documents
/// are skipped; one without apiVersion, kind or metadata.name is an error naming its position.
pub fn parse(source_name: &str, text: &str) -> Result<Vec<DynamicObject>> {
    let mut objects = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let fail = |message: String| Error::Manifest {
            source_name: source_name.to_string(),
            document: i + 1,
            message,
        };
        let value = serde_json::Value::deserialize(doc).map_err(|e| fail(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        for field in ["apiVersion", "kind"] {
            if !value.get(field).is_some_and(|v| v.is_string()) {
                return Err(fail(format!("{field}: required")));
            }
        }
        if !value
            .pointer("/metadata/name")
            .is_some_and(|v| v.is_string())
        {
            return Err(fail("metadata.name: required".into()));
        }
        let obj: DynamicObject = serde_json::from_value(value).map_err(|e| fail(e.to_string()))?;
        objects.push(obj);
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_become_objects_and_empty_ones_are_skipped() {
        let text = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: a}\nspec: {replicas: 2}\n";
        let objs = parse("t.yaml", text).unwrap();
        assert_eq!(objs.len(), 2);
        let d = ObjectRef::of(&objs[1]);
        assert_eq!(d.to_string(), "Deployment a/d");
        assert_eq!(d.gvk(), GroupVersionKind::gvk("apps", "v1", "Deployment"));
        assert_eq!(objs[1].data["spec"]["replicas"], 2);
        assert_eq!(ObjectRef::of(&objs[0]).gvk().group, "");
    }

    #[test]
    fn a_document_without_kind_or_name_is_named_in_the_error() {
        let err = parse("addon.yaml", "apiVersion: v1\nkind: A\nmetadata: {name: x}\n---\napiVersion: v1\nmetadata: {name: y}\n")
            .unwrap_err();
        assert_eq!(err.to_string(), "addon.yaml: document 2: kind: required");
        let err = parse(
            "addon.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "addon.yaml: document 1: metadata.name: required"
        );
        let err = parse("addon.yaml", "a: [\n").unwrap_err();
        assert!(
            err.to_string().starts_with("addon.yaml: document 1: "),
            "{err}"
        );
    }
}
