//! Renders a release into objects: YAML from its source, `${NAME}` replaced by its values, parsed
//! and checked, namespaced objects put in the release's namespace. Every failure is bad input,
//! reported with the file (and line) it comes from before anything is applied.

use crate::manifest::{self, ObjectRef};
use crate::services::file::{Release, Source, is_variable};
use crate::services::helm::Renderer;
use crate::services::oci;
use clouder_spec::{SpecError, SpecErrors};
use kube::api::DynamicObject;
use std::collections::BTreeMap;
use std::path::Path;

/// A release's objects, ready to apply.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub release: Release,
    pub objects: Vec<DynamicObject>,
}

/// The YAML texts of a release's source, each with the name errors use.
pub async fn fetch(
    release: &Release,
    helm: &dyn Renderer,
) -> Result<Vec<(String, String)>, SpecErrors> {
    let at_source = |message: String| {
        SpecErrors(vec![SpecError {
            message,
            ..release.origin.clone()
        }])
    };
    match &release.source {
        Source::Manifests(dir) => read_dir(dir).map_err(at_source),
        Source::Oci(reference) => {
            let reference = oci::Reference::parse(reference).map_err(at_source)?;
            oci::pull(&reference).await.map_err(at_source)
        }
        Source::Helm(chart) => {
            let text = helm
                .template(&release.name, &release.namespace, chart, &release.values)
                .await
                .map_err(at_source)?;
            Ok(vec![(format!("helm template {}", chart.chart), text)])
        }
    }
}

/// The directory's .yaml/.yml/.json files, sorted by path, subdirectories included.
fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", d.display()))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if ["yaml", "yml", "json"]
                .iter()
                .any(|e| path.extension().is_some_and(|x| x == *e))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(format!(
            "no .yaml, .yml or .json files in {}",
            dir.display()
        ));
    }
    found
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}

/// `${NAME}` replaced by `values[NAME]`; `$${` stands for a literal `${`. A name that has no
/// value, or an unterminated `${`, is an error at its line and column.
pub fn substitute(
    name: &str,
    text: &str,
    values: &BTreeMap<String, serde_json::Value>,
) -> Result<String, SpecError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let offset = text.len() - rest.len() + at;
        let fail = |message: String| {
            let before = &text[..offset];
            SpecError {
                file: name.to_string(),
                line: before.matches('\n').count() + 1,
                column: offset - before.rfind('\n').map_or(0, |n| n + 1) + 1,
                path: String::new(),
                message,
            }
        };
        let end = rest[at..]
            .find('}')
            .ok_or_else(|| fail("`${` without a closing `}`".into()))?;
        let var = &rest[at + 2..at + end];
        if !is_variable(var) {
            return Err(fail(format!("`${{{var}}}` is not a variable name")));
        }
        let value = values.get(var).ok_or_else(|| {
            let known: Vec<&str> = values.keys().map(String::as_str).collect();
            fail(format!(
                "unknown variable ${{{var}}} (values: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        match value {
            serde_json::Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Substitutes (for manifests and OCI sources; Helm had the values already) and parses.
pub fn objects(
    release: &Release,
    texts: Vec<(String, String)>,
) -> Result<Vec<DynamicObject>, SpecErrors> {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for (name, text) in texts {
        let text = if matches!(release.source, Source::Helm(_)) {
            text
        } else {
            match substitute(&name, &text, &release.values) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            }
        };
        match manifest::parse(&name, &text) {
            Ok(found) => objects.extend(found),
            Err(crate::Error::Manifest {
                source_name,
                document,
                message,
            }) => problems.push(SpecError {
                file: source_name,
                line: 0,
                column: 0,
                path: format!("document {document}"),
                message,
            }),
            Err(e) => unreachable!("parsing only fails on a document: {e}"),
        }
    }
    if !problems.is_empty() {
        return Err(SpecErrors(problems));
    }
    let mut seen = std::collections::HashSet::new();
    for o in &objects {
        let r = ObjectRef::of(o);
        if !seen.insert(r.clone()) {
            problems.push(SpecError {
                message: format!("{r} is in the release twice"),
                ..release.origin.clone()
            });
        }
    }
    if !problems.is_empty() {
        return Err(SpecErrors(problems));
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn variables_are_replaced_and_unknown_ones_located() {
        let values: BTreeMap<String, serde_json::Value> = [
            ("replicas".to_string(), json!(3)),
            ("host".to_string(), json!("a.example")),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            substitute("f", "r: ${replicas}\nh: ${host} $${literal}\n", &values).unwrap(),
            "r: 3\nh: a.example ${literal}\n"
        );
        let err = substitute("dir/a.yaml", "a: 1\nb: x-${hots}\n", &values).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dir/a.yaml:2:6: unknown variable ${hots} (values: host, replicas)"
        );
        let err = substitute("f", "a: ${oops\n", &values).unwrap_err();
        assert_eq!(err.to_string(), "f:1:4: `${` without a closing `}`");
    }
}
