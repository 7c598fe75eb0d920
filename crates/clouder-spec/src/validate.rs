//! Semantic checks that serde cannot express; each problem is a (field path, message) pair.

use crate::{API_VERSION, AptSource, ArchiveSource, Cluster, Provider, Role, Source, Storage};
use ipnet::Ipv4Net;

pub type Problems = Vec<(String, String)>;

/// Longest cluster name: cloud names such as `NAME-api` (load balancer, ≤ 32) derive from it.
pub const MAX_NAME_LEN: usize = 28;
const MAX_NODES: u32 = 5000;
/// Images every provider knows by name.
pub const IMAGE_ALIASES: [&str; 3] = ["Ubuntu2204", "Ubuntu2404", "Debian12"];

pub fn check(cluster: &Cluster) -> Result<(), Problems> {
    let mut p = Problems::new();
    let mut bad = |path: &str, msg: String| p.push((path.to_string(), msg));

    if cluster.api_version != API_VERSION {
        bad(
            "apiVersion",
            format!("must be `{API_VERSION}`, found `{}`", cluster.api_version),
        );
    }
    if cluster.kind != "Cluster" {
        bad(
            "kind",
            format!("must be `Cluster`, found `{}`", cluster.kind),
        );
    }
    if let Err(why) = dns_label(&cluster.metadata.name, MAX_NAME_LEN) {
        bad("metadata.name", why);
    }

    let spec = &cluster.spec;
    if let Some(region) = &spec.region
        && (region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        bad("spec.region", format!("`{region}` is not a region name"));
    }

    if spec.provider == Provider::Azure {
        check_azure(cluster, &mut bad);
    } else if spec.resource_group.is_some() {
        bad(
            "spec.resourceGroup",
            "applies to provider azure only".into(),
        );
    }

    let net = &spec.network;
    let cidrs = [
        ("spec.network.vpcCidr", net.vpc_cidr),
        ("spec.network.subnetCidr", net.subnet_cidr),
        ("spec.network.podCidr", net.pod_cidr),
        ("spec.network.serviceCidr", net.service_cidr),
    ];
    for (path, cidr) in cidrs {
        if let Err(why) = network_address(cidr) {
            bad(path, why);
        }
    }
    if !(16..=28).contains(&net.vpc_cidr.prefix_len()) {
        bad(
            "spec.network.vpcCidr",
            "prefix must be between /16 and /28".into(),
        );
    }
    if !net.vpc_cidr.contains(&net.subnet_cidr) {
        bad(
            "spec.network.subnetCidr",
            format!(
                "{} is not inside the VPC CIDR {}",
                net.subnet_cidr, net.vpc_cidr
            ),
        );
    }
    let disjoint = [
        (
            "spec.network.podCidr",
            net.pod_cidr,
            "vpcCidr",
            net.vpc_cidr,
        ),
        (
            "spec.network.serviceCidr",
            net.service_cidr,
            "vpcCidr",
            net.vpc_cidr,
        ),
        (
            "spec.network.serviceCidr",
            net.service_cidr,
            "podCidr",
            net.pod_cidr,
        ),
    ];
    for (path, a, other, b) in disjoint {
        if overlaps(a, b) {
            bad(
                path,
                format!("{a} overlaps {other} {b}; the networks must be disjoint"),
            );
        }
    }

    for (i, cidr) in spec.admin_cidrs.iter().enumerate() {
        if let Err(why) = network_address(*cidr) {
            bad(&format!("spec.adminCidrs[{i}]"), why);
        }
    }
    if spec.admin_cidrs.is_empty() && spec.provider != Provider::Ssh {
        bad(
            "spec.adminCidrs",
            "required: name the networks allowed to reach SSH and the API server \
             (--admin-cidr CIDR, e.g. your address/32); 0.0.0.0/0 must be given explicitly"
                .into(),
        );
    }

    let cp = &spec.control_plane;
    if cp.count == 0 {
        bad("spec.controlPlane.count", "must be at least 1".into());
    } else if cp.count > 9 {
        bad(
            "spec.controlPlane.count",
            format!(
                "{} control planes is more than etcd supports well (at most 9)",
                cp.count
            ),
        );
    }
    check_disk(&mut bad, "spec.controlPlane.osDiskGb", cp.os_disk_gb);

    let mut seen = std::collections::BTreeSet::new();
    for (i, pool) in spec.node_pools.iter().enumerate() {
        let at = format!("spec.nodePools[{i}]");
        if let Err(why) = dns_label(&pool.name, 20) {
            bad(&format!("{at}.name"), why);
        }
        if !seen.insert(&pool.name) {
            bad(
                &format!("{at}.name"),
                format!("pool `{}` is defined twice", pool.name),
            );
        }
        check_disk(&mut bad, &format!("{at}.osDiskGb"), pool.os_disk_gb);
        for (key, value) in &pool.labels {
            if let Err(why) = qualified_name(key) {
                bad(&format!("{at}.labels.{key}"), why);
            }
            if value.len() > 63
                || !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                bad(
                    &format!("{at}.labels.{key}"),
                    format!("`{value}` is not a valid label value"),
                );
            }
        }
        for (j, taint) in pool.taints.iter().enumerate() {
            if let Err(why) = qualified_name(&taint.key) {
                bad(&format!("{at}.taints[{j}].key"), why);
            }
        }
    }
    let total = cp.count + cluster.worker_count();
    if total > MAX_NODES {
        bad(
            "spec.nodePools",
            format!("{total} nodes is more than the supported {MAX_NODES}"),
        );
    }

    if let Err(why) = k8s_version(&spec.kubernetes.version) {
        bad("spec.kubernetes.version", why);
    }
    check_hosts(cluster, &mut bad);
    for (name, source) in [
        ("containerd", &spec.sources.containerd),
        ("criu", &spec.sources.criu),
        ("kubernetes", &spec.sources.kubernetes),
    ] {
        let at = format!("spec.sources.{name}");
        match source {
            None => {}
            Some(Source {
                apt: Some(apt),
                archive: None,
            }) => check_apt_source(&format!("{at}.apt"), apt, &mut bad),
            Some(Source {
                apt: None,
                archive: Some(archive),
            }) if name != "criu" => {
                check_archive_source(&format!("{at}.archive"), archive, &mut bad)
            }
            Some(Source {
                apt: None,
                archive: Some(_),
            }) => bad(
                &format!("{at}.archive"),
                "CRIU takes an `apt` repository only (its binary needs the libraries its package brings)"
                    .into(),
            ),
            Some(Source { apt, .. }) => bad(
                &at,
                format!(
                    "give exactly one of `apt` (a package repository) or `archive` (a tarball of binaries), {}",
                    if apt.is_some() {
                        "not both"
                    } else {
                        "found neither"
                    }
                ),
            ),
        }
    }
    if let Some(cni) = &spec.sources.cni {
        let m = &cni.manifest;
        if !url_or_absolute_path(m) {
            bad(
                "spec.sources.cni.manifest",
                format!("`{m}` is neither an http(s):// URL nor an absolute file path"),
            );
        }
    }
    if let Some(fs) = &spec.addons.efs_file_system_id {
        if spec.provider != Provider::Aws {
            bad(
                "spec.addons.efsFileSystemId",
                "EFS exists on AWS only".into(),
            );
        } else if !fs.starts_with("fs-") || fs.len() < 11 {
            bad(
                "spec.addons.efsFileSystemId",
                format!("`{fs}` is not an EFS file system id (fs-…)"),
            );
        }
    }
    if let Some(cm) = &spec.addons.cert_manager {
        if cm.issuer == crate::types::IssuerKind::Acme
            && !cm.email.as_deref().is_some_and(|e| e.contains('@'))
        {
            bad(
                "spec.addons.certManager.email",
                "an ACME issuer needs a contact email".into(),
            );
        }
        if let Err(why) = dns_label(&cm.issuer_name, 63) {
            bad("spec.addons.certManager.issuerName", why);
        }
    }
    let alias = IMAGE_ALIASES.contains(&spec.image.as_str());
    match spec.provider {
        Provider::Aws if !alias && !spec.image.starts_with("ami-") => bad(
            "spec.image",
            format!(
                "`{}` is neither an image alias ({}) nor an AMI id (ami-…)",
                spec.image,
                IMAGE_ALIASES.join(", ")
            ),
        ),
        _ if spec.image.trim().is_empty() => bad("spec.image", "must not be empty".into()),
        _ => {}
    }
    if !spec
        .admin_user
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c))
        || spec.admin_user.len() > 32
    {
        bad(
            "spec.adminUser",
            format!("`{}` is not a valid login name", spec.admin_user),
        );
    }

    if let Some(storage) = &spec.storage {
        check_storage(storage, &mut bad);
    }

    if p.is_empty() { Ok(()) } else { Err(p) }
}

