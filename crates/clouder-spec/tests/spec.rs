//! The spec as users write it: defaults, and every problem reported at once with its place.

use clouder_spec::{Cluster, Provider, parse};

const MINIMAL: &str = "apiVersion: clouder.io/v1alpha1
kind: Cluster
metadata:
  name: demo
spec:
  provider: aws
  adminCidrs: [203.0.113.7/32]
";

#[test]
fn a_minimal_spec_gets_the_documented_defaults() {
    let c = parse("c.yaml", MINIMAL).unwrap();
    let s = &c.spec;
    assert_eq!(s.network.vpc_cidr.to_string(), "10.0.0.0/16");
    assert_eq!(s.network.subnet_cidr.to_string(), "10.0.0.0/24");
    assert_eq!(s.network.pod_cidr.to_string(), "10.244.0.0/16");
    assert_eq!(s.network.service_cidr.to_string(), "10.96.0.0/12");
    assert_eq!(s.kubernetes.version, "1.32");
    assert_eq!(
        (
            s.control_plane.count,
            s.control_plane.size.as_str(),
            s.control_plane.os_disk_gb
        ),
        (1, "t3.large", 100)
    );
    assert_eq!(s.node_pools.len(), 1);
    let workers = &s.node_pools[0];
    assert_eq!(
        (workers.name.as_str(), workers.count, workers.size.as_str()),
        ("workers", 3, "t3.xlarge")
    );
    for (k, v) in clouder_spec::DEFAULT_WORKER_LABELS {
        assert_eq!(workers.labels.get(k).map(String::as_str), Some(v));
    }
    assert_eq!(s.admin_user, "ubuntu");
}

#[test]
fn pool_labels_override_the_defaults_and_keep_the_rest() {
    let text = MINIMAL.to_string()
        + "  nodePools:\n    - name: gpu\n      count: 2\n      labels: {node.datalayer.io/variant: large, team: ml}\n      taints: [{key: nvidia.com/gpu, effect: NoSchedule}]\n";
    let c = parse("c.yaml", &text).unwrap();
    let pool = &c.spec.node_pools[0];
    assert_eq!(pool.labels["node.datalayer.io/variant"], "large");
    assert_eq!(pool.labels["team"], "ml");
    assert_eq!(pool.labels["xpu.datalayer.io/cpu"], "true");
    assert_eq!(c.worker_count(), 2);
}

#[test]
fn every_problem_is_reported_with_file_line_column_and_path() {
    let text = "apiVersion: clouder.io/v1alpha1
kind: Cluster
metadata:
  name: this-name-is-far-too-long-for-cloud-objects
spec:
  provider: aws
  network:
    subnetCidr: 192.168.0.0/24
  controlPlane: {count: 0, osDiskGb: 10}
  nodePools:
    - {name: a, count: 1}
    - {name: a, count: 1}
  kubernetes: {version: latest}
";
    let errors = parse("bad.yaml", text).unwrap_err();
    let shown = errors.to_string();
    for expected in [
        "bad.yaml:4:9: metadata.name",
        "bad.yaml:8:17: spec.network.subnetCidr: 192.168.0.0/24 is not inside the VPC CIDR 10.0.0.0/16",
        "bad.yaml:5:1: spec.adminCidrs: required",
        "bad.yaml:9:25: spec.controlPlane.count: must be at least 1",
        "bad.yaml:9:38: spec.controlPlane.osDiskGb",
        "bad.yaml:12:14: spec.nodePools[1].name: pool `a` is defined twice",
        "bad.yaml:13:25: spec.kubernetes.version",
    ] {
        assert!(
            shown.contains(expected),
            "missing `{expected}` in:\n{shown}"
        );
    }
    assert_eq!(errors.0.len(), 7, "{shown}");
}

#[test]
fn host_bits_and_wrong_kinds_are_refused() {
    let bad_cidr = MINIMAL.replace("[203.0.113.7/32]", "[203.0.113.7/24]");
    let shown = parse("c.yaml", &bad_cidr).unwrap_err().to_string();
    assert!(shown.contains("did you mean 203.0.113.0/24"), "{shown}");
    let wrong_kind = MINIMAL.replace("kind: Cluster", "kind: Deployment");
    assert!(
        parse("c.yaml", &wrong_kind)
            .unwrap_err()
            .to_string()
            .contains("c.yaml:2:7: kind")
    );
    let wrong_type = MINIMAL.replace(
        "  provider: aws",
        "  provider: aws\n  controlPlane: {count: many}",
    );
    let shown = parse("c.yaml", &wrong_type).unwrap_err().to_string();
    assert!(
        shown.starts_with("c.yaml:7:25: spec.controlPlane.count: invalid type"),
        "{shown}"
    );
}

