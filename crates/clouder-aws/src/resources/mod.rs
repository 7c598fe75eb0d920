//! One file per AWS object. Each is a [`Resource`] found by its `clouder.io/resource` tag (or its
//! unique name, for IAM and load balancers), with a `list` that the inventory reuses for sweeps
//! and a `delete` by cloud id that both destroy and sweep call.

pub mod instance;
pub mod internet_gateway;
pub mod key_pair;
pub mod listener;
pub mod load_balancer;
pub mod node_role;
pub mod route_table;
pub mod security_group;
pub mod subnet;
pub mod target_group;
pub mod vpc;

use crate::cloud::{CLUSTER_TAG, Found, RESOURCE_TAG, Scope};
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use clouder_engine::{Graph, GraphError, Observed};
use clouder_spec::Cluster;
use std::sync::Arc;

/// Graph ids of the shared objects.
pub mod ids {
    pub const VPC: &str = "vpc";
    pub const SUBNET: &str = "subnet";
    pub const INTERNET_GATEWAY: &str = "internet-gateway";
    pub const ROUTE_TABLE: &str = "route-table";
    pub const SECURITY_GROUP: &str = "security-group";
    pub const KEY_PAIR: &str = "key-pair";
    pub const NODE_ROLE: &str = "node-role";
    pub const NODE_PROFILE: &str = "node-instance-profile";
    pub const API_LOAD_BALANCER: &str = "api-load-balancer";
    pub const API_TARGET_GROUP: &str = "api-target-group";
    pub const API_LISTENER: &str = "api-listener";

    /// `instance/control-plane-0`, `instance/workers-2`.
    pub fn instance(pool: &str, index: u32) -> String {
        format!("instance/{pool}-{index}")
    }
}

/// The pool name control-plane machines are listed under.
pub use clouder_spec::CONTROL_PLANE_POOL;

/// Builds the AWS graph of a validated cluster spec. `public_key` is the OpenSSH public key
/// installed on every machine. Share `scope` with an [`crate::AwsInventory`] so a plan lists
/// each kind of object once.
pub fn graph(scope: Arc<Scope>, cluster: &Cluster, public_key: &str) -> Result<Graph, GraphError> {
    let spec = &cluster.spec;
    let mut g = Graph::new();
    g.add(vpc::Vpc {
        scope: scope.clone(),
        cidr: spec.network.vpc_cidr.to_string(),
    })?;
    g.add(subnet::Subnet {
        scope: scope.clone(),
        cidr: spec.network.subnet_cidr.to_string(),
    })?;
    g.add(internet_gateway::InternetGateway {
        scope: scope.clone(),
    })?;
    g.add(route_table::RouteTable {
        scope: scope.clone(),
    })?;
    g.add(security_group::SecurityGroup {
        scope: scope.clone(),
        vpc_cidr: spec.network.vpc_cidr.to_string(),
        pod_cidr: spec.network.pod_cidr.to_string(),
        admin_cidrs: spec.admin_cidrs.iter().map(ToString::to_string).collect(),
    })?;
    g.add(key_pair::KeyPair {
        scope: scope.clone(),
        public_key: public_key.trim().to_string(),
    })?;
    g.add(node_role::NodeRole {
        scope: scope.clone(),
    })?;
    g.add(node_role::NodeInstanceProfile {
        scope: scope.clone(),
    })?;

    let image = instance::ImageChoice::from_spec(&spec.image);
    let cp = &spec.control_plane;
    let mut control_planes = Vec::new();
    for i in 0..cp.count {
        let machine = instance::Instance {
            scope: scope.clone(),
            id: ids::instance(CONTROL_PLANE_POOL, i),
            name: scope.name(&format!("cp-{i}")),
            pool: CONTROL_PLANE_POOL.to_string(),
            size: cp.size.clone(),
            disk_gb: cp.os_disk_gb,
            image: image.clone(),
        };
        control_planes.push(machine.id.clone());
        g.add(machine)?;
    }
    for pool in &spec.node_pools {
        for i in pool.indexes() {
            g.add(instance::Instance {
                scope: scope.clone(),
                id: ids::instance(&pool.name, i),
                name: scope.name(&format!("{}-{i}", pool.name)),
                pool: pool.name.clone(),
                size: pool.size.clone(),
                disk_gb: pool.os_disk_gb,
                image: image.clone(),
            })?;
        }
    }
    g.add(load_balancer::LoadBalancer {
        scope: scope.clone(),
    })?;
    g.add(target_group::TargetGroup {
        scope: scope.clone(),
        control_planes,
    })?;
    g.add(listener::Listener { scope })?;
    Ok(g)
}

pub(crate) fn ec2_tags(scope: &Scope, id: &str, name: &str) -> Vec<Tag> {
    scope
        .tags(id, name)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

pub(crate) fn tag_spec(kind: ResourceType, tags: &[Tag]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags.to_vec()))
        .build()
}

pub(crate) fn tag_of<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// `tag:clouder.io/cluster = NAME`, for describe calls.
pub(crate) fn cluster_filter(cluster: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{CLUSTER_TAG}"))
        .values(cluster)
        .build()
}

pub(crate) fn found(tags: &[Tag], observed: Observed) -> Found {
    Found {
        resource_id: tag_of(tags, RESOURCE_TAG).map(str::to_string),
        observed,
    }
}
