//! The `Table` form of objects, with the columns `kubectl get` shows for the common resources.

use crate::resources::ResourceType;
use serde_json::{Value, json};

/// One column: its header, type, and how to compute its cell.
struct Column {
    name: &'static str,
    kind: &'static str,
    cell: fn(&Value) -> Value,
    /// 1 for the columns only `-o wide` shows.
    priority: u8,
}

fn col(name: &'static str, cell: fn(&Value) -> Value) -> Column {
    Column {
        name,
        kind: "string",
        cell,
        priority: 0,
    }
}

fn int(name: &'static str, cell: fn(&Value) -> Value) -> Column {
    Column {
        kind: "integer",
        ..col(name, cell)
    }
}

fn wide(name: &'static str, cell: fn(&Value) -> Value) -> Column {
    Column {
        priority: 1,
        ..col(name, cell)
    }
}

fn or_none(v: &Value) -> Value {
    match v.as_str() {
        Some(s) if !s.is_empty() => json!(s),
        _ => json!("<none>"),
    }
}

fn number(o: &Value, path: &[&str]) -> Value {
    let mut v = o;
    for p in path {
        v = &v[*p];
    }
    json!(v.as_i64().unwrap_or(0))
}

/// One field of each of the template's containers, comma-separated, as the workload printers show.
fn template_containers(o: &Value, field: &str) -> Value {
    let values: Vec<&str> = o["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c[field].as_str())
        .collect();
    json!(values.join(","))
}

fn containers(o: &Value) -> Value {
    template_containers(o, "name")
}

fn images(o: &Value) -> Value {
    template_containers(o, "image")
}

fn selector(o: &Value) -> Value {
    let labels: Vec<String> = o["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    json!(labels.join(","))
}

/// `READY` of a workload: ready replicas of the desired ones.
fn ready_of_desired(o: &Value) -> Value {
    let ready = o["status"]["readyReplicas"].as_i64().unwrap_or(0);
    json!(format!(
        "{ready}/{}",
        o["spec"]["replicas"].as_i64().unwrap_or(1)
    ))
}

fn node_address(o: &Value, kind: &str) -> Value {
    let addr = o["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == kind);
    or_none(addr.map_or(&Value::Null, |a| &a["address"]))
}

fn name(o: &Value) -> Value {
    o["metadata"]["name"].clone()
}

fn age(o: &Value) -> Value {
    let created = o["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    match created {
        Some(t) => json!(human_duration(
            jiff::Timestamp::now().as_second() - t.as_second()
        )),
        None => json!("<unknown>"),
    }
}

/// Kubernetes' `duration.HumanDuration`: `45s`, `3m10s`, `5h`, `2d3h`, `1y20d`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < 0 {
        return "0s".into();
    }
    let (minutes, hours) = (seconds / 60, seconds / 3600);
    let with = |big: i64, unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{small_unit}")
        }
    };
    match () {
        _ if seconds < 120 => format!("{seconds}s"),
        _ if minutes < 10 => with(minutes, "m", seconds % 60, "s"),
        _ if minutes < 180 => format!("{minutes}m"),
        _ if hours < 8 => with(hours, "h", minutes % 60, "m"),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 24 * 8 => with(hours / 24, "d", hours % 24, "h"),
        _ if hours < 24 * 365 * 2 => format!("{}d", hours / 24),
        _ if hours < 24 * 365 * 8 => with(hours / 24 / 365, "y", (hours / 24) % 365, "d"),
        _ => format!("{}y", hours / 24 / 365),
    }
}

fn count(v: &Value) -> i64 {
    v.as_object().map_or(0, |m| m.len() as i64)
}

