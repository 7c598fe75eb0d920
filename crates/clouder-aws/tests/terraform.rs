//! The Terraform export, checked without a cloud: golden files, JSON that parses, references
//! that resolve, resource types and required arguments as the provider documents them, and
//! deterministic output. With a `terraform` binary on PATH, Terraform itself loads the module.

use clouder_aws::terraform::{AWS_PROVIDER_VERSION, document};
use clouder_aws::{AwsCloud, Scope};
use clouder_engine::terraform::references;
use clouder_testenv::terraform;
use serde_json::Value;
use std::collections::BTreeMap;

const SPEC: &str = "apiVersion: clouder.io/v1alpha1
kind: Cluster
metadata:
  name: tfdemo
spec:
  provider: aws
  region: eu-west-1
  adminCidrs: [203.0.113.7/32, 198.51.100.0/24]
  controlPlane: {count: 3, size: m6i.large, osDiskGb: 80}
  nodePools:
    - {name: workers, count: 2, size: t3.xlarge}
    - {name: gpu-pool, count: 1, size: g5.xlarge, osDiskGb: 200}
";

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnMbqJ0xB3EJkfsUJEyQfSO0YjDLqfJd0X0aXxGJm5q test@clouder";

fn files(spec: &str) -> Vec<(&'static str, String)> {
    let cluster = clouder_spec::parse("cluster.yaml", spec).expect("valid spec");
    let scope = Scope::new(
        AwsCloud::offline(cluster.spec.region.as_deref().unwrap()),
        cluster.name(),
    );
    let graph = clouder_aws::graph(scope.clone(), &cluster, KEY).unwrap();
    document(&scope, &cluster, &graph).unwrap().files()
}

/// All files merged into one configuration, as Terraform loads a directory.
fn module(files: &[(&str, String)]) -> Value {
    references::module(files).unwrap()
}

