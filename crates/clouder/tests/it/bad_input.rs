//! Bad input gets a clear error, the right exit code, and makes no cloud call.

use crate::harness::*;

/// Runs `create -f SPEC` with the cloud endpoint on a tripwire; returns (exit code, stderr).
fn create_from(env: &Env, spec: &str, extra_env: &[(&str, &str)]) -> (Option<i32>, String, bool) {
    let wire = Tripwire::new();
    let file = write(env.dir.path(), "cluster.yaml", spec);
    let endpoint = wire.endpoint();
    let mut vars = vec![("AWS_ENDPOINT_URL", endpoint.as_str())];
    vars.extend_from_slice(extra_env);
    let out = env.run_with(&["kubeadm", "create", "-f", file.to_str().unwrap()], &vars);
    (out.status.code(), text(&out.stderr), wire.touched())
}

const GOOD: &str = "apiVersion: clouder.io/v1alpha1
kind: Cluster
metadata:
  name: bad
spec:
  provider: aws
  region: us-east-1
  adminCidrs: [203.0.113.7/32]
  network:
    podCidr: 10.244.0.0/16
";

#[test]
fn malformed_specs_are_refused_with_file_line_and_field_before_any_cloud_call() {
    let env = Env::new();
    let cases = [
        (
            GOOD.replace("kind: Cluster", "kind: Cluster\n  oops: x"),
            "cluster.yaml:3:7: mapping values are not allowed",
            "",
        ),
        (
            GOOD.replace("kind: Cluster", "kind: [Cluster"),
            "cluster.yaml:2:7: kind",
            "invalid type",
        ),
        (
            GOOD.replace("  provider: aws", "  provider: aws\n  workerz: 3"),
            "cluster.yaml:7:3: spec.workerz: unknown field `workerz`, expected one of",
            "workerz",
        ),
        (
            GOOD.replace("podCidr: 10.244.0.0/16", "podCidr: 10.0.128.0/17"),
            "cluster.yaml:10:14: spec.network.podCidr",
            "overlaps",
        ),
        (
            GOOD.replace("  network:", "  controlPlane: {count: 0}\n  network:"),
            "cluster.yaml:9:25: spec.controlPlane.count",
            "at least 1",
        ),
        (
            GOOD.replace("name: bad", "name: Bad_Name"),
            "cluster.yaml:4:9: metadata.name",
            "DNS-1123",
        ),
        (
            GOOD.replace("podCidr: 10.244.0.0/16", "podCidr: 10.244.0.0/33"),
            "cluster.yaml:10:14: spec.network.podCidr",
            "invalid IP address syntax",
        ),
    ];
    for (spec, located, says) in cases {
        let (code, stderr, touched) = create_from(&env, &spec, &[]);
        assert_eq!(code, Some(2), "exit code for:\n{spec}\n{stderr}");
        assert!(
            stderr.contains(located),
            "expected `{located}` in: {stderr}"
        );
        assert!(stderr.contains(says), "expected `{says}` in: {stderr}");
        assert!(!touched, "no cloud call for:\n{spec}");
    }
}

#[test]
fn a_missing_admin_cidr_is_refused_naming_the_flag() {
    let env = Env::new();
    let key = env.key();
    let wire = Tripwire::new();
    let out = env.run_with(
        &[
            "kubeadm",
            "create",
            "open",
            "--image",
            IMAGE,
            "--ssh-public-key",
            key.to_str().unwrap(),
        ],
        &[("AWS_ENDPOINT_URL", &wire.endpoint())],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--admin-cidr"),
        "{}",
        text(&out.stderr)
    );
    assert!(!wire.touched());
}

#[test]
fn missing_credentials_fail_clearly_without_a_cloud_call() {
    let env = Env::new();
    let empty = write(env.dir.path(), "empty", "");
    let (code, stderr, touched) = create_from(
        &env,
        GOOD,
        &[
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
            ("AWS_CONFIG_FILE", empty.to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", empty.to_str().unwrap()),
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no AWS credentials"), "{stderr}");
    assert!(!touched);
}

#[test]
fn open_to_the_world_only_when_asked_and_with_a_warning() {
    let env = Env::new();
    let spec = GOOD.replace("[203.0.113.7/32]", "[0.0.0.0/0]");
    let file = write(env.dir.path(), "open.yaml", &spec);
    let out = env.run(&[
        "kubeadm",
        "create",
        "-f",
        file.to_str().unwrap(),
        "--ssh-public-key",
        env.key().to_str().unwrap(),
        "--image",
        IMAGE,
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("warning: SSH and the API server will be reachable from the whole internet")
    );
}
