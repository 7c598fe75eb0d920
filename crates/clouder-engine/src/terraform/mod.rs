//! Terraform JSON (`*.tf.json`) rendered from the graph apply executes: each [`Resource`]
//! contributes its own blocks through [`Resource::terraform`], the provider adds its header
//! (required providers, variables, outputs). Maps are sorted, so rendering is deterministic.
//!
//! Syntax: <https://developer.hashicorp.com/terraform/language/syntax/json>.

pub mod references;

use crate::{Error, Graph};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

type Blocks = BTreeMap<String, BTreeMap<String, Value>>;

/// One Terraform configuration, by top-level block kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Terraform {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub terraform: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub provider: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub variable: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub locals: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: Blocks,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub resource: Blocks,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub output: BTreeMap<String, Value>,
}

/// Inserts `value` under `key`; the same key twice is fine only with the same value (several
/// graph resources may render one block, e.g. the machines of a pool one `count`ed instance).
fn put(
    map: &mut BTreeMap<String, Value>,
    what: &str,
    key: &str,
    value: Value,
) -> Result<(), Error> {
    match map.get(key) {
        Some(old) if *old != value => Err(Error::permanent(format!(
            "Terraform {what} `{key}` rendered twice, differently"
        ))),
        _ => {
            map.insert(key.to_string(), value);
            Ok(())
        }
    }
}

impl Terraform {
    pub fn resource(mut self, kind: &str, name: &str, body: Value) -> Result<Self, Error> {
        let blocks = self.resource.entry(kind.to_string()).or_default();
        put(blocks, &format!("resource {kind}"), name, body)?;
        Ok(self)
    }

    pub fn data(mut self, kind: &str, name: &str, body: Value) -> Result<Self, Error> {
        let blocks = self.data.entry(kind.to_string()).or_default();
        put(blocks, &format!("data {kind}"), name, body)?;
        Ok(self)
    }

    pub fn variable(mut self, name: &str, body: Value) -> Result<Self, Error> {
        put(&mut self.variable, "variable", name, body)?;
        Ok(self)
    }

    pub fn local(mut self, name: &str, value: Value) -> Result<Self, Error> {
        put(&mut self.locals, "local", name, value)?;
        Ok(self)
    }

    pub fn output(mut self, name: &str, body: Value) -> Result<Self, Error> {
        put(&mut self.output, "output", name, body)?;
        Ok(self)
    }

    /// Adds everything of `other`, refusing conflicting blocks.
    pub fn merge(mut self, other: Terraform) -> Result<Self, Error> {
        for (k, v) in other.terraform {
            put(&mut self.terraform, "terraform setting", &k, v)?;
        }
        for (k, v) in other.provider {
            put(&mut self.provider, "provider", &k, v)?;
        }
        for (k, v) in other.variable {
            put(&mut self.variable, "variable", &k, v)?;
        }
        for (k, v) in other.locals {
            put(&mut self.locals, "local", &k, v)?;
        }
        for (kind, blocks) in other.data {
            for (name, body) in blocks {
                self = self.data(&kind, &name, body)?;
            }
        }
        for (kind, blocks) in other.resource {
            for (name, body) in blocks {
                self = self.resource(&kind, &name, body)?;
            }
        }
        for (k, v) in other.output {
            put(&mut self.output, "output", &k, v)?;
        }
        Ok(self)
    }

    /// The files of a module directory: `versions.tf.json` (terraform and provider blocks),
    /// `variables.tf.json`, `main.tf.json` (locals, data and resources), `outputs.tf.json`.
    pub fn files(&self) -> Vec<(&'static str, String)> {
        let part = |t: Terraform| {
            let value = sorted(serde_json::to_value(t).expect("JSON values"));
            serde_json::to_string_pretty(&value).expect("JSON values") + "\n"
        };
        vec![
            (
                "versions.tf.json",
                part(Terraform {
                    terraform: self.terraform.clone(),
                    provider: self.provider.clone(),
                    ..Default::default()
                }),
            ),
            (
                "variables.tf.json",
                part(Terraform {
                    variable: self.variable.clone(),
                    ..Default::default()
                }),
            ),
            (
                "main.tf.json",
                part(Terraform {
                    locals: self.locals.clone(),
                    data: self.data.clone(),
                    resource: self.resource.clone(),
                    ..Default::default()
                }),
            ),
            (
                "outputs.tf.json",
                part(Terraform {
                    output: self.output.clone(),
                    ..Default::default()
                }),
            ),
        ]
    }
}

/// `value` with every object's keys in order, whether or not serde_json preserves insertion
/// order in this build.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The variables and local of a pool's machine indexes, as the spec numbers them
/// (`NodePool::indexes` in clouder-spec): the first `count` indexes not retired by a drained
/// scale-down, so machines keep their names. Blocks take `for_each` over
/// `local.POOL_indexes` (as strings) and name machines by `each.key`.
pub fn pool_indexes(pool_local: &str, count: u32, retired: &[u32]) -> Result<Terraform, Error> {
    let (count_var, retired_var) = (
        format!("{pool_local}_count"),
        format!("{pool_local}_retired"),
    );
    Terraform::default()
        .variable(
            &count_var,
            serde_json::json!({
                "type": "number",
                "description": format!("Machines in pool {pool_local}"),
                "default": count,
            }),
        )?
        .variable(
            &retired_var,
            serde_json::json!({
                "type": "list(number)",
                "description": format!("Indexes of pool {pool_local} removed by a scale-down, kept unused so the others keep their names"),
                "default": retired,
            }),
        )?
        .local(
            &format!("{pool_local}_indexes"),
            Value::String(format!(
                "${{slice([for i in range(var.{count_var} + length(var.{retired_var})) : i if !contains(var.{retired_var}, i)], 0, var.{count_var})}}"
            )),
        )
}

