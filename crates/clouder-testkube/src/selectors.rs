//! Label and field selectors as the real server parses them from `labelSelector`/`fieldSelector`.

use serde_json::Value;
use std::collections::BTreeMap;

/// A selector string could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

impl Requirement {
    fn matches(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (Op::Eq(v), Some(x)) => v == x,
            (Op::Eq(_), None) => false,
            // As in the real server: `!=` and `notin` also select objects without the key.
            (Op::NotEq(v), x) => x != Some(v.as_str()),
            (Op::In(vs), Some(x)) => vs.iter().any(|v| v == x),
            (Op::In(_), None) => false,
            (Op::NotIn(vs), x) => x.is_none_or(|x| !vs.iter().any(|v| v == x)),
            (Op::Exists, x) => x.is_some(),
            (Op::NotExists, x) => x.is_none(),
        }
    }
}

/// Splits on commas that are not inside `( … )`.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, SelectorError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError(whole.to_string()))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn parse_requirement(part: &str, allow_sets: bool) -> Result<Requirement, SelectorError> {
    let err = || SelectorError(part.to_string());
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement {
            key: key.trim().to_string(),
            op: Op::NotExists,
        });
    }
    for (sym, ctor) in [
        ("!=", Op::NotEq as fn(String) -> Op),
        ("==", Op::Eq),
        ("=", Op::Eq),
    ] {
        if let Some((k, v)) = part.split_once(sym) {
            return Ok(Requirement {
                key: k.trim().to_string(),
                op: ctor(v.trim().to_string()),
            });
        }
    }
    if allow_sets {
        let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
        if words.len() == 2 {
            let rest = words[1].trim_start();
            if let Some(r) = rest.strip_prefix("notin") {
                return Ok(Requirement {
                    key: words[0].to_string(),
                    op: Op::NotIn(parse_set(r, part)?),
                });
            }
            if let Some(r) = rest.strip_prefix("in") {
                return Ok(Requirement {
                    key: words[0].to_string(),
                    op: Op::In(parse_set(r, part)?),
                });
            }
            return Err(err());
        }
    }
    if part.contains(|c: char| c.is_whitespace() || "()".contains(c)) || part.is_empty() {
        return Err(err());
    }
    Ok(Requirement {
        key: part.to_string(),
        op: Op::Exists,
    })
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        split_top(s)
            .into_iter()
            .map(|p| parse_requirement(p, true))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0
            .iter()
            .all(|r| r.matches(labels.get(&r.key).map(String::as_str)))
    }

    /// Matches an object's `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(&labels_of(obj))
    }
}

/// A structured `metav1.LabelSelector` (`matchLabels` and `matchExpressions`), as in PDBs.
pub fn structured_matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector["matchLabels"].as_object().is_none_or(|m| {
        m.iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
    });
    let exprs_ok = selector["matchExpressions"].as_array().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or_default().to_string();
            let values: Vec<String> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            let op = match e["operator"].as_str() {
                Some("In") => Op::In(values),
                Some("NotIn") => Op::NotIn(values),
                Some("Exists") => Op::Exists,
                Some("DoesNotExist") => Op::NotExists,
                _ => return false,
            };
            Requirement {
                key: key.clone(),
                op,
            }
            .matches(labels.get(&key).map(String::as_str))
        })
    });
    labels_ok && exprs_ok
}

pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A parsed `fieldSelector` over the fields the real server indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<Requirement>);

/// Fields every resource supports, plus the pod and event fields clients select on.
const FIELDS: [&str; 10] = [
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
    "involvedObject.kind",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.uid",
    "reason",
    "type",
];

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let reqs: Vec<Requirement> = split_top(s)
            .into_iter()
            .map(|p| parse_requirement(p, false))
            .collect::<Result<_, _>>()?;
        for r in &reqs {
            if !FIELDS.contains(&r.key.as_str()) || matches!(r.op, Op::Exists | Op::NotExists) {
                return Err(SelectorError(format!(
                    "field label not supported: {}",
                    r.key
                )));
            }
        }
        Ok(Self(reqs))
    }

    pub fn matches_object(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let mut v = obj;
            for seg in r.key.split('.') {
                v = &v[seg];
            }
            // An unset field compares as the empty string, as in the real field sets.
            r.matches(Some(v.as_str().unwrap_or_default()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "n", "labels": labels}, "spec": {"nodeName": "node1"}})
    }

    #[test]
    fn label_selector_operators() {
        let o = obj(json!({"app": "web", "tier": "front"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches_object(&o);
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(!m("app!=web"));
        assert!(m("app in (web, db)"));
        assert!(!m("app notin (web)"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m("missing!=x"));
        assert!(m(""));
        assert!(!m("tier in (back),app=web"));
    }

    #[test]
    fn label_selector_rejects_garbage() {
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b").is_err());
    }

    #[test]
    fn field_selector_supported_fields() {
        let o = obj(json!({}));
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches_object(&o);
        assert!(m("metadata.name=a"));
        assert!(m("spec.nodeName=node1,metadata.namespace!=x"));
        assert!(!m("status.phase=Running"));
        assert!(m("status.phase="));
        assert!(FieldSelector::parse("spec.foo=1").is_err());
    }

    #[test]
    fn structured_selector() {
        let labels = BTreeMap::from([("app".to_string(), "x".to_string())]);
        assert!(structured_matches(
            &json!({"matchLabels": {"app": "x"}}),
            &labels
        ));
        assert!(!structured_matches(
            &json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x"]}]}),
            &labels
        ));
        assert!(structured_matches(&json!({}), &labels));
    }
}