/// One backend, sizes Kubernetes understands, a plain absolute mount path.
fn check_storage(storage: &Storage, bad: &mut impl FnMut(&str, String)) {
    match (&storage.nfs, &storage.ceph) {
        (Some(_), Some(_)) => bad("spec.storage", "choose one of `nfs` or `ceph`".into()),
        (None, None) => bad("spec.storage", "needs `nfs` or `ceph`".into()),
        (Some(nfs), None) => match (&nfs.in_cluster, &nfs.existing) {
            (Some(server), None) => {
                if let Err(why) = quantity(&server.size) {
                    bad("spec.storage.nfs.inCluster.size", why);
                }
            }
            (None, Some(export)) => {
                if export.server.trim().is_empty() {
                    bad(
                        "spec.storage.nfs.existing.server",
                        "must not be empty".into(),
                    );
                }
                if !plain_absolute(&export.path) {
                    bad(
                        "spec.storage.nfs.existing.path",
                        format!("`{}` is not an absolute path without `..`", export.path),
                    );
                }
            }
            _ => bad(
                "spec.storage.nfs",
                "choose one of `inCluster` or `existing`".into(),
            ),
        },
        (None, Some(_)) => {}
    }
    for (path, value) in [
        ("spec.storage.capacity", &storage.capacity),
        ("spec.storage.defaultQuota", &storage.default_quota),
    ] {
        if let Err(why) = quantity(value) {
            bad(path, why);
        }
    }
    if let Err(why) = dns_label(&storage.namespace, 63) {
        bad("spec.storage.namespace", why);
    }
    if !plain_absolute(&storage.mount_path) || storage.mount_path == "/" {
        bad(
            "spec.storage.mountPath",
            format!(
                "`{}` is not an absolute path below / without `..`",
                storage.mount_path
            ),
        );
    }
    if !(1..=i64::from(i32::MAX)).contains(&storage.fs_group) {
        bad(
            "spec.storage.fsGroup",
            format!("{} is not a group id (1 to 2147483647)", storage.fs_group),
        );
    }
}