/// The local name (the part after the type) of `type.name`.
pub fn local(address: &str) -> &str {
    address.rsplit_once('.').map_or(address, |(_, n)| n)
}

/// `${ADDRESS.ATTR}`: a reference to another block's attribute.
pub fn reference(address: &str, attr: &str) -> String {
    format!("${{{address}.{attr}}}")
}

/// `${var.NAME}`.
pub fn var(name: &str) -> String {
    format!("${{var.{name}}}")
}

/// A pool's Terraform local name: `control-plane` → `control_plane`.
pub fn pool_local(pool: &str) -> String {
    pool.replace('-', "_")
}

/// `for_each` over a pool's indexes (see [`pool_indexes`]).
pub fn for_each_index(pool_local: &str) -> String {
    format!("${{toset([for i in local.{pool_local}_indexes : tostring(i)])}}")
}

/// A list of `ADDRESS[index].ATTR` for every index of the pool, in index order.
pub fn per_index(pool_local: &str, address: &str, attr: &str) -> String {
    format!("${{[for i in local.{pool_local}_indexes : {address}[tostring(i)].{attr}]}}")
}

/// Every resource of `graph`, rendered. A resource without a rendering is an error: an export
/// that silently lacks part of the cluster would be worse than none.
pub fn render(graph: &Graph) -> Result<Terraform, Error> {
    let mut all = Terraform::default();
    let mut resources: Vec<_> = graph.resources().collect();
    resources.sort_by(|a, b| a.id().cmp(b.id()));
    for r in resources {
        let part = r.terraform()?.ok_or_else(|| {
            Error::permanent(format!(
                "{} ({}) has no Terraform rendering yet",
                r.id(),
                r.kind()
            ))
        })?;
        all = all.merge(part)?;
    }
    Ok(all)
}

/// What a clouder-exported module reports through `terraform output -json`: the contract every
/// provider's rendering keeps, and what `import`/`setup --terraform-output` read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TerraformOutputs {
    pub cluster_name: String,
    pub provider: String,
    pub region: String,
    pub ssh_user: String,
    pub api_endpoint: String,
    /// Machines by pool (`control-plane`, `workers`, …), in index order.
    pub nodes: BTreeMap<String, Vec<TerraformNode>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TerraformNode {
    /// The machine's index in its pool (`instance/POOL-INDEX` in the graph).
    pub index: u32,
    pub name: String,
    pub instance_id: String,
    pub private_ip: String,
    pub public_ip: String,
}

impl TerraformOutputs {
    /// Parses the JSON `terraform output -json` prints (`{"NAME": {"value": …, "type": …,
    /// "sensitive": …}}`). `file` names the input in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, Error> {
        let bad = |what: String| Error::permanent(format!("{file}: {what}"));
        let all: serde_json::Map<String, Value> = serde_json::from_str(text)
            .map_err(|e| bad(format!("not `terraform output -json` JSON: {e}")))?;
        let value = |name: &str| {
            all.get(name).and_then(|o| o.get("value")).ok_or_else(|| {
                bad(format!(
                    "no `{name}` output (was the module written by `clouder kubeadm export-terraform`?)"
                ))
            })
        };
        let text_of = |name: &str| -> Result<String, Error> {
            value(name)?
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(format!("output `{name}` is not a string")))
        };
        let mut nodes = BTreeMap::new();
        let pools = value("nodes")?
            .as_object()
            .ok_or_else(|| bad("output `nodes` is not an object of pools".into()))?;
        for (pool, fields) in pools {
            let list = |field: &str| -> Result<Vec<String>, Error> {
                fields
                    .get(field)
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad(format!("output `nodes.{pool}.{field}` is not a list")))?
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        Value::Null => Ok(String::new()),
                        other => Err(bad(format!("output `nodes.{pool}.{field}` holds {other}"))),
                    })
                    .collect()
            };
            let (names, ids, private, public) = (
                list("names")?,
                list("instance_ids")?,
                list("private_ips")?,
                list("public_ips")?,
            );
            if [ids.len(), private.len(), public.len()] != [names.len(); 3] {
                return Err(bad(format!(
                    "output `nodes.{pool}`: names, instance_ids, private_ips and public_ips differ in length"
                )));
            }
            // Modules that number machines past retired indexes say which they are.
            let indexes: Vec<u32> = match fields.get("indexes") {
                None => (0..names.len() as u32).collect(),
                Some(list) => serde_json::from_value(list.clone()).map_err(|_| {
                    bad(format!(
                        "output `nodes.{pool}.indexes` is not a list of indexes"
                    ))
                })?,
            };
            if indexes.len() != names.len() {
                return Err(bad(format!(
                    "output `nodes.{pool}`: indexes and names differ in length"
                )));
            }
            let machines = (0..names.len())
                .map(|i| TerraformNode {
                    index: indexes[i],
                    name: names[i].clone(),
                    instance_id: ids[i].clone(),
                    private_ip: private[i].clone(),
                    public_ip: public[i].clone(),
                })
                .collect();
            nodes.insert(pool.clone(), machines);
        }
        Ok(TerraformOutputs {
            cluster_name: text_of("cluster_name")?,
            provider: text_of("provider")?,
            region: text_of("region")?,
            ssh_user: text_of("ssh_user")?,
            api_endpoint: text_of("api_endpoint")?,
            nodes,
        })
    }
}
