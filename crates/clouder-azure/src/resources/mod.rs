//! Azure objects as graph resources. Names are deterministic (`<c>-vnet`, `<c>-master`, ...), so
//! every body — references included — follows from the spec alone; one generic [`ArmResource`]
//! PUTs it, finds it by its `clouder.io/resource` tag (or its name, for untaggable subnets and
//! role assignments), and compares the fields that matter for drift.

pub mod identity;
pub mod load_balancer;
pub mod machine;
pub mod network;
pub mod resource_group;

use crate::cloud::{
    ArmType, Found, RESOURCE_TAG, ROLE_ASSIGNMENT, SECURITY_GROUP, SUBNET, Scope, VIRTUAL_NETWORK,
    observe, tag,
};
use async_trait::async_trait;
use clouder_engine::terraform::Terraform;
use clouder_engine::{Error, Graph, GraphError, Observed, Outputs, Resource};
use clouder_spec::Cluster;
use serde_json::Value;
use std::sync::Arc;

/// Graph ids of the shared objects.
pub mod ids {
    pub const RESOURCE_GROUP: &str = "resource-group";
    pub const VIRTUAL_NETWORK: &str = "virtual-network";
    pub const SUBNET: &str = "subnet";
    pub const SECURITY_GROUP: &str = "security-group";
    pub const IDENTITY: &str = "identity";
    pub const ROLE_ASSIGNMENT: &str = "role-assignment";
    pub const API_PUBLIC_IP: &str = "api-public-ip";
    pub const API_LOAD_BALANCER: &str = "api-load-balancer";

    /// `instance/control-plane-0`, `instance/workers-2`: the same ids as on AWS.
    pub fn instance(pool: &str, index: u32) -> String {
        format!("instance/{pool}-{index}")
    }
    pub fn nic(pool: &str, index: u32) -> String {
        format!("nic/{pool}-{index}")
    }
    pub fn public_ip(pool: &str, index: u32) -> String {
        format!("public-ip/{pool}-{index}")
    }
}

pub use clouder_spec::CONTROL_PLANE_POOL;

/// The resource group a cluster lives in: `-g` / `spec.resourceGroup`, else `<c>-rg`.
pub fn resource_group_name(cluster: &Cluster) -> String {
    cluster
        .spec
        .resource_group
        .clone()
        .unwrap_or_else(|| format!("{}-rg", cluster.name()))
}

/// What a pool's machine names start with after the cluster's: `master`, `node` for the
/// workers, else the pool's own name.
pub fn name_prefix(pool: &str) -> String {
    match pool {
        CONTROL_PLANE_POOL => "master".into(),
        "workers" => "node".into(),
        other => other.into(),
    }
}

/// `<c>-master`, `<c>-master-1`, `<c>-node-0`, `<c>-gpu-3`.
pub fn machine_name(scope: &Scope, pool: &str, index: u32) -> String {
    match (pool, index) {
        (CONTROL_PLANE_POOL, 0) => scope.name("master"),
        _ => scope.name(&format!("{}-{index}", name_prefix(pool))),
    }
}

/// Builds the Azure graph of a validated spec on `scope` (share it with an
/// [`crate::AzureInventory`] so a plan lists each type once).
pub fn graph(scope: Arc<Scope>, cluster: &Cluster, public_key: &str) -> Result<Graph, GraphError> {
    let spec = &cluster.spec;
    let mut g = Graph::new();
    g.add(resource_group::ResourceGroup {
        scope: scope.clone(),
        named: spec.resource_group.is_some(),
    })?;
    g.add(network::virtual_network(
        &scope,
        &spec.network.vpc_cidr.to_string(),
    ))?;
    let admin: Vec<String> = spec.admin_cidrs.iter().map(ToString::to_string).collect();
    g.add(network::security_group(
        &scope,
        &admin,
        &[
            spec.network.vpc_cidr.to_string(),
            spec.network.pod_cidr.to_string(),
        ],
    ))?;
    g.add(network::subnet(
        &scope,
        &spec.network.subnet_cidr.to_string(),
    ))?;
    g.add(identity::identity(&scope))?;
    g.add(identity::role_assignment(&scope))?;
    g.add(load_balancer::public_ip(&scope))?;
    g.add(load_balancer::load_balancer(&scope))?;

    let image = machine::Image::from_spec(&spec.image);
    let login = machine::Login {
        user: spec.admin_user.clone(),
        public_key: public_key.trim().to_string(),
    };
    let cp = &spec.control_plane;
    for i in 0..cp.count {
        let name = machine_name(&scope, CONTROL_PLANE_POOL, i);
        let m = machine::Machine {
            pool: CONTROL_PLANE_POOL,
            index: i,
            name: &name,
            size: &cp.size,
            disk_gb: cp.os_disk_gb,
        };
        machine::add(&mut g, &scope, &m, &image, &login)?;
    }
    for pool in &spec.node_pools {
        for i in pool.indexes() {
            let name = machine_name(&scope, &pool.name, i);
            let m = machine::Machine {
                pool: &pool.name,
                index: i,
                name: &name,
                size: &pool.size,
                disk_gb: pool.os_disk_gb,
            };
            machine::add(&mut g, &scope, &m, &image, &login)?;
        }
    }
    Ok(g)
}

