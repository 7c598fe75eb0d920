//! A check that every reference in a rendered module points at something it declares: the
//! variables, locals, data sources and resources, and the names `for_each` (`each.key`,
//! `each.value`) and `for` expressions bind. Terraform reports a dangling reference only at
//! `validate`, which needs provider plugins; this finds it offline.

use serde_json::Value;
use std::collections::BTreeSet;

/// The Terraform functions renderings call.
const FUNCTIONS: &[&str] = &[
    "contains", "format", "keys", "length", "lookup", "range", "slice", "tostring", "toset",
    "values",
];
/// Keywords of Terraform's expression syntax.
const KEYWORDS: &[&str] = &["for", "in", "if", "true", "false", "null"];

/// A dotted name in an expression (`aws_instance.workers`, `var.region`), with indexes and
/// splats skipped, and whether it is called as a function.
#[derive(Debug, PartialEq, Eq)]
pub struct Reference {
    pub chain: Vec<String>,
    pub called: bool,
}

/// The dotted names of one template expression (the text inside `${…}`).
pub fn references(expr: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut quoted = false;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '"' {
            quoted = !quoted;
        }
        let starts = chars[i].is_ascii_alphabetic() || chars[i] == '_';
        let after_access = i > 0 && matches!(chars[i - 1], '.' | ']' | ')');
        let inside_word = i > 0 && (chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '_');
        if quoted || !starts || after_access || inside_word {
            i += 1;
            continue;
        }
        let mut chain = Vec::new();
        let mut word = String::new();
        while i < chars.len() {
            let c = chars[i];
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                word.push(c);
            } else if c == '.' {
                chain.push(std::mem::take(&mut word));
            } else {
                break;
            }
            i += 1;
        }
        chain.push(word);
        let called = chars.get(i) == Some(&'(');
        out.push(Reference { chain, called });
    }
    out
}

/// Every template expression in `module` (all files merged, as Terraform loads a directory),
/// checked. Returns how many references were found, or each one that points nowhere.
pub fn check(module: &Value) -> Result<usize, Vec<String>> {
    let declared = |section: &str, kind: &str, name: &str| {
        module
            .get(section)
            .and_then(|s| s.get(kind))
            .is_some_and(|k| name.is_empty() || k.get(name).is_some())
    };
    let mut texts = Vec::new();
    for section in ["resource", "data", "output", "provider", "locals"] {
        if let Some(v) = module.get(section) {
            strings(v, &mut texts);
        }
    }
    let (mut checked, mut dangling) = (0, Vec::new());
    for text in texts {
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let Some(end) = rest[start..].find('}').map(|e| e + start) else {
                dangling.push(format!("unclosed template in {text:?}"));
                break;
            };
            let refs = references(&rest[start + 2..end]);
            // `for NAME in` and `for K, V in` bind names for the rest of the expression.
            let mut bound = BTreeSet::new();
            for pair in refs.windows(2) {
                if pair[0].chain == ["for"] {
                    bound.insert(pair[1].chain[0].clone());
                }
            }
            for (n, r) in refs.iter().enumerate() {
                if n > 0 && refs[n - 1].chain == ["for"] {
                    continue;
                }
                let head = r.chain[0].as_str();
                let second = r.chain.get(1).map_or("", String::as_str);
                let ok = match head {
                    _ if r.called => FUNCTIONS.contains(&head),
                    _ if KEYWORDS.contains(&head) || bound.contains(head) => true,
                    "var" => declared("variable", second, ""),
                    "local" => module
                        .get("locals")
                        .is_some_and(|l| l.get(second).is_some()),
                    "data" => declared("data", second, r.chain.get(2).map_or("", String::as_str)),
                    "each" => second == "key" || second == "value",
                    "count" => second == "index",
                    _ if head.contains('_') && !second.is_empty() => {
                        declared("resource", head, second)
                    }
                    _ => false,
                };
                if !ok {
                    dangling.push(format!("`{}` in {text:?}", r.chain.join(".")));
                }
                checked += 1;
            }
            rest = &rest[end + 1..];
        }
    }
    // Plain-string dependencies name resources too.
    let resources = module.get("resource").and_then(Value::as_object);
    for body in resources.into_iter().flat_map(|k| k.values()) {
        for body in body.as_object().into_iter().flat_map(|b| b.values()) {
            for dep in body["depends_on"].as_array().into_iter().flatten() {
                let dep = dep.as_str().unwrap_or_default();
                let (kind, name) = dep.split_once('.').unwrap_or((dep, ""));
                if !declared("resource", kind, name) || name.is_empty() {
                    dangling.push(format!("depends_on {dep}"));
                }
            }
        }
    }
    if dangling.is_empty() {
        Ok(checked)
    } else {
        Err(dangling)
    }
}