/// A size as Kubernetes writes it: digits and an optional binary or decimal suffix.
fn quantity(value: &str) -> Result<(), String> {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &value[digits.len()..];
    let units = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "k", "M", "G", "T", "P"];
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || !units.contains(&unit) {
        return Err(format!("`{value}` is not a size (e.g. 500Gi, 1Ti)"));
    }
    Ok(())
}

fn plain_absolute(path: &str) -> bool {
    path.starts_with('/') && !path.split('/').any(|part| part == ".." || part == ".")
}

/// `provider: ssh` clusters name their machines; cloud clusters must not.
fn check_hosts(cluster: &Cluster, bad: &mut impl FnMut(&str, String)) {
    let spec = &cluster.spec;
    if spec.provider != Provider::Ssh {
        if !spec.hosts.is_empty() {
            bad(
                "spec.hosts",
                format!(
                    "hosts are for `provider: ssh`; {} creates its own machines",
                    spec.provider.as_str()
                ),
            );
        }
        return;
    }
    if !spec.hosts.iter().any(|h| h.role == Role::ControlPlane) {
        bad(
            "spec.hosts",
            "at least one host needs `role: control-plane`".into(),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, host) in spec.hosts.iter().enumerate() {
        let at = format!("spec.hosts[{i}]");
        if host.address.trim().is_empty() || host.address.contains(char::is_whitespace) {
            bad(
                &format!("{at}.address"),
                format!("`{}` is not a host address", host.address),
            );
        }
        if !seen.insert((host.address.clone(), host.port)) {
            bad(
                &format!("{at}.address"),
                format!("{}:{} is listed twice", host.address, host.port),
            );
        }
        if let Some(p) = &host.provenance
            && !["ssh", "onprem", "laptop"].contains(&p.as_str())
        {
            bad(
                &format!("{at}.provenance"),
                format!("`{p}` is not a provenance for your own host (ssh, onprem, laptop)"),
            );
        }
        if let Some(pool) = &host.pool {
            if host.role == Role::ControlPlane {
                bad(
                    &format!("{at}.pool"),
                    "control-plane hosts belong to no worker pool".into(),
                );
            } else if !spec.node_pools.iter().any(|p| &p.name == pool) {
                bad(
                    &format!("{at}.pool"),
                    format!("no node pool named `{pool}` in spec.nodePools"),
                );
            }
        }
    }
}

fn check_disk(bad: &mut impl FnMut(&str, String), path: &str, gb: u32) {
    if !(30..=16384).contains(&gb) {
        bad(path, format!("{gb} GB is outside 30..16384"));
    }
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn network_address(cidr: Ipv4Net) -> Result<(), String> {
    if cidr.addr() == cidr.network() {
        Ok(())
    } else {
        Err(format!(
            "{cidr} has host bits set; did you mean {}?",
            cidr.trunc()
        ))
    }
}

/// RFC 1123 label: lowercase alphanumerics and `-`, starting and ending alphanumeric.
pub fn dns_label(name: &str, max: usize) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a DNS-1123 label: 1 to {max} lowercase letters, digits or '-', \
             starting and ending with a letter or digit"
        ))
    }
}