fn columns(rt: &ResourceType) -> Option<Vec<Column>> {
    let cols = match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => vec![
            col("Name", name),
            col("Ready", |o| {
                let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
                let statuses = o["status"]["containerStatuses"].as_array();
                let ready = statuses.map_or(0, |s| s.iter().filter(|c| c["ready"] == true).count());
                json!(format!("{ready}/{total}"))
            }),
            col("Status", |o| {
                if o["metadata"].get("deletionTimestamp").is_some() {
                    return json!("Terminating");
                }
                o["status"]["phase"].clone()
            }),
            Column {
                name: "Restarts",
                kind: "integer",
                priority: 0,
                cell: |o| {
                    let statuses = o["status"]["containerStatuses"].as_array();
                    json!(statuses.map_or(0, |s| {
                        s.iter()
                            .filter_map(|c| c["restartCount"].as_i64())
                            .sum::<i64>()
                    }))
                },
            },
            col("Age", age),
            wide("IP", |o| or_none(&o["status"]["podIP"])),
            wide("Node", |o| or_none(&o["spec"]["nodeName"])),
            wide("Nominated Node", |o| {
                or_none(&o["status"]["nominatedNodeName"])
            }),
            wide("Readiness Gates", |_| json!("<none>")),
        ],
        ("", "nodes") => vec![
            col("Name", name),
            col("Status", |o| {
                let ready = o["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                let mut s = if ready {
                    "Ready".to_string()
                } else {
                    "NotReady".to_string()
                };
                if o["spec"]["unschedulable"] == true {
                    s.push_str(",SchedulingDisabled");
                }
                json!(s)
            }),
            col("Roles", |o| {
                let roles: Vec<&str> = o["metadata"]["labels"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
                    .collect();
                json!(if roles.is_empty() {
                    "<none>".to_string()
                } else {
                    roles.join(",")
                })
            }),
            col("Age", age),
            col("Version", |o| {
                json!(
                    o["status"]["nodeInfo"]["kubeletVersion"]
                        .as_str()
                        .unwrap_or("")
                )
            }),
            wide("Internal-IP", |o| node_address(o, "InternalIP")),
            wide("External-IP", |o| node_address(o, "ExternalIP")),
            wide("OS-Image", |o| o["status"]["nodeInfo"]["osImage"].clone()),
            wide("Kernel-Version", |o| {
                o["status"]["nodeInfo"]["kernelVersion"].clone()
            }),
            wide("Container-Runtime", |o| {
                o["status"]["nodeInfo"]["containerRuntimeVersion"].clone()
            }),
        ],
        ("", "namespaces") => vec![
            col("Name", name),
            col("Status", |o| o["status"]["phase"].clone()),
            col("Age", age),
        ],
        ("", "configmaps") => vec![
            Column {
                name: "Data",
                kind: "integer",
                priority: 0,
                cell: |o| json!(count(&o["data"]) + count(&o["binaryData"])),
            },
            col("Age", age),
        ],
        ("", "secrets") => vec![
            col("Name", name),
            col("Type", |o| o["type"].clone()),
            Column {
                name: "Data",
                kind: "integer",
                priority: 0,
                cell: |o| json!(count(&o["data"])),
            },
            col("Age", age),
        ],
        ("apps", "deployments") => vec![
            col("Name", name),
            col("Ready", ready_of_desired),
            Column {
                name: "Up-to-date",
                kind: "integer",
                priority: 0,
                cell: |o| json!(o["status"]["updatedReplicas"].as_i64().unwrap_or(0)),
            },
            Column {
                name: "Available",
                kind: "integer",
                priority: 0,
                cell: |o| json!(o["status"]["availableReplicas"].as_i64().unwrap_or(0)),
            },
            col("Age", age),
            wide("Containers", containers),
            wide("Images", images),
            wide("Selector", selector),
        ],
        ("apps", "replicasets") => vec![
            col("Name", name),
            int("Desired", |o| number(o, &["spec", "replicas"])),
            int("Current", |o| number(o, &["status", "replicas"])),
            int("Ready", |o| number(o, &["status", "readyReplicas"])),
            col("Age", age),
            wide("Containers", containers),
            wide("Images", images),
            wide("Selector", selector),
        ],
        ("apps", "daemonsets") => vec![
            col("Name", name),
            int("Desired", |o| {
                number(o, &["status", "desiredNumberScheduled"])
            }),
            int("Current", |o| {
                number(o, &["status", "currentNumberScheduled"])
            }),
            int("Ready", |o| number(o, &["status", "numberReady"])),
            int("Up-to-date", |o| {
                number(o, &["status", "updatedNumberScheduled"])
            }),
            int("Available", |o| number(o, &["status", "numberAvailable"])),
            col("Node Selector", |o| {
                let sel: Vec<String> = o["spec"]["template"]["spec"]["nodeSelector"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect();
                or_none(&json!(sel.join(",")))
            }),
            col("Age", age),
            wide("Containers", containers),
            wide("Images", images),
            wide("Selector", selector),
        ],
        ("apps", "statefulsets") => vec![
            col("Name", name),
            col("Ready", ready_of_desired),
            col("Age", age),
            wide("Containers", containers),
            wide("Images", images),
        ],
        _ => return None,
    };
    Some(cols)
}

/// A custom resource's Table as apiextensions-apiserver's tableconvertor makes it: Name, then
/// the CRD's `additionalPrinterColumns` (default: Age); a path that finds nothing is a null
/// cell, a `date` cell is the human age.
fn custom_table(rt: &ResourceType, items: &[Value], meta: Value) -> Value {
    let age = crate::resources::PrinterColumn {
        name: "Age".into(),
        kind: "date".into(),
        json_path: ".metadata.creationTimestamp".into(),
        priority: 0,
    };
    let columns = if rt.printer_columns.is_empty() {
        std::slice::from_ref(&age)
    } else {
        rt.printer_columns.as_slice()
    };
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}),
    ];
    defs.extend(columns.iter().map(|c| {
        json!({"name": c.name, "type": c.kind, "format": "", "description": "", "priority": c.priority})
    }));
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut cells = vec![name(o)];
            cells.extend(columns.iter().map(|c| {
                match (json_path(o, &c.json_path), c.kind.as_str()) {
                    (None, _) => Value::Null,
                    (Some(v), "date") => match v.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
                        Some(t) => json!(human_duration(jiff::Timestamp::now().as_second() - t.as_second())),
                        None => Value::Null,
                    },
                    (Some(Value::String(s)), _) => json!(s),
                    (Some(v), "string") => json!(v.to_string()),
                    (Some(v), _) => v.clone(),
                }
            }));
            json!({
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]},
            })
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": defs, "rows": rows})
}