/// The files of a module merged into one configuration, as Terraform loads a directory; a
/// block declared twice is an error.
pub fn module(files: &[(&str, String)]) -> Result<Value, String> {
    let mut all = serde_json::Map::new();
    for (name, text) in files {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("{name}: {e}"))?;
        for (k, section) in v.as_object().into_iter().flatten() {
            let slot = all
                .entry(k.clone())
                .or_insert_with(|| Value::Object(Default::default()));
            for (name, body) in section.as_object().into_iter().flatten() {
                if slot.get(name).is_some() {
                    return Err(format!("{k}.{name} declared twice"));
                }
                slot[name] = body.clone();
            }
        }
    }
    Ok(Value::Object(all))
}

/// Resource and data types (`data.` prefixed) with the arguments the provider's docs mark
/// required: `(type, docs path, required)`, and `(type, nested block, required)`.
pub type ProviderDocs<'a> = [(&'a str, &'a str, &'a [&'a str])];
pub type NestedRequired<'a> = [(&'a str, &'a str, &'a [&'a str])];

/// What `module` lacks against the provider's docs: types missing from the table, required
/// arguments missing from a block or its nested blocks, and table types never rendered.
pub fn missing_arguments(
    module: &Value,
    docs: &ProviderDocs<'_>,
    nested: &NestedRequired<'_>,
) -> Vec<String> {
    let mut missing = Vec::new();
    let mut seen = BTreeSet::new();
    for (section, prefix) in [("resource", ""), ("data", "data.")] {
        let kinds = module.get(section).and_then(Value::as_object);
        for (kind, blocks) in kinds.into_iter().flatten() {
            let key = format!("{prefix}{kind}");
            let Some((_, _, required)) = docs.iter().find(|(t, _, _)| *t == key) else {
                missing.push(format!("{key} is not in the provider table"));
                continue;
            };
            seen.insert(key.clone());
            for (name, body) in blocks.as_object().into_iter().flatten() {
                for arg in *required {
                    if body.get(*arg).is_none() {
                        missing.push(format!("{key}.{name} lacks required {arg}"));
                    }
                }
                for (_, block, args) in nested.iter().filter(|(t, _, _)| *t == key) {
                    let items = body[*block].as_array().cloned().unwrap_or_default();
                    if items.is_empty() {
                        missing.push(format!("{key}.{name} lacks the {block} block"));
                    }
                    for item in items {
                        for arg in *args {
                            if item.get(*arg).is_none() {
                                missing.push(format!("{key}.{name}.{block} lacks {arg}"));
                            }
                        }
                    }
                }
            }
        }
    }
    for (kind, _, _) in docs {
        if !seen.contains(*kind) {
            missing.push(format!("{kind} is in the table but not rendered"));
        }
    }
    missing
}

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chains(expr: &str) -> Vec<String> {
        references(expr)
            .iter()
            .map(|r| r.chain.join(".") + if r.called { "()" } else { "" })
            .collect()
    }

    #[test]
    fn names_are_found_with_indexes_splats_and_strings_skipped() {
        assert_eq!(
            chains("toset(var.admin_cidrs)"),
            ["toset()", "var.admin_cidrs"]
        );
        assert_eq!(
            chains("aws_instance.cp[count.index].id"),
            ["aws_instance.cp", "count.index"]
        );
        assert_eq!(
            chains(r#"[for i in local.w_indexes : aws_instance.w[tostring(i)].id]"#),
            [
                "for",
                "i",
                "in",
                "local.w_indexes",
                "aws_instance.w",
                "tostring()",
                "i"
            ]
        );
        assert_eq!(chains(r#"each.key == "0" ? "a-b" : "c""#), ["each.key"]);
    }

    #[test]
    fn a_reference_to_nothing_is_reported_and_bound_names_are_not() {
        let module = json!({
            "variable": {"n": {}},
            "locals": {"w_indexes": "${range(var.n)}"},
            "resource": {
                "aws_instance": {"w": {"for_each": "${toset([for i in local.w_indexes : tostring(i)])}", "tags": {"Name": "w-${each.key}"}}},
                "aws_eip": {"w": {"for_each": "${aws_instance.w}", "instance": "${each.value.id}", "depends_on": ["aws_instance.w"]}},
            },
            "output": {"ids": {"value": "${[for i in local.w_indexes : aws_instance.w[tostring(i)].id]}"}},
        });
        assert!(check(&module).unwrap() >= 10);
        for (bad, named) in [
            (
                json!({"output": {"x": {"value": "${var.missing}"}}}),
                "var.missing",
            ),
            (
                json!({"output": {"x": {"value": "${local.gone}"}}}),
                "local.gone",
            ),
            (
                json!({"output": {"x": {"value": "${aws_lb.api.dns_name}"}}}),
                "aws_lb.api",
            ),
            (
                json!({"output": {"x": {"value": "${frobnicate(1)}"}}}),
                "frobnicate",
            ),
            (
                json!({"output": {"x": {"value": "${each.other}"}}}),
                "each.other",
            ),
            (
                json!({"resource": {"aws_eip": {"e": {"depends_on": ["aws_vpc.main"]}}}}),
                "aws_vpc.main",
            ),
        ] {
            let errors = check(&bad).unwrap_err();
            assert!(
                errors.iter().any(|e| e.contains(named)),
                "{named}: {errors:?}"
            );
        }
    }
}