/// A Kubernetes label or taint key: optional DNS subdomain prefix, `/`, a name of ≤ 63 chars.
fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok =
        prefix.is_none_or(|p| p.len() <= 253 && p.split('.').all(|l| dns_label(l, 63).is_ok()));
    if name_ok && prefix_ok {
        Ok(())
    } else {
        Err(format!(
            "`{key}` is not a valid key (prefix/name, e.g. example.com/role)"
        ))
    }
}

fn k8s_version(version: &str) -> Result<(), String> {
    let bare = version.strip_prefix('v').unwrap_or(version);
    let parts: Vec<&str> = bare.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if !(2..=3).contains(&parts.len()) || !numeric {
        return Err(format!(
            "`{version}` is not a version (expected MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 1.32)"
        ));
    }
    let minor: u32 = parts[1].parse().unwrap_or(0);
    if parts[0] != "1" || !(28..=40).contains(&minor) {
        return Err(format!(
            "`{version}` is not a supported Kubernetes version (1.28 or newer)"
        ));
    }
    Ok(())
}

/// An `http(s)://` URL, or an absolute path to a file; no whitespace either way.
fn url_or_absolute_path(s: &str) -> bool {
    let url = s.starts_with("https://") || s.starts_with("http://");
    let path = s.starts_with('/') && !s.ends_with('/');
    (url || path) && !s.chars().any(char::is_whitespace)
}

fn check_archive_source(at: &str, archive: &ArchiveSource, bad: &mut impl FnMut(&str, String)) {
    if !url_or_absolute_path(&archive.url) {
        bad(
            &format!("{at}.url"),
            format!(
                "`{}` is neither an http(s):// URL nor an absolute path on the host",
                archive.url
            ),
        );
    }
    let sha = &archive.sha256;
    if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        bad(
            &format!("{at}.sha256"),
            format!("`{sha}` is not a SHA-256 digest (64 hexadecimal digits)"),
        );
    }
}

