//! The services file (`services.yaml`, `kind: Services`): which releases, from where, in which
//! order. Checked whole before anything is rendered; every problem names its file, line and field.
//!
//! ```yaml
//! apiVersion: clouder.io/v1alpha1
//! kind: Services
//! releases:
//! - name: cert-manager            # one of the platform's services: its tier is known
//!   namespace: cert-manager
//!   source: {helm: {repo: https://charts.jetstack.io, chart: cert-manager, version: 1.16.2}}
//!   values: {crds: {enabled: true}}
//!   gate:                         # default: every Deployment/DaemonSet/StatefulSet rolls out in 300s
//!     timeout: 5m
//!     condition: {apiVersion: cert-manager.io/v1, kind: ClusterIssuer, name: letsencrypt, type: Ready}
//! - name: ingress
//!   namespace: ingress
//!   source: {oci: registry.example.com/platform/ingress:4.11.3}   # layers: YAML or tgz
//!   values: {replicas: 2}         # ${replicas} in the manifests
//!   dependsOn: [cert-manager]
//! - name: billing
//!   namespace: billing
//!   tier: core                    # system or core; required for other names
//!   version: 2.3.0                # pinned; required for a manifests source
//!   source: {manifests: ./billing}
//! ```

use clouder_spec::{SpecError, SpecErrors};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const API_VERSION: &str = "clouder.io/v1alpha1";
pub const KIND: &str = "Services";

/// The platform's services in their default order; a release with one of these names needs no
/// `tier`, and a wave lists its releases in this order (then in the file's).
pub const SYSTEM: [&str; 5] = [
    "ingress",
    "cert-manager",
    "observability",
    "messaging",
    "storage",
];
pub const CORE: [&str; 9] = [
    "iam",
    "operator",
    "runtimes",
    "library",
    "spacer",
    "ai-agents",
    "manager",
    "status",
    "scheduler",
];

const DEFAULT_GATE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    api_version: String,
    kind: String,
    #[serde(default)]
    releases: Vec<ReleaseSpec>,
}

/// One release as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReleaseSpec {
    name: String,
    namespace: String,
    #[serde(default)]
    tier: Option<Tier>,
    source: SourceSpec,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    values: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    gate: GateSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    System,
    Core,
}

/// `source:` as written: exactly one of the three.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSpec {
    #[serde(default)]
    manifests: Option<PathBuf>,
    #[serde(default)]
    oci: Option<String>,
    #[serde(default)]
    helm: Option<HelmChart>,
}

impl SourceSpec {
    fn one(&self) -> Result<Source, (&'static str, String)> {
        match (&self.manifests, &self.oci, &self.helm) {
            (Some(dir), None, None) => Ok(Source::Manifests(dir.clone())),
            (None, Some(r), None) => Ok(Source::Oci(r.clone())),
            (None, None, Some(h)) => Ok(Source::Helm(h.clone())),
            _ => Err((
                "source",
                "give exactly one of manifests, oci or helm".into(),
            )),
        }
    }
}

/// Where a release's manifests come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// A local directory of YAML files (relative to the services file).
    Manifests(PathBuf),
    /// `REGISTRY/REPO:TAG` (or `@sha256:…`): an OCI artifact whose layers are YAML or tgz.
    Oci(String),
    /// A chart rendered by `helm template`.
    Helm(HelmChart),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HelmChart {
    pub repo: String,
    pub chart: String,
    pub version: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GateSpec {
    /// `90s`, `5m`, `1h`.
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    condition: Option<ConditionGate>,
}

/// Healthy once this object's condition `type` is `True`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConditionGate {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// Defaults to the release's namespace for namespaced kinds.
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(rename = "type")]
    pub type_: String,
}

/// What a release must reach before the next wave starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gate {
    /// Every Deployment, DaemonSet and StatefulSet rolls out within this.
    pub timeout: Duration,
    pub condition: Option<ConditionGate>,
}

/// A checked release: tier, version and source resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub tier: Tier,
    pub version: String,
    pub source: Source,
    pub values: BTreeMap<String, serde_json::Value>,
    pub depends_on: Vec<String>,
    pub gate: Gate,
    /// 0-based; releases of one wave do not depend on each other.
    pub wave: usize,
    /// Where the release is written (`services.yaml:12:5`), for errors about its source.
    #[serde(skip)]
    pub origin: SpecError,
}

/// A checked services file: its releases wave by wave.
#[derive(Debug, Clone)]
pub struct Services {
    pub file: PathBuf,
    /// In rollout order: by wave, then the platform's order, then the file's.
    pub releases: Vec<Release>,
}