/// The first value the simple JSONPath CRDs allow finds: `.a.b`, `[N]`, `[*]` and filters
/// `[?(@.field=="value")]`.
fn json_path<'a>(o: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = vec![o];
    let mut rest = path.trim().trim_start_matches('{').trim_end_matches('}');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let (inside, tail) = (&after[..end], &after[end + 1..]);
            let items = current
                .iter()
                .flat_map(|v| v.as_array().into_iter().flatten());
            current = if inside == "*" {
                items.collect()
            } else if let Some(filter) = inside
                .strip_prefix("?(@.")
                .and_then(|f| f.strip_suffix(')'))
            {
                let (field, value) = filter.split_once("==")?;
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                items
                    .filter(|i| i[field.trim()].as_str() == Some(value))
                    .collect()
            } else {
                let n: usize = inside.parse().ok()?;
                current.iter().filter_map(|v| v.get(n)).collect()
            };
            rest = tail;
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let field = &after[..end];
            current = current.iter().filter_map(|v| v.get(field)).collect();
            rest = &after[end..];
        } else {
            return None;
        }
    }
    current.into_iter().next()
}

/// A `meta.k8s.io/v1` Table; resources without their own columns get the server's default.
pub fn table(rt: &ResourceType, items: &[Value], meta: Value) -> Value {
    if rt.custom {
        return custom_table(rt, items, meta);
    }
    let mut cols = columns(rt).unwrap_or_else(|| {
        vec![
            col("Name", name),
            Column {
                name: "Created At",
                kind: "date",
                priority: 0,
                cell: |o| o["metadata"]["creationTimestamp"].clone(),
            },
        ]
    });
    if cols.first().is_none_or(|c| c.name != "Name") {
        cols.insert(0, col("Name", name));
    }
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| {
            let format = if c.name == "Name" { "name" } else { "" };
            json!({"name": c.name, "type": c.kind, "format": format, "description": "", "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|c| (c.cell)(o)).collect();
            json!({
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]},
            })
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubectl() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (50 * 3600, "2d2h"),
            (400 * 86400, "400d"),
            (800 * 86400, "2y70d"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn simple_json_paths() {
        let o = json!({"spec": {"endpoint": "https://x"}, "status": {"conditions": [
            {"type": "Stale", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(json_path(&o, ".spec.endpoint"), Some(&json!("https://x")));
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(
            json_path(&o, ".status.conditions[0].type"),
            Some(&json!("Stale"))
        );
        assert_eq!(
            json_path(&o, ".status.conditions[*].type"),
            Some(&json!("Stale"))
        );
        assert_eq!(json_path(&o, ".status.missing"), None);
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Gone\")].status"),
            None
        );
    }

    #[test]
    fn pod_columns() {
        let rt = crate::resources::builtin()
            .into_iter()
            .find(|t| t.plural == "pods")
            .unwrap();
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{}, {}]}, "status": {"phase": "Running", "containerStatuses": [{"ready": true, "restartCount": 2}]}});
        let t = table(&rt, &[pod], json!({}));
        assert_eq!(
            t["rows"][0]["cells"].as_array().unwrap()[..4],
            [json!("p"), json!("1/2"), json!("Running"), json!(2)]
        );
    }
}
