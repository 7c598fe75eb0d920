//! The AWS graph as Terraform JSON for the official `hashicorp/aws` provider. Each resource file
//! renders its own blocks (`Resource::terraform`); this module adds the header, the variables
//! users change (region, counts, sizes, admin CIDRs, the SSH key) and the outputs setup reads.

use crate::cloud::Scope;
use clouder_engine::terraform::{Terraform, per_index, pool_indexes};
pub use clouder_engine::terraform::{local, pool_local, reference, var};
use clouder_engine::{Error, Graph};
use clouder_spec::Cluster;
use serde_json::{Value, json};

/// The provider release the rendering is written and checked against.
pub const AWS_PROVIDER_VERSION: &str = "6.0.0";

/// Terraform local names of the shared objects, one per graph id.
pub mod names {
    pub const VPC: &str = "aws_vpc.main";
    pub const SUBNET: &str = "aws_subnet.main";
    pub const INTERNET_GATEWAY: &str = "aws_internet_gateway.main";
    pub const ROUTE_TABLE: &str = "aws_route_table.main";
    pub const ROUTE_TABLE_ASSOCIATION: &str = "aws_route_table_association.main";
    pub const SECURITY_GROUP: &str = "aws_security_group.nodes";
    pub const KEY_PAIR: &str = "aws_key_pair.main";
    pub const NODE_ROLE: &str = "aws_iam_role.nodes";
    pub const NODE_PROFILE: &str = "aws_iam_instance_profile.nodes";
    pub const LOAD_BALANCER: &str = "aws_lb.api";
    pub const TARGET_GROUP: &str = "aws_lb_target_group.api";
    pub const LISTENER: &str = "aws_lb_listener.api";
    pub const IMAGE: &str = "data.aws_ami.image";
}

/// The variable of one pool's setting: `workers_count`, `control_plane_size`.
pub fn pool_var(pool: &str, setting: &str) -> String {
    format!("{}_{setting}", pool_local(pool))
}

/// The cluster's tags as a Terraform map.
pub fn tags(scope: &Scope, resource_id: &str, name: &str) -> Value {
    Value::Object(
        scope
            .tags(resource_id, name)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

fn variable(kind: &str, description: &str, default: Value) -> Value {
    json!({ "type": kind, "description": description, "default": default })
}

/// The whole module for `cluster`: `graph` (built by [`crate::graph`] with `scope`) rendered,
/// plus header, variables and outputs.
pub fn document(scope: &Scope, cluster: &Cluster, graph: &Graph) -> Result<Terraform, Error> {
    let spec = &cluster.spec;
    let mut tf = Terraform::default();
    tf.terraform.insert(
        "required_providers".into(),
        json!({ "aws": { "source": "hashicorp/aws", "version": AWS_PROVIDER_VERSION } }),
    );
    tf.terraform
        .insert("required_version".into(), json!(">= 1.5.0"));
    tf.provider
        .insert("aws".into(), json!({ "region": var("region") }));

    tf = tf
        .variable(
            "region",
            variable("string", "AWS region", json!(scope.cloud.region)),
        )?
        .variable(
            "admin_cidrs",
            variable(
                "list(string)",
                "Networks allowed to reach SSH (22) and the API server (6443)",
                json!(
                    spec.admin_cidrs
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                ),
            ),
        )?;
    let mut nodes = serde_json::Map::new();
    for p in spec.machine_pools() {
        let (pool, count, size, disk_gb, retired) =
            (p.name, p.count, p.size, p.os_disk_gb, p.retired);
        tf = tf
            .merge(pool_indexes(&pool_local(pool), count, retired)?)?
            .variable(
                &pool_var(pool, "size"),
                variable("string", &format!("Instance type of {pool}"), json!(size)),
            )?
            .variable(
                &pool_var(pool, "disk_gb"),
                variable(
                    "number",
                    &format!("Root volume GB of {pool}"),
                    json!(disk_gb),
                ),
            )?;
        if count == 0 {
            continue;
        }
        let (local, machines) = (
            pool_local(pool),
            format!("aws_instance.{}", pool_local(pool)),
        );
        nodes.insert(
            pool.to_string(),
            json!({
                "indexes": format!("${{local.{local}_indexes}}"),
                "names": per_index(&local, &machines, "tags.Name"),
                "instance_ids": per_index(&local, &machines, "id"),
                "private_ips": per_index(&local, &machines, "private_ip"),
                "public_ips": per_index(&local, &machines, "public_ip"),
            }),
        );
    }
    tf = tf
        .output(
            "cluster_name",
            json!({ "value": cluster.name(), "description": "clouder cluster name" }),
        )?
        .output(
            "provider",
            json!({ "value": "aws", "description": "Cloud provider" }),
        )?
        .output("region", json!({ "value": var("region") }))?
        .output(
            "ssh_user",
            json!({ "value": spec.admin_user, "description": "Login user on the machines" }),
        )?
        .output(
            "api_endpoint",
            json!({
                "value": reference(names::LOAD_BALANCER, "dns_name"),
                "description": "DNS name of the API server load balancer (port 6443)",
            }),
        )?
        .output(
            "nodes",
            json!({
                "value": nodes,
                "description": "Machines by pool: names, instance ids, private and public addresses",
            }),
        )?;
    let rendered = clouder_engine::terraform::render(graph)?;
    tf.merge(rendered)
}
