//! Node provenance (BYON): every node clouder adds or joins says where it comes from and who
//! owns it. [`labels_and_taints`] is what the bootstrap/join path puts on a node (as kubelet
//! `--node-labels`/`--register-with-taints` or through [`apply`]); a laptop is tainted as
//! non-production unless asked otherwise.

use k8s_openapi::api::core::v1::{Node, Taint};
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use std::collections::BTreeMap;

pub const PROVENANCE: &str = "clouder.io/provenance";
pub const OWNER: &str = "clouder.io/owner";
pub const ENROLLED_AT: &str = "clouder.io/enrolled-at";
/// Keeps production workloads off a laptop unless they tolerate it.
pub const NON_PRODUCTION: &str = "clouder.io/non-production";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provenance {
    Aws,
    Azure,
    Ssh,
    Onprem,
    Laptop,
}

impl Provenance {
    pub const ALL: [Provenance; 5] = [
        Provenance::Aws,
        Provenance::Azure,
        Provenance::Ssh,
        Provenance::Onprem,
        Provenance::Laptop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::Aws => "aws",
            Provenance::Azure => "azure",
            Provenance::Ssh => "ssh",
            Provenance::Onprem => "onprem",
            Provenance::Laptop => "laptop",
        }
    }
}

impl std::str::FromStr for Provenance {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Provenance::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a provenance (aws, azure, ssh, onprem, laptop)"))
    }
}

/// What a node says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub provenance: Provenance,
    /// A person or team; made label-safe.
    pub owner: String,
    pub enrolled_at: jiff::Timestamp,
    /// For a laptop: taint it as non-production (the default). Ignored otherwise.
    pub non_production_taint: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Marks {
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
}

/// Pure: the labels and taints for a node of this origin. Label values are limited to 63 of
/// `[A-Za-z0-9._-]`, so the owner is made safe and the time is `20261125T203901Z`.
pub fn labels_and_taints(origin: &Origin) -> Marks {
    let labels = BTreeMap::from([
        (
            PROVENANCE.to_string(),
            origin.provenance.as_str().to_string(),
        ),
        (OWNER.to_string(), label_value(&origin.owner)),
        (
            ENROLLED_AT.to_string(),
            origin.enrolled_at.strftime("%Y%m%dT%H%M%SZ").to_string(),
        ),
    ]);
    let taints = if origin.provenance == Provenance::Laptop && origin.non_production_taint {
        vec![Taint {
            key: NON_PRODUCTION.into(),
            value: Some("laptop".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        }]
    } else {
        Vec::new()
    };
    Marks { labels, taints }
}

/// `Jane Doe <jane@example.com>` → `Jane_Doe_jane_example.com`: label-safe, at most 63.
pub fn label_value(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    while out.contains("__") {
        out = out.replace("__", "_");
    }
    let out: String = out.chars().take(63).collect();
    out.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// kubelet flags carrying the marks at registration: `--node-labels=…` and
/// `--register-with-taints=…` (kubeadm's `kubeletExtraArgs`).
pub fn kubelet_flags(marks: &Marks) -> Vec<String> {
    let mut flags = vec![format!(
        "--node-labels={}",
        marks
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    )];
    if !marks.taints.is_empty() {
        flags.push(format!(
            "--register-with-taints={}",
            marks
                .taints
                .iter()
                .map(|t| format!(
                    "{}={}:{}",
                    t.key,
                    t.value.as_deref().unwrap_or_default(),
                    t.effect
                ))
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    flags
}

/// Puts the marks on a Node that already joined: labels by merge, taints added to the ones it
/// has (a taint with the same key and effect is replaced).
pub async fn apply(client: &kube::Client, node: &str, marks: &Marks) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let current = nodes.get(node).await?;
    let mut taints = current.spec.and_then(|s| s.taints).unwrap_or_default();
    taints.retain(|t| {
        !marks
            .taints
            .iter()
            .any(|m| m.key == t.key && m.effect == t.effect)
    });
    taints.extend(marks.taints.iter().cloned());
    let patch = serde_json::json!({
        "metadata": {
            "labels": marks.labels,
            "resourceVersion": current.metadata.resource_version,
        },
        "spec": {"taints": taints},
    });
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

/// Node names grouped by provenance (`unknown` for a node without the label), each group
/// sorted: for `clouder kubeadm info`. Takes (name, provenance label) pairs.
pub fn group<'a>(
    nodes: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, provenance) in nodes {
        groups
            .entry(provenance.unwrap_or("unknown").to_string())
            .or_default()
            .push(name.to_string());
    }
    for names in groups.values_mut() {
        names.sort();
    }
    groups
}

/// The (name, provenance label) of a Node, for [`group`].
pub fn of(node: &Node) -> (&str, Option<&str>) {
    (
        node.metadata.name.as_deref().unwrap_or_default(),
        node.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(PROVENANCE))
            .map(String::as_str),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(provenance: Provenance, taint: bool) -> Origin {
        Origin {
            provenance,
            owner: "Jane Doe <jane@example.com>".into(),
            enrolled_at: "2026-11-25T20:39:01Z".parse().unwrap(),
            non_production_taint: taint,
        }
    }

    #[test]
    fn a_laptop_is_labelled_and_tainted_non_production() {
        let marks = labels_and_taints(&origin(Provenance::Laptop, true));
        assert_eq!(
            kubelet_flags(&marks),
            [
                "--node-labels=clouder.io/enrolled-at=20261125T203901Z,clouder.io/owner=Jane_Doe_jane_example.com,clouder.io/provenance=laptop",
                "--register-with-taints=clouder.io/non-production=laptop:NoSchedule",
            ]
        );
        let opted_out = labels_and_taints(&origin(Provenance::Laptop, false));
        assert!(opted_out.taints.is_empty());
    }

    #[test]
    fn only_laptops_are_tainted() {
        for p in [
            Provenance::Aws,
            Provenance::Azure,
            Provenance::Ssh,
            Provenance::Onprem,
        ] {
            let marks = labels_and_taints(&origin(p, true));
            assert!(marks.taints.is_empty(), "{p:?}");
            assert_eq!(marks.labels[PROVENANCE], p.as_str());
        }
        assert!("cloud".parse::<Provenance>().is_err());
        assert_eq!("onprem".parse::<Provenance>(), Ok(Provenance::Onprem));
    }

    #[test]
    fn owners_become_label_safe() {
        assert_eq!(label_value("ops-team"), "ops-team");
        assert_eq!(label_value("  @@x  "), "x");
        assert_eq!(label_value(&"a".repeat(80)).len(), 63);
    }
}