fn check_apt_source(at: &str, apt: &AptSource, bad: &mut impl FnMut(&str, String)) {
    let url = |s: &str| {
        ["http://", "https://", "file:/"]
            .iter()
            .any(|p| s.starts_with(p))
    };
    if !url(&apt.uri) {
        bad(
            &format!("{at}.uri"),
            format!("`{}` is not an http(s):// or file:/ URL", apt.uri),
        );
    }
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:~+".contains(c))
    };
    if !word(&apt.suite) {
        bad(
            &format!("{at}.suite"),
            format!("`{}` is not a suite name", apt.suite),
        );
    } else if apt.suite.ends_with('/') != apt.components.is_empty() {
        bad(
            &format!("{at}.components"),
            "a flat repository (suite ending in `/`) has no components; any other suite needs at least one".into(),
        );
    }
    for (i, c) in apt.components.iter().enumerate() {
        if !word(c) {
            bad(
                &format!("{at}.components[{i}]"),
                format!("`{c}` is not a component name"),
            );
        }
    }
    if let Some(key) = &apt.key
        && !url(key)
    {
        bad(
            &format!("{at}.key"),
            format!("`{key}` is not an http(s):// or file:/ URL"),
        );
    }
    for (i, p) in apt.packages.iter().flatten().enumerate() {
        let package = p.len() > 1
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
        if !package {
            bad(
                &format!("{at}.packages[{i}]"),
                format!("`{p}` is not a Debian package name"),
            );
        }
    }
    if apt.packages.as_ref().is_some_and(Vec::is_empty) {
        bad(
            &format!("{at}.packages"),
            "must name at least one package".into(),
        );
    }
}

/// Azure names: locations are lowercase words (`eastus`), sizes `Standard_…`/`Basic_…`,
/// images an alias, a `publisher:offer:sku:version` URN or an image resource id.
fn check_azure(cluster: &Cluster, bad: &mut impl FnMut(&str, String)) {
    let spec = &cluster.spec;
    if let Some(region) = &spec.region
        && !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        bad(
            "spec.region",
            format!(
                "`{region}` is not an Azure location (lowercase letters and digits, e.g. eastus, westeurope)"
            ),
        );
    }
    let size_ok = |s: &str| {
        let rest = s
            .strip_prefix("Standard_")
            .or_else(|| s.strip_prefix("Basic_"));
        rest.is_some_and(|r| {
            !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let sizes = std::iter::once((
        "spec.controlPlane.size".to_string(),
        &spec.control_plane.size,
    ))
    .chain(
        spec.node_pools
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("spec.nodePools[{i}].size"), &p.size)),
    );
    for (path, size) in sizes {
        if !size_ok(size) {
            bad(
                &path,
                format!("`{size}` is not an Azure VM size (e.g. Standard_B4ms, Standard_D4s_v5)"),
            );
        }
    }
    let image = spec.image.as_str();
    if !(IMAGE_ALIASES.contains(&image)
        || image.starts_with("/subscriptions/")
        || (image.split(':').count() == 4 && image.split(':').all(|p| !p.is_empty())))
    {
        bad(
            "spec.image",
            format!(
                "`{image}` is neither an image alias ({}), a publisher:offer:sku:version URN, nor an image resource id",
                IMAGE_ALIASES.join(", ")
            ),
        );
    }
    if let Some(rg) = &spec.resource_group
        && (rg.is_empty()
            || rg.len() > 90
            || rg.ends_with('.')
            || !rg
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.()".contains(c)))
    {
        bad(
            "spec.resourceGroup",
            format!(
                "`{rg}` is not a resource group name (1-90 letters, digits, -_.(), not ending in .)"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for ok in ["1.32", "v1.32.3", "1.28.0"] {
            assert!(k8s_version(ok).is_ok(), "{ok}");
        }
        for bad in ["1", "1.x", "2.1", "1.20", "1.32.3.4", "latest"] {
            assert!(k8s_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_keys() {
        assert!(qualified_name("role.datalayer.io/runtime").is_ok());
        assert!(qualified_name("app").is_ok());
        assert!(qualified_name("Bad_Prefix/x").is_err());
        assert!(qualified_name("x/").is_err());
    }
}