/// One ARM object whose whole desired body is known from the spec.
pub struct ArmResource {
    pub scope: Arc<Scope>,
    pub id: String,
    pub ty: &'static ArmType,
    /// Full ARM id.
    pub arm_id: String,
    pub depends: Vec<String>,
    pub body: Value,
    /// JSON pointers whose desired value must be contained in what is found.
    pub checked: &'static [&'static str],
    /// Drift cannot be converged in place (terminate and re-create).
    pub immutable: bool,
    /// Fill `pointer` of the body with attribute `attr` of dependency `dep` at write time.
    pub inject: Option<(&'static str, &'static str, &'static str)>,
}

impl ArmResource {
    fn desired(&self, deps: &Outputs) -> Result<Value, Error> {
        let mut body = self.body.clone();
        if let Some((dep, attr, pointer)) = self.inject {
            let value = deps.get(dep)?.attr(attr).unwrap_or_default().to_string();
            if let Some(slot) = body.pointer_mut(pointer) {
                *slot = value.into();
            }
        }
        Ok(body)
    }

    /// The body to PUT: the desired one, plus — in a shared array — the elements others added.
    async fn write(&self, deps: &Outputs, found: Option<&Observed>) -> Result<Observed, Error> {
        let mut body = self.desired(deps)?;
        if let (Some(pointer), Some(found)) = (shared_array(self.ty), found)
            && let (Some(Value::Array(have)), Some(Value::Array(want))) =
                (found.attrs.get(pointer), body.pointer_mut(pointer))
        {
            let ours: Vec<Value> = want.iter().map(|w| w["name"].clone()).collect();
            want.extend(have.iter().filter(|h| !ours.contains(&h["name"])).map(|h| {
                let mut properties = h["properties"].clone();
                if let Some(p) = properties.as_object_mut() {
                    p.remove("provisioningState");
                }
                serde_json::json!({ "name": h["name"], "properties": properties })
            }));
        }
        let written = self
            .scope
            .cloud
            .arm
            .put(&self.arm_id, self.ty.api_version, &body)
            .await?;
        Ok(observe(self.ty, &written, self.checked))
    }
}

/// Arrays other writers add to — cloud-provider-azure adds each `LoadBalancer` Service's rules to
/// the cluster's NSG — where clouder owns its named elements only: the others are neither drift
/// nor removed by a write.
fn shared_array(ty: &ArmType) -> Option<&'static str> {
    (*ty == SECURITY_GROUP).then_some("/properties/securityRules")
}

/// Whether each wanted element of a named array is there, as wanted, whatever else is.
fn contains_named(have: &Value, want: &Value) -> bool {
    match (want, have) {
        (Value::Array(w), Value::Array(h)) => w.iter().all(|wv| {
            h.iter()
                .find(|hv| hv.get("name") == wv.get("name"))
                .is_some_and(|hv| contains(hv, wv))
        }),
        _ => contains(have, want),
    }
}

/// Whether `have` holds everything `want` says (objects by key, arrays element-wise, strings
/// case-insensitively as ARM compares ids and enums); fields the server adds are ignored.
pub fn contains(have: &Value, want: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| contains(hv, v))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().all(|wv| h.iter().any(|hv| contains(hv, wv)))
        }
        (Value::String(w), Value::String(h)) => w.eq_ignore_ascii_case(h),
        _ => want == have,
    }
}

