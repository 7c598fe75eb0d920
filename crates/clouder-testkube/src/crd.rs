//! CustomResourceDefinitions: their defaults and status, the resource types they serve, and
//! validation and pruning of custom resources against `openAPIV3Schema`.

use crate::resources::ResourceType;
use crate::status::ApiError;
use crate::store::Inner;
use serde_json::{Value, json};

pub const GROUP: &str = "apiextensions.k8s.io";
pub const PLURAL: &str = "customresourcedefinitions";

pub fn is_crd(rt: &ResourceType) -> bool {
    rt.group == GROUP && rt.plural == PLURAL
}

/// What the API server fills in on a new CRD, and the status that says it is being served.
pub fn defaults(crd: &mut Value, now: &str) {
    let names = &mut crd["spec"]["names"];
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    if names["listKind"].is_null() {
        names["listKind"] = json!(format!("{kind}List"));
    }
    if names["singular"].is_null() {
        names["singular"] = json!(kind.to_lowercase());
    }
    if crd["spec"]["conversion"].is_null() {
        crd["spec"]["conversion"] = json!({"strategy": "None"});
    }
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    let condition = |t: &str, reason: &str, message: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
    crd["status"] = json!({
        "acceptedNames": crd["spec"]["names"].clone(),
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": stored,
    });
}

/// 422 unless the CRD's name is `<plural>.<group>`.
pub fn check_name(crd: &Value) -> Result<(), ApiError> {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let want = format!(
        "{}.{}",
        crd["spec"]["names"]["plural"].as_str().unwrap_or_default(),
        crd["spec"]["group"].as_str().unwrap_or_default()
    );
    if name != want {
        return Err(ApiError::invalid(
            "CustomResourceDefinition",
            GROUP,
            name,
            "metadata.name",
            "FieldValueInvalid",
            &format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    Ok(())
}

/// The resource types the stored CRDs serve, one per served version.
pub fn resource_types(s: &Inner) -> Vec<ResourceType> {
    let mut out = Vec::new();
    for (_, crd) in s.list(GROUP, PLURAL, None) {
        if crd["metadata"].get("deletionTimestamp").is_some() {
            continue;
        }
        let spec = &crd["spec"];
        let names = &spec["names"];
        let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
        for v in spec["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["served"] == true)
        {
            out.push(ResourceType {
                group: str_of(&spec["group"]),
                version: str_of(&v["name"]),
                kind: str_of(&names["kind"]),
                plural: str_of(&names["plural"]),
                singular: str_of(&names["singular"]),
                namespaced: spec["scope"] == "Namespaced",
                short_names: names["shortNames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(str_of)
                    .collect(),
                status: v["subresources"].get("status").is_some(),
                scale: v["subresources"].get("scale").is_some(),
                eviction: false,
                custom: true,
                printer_columns: v["additionalPrinterColumns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| crate::resources::PrinterColumn {
                        name: str_of(&c["name"]),
                        kind: str_of(&c["type"]),
                        json_path: str_of(&c["jsonPath"]),
                        priority: c["priority"].as_u64().unwrap_or(0).min(255) as u8,
                    })
                    .collect(),
            });
        }
    }
    out
}

/// The schema of one served version of the CRD behind a custom resource type.
pub fn schema(s: &Inner, rt: &ResourceType) -> Option<Value> {
    let name = format!("{}.{}", rt.plural, rt.group);
    let key = crate::store::Key {
        group: GROUP.into(),
        version: "v1".into(),
        resource: PLURAL.into(),
        namespace: String::new(),
        name,
    };
    let crd = s.get(&key)?;
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == rt.version.as_str())
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One validation failure: field path, cause reason, and message.
type Failure = (String, &'static str, String);

fn check(schema: &Value, v: &mut Value, path: &str, root: bool) -> Option<Failure> {
    if let Some(want) = schema["type"].as_str() {
        let got = type_name(v);
        let ok = got == want || (want == "number" && got == "integer");
        if !ok {
            let msg = format!(
                "Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""
            );
            return Some((path.to_string(), "FieldValueTypeInvalid", msg));
        }
    }
    if let (Some(min), Some(x)) = (schema["minimum"].as_f64(), v.as_f64())
        && x < min
    {
        let msg =
            format!("Invalid value: {v}: {path} in body should be greater than or equal to {min}");
        return Some((path.to_string(), "FieldValueInvalid", msg));
    }
    if let (Some(max), Some(x)) = (schema["maximum"].as_f64(), v.as_f64())
        && x > max
    {
        let msg =
            format!("Invalid value: {v}: {path} in body should be less than or equal to {max}");
        return Some((path.to_string(), "FieldValueInvalid", msg));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        let msg = format!(
            "Unsupported value: {v}: supported values: {}",
            list.join(", ")
        );
        return Some((path.to_string(), "FieldValueNotSupported", msg));
    }
    let child = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    if let Value::Object(m) = v {
        for r in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !m.contains_key(r) {
                return Some((child(r), "FieldValueRequired", "Required value".into()));
            }
        }
        let props = schema["properties"].as_object();
        let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
        // Unknown fields are pruned, as the real server does for structural schemas.
        if let Some(props) = props
            && !preserve
        {
            m.retain(|k, _| {
                props.contains_key(k)
                    || (root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
            });
        }
        for (k, val) in m.iter_mut() {
            let sub = props
                .and_then(|p| p.get(k))
                .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
            if let Some(sub) = sub
                && !(root && k == "metadata")
                && let Some(f) = check(sub, val, &child(k), false)
            {
                return Some(f);
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (v, schema.get("items")) {
        for (i, item) in items.iter_mut().enumerate() {
            if let Some(f) = check(item_schema, item, &format!("{path}[{i}]"), false) {
                return Some(f);
            }
        }
    }
    None
}

/// Validates and prunes a custom resource against its CRD's schema.
pub fn validate(s: &Inner, rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    let Some(schema) = schema(s, rt).filter(|s| s.is_object()) else {
        return Ok(());
    };
    match check(&schema, obj, "", true) {
        None => Ok(()),
        Some((field, reason, message)) => {
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            Err(ApiError::invalid(
                &rt.kind, &rt.group, &name, &field, reason, &message,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widget_schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {"size": {"type": "integer", "minimum": 1}}},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }})
    }

    #[test]
    fn type_required_and_minimum_failures_read_like_the_real_server() {
        let mut bad_type = json!({"spec": {"size": "big"}});
        let f = check(&widget_schema(), &mut bad_type, "", true).unwrap();
        assert_eq!(f.0, "spec.size");
        assert_eq!(
            f.2,
            "Invalid value: \"string\": spec.size in body must be of type integer: \"string\""
        );
        let mut missing = json!({"spec": {}});
        assert_eq!(
            check(&widget_schema(), &mut missing, "", true).unwrap().1,
            "FieldValueRequired"
        );
        let mut small = json!({"spec": {"size": 0}});
        assert_eq!(
            check(&widget_schema(), &mut small, "", true).unwrap().1,
            "FieldValueInvalid"
        );
    }

    #[test]
    fn unknown_fields_are_pruned_unless_preserved() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"}, "spec": {"size": 1, "extra": 1}, "status": {"any": 1}});
        assert!(check(&widget_schema(), &mut obj, "", true).is_none());
        assert_eq!(obj["spec"], json!({"size": 1}));
        assert_eq!(obj["status"], json!({"any": 1}));
        assert_eq!(obj["metadata"]["name"], "w");
    }
}