#[test]
fn golden_files() {
    for (name, text) in files(SPEC) {
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn rendering_is_deterministic_and_sorted() {
    let a = files(SPEC);
    assert_eq!(a, files(SPEC));
    for (name, text) in &a {
        // Sorted keys at every level: re-serialising through a BTreeMap changes nothing.
        let sorted: BTreeMap<String, Value> = serde_json::from_str(text).unwrap();
        assert_eq!(
            serde_json::to_string_pretty(&sorted).unwrap() + "\n",
            *text,
            "{name} is not sorted"
        );
    }
}

#[test]
fn every_reference_points_at_a_declared_block() {
    let m = module(&files(SPEC));
    let checked = references::check(&m)
        .unwrap_or_else(|dangling| panic!("references to nothing: {dangling:#?}"));
    assert!(
        checked > 40,
        "only {checked} references found: the scan is broken"
    );
}

/// Resource and data types with the arguments the provider requires, from the argument
/// references of the registry docs, https://registry.terraform.io + the path given
/// (hashicorp/aws 6.0.0). Types absent here fail the test.
const PROVIDER_DOCS: &[(&str, &str, &[&str])] = &[
    (
        "aws_vpc",
        "/providers/hashicorp/aws/6.0.0/docs/resources/vpc",
        &[],
    ),
    (
        "aws_subnet",
        "/providers/hashicorp/aws/6.0.0/docs/resources/subnet",
        &["vpc_id"],
    ),
    (
        "aws_internet_gateway",
        "/providers/hashicorp/aws/6.0.0/docs/resources/internet_gateway",
        &[],
    ),
    (
        "aws_route_table",
        "/providers/hashicorp/aws/6.0.0/docs/resources/route_table",
        &["vpc_id"],
    ),
    (
        "aws_route_table_association",
        "/providers/hashicorp/aws/6.0.0/docs/resources/route_table_association",
        &["route_table_id"],
    ),
    (
        "aws_security_group",
        "/providers/hashicorp/aws/6.0.0/docs/resources/security_group",
        &[],
    ),
    (
        "aws_vpc_security_group_ingress_rule",
        "/providers/hashicorp/aws/6.0.0/docs/resources/vpc_security_group_ingress_rule",
        &["security_group_id", "ip_protocol"],
    ),
    (
        "aws_vpc_security_group_egress_rule",
        "/providers/hashicorp/aws/6.0.0/docs/resources/vpc_security_group_egress_rule",
        &["security_group_id", "ip_protocol"],
    ),
    (
        "aws_key_pair",
        "/providers/hashicorp/aws/6.0.0/docs/resources/key_pair",
        &["public_key"],
    ),
    (
        "aws_iam_role",
        "/providers/hashicorp/aws/6.0.0/docs/resources/iam_role",
        &["assume_role_policy"],
    ),
    (
        "aws_iam_role_policy",
        "/providers/hashicorp/aws/6.0.0/docs/resources/iam_role_policy",
        &["policy", "role"],
    ),
    (
        "aws_iam_instance_profile",
        "/providers/hashicorp/aws/6.0.0/docs/resources/iam_instance_profile",
        &[],
    ),
    (
        "aws_instance",
        "/providers/hashicorp/aws/6.0.0/docs/resources/instance",
        &[],
    ),
    (
        "aws_lb",
        "/providers/hashicorp/aws/6.0.0/docs/resources/lb",
        &[],
    ),
    (
        "aws_lb_target_group",
        "/providers/hashicorp/aws/6.0.0/docs/resources/lb_target_group",
        &[],
    ),
    (
        "aws_lb_target_group_attachment",
        "/providers/hashicorp/aws/6.0.0/docs/resources/lb_target_group_attachment",
        &["target_group_arn", "target_id"],
    ),
    (
        "aws_lb_listener",
        "/providers/hashicorp/aws/6.0.0/docs/resources/lb_listener",
        &["default_action", "load_balancer_arn"],
    ),
    (
        "data.aws_ami",
        "/providers/hashicorp/aws/6.0.0/docs/data-sources/ami",
        &[],
    ),
];

/// Required arguments of nested blocks, from the same pages.
const NESTED_REQUIRED: &[(&str, &str, &[&str])] = &[
    ("aws_lb_listener", "default_action", &["type"]),
    ("aws_route_table", "route", &[]),
    ("data.aws_ami", "filter", &["name", "values"]),
];

#[test]
fn every_type_and_required_argument_exists_in_the_provider() {
    assert_eq!(
        AWS_PROVIDER_VERSION, "6.0.0",
        "re-check the table against the new docs"
    );
    let m = module(&files(SPEC));
    let missing = references::missing_arguments(&m, PROVIDER_DOCS, NESTED_REQUIRED);
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn variables_carry_the_spec_and_outputs_what_setup_needs() {
    let m = module(&files(SPEC));
    let default = |v: &str| m["variable"][v]["default"].clone();
    assert_eq!(default("region"), "eu-west-1");
    assert_eq!(default("control_plane_count"), 3);
    assert_eq!(default("control_plane_size"), "m6i.large");
    assert_eq!(default("gpu_pool_disk_gb"), 200);
    assert_eq!(
        default("admin_cidrs"),
        serde_json::json!(["203.0.113.7/32", "198.51.100.0/24"])
    );
    assert_eq!(default("workers_count"), 2);
    assert_eq!(default("workers_retired"), serde_json::json!([]));
    let workers = &m["resource"]["aws_instance"]["workers"];
    assert_eq!(
        workers["for_each"],
        "${toset([for i in local.workers_indexes : tostring(i)])}"
    );
    assert_eq!(workers["tags"]["Name"], "tfdemo-workers-${each.key}");
    assert_eq!(
        workers["tags"]["clouder.io/resource"],
        "instance/workers-${each.key}"
    );
    assert_eq!(
        m["resource"]["aws_instance"]["control_plane"]["tags"]["Name"],
        "tfdemo-cp-${each.key}"
    );
    for output in [
        "api_endpoint",
        "nodes",
        "ssh_user",
        "cluster_name",
        "region",
    ] {
        assert!(m["output"].get(output).is_some(), "output {output}");
    }
    let nodes = m["output"]["nodes"]["value"].as_object().unwrap();
    assert_eq!(
        nodes.keys().collect::<Vec<_>>(),
        ["control-plane", "gpu-pool", "workers"]
    );
    assert_eq!(m["output"]["ssh_user"]["value"], "ubuntu");
}

/// After a drained scale-down retired `workers-1`, the module numbers the workers as the spec
/// does (0 and 2), so Terraform's machines keep clouder's names. Terraform itself evaluates the
/// module's index expression (`terraform console` needs no provider for it).
#[test]
fn the_module_numbers_machines_past_retired_indexes_as_the_spec_does() {
    let spec = SPEC.replace(
        "{name: workers, count: 2, size: t3.xlarge}",
        "{name: workers, count: 2, size: t3.xlarge, retired: [1]}",
    );
    let cluster = clouder_spec::parse("cluster.yaml", &spec).unwrap();
    let want = cluster.spec.node_pools[0].indexes();
    assert_eq!(want, [0, 2]);
    let m = module(&files(&spec));
    assert_eq!(
        m["variable"]["workers_retired"]["default"],
        serde_json::json!([1])
    );
    assert_eq!(
        m["output"]["nodes"]["value"]["workers"]["indexes"],
        "${local.workers_indexes}"
    );
    if !terraform::present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let only = serde_json::json!({ "variable": m["variable"], "locals": m["locals"] });
    std::fs::write(dir.path().join("main.tf.json"), only.to_string()).unwrap();
    let value = terraform::evaluate(
        dir.path(),
        "[local.workers_indexes, local.control_plane_indexes]",
    );
    assert_eq!(value, serde_json::json!([[0, 2], [0, 1, 2]]));
}

/// Terraform loads the module (`terraform providers` parses every file and resolves the pinned
/// provider requirement). `terraform fmt` ignores `*.tf.json`, so it proves nothing here;
/// `terraform validate` needs the provider plugin, which this machine cannot download.
#[test]
fn terraform_loads_the_module() {
    if !terraform::present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files(SPEC) {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let providers = terraform::providers(dir.path());
    assert!(
        providers.contains(&format!("hashicorp/aws] {AWS_PROVIDER_VERSION}")),
        "{providers}"
    );
    terraform::validate(dir.path(), "hashicorp/aws", AWS_PROVIDER_VERSION);
}