/// Lists `ty` in the scope's group (a subnet: in the cluster's VNet), keeping the cluster's.
pub async fn list(scope: &Scope, ty: &'static ArmType) -> Result<Vec<Found>, Error> {
    let arm = &scope.cloud.arm;
    let collection = match ty {
        t if *t == SUBNET => format!(
            "{}/subnets",
            scope.id(&VIRTUAL_NETWORK, &scope.name("vnet"))
        ),
        t => format!("{}/providers/{}", scope.group_id(), t.path),
    };
    let items = arm.list(&collection, ty.api_version).await?;
    let by_name = |name: &str| match ty {
        t if *t == SUBNET && name == scope.name("subnet") => Some(ids::SUBNET),
        t if *t == ROLE_ASSIGNMENT && name == identity::role_assignment_name(scope) => {
            Some(ids::ROLE_ASSIGNMENT)
        }
        _ => None,
    };
    Ok(items
        .iter()
        .filter_map(|body| {
            let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
            let resource_id = if *ty == SUBNET || *ty == ROLE_ASSIGNMENT {
                by_name(name)?.to_string()
            } else if tag(body, crate::cloud::CLUSTER_TAG) == Some(scope.cluster.as_str()) {
                tag(body, RESOURCE_TAG)?.to_string()
            } else {
                return None;
            };
            let mut observed = observe(ty, body, &[]);
            // Keep the whole body for drift checks of the resource that claims it.
            observed.attrs.insert("body".into(), body.clone());
            Some(Found {
                resource_id: Some(resource_id),
                observed,
            })
        })
        .collect())
}

#[async_trait]
impl Resource for ArmResource {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        self.ty.kind
    }
    fn depends_on(&self) -> Vec<String> {
        self.depends.clone()
    }
    async fn find(&self) -> Result<Option<Observed>, Error> {
        let s = &self.scope;
        let all = s.found_all(self.ty, || list(s, self.ty)).await?;
        Ok(all
            .into_iter()
            .find(|f| f.resource_id.as_deref() == Some(self.id.as_str()))
            .map(|f| {
                let body = f.observed.attrs.get("body").cloned().unwrap_or_default();
                observe(self.ty, &body, self.checked)
            }))
    }
    fn changes(&self, found: &Observed) -> Vec<String> {
        let mut changes = Vec::new();
        if found.attr("state") == Some("Failed") {
            changes.push("provisioning failed: write it again".into());
        }
        for pointer in self.checked {
            let want = self.body.pointer(pointer).cloned().unwrap_or_default();
            let have = found.attrs.get(*pointer).cloned().unwrap_or_default();
            let holds = if shared_array(self.ty) == Some(*pointer) {
                contains_named(&have, &want)
            } else {
                contains(&have, &want)
            };
            if !holds {
                changes.push(format!("{pointer}: is {have}, spec says {want}"));
            }
        }
        changes
    }
    async fn create(&self, deps: &Outputs) -> Result<Observed, Error> {
        self.write(deps, None).await
    }
    async fn update(&self, deps: &Outputs, found: &Observed) -> Result<Observed, Error> {
        if self.immutable {
            return Err(Error::permanent(format!(
                "{} cannot change in place ({}): terminate and re-create",
                self.arm_id,
                self.changes(found).join("; ")
            )));
        }
        self.write(deps, Some(found)).await
    }
    async fn delete(&self, found: &Observed) -> Result<(), Error> {
        self.scope
            .cloud
            .arm
            .delete(&found.cloud_id, self.ty.api_version)
            .await
    }
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        crate::terraform::render(self).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containment_ignores_server_fields_and_order() {
        let want = json!([{"name": "ssh", "properties": {"priority": 100, "sourceAddressPrefixes": ["203.0.113.7/32"]}}, {"name": "api"}]);
        let have = json!([{"name": "api", "id": "/x/api"}, {"name": "ssh", "id": "/x/ssh", "properties": {"priority": 100, "provisioningState": "Succeeded", "sourceAddressPrefixes": ["203.0.113.7/32"]}}]);
        assert!(contains(&have, &want));
        let opened = json!([{"name": "api"}, {"name": "ssh", "properties": {"priority": 100, "sourceAddressPrefixes": ["0.0.0.0/0"]}}]);
        assert!(!contains(&opened, &want));
        assert!(contains(&json!("Standard_B4MS"), &json!("Standard_B4ms")));
        assert!(!contains(&json!([{"name": "api"}]), &want));
    }

    #[test]
    fn a_shared_array_holds_when_each_named_element_is_as_wanted() {
        let want =
            json!([{"name": "ssh", "properties": {"sourceAddressPrefixes": ["203.0.113.7/32"]}}]);
        let with_foreign = json!([
            {"name": "k8s-TCP-443", "properties": {"sourceAddressPrefix": "Internet"}},
            {"name": "ssh", "properties": {"priority": 100, "sourceAddressPrefixes": ["203.0.113.7/32"]}}
        ]);
        assert!(contains_named(&with_foreign, &want));
        assert!(
            !contains(&with_foreign, &want),
            "a plain array wants the same length"
        );
        let opened =
            json!([{"name": "ssh", "properties": {"sourceAddressPrefixes": ["0.0.0.0/0"]}}]);
        assert!(!contains_named(&opened, &want));
        assert!(!contains_named(&json!([]), &want));
    }
}