#[test]
fn the_readme_example_is_a_valid_spec() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let yaml = readme
        .split("```yaml\n")
        .nth(1)
        .and_then(|r| r.split("```").next())
        .expect("a yaml block in README");
    let c = parse("README.md", yaml).unwrap();
    assert_eq!(c.name(), "demo");
    assert_eq!(c.spec.node_pools[0].labels["team"], "data");
}

#[test]
fn specs_built_from_flags_are_validated_too() {
    let mut c = Cluster::new("Flags!", Provider::Aws);
    c.spec.admin_cidrs = vec!["203.0.113.7/32".parse().unwrap()];
    let err = clouder_spec::finish(c, "flags").unwrap_err().to_string();
    assert!(err.starts_with("flags: metadata.name"), "{err}");
}

#[test]
fn the_schema_names_every_top_level_field() {
    let schema = clouder_spec::json_schema().to_string();
    for field in [
        "apiVersion",
        "adminCidrs",
        "nodePools",
        "osDiskGb",
        "serviceCidr",
    ] {
        assert!(schema.contains(field), "{field}");
    }
}

#[test]
fn package_sources_are_checked_before_any_host_is_touched() {
    let good = format!(
        "{MINIMAL}  sources:\n    containerd:\n      apt: {{uri: http://deb.debian.org/debian, suite: sid, components: [main], packages: [containerd, runc]}}\n    kubernetes:\n      apt: {{uri: 'https://pkgs.k8s.io/core:/stable:/v1.32/deb/', suite: /, key: 'https://pkgs.k8s.io/core:/stable:/v1.32/deb/Release.key'}}\n"
    );
    let c = parse("s.yaml", &good).unwrap();
    let apt = c.spec.sources.containerd.unwrap().apt.unwrap();
    assert_eq!(apt.packages.unwrap(), ["containerd", "runc"]);

    let bad = format!(
        "{MINIMAL}  sources:\n    criu:\n      apt: {{uri: ftp://mirror, suite: /, components: [main], packages: [Criu]}}\n    kubernetes:\n      tarball: {{url: x}}\n"
    );
    let shown = parse("s.yaml", &bad).unwrap_err().to_string();
    assert!(
        shown.contains(
            "s.yaml:12:7: spec.sources.kubernetes.tarball: unknown field `tarball`, expected `apt` or `archive`"
        ),
        "{shown}"
    );
    let bad = bad.replace("    kubernetes:\n      tarball: {url: x}\n", "");
    let errors = parse("s.yaml", &bad).unwrap_err();
    let shown = errors.to_string();
    for expected in [
        "s.yaml:10:18: spec.sources.criu.apt.uri: `ftp://mirror` is not an http(s):// or file:/ URL",
        "s.yaml:10:42: spec.sources.criu.apt.components: a flat repository",
        "s.yaml:10:73: spec.sources.criu.apt.packages[0]: `Criu` is not a Debian package name",
    ] {
        assert!(
            shown.contains(expected),
            "missing `{expected}` in:\n{shown}"
        );
    }
    assert_eq!(errors.0.len(), 3, "{shown}");
}

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[test]
fn an_archive_source_is_a_url_or_an_absolute_path_with_its_digest() {
    for url in [
        "https://mirror.example/k8s/kubernetes-node-linux-amd64.tar.gz",
        "/srv/mirror/k8s/kubernetes.tar.gz",
    ] {
        let c = parse(
            "s.yaml",
            &format!("{MINIMAL}  sources:\n    kubernetes: {{archive: {{url: '{url}', sha256: {SHA}}}}}\n"),
        )
        .unwrap();
        let source = c.spec.sources.kubernetes.unwrap();
        assert_eq!(source.apt, None);
        let archive = source.archive.unwrap();
        assert_eq!((archive.url.as_str(), archive.sha256.as_str()), (url, SHA));
    }

    let bad = format!(
        "{MINIMAL}  sources:\n    kubernetes:\n      archive: {{url: kubernetes.tar.gz, sha256: abc}}\n    containerd: {{}}\n    criu:\n      apt: {{uri: 'file:/srv/criu/', suite: /}}\n      archive: {{url: /srv/criu.tar.gz, sha256: {SHA}}}\n"
    );
    let errors = parse("s.yaml", &bad).unwrap_err();
    let shown = errors.to_string();
    for expected in [
        "s.yaml:10:22: spec.sources.kubernetes.archive.url: `kubernetes.tar.gz` is neither an http(s):// URL nor an absolute path on the host",
        "s.yaml:10:49: spec.sources.kubernetes.archive.sha256: `abc` is not a SHA-256 digest (64 hexadecimal digits)",
        "s.yaml:11:5: spec.sources.containerd: give exactly one of `apt` (a package repository) or `archive` (a tarball of binaries), found neither",
        "s.yaml:12:5: spec.sources.criu: give exactly one of `apt` (a package repository) or `archive` (a tarball of binaries), not both",
    ] {
        assert!(
            shown.contains(expected),
            "missing `{expected}` in:\n{shown}"
        );
    }
    assert_eq!(errors.0.len(), 4, "{shown}");

    let shown = parse(
        "s.yaml",
        &format!(
            "{MINIMAL}  sources:\n    criu: {{archive: {{url: /srv/criu.tar.gz, sha256: {SHA}}}}}\n"
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(
        shown.contains("s.yaml:9:12: spec.sources.criu.archive: CRIU takes an `apt` repository only (its binary needs the libraries its package brings)"),
        "{shown}"
    );
}

#[test]
fn the_cni_manifest_is_a_url_or_a_path() {
    for manifest in [
        "https://mirror.example/calico/tigera-operator.yaml",
        "/srv/mirror/tigera-operator.yaml",
    ] {
        let c = parse(
            "s.yaml",
            &format!("{MINIMAL}  sources:\n    cni: {{manifest: '{manifest}'}}\n"),
        )
        .unwrap();
        assert_eq!(c.spec.sources.cni.unwrap().manifest, manifest);
    }
    assert_eq!(parse("s.yaml", MINIMAL).unwrap().spec.sources.cni, None);
    let shown = parse(
        "s.yaml",
        &format!("{MINIMAL}  sources:\n    cni: {{manifest: 'ftp://x/op.yaml'}}\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        shown.contains("s.yaml:9:21: spec.sources.cni.manifest: `ftp://x/op.yaml` is neither an http(s):// URL nor an absolute file path"),
        "{shown}"
    );
    let shown = parse(
        "s.yaml",
        &format!("{MINIMAL}  sources:\n    cni: {{url: x}}\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        shown.contains("unknown field `url`, expected `manifest`"),
        "{shown}"
    );
}

#[test]
fn storage_is_checked_with_its_place() {
    let ok = format!(
        "{MINIMAL}  storage:\n    nfs:\n      inCluster: {{storageClass: gp3, size: 500Gi}}\n"
    );
    let cluster = parse("ok.yaml", &ok).unwrap();
    let storage = cluster.spec.storage.unwrap();
    assert_eq!(
        (
            storage.capacity.as_str(),
            storage.mount_path.as_str(),
            storage.fs_group,
            storage.namespace.as_str()
        ),
        ("1Ti", "/home/user", 100, "runtimes")
    );
    let bad = format!(
        "{MINIMAL}  storage:\n    nfs:\n      existing: {{server: fs-1.efs.eu-west-1.amazonaws.com, path: exports}}\n    capacity: lots\n    mountPath: /home/../etc\n    fsGroup: 0\n"
    );
    let shown = parse("bad.yaml", &bad).unwrap_err().to_string();
    for expected in [
        "bad.yaml:10:66: spec.storage.nfs.existing.path: `exports` is not an absolute path",
        "bad.yaml:11:15: spec.storage.capacity: `lots` is not a size",
        "bad.yaml:12:16: spec.storage.mountPath",
        "bad.yaml:13:14: spec.storage.fsGroup: 0 is not a group id",
    ] {
        assert!(
            shown.contains(expected),
            "missing `{expected}` in:\n{shown}"
        );
    }
    let both = format!(
        "{MINIMAL}  storage:\n    nfs: {{existing: {{server: s, path: /}}}}\n    ceph: {{}}\n"
    );
    let shown = parse("both.yaml", &both).unwrap_err().to_string();
    assert!(
        shown.contains("both.yaml:8:3: spec.storage: choose one of `nfs` or `ceph`"),
        "{shown}"
    );
}

#[test]
fn addons_and_host_provenance_are_checked_where_they_are_written() {
    let addons = MINIMAL.to_string()
        + "  addons:\n    certManager: {issuer: acme}\n    efsFileSystemId: nfs-1\n";
    let shown = parse("c.yaml", &addons).unwrap_err().to_string();
    assert!(
        shown.contains(
            "c.yaml:9:5: spec.addons.certManager.email: an ACME issuer needs a contact email"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("spec.addons.efsFileSystemId: `nfs-1` is not an EFS file system id"),
        "{shown}"
    );
    let host = "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata: {name: lab}\nspec:\n  provider: ssh\n  hosts:\n  - {address: 10.0.0.1, role: control-plane, provenance: cloud}\n";
    let shown = parse("h.yaml", host).unwrap_err().to_string();
    assert!(
        shown.contains("spec.hosts[0].provenance: `cloud` is not a provenance"),
        "{shown}"
    );
}