impl Services {
    pub fn waves(&self) -> Vec<Vec<&Release>> {
        let mut waves: Vec<Vec<&Release>> = Vec::new();
        for r in &self.releases {
            if waves.len() <= r.wave {
                waves.resize_with(r.wave + 1, Vec::new);
            }
            waves[r.wave].push(r);
        }
        waves
    }

    pub fn get(&self, name: &str) -> Option<&Release> {
        self.releases.iter().find(|r| r.name == name)
    }
}

/// Reads and checks a services file.
pub fn load(file: &Path) -> Result<Services, SpecErrors> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| {
        SpecErrors(vec![SpecError {
            file: shown.clone(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    let base = file.parent().unwrap_or(Path::new("."));
    parse(&shown, &text, base)
}

/// Parses and checks a services file's text; relative manifest directories resolve against `base`.
pub fn parse(file: &str, text: &str, base: &Path) -> Result<Services, SpecErrors> {
    let doc: Document = clouder_spec::from_yaml(file, text)?;
    let mut problems = Vec::new();
    if doc.api_version != API_VERSION {
        problems.push(("apiVersion".into(), format!("must be {API_VERSION}")));
    }
    if doc.kind != KIND {
        problems.push(("kind".into(), format!("must be {KIND}")));
    }
    let mut releases = Vec::new();
    for (i, spec) in doc.releases.iter().enumerate() {
        let at = |field: &str| format!("releases[{i}].{field}");
        let mut problem = |field: &str, message: String| problems.push((at(field), message));
        if let Err(e) = clouder_spec::dns_label(&spec.name, 53) {
            problem("name", e);
        }
        if doc.releases[..i].iter().any(|r| r.name == spec.name) {
            problem("name", format!("release {} is listed twice", spec.name));
        }
        if let Err(e) = clouder_spec::dns_label(&spec.namespace, 63) {
            problem("namespace", e);
        }
        let tier = spec.tier.or_else(|| default_tier(&spec.name));
        if tier.is_none() {
            problem(
                "tier",
                format!(
                    "required (system or core) for {}, which is not one of the platform's services",
                    spec.name
                ),
            );
        }
        let (source, version) = spec
            .source
            .one()
            .and_then(|s| resolve_source(&s, spec.version.as_deref(), base))
            .unwrap_or_else(|(field, message)| {
                problem(field, message);
                (Source::Manifests(PathBuf::new()), String::new())
            });
        let timeout = match &spec.gate.timeout {
            None => DEFAULT_GATE_TIMEOUT,
            Some(t) => parse_duration(t).unwrap_or_else(|| {
                problem(
                    "gate.timeout",
                    format!("`{t}` is not a duration like 90s, 5m or 1h"),
                );
                DEFAULT_GATE_TIMEOUT
            }),
        };
        for (d, dep) in spec.depends_on.iter().enumerate() {
            let field = format!("dependsOn[{d}]");
            match doc.releases.iter().find(|r| &r.name == dep) {
                None => problem(&field, format!("unknown release {dep}")),
                Some(r)
                    if tier == Some(Tier::System)
                        && r.tier.or_else(|| default_tier(&r.name)) == Some(Tier::Core) =>
                {
                    problem(
                        &field,
                        format!(
                            "system release {} cannot depend on core release {dep}: system services deploy first",
                            spec.name
                        ),
                    )
                }
                Some(_) => {}
            }
        }
        for (key, value) in &spec.values {
            if !is_variable(key) {
                problem(
                    &format!("values.{key}"),
                    "a value's name is letters, digits and _ (it is used as ${NAME})".into(),
                );
            } else if (value.is_object() || value.is_array() || value.is_null())
                && spec.source.helm.is_none()
            {
                problem(
                    &format!("values.{key}"),
                    "manifest values are substituted as text: use a string, number or boolean"
                        .into(),
                );
            }
        }
        releases.push(Release {
            name: spec.name.clone(),
            namespace: spec.namespace.clone(),
            tier: tier.unwrap_or(Tier::Core),
            version,
            source,
            values: spec.values.clone(),
            depends_on: spec.depends_on.clone(),
            gate: Gate {
                timeout,
                condition: spec.gate.condition.clone(),
            },
            wave: 0,
            origin: SpecError {
                file: file.to_string(),
                line: 0,
                column: 0,
                path: format!("releases[{i}].source"),
                message: String::new(),
            },
        });
    }
    if problems.is_empty()
        && let Err((i, cycle)) = assign_waves(&mut releases)
    {
        problems.push((
            format!("releases[{i}].dependsOn"),
            format!("cyclic dependencies: {}", cycle.join(" → ")),
        ));
    }
    if !problems.is_empty() {
        return Err(clouder_spec::locate(file, text, problems));
    }
    // Locate each release's source once, for errors found while rendering it.
    let index = clouder_spec::locate(
        file,
        text,
        releases
            .iter()
            .map(|r| (r.origin.path.clone(), String::new()))
            .collect(),
    );
    for (r, located) in releases.iter_mut().zip(index.0) {
        r.origin = located;
    }
    let platform = |name: &str| {
        SYSTEM
            .iter()
            .chain(CORE.iter())
            .position(|n| *n == name)
            .unwrap_or(usize::MAX)
    };
    // Stable: the file's order breaks ties.
    releases.sort_by_key(|r| (r.wave, platform(&r.name)));
    Ok(Services {
        file: PathBuf::from(file),
        releases,
    })
}

fn default_tier(name: &str) -> Option<Tier> {
    if SYSTEM.contains(&name) {
        Some(Tier::System)
    } else if CORE.contains(&name) {
        Some(Tier::Core)
    } else {
        None
    }
}

pub(crate) fn is_variable(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The source with its directory resolved, and the pinned version: `version` for manifests, the
/// tag (or digest) for OCI, the chart version for Helm.
fn resolve_source(
    source: &Source,
    version: Option<&str>,
    base: &Path,
) -> Result<(Source, String), (&'static str, String)> {
    let pinned = match source {
        Source::Manifests(dir) => {
            let full = base.join(dir);
            if !full.is_dir() {
                return Err((
                    "source.manifests",
                    format!("no directory {}", full.display()),
                ));
            }
            let v = version.ok_or((
                "version",
                "required for a manifests source (the version recorded with each revision)".into(),
            ))?;
            return Ok((Source::Manifests(full), v.to_string()));
        }
        Source::Oci(reference) => crate::services::oci::Reference::parse(reference)
            .map_err(|e| ("source.oci", e))?
            .pin()
            .to_string(),
        Source::Helm(chart) => {
            if chart.repo.is_empty() || chart.chart.is_empty() {
                return Err(("source.helm", "repo and chart are required".into()));
            }
            let exact = !chart.version.is_empty()
                && chart
                    .version
                    .trim_start_matches('v')
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c))
                && chart.version.contains('.');
            if !exact {
                return Err((
                    "source.helm.version",
                    format!(
                        "`{}` is not a pinned chart version (like 1.16.2)",
                        chart.version
                    ),
                ));
            }
            chart.version.clone()
        }
    };
    match version {
        Some(v) if v != pinned => Err((
            "version",
            format!("{v} differs from the version the source pins ({pinned})"),
        )),
        _ => Ok((source.clone(), pinned)),
    }
}

fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = text[..split].parse().ok()?;
    let unit = match &text[split..] {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    Some(Duration::from_secs(n * unit))
}

/// Waves: a release goes one wave after its latest dependency, and core releases after every
/// system one. A cycle is returned as the index of a release on it and the names along it.
fn assign_waves(releases: &mut [Release]) -> Result<(), (usize, Vec<String>)> {
    let by_name: HashMap<&str, usize> = releases
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = releases
        .iter()
        .map(|r| r.depends_on.iter().map(|d| by_name[d.as_str()]).collect())
        .collect();
    let mut depth: Vec<Option<usize>> = vec![None; releases.len()];
    let mut path = Vec::new();
    for tier in [Tier::System, Tier::Core] {
        let floor = depth.iter().flatten().map(|d| d + 1).max().unwrap_or(0);
        for i in 0..releases.len() {
            if releases[i].tier == tier {
                visit(i, floor, &deps, &mut depth, &mut path).map_err(|cycle| {
                    let names = cycle.iter().map(|&c| releases[c].name.clone()).collect();
                    (cycle[0], names)
                })?;
            }
        }
    }
    for (r, d) in releases.iter_mut().zip(depth) {
        r.wave = d.expect("every release visited");
    }
    Ok(())
}

fn visit(
    i: usize,
    floor: usize,
    deps: &[Vec<usize>],
    depth: &mut [Option<usize>],
    path: &mut Vec<usize>,
) -> Result<usize, Vec<usize>> {
    if let Some(d) = depth[i] {
        return Ok(d);
    }
    if let Some(start) = path.iter().position(|&p| p == i) {
        let mut cycle = path[start..].to_vec();
        cycle.push(i);
        return Err(cycle);
    }
    path.push(i);
    let mut d = floor;
    for &dep in &deps[i] {
        d = d.max(visit(dep, floor, deps, depth, path)? + 1);
    }
    path.pop();
    depth[i] = Some(d);
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Services, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("m")).unwrap();
        parse("services.yaml", text, dir.path()).map_err(|e| e.to_string())
    }

    const HEAD: &str = "apiVersion: clouder.io/v1alpha1\nkind: Services\nreleases:\n";

    fn release(name: &str, extra: &str) -> String {
        format!(
            "- name: {name}\n  namespace: {name}\n  version: '1.0'\n  source: {{manifests: m}}\n{extra}"
        )
    }

    #[test]
    fn waves_follow_dependencies_and_core_comes_after_system() {
        let text = format!(
            "{HEAD}{}{}{}{}{}",
            release("manager", "  dependsOn: [iam]\n"),
            release("iam", ""),
            release("cert-manager", ""),
            release("ingress", "  dependsOn: [cert-manager]\n"),
            release("observability", ""),
        );
        let services = check(&text).unwrap();
        let waves: Vec<Vec<&str>> = services
            .waves()
            .iter()
            .map(|w| w.iter().map(|r| r.name.as_str()).collect())
            .collect();
        assert_eq!(
            waves,
            [
                vec!["cert-manager", "observability"],
                vec!["ingress"],
                vec!["iam"],
                vec!["manager"]
            ]
        );
        assert_eq!(services.get("iam").unwrap().tier, Tier::Core);
        assert_eq!(
            services.get("ingress").unwrap().gate.timeout,
            Duration::from_secs(300)
        );
    }

    #[test]
    fn a_cycle_is_named_where_it_is_written() {
        let text = format!(
            "{HEAD}{}{}{}",
            release("iam", "  dependsOn: [manager]\n"),
            release("manager", "  dependsOn: [status]\n"),
            release("status", "  dependsOn: [iam]\n"),
        );
        assert_eq!(
            check(&text).unwrap_err(),
            "services.yaml:8:3: releases[0].dependsOn: cyclic dependencies: iam → manager → status → iam"
        );
    }

    #[test]
    fn bad_releases_are_all_reported_with_their_lines() {
        let text = format!(
            "{HEAD}{}- name: web\n  namespace: Web\n  source: {{manifests: nowhere}}\n  values: {{list: [1]}}\n  gate: {{timeout: soon}}\n{}{}",
            release("iam", "  dependsOn: [ghost]\n"),
            release("ingress", "  dependsOn: [iam]\n"),
            "- name: x\n  namespace: x\n  tier: core\n  source: {oci: 'localhost:5000/x'}\n",
        );
        let err = check(&text).unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        let expected = [
            "services.yaml:8:15: releases[0].dependsOn[0]: unknown release ghost",
            "services.yaml:10:14: releases[1].namespace: `Web` is not a DNS-1123 label",
            "services.yaml:9:3: releases[1].tier: required (system or core) for web",
            "services.yaml:11:23: releases[1].source.manifests: no directory ",
            "services.yaml:13:19: releases[1].gate.timeout: `soon` is not a duration like 90s, 5m or 1h",
            "services.yaml:12:12: releases[1].values.list: manifest values are substituted as text",
            "services.yaml:18:15: releases[2].dependsOn[0]: system release ingress cannot depend on core release iam",
            "services.yaml:22:17: releases[3].source.oci: `localhost:5000/x`: pin a tag or digest",
        ];
        for (line, start) in lines.iter().zip(expected) {
            assert!(
                line.starts_with(start),
                "{line}\nshould start with\n{start}"
            );
        }
        assert_eq!(lines.len(), 8, "{err}");
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        let err = check(&format!("{HEAD}- name: a\n  namespce: a\n")).unwrap_err();
        assert!(
            err.starts_with("services.yaml:5:3: releases[0].namespce: unknown field `namespce`"),
            "{err}"
        );
        let err = check("apiVersion: v1\nkind: Cluster\n").unwrap_err();
        assert_eq!(
            err,
            "services.yaml:1:13: apiVersion: must be clouder.io/v1alpha1\nservices.yaml:2:7: kind: must be Services"
        );
    }

    #[test]
    fn versions_are_pinned() {
        let helm = |v: &str| {
            format!(
                "{HEAD}- name: ingress\n  namespace: i\n  source: {{helm: {{repo: 'https://charts.example', chart: ingress-nginx, version: '{v}'}}}}\n"
            )
        };
        assert_eq!(
            check(&helm("4.11.3")).unwrap().releases[0].version,
            "4.11.3"
        );
        assert!(
            check(&helm("^4.11"))
                .unwrap_err()
                .contains("not a pinned chart version")
        );
        let oci = format!(
            "{HEAD}- name: ingress\n  namespace: i\n  version: '2'\n  source: {{oci: 'localhost:5000/x:1'}}\n"
        );
        assert!(
            check(&oci)
                .unwrap_err()
                .contains("releases[0].version: 2 differs from the version the source pins (1)"),
        );
        assert!(
            check(&format!(
                "{HEAD}- name: ingress\n  namespace: i\n  source: {{manifests: m}}\n"
            ))
            .unwrap_err()
            .contains("releases[0].version: required")
        );
    }
}
