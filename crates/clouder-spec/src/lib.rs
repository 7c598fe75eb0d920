//! The declarative cluster spec (`apiVersion: clouder.io/v1alpha1`, `kind: Cluster`): its types,
//! defaults, validation with file/line/column errors, and JSON Schema.
//!
//! A spec is loaded once, validated before any cloud call, and then treated as the single desired
//! state: CLI flags of `clouder kubeadm create` build the same [`Cluster`].

mod error;
mod locate;
mod types;
pub mod validate;

pub use error::{SpecError, SpecErrors};
pub use types::*;
pub use validate::dns_label;

/// The `apiVersion` every spec carries.
pub const API_VERSION: &str = "clouder.io/v1alpha1";

/// Parses and validates a spec. `file` only names the source in errors.
///
/// # Errors
/// Every problem found, each with the file, line, column and field path.
pub fn parse(file: &str, text: &str) -> Result<Cluster, SpecErrors> {
    let mut spec: Cluster = from_yaml(file, text)?;
    spec.apply_defaults();
    validate::check(&spec).map_err(|problems| locate(file, text, problems))?;
    Ok(spec)
}

/// Locates problems found after deserializing (field path, message) in the YAML `text` they came
/// from; each points at its field, or at the nearest parent written in the source.
pub fn locate(file: &str, text: &str, problems: Vec<(String, String)>) -> SpecErrors {
    let index = locate::index(text);
    SpecErrors(
        problems
            .into_iter()
            .map(|(path, message)| {
                let (line, column) = locate::find(&index, &path).unwrap_or((0, 0));
                SpecError {
                    file: file.to_string(),
                    line,
                    column,
                    path,
                    message,
                }
            })
            .collect(),
    )
}

/// Validates a spec that was built in code (from CLI flags), after filling defaults.
///
/// # Errors
/// Every problem found; `file` names where the values came from (e.g. `command line`).
pub fn finish(mut spec: Cluster, origin: &str) -> Result<Cluster, SpecErrors> {
    spec.apply_defaults();
    validate::check(&spec).map_err(|problems| {
        SpecErrors(
            problems
                .into_iter()
                .map(|(path, message)| SpecError {
                    file: origin.to_string(),
                    line: 0,
                    column: 0,
                    path,
                    message,
                })
                .collect(),
        )
    })?;
    Ok(spec)
}

/// Deserializes a YAML document of any clouder file; a failure names the file, line, column and
/// field path as spec errors do.
pub fn from_yaml<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, SpecErrors> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let (line, column) = inner
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let message = strip_location(&inner.to_string());
        SpecErrors(vec![SpecError {
            file: file.to_string(),
            line,
            column,
            path: if path == "." || path == "?" {
                String::new()
            } else {
                path
            },
            message,
        }])
    })
}

/// serde_yaml_ng appends "at line L column C" and prefixes the path; we report both ourselves.
fn strip_location(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    match message.split_once(": ") {
        Some((head, rest)) if !head.contains(' ') => rest.to_string(),
        _ => message.to_string(),
    }
}

/// The JSON Schema of the spec, as `clouder kubeadm schema` prints it.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Cluster)).expect("schema serializes")
}
