//! The Azure graph as Terraform JSON for the official `hashicorp/azurerm` provider. Each graph
//! resource renders its own blocks from the very ARM body apply would PUT ([`render`]); this
//! module adds the header, the variables users change (location, subscription, counts, sizes,
//! admin CIDRs, the SSH key) and the outputs setup reads. The machines of a pool render one
//! block each for their public IPs, NICs and VMs, `for_each` over the pool's indexes.
//! Argument names: the provider's docs at v4.81.0 (website/docs/r/*.html.markdown).

use crate::cloud::{
    IDENTITY, LOAD_BALANCER, NETWORK_INTERFACE, PUBLIC_IP, ROLE_ASSIGNMENT, SECURITY_GROUP, SUBNET,
    Scope, VIRTUAL_MACHINE, VIRTUAL_NETWORK,
};
use crate::resources::machine::POOL_TAG;
use crate::resources::{ArmResource, CONTROL_PLANE_POOL, ids, load_balancer, name_prefix};
pub use clouder_engine::terraform::pool_local;
use clouder_engine::terraform::{
    Terraform, for_each_index, local, per_index, pool_indexes, reference,
};
use clouder_engine::{Error, Graph};
use clouder_spec::Cluster;
use serde_json::{Value, json};

/// The provider release the rendering is written and checked against (4.42 renamed
/// `enable_floating_ip`; 5.0 drops the old names).
pub const AZURERM_PROVIDER_VERSION: &str = "4.81.0";

/// Terraform addresses of the shared objects.
pub mod names {
    pub const VIRTUAL_NETWORK: &str = "azurerm_virtual_network.main";
    pub const SUBNET: &str = "azurerm_subnet.main";
    pub const SECURITY_GROUP: &str = "azurerm_network_security_group.nodes";
    pub const IDENTITY: &str = "azurerm_user_assigned_identity.nodes";
    pub const API_PUBLIC_IP: &str = "azurerm_public_ip.api";
    pub const LOAD_BALANCER: &str = "azurerm_lb.api";
    pub const BACKEND_POOL: &str = "azurerm_lb_backend_address_pool.api";
    pub const PROBE: &str = "azurerm_lb_probe.api";
}

fn kind_of(address: &str) -> &str {
    address.split_once('.').map_or(address, |(k, _)| k)
}

/// The resource group's name and id, whether the module creates it or reads it.
const GROUP_NAME: &str = "${local.resource_group_name}";
const GROUP_ID: &str = "${local.resource_group_id}";
const LOCATION: &str = "${var.location}";

/// The cluster's tags with the graph id `resource_id` (templated for a pool's blocks).
fn tags(scope: &Scope, resource_id: &str) -> Value {
    scope.tags(resource_id)
}

/// A resource block, with the location and group every Azure object of the cluster shares.
fn placed(mut body: Value) -> Value {
    body["location"] = LOCATION.into();
    body["resource_group_name"] = GROUP_NAME.into();
    body
}

/// `pool` of a per-machine graph id (`nic/workers-2` → `workers`).
fn pool_of(id: &str) -> &str {
    let name = id.split_once('/').map_or(id, |(_, n)| n);
    name.rsplit_once('-').map_or(name, |(p, _)| p)
}

/// The graph id of a pool's machine object with the index templated: `nic/workers-${each.key}`.
fn indexed(id: &str) -> String {
    let prefix = id.rsplit_once('-').map_or(id, |(p, _)| p);
    format!("{prefix}-${{each.key}}")
}

/// The resource group: created as `<c>-rg`, or the one named with `-g`, read (it must exist).
pub fn resource_group(scope: &Scope, named: bool) -> Result<Terraform, Error> {
    let (source, address) = if named {
        let tf = Terraform::default().data(
            "azurerm_resource_group",
            "main",
            json!({ "name": scope.resource_group }),
        )?;
        (tf, "data.azurerm_resource_group.main")
    } else {
        let tf = Terraform::default().resource(
            "azurerm_resource_group",
            "main",
            json!({
                "name": scope.resource_group,
                "location": LOCATION,
                "tags": tags(scope, ids::RESOURCE_GROUP),
            }),
        )?;
        (tf, "azurerm_resource_group.main")
    };
    source
        .local("resource_group_name", reference(address, "name").into())?
        .local("resource_group_id", reference(address, "id").into())
}

/// The blocks of one ARM object of the graph, from the body apply would PUT.
pub fn render(r: &ArmResource) -> Result<Terraform, Error> {
    let s = &r.scope;
    let body = &r.body;
    let p = &body["properties"];
    let tf = Terraform::default();
    match r.ty {
        t if *t == VIRTUAL_NETWORK => tf.resource(
            kind_of(names::VIRTUAL_NETWORK),
            local(names::VIRTUAL_NETWORK),
            placed(json!({
                "name": s.name("vnet"),
                "address_space": p["addressSpace"]["addressPrefixes"],
                "tags": tags(s, &r.id),
            })),
        ),
        t if *t == SUBNET => tf
            .resource(
                kind_of(names::SUBNET),
                local(names::SUBNET),
                json!({
                    "name": s.name("subnet"),
                    "resource_group_name": GROUP_NAME,
                    "virtual_network_name": reference(names::VIRTUAL_NETWORK, "name"),
                    "address_prefixes": [p["addressPrefix"]],
                }),
            )?
            .resource(
                "azurerm_subnet_network_security_group_association",
                "main",
                json!({
                    "subnet_id": reference(names::SUBNET, "id"),
                    "network_security_group_id": reference(names::SECURITY_GROUP, "id"),
                }),
            ),
        t if *t == SECURITY_GROUP => {
            let mut tf = tf.resource(
                kind_of(names::SECURITY_GROUP),
                local(names::SECURITY_GROUP),
                placed(json!({ "name": s.name("nsg"), "tags": tags(s, &r.id) })),
            )?;
            // One block per rule, so rules others add to the NSG stay theirs.
            for rule in p["securityRules"].as_array().into_iter().flatten() {
                let name = rule["name"].as_str().unwrap_or_default();
                let q = &rule["properties"];
                let sources = if name.ends_with("-admin") {
                    json!("${var.admin_cidrs}")
                } else {
                    q["sourceAddressPrefixes"].clone()
                };
                tf = tf.resource(
                    "azurerm_network_security_rule",
                    &name.replace('-', "_"),
                    json!({
                        "name": name,
                        "resource_group_name": GROUP_NAME,
                        "network_security_group_name": reference(names::SECURITY_GROUP, "name"),
                        "priority": q["priority"],
                        "direction": q["direction"],
                        "access": q["access"],
                        "protocol": q["protocol"],
                        "source_port_range": q["sourcePortRange"],
                        "destination_port_range": q["destinationPortRange"],
                        "source_address_prefixes": sources,
                        "destination_address_prefix": q["destinationAddressPrefix"],
                    }),
                )?;
            }
            Ok(tf)
        }
        t if *t == IDENTITY => tf.resource(
            kind_of(names::IDENTITY),
            local(names::IDENTITY),
            placed(json!({ "name": s.name("identity"), "tags": tags(s, &r.id) })),
        ),
        t if *t == ROLE_ASSIGNMENT => tf.resource(
            "azurerm_role_assignment",
            "nodes",
            json!({
                "scope": GROUP_ID,
                "role_definition_name": "Contributor",
                "principal_id": reference(names::IDENTITY, "principal_id"),
                "principal_type": p["principalType"],
            }),
        ),
        t if *t == PUBLIC_IP && r.id == ids::API_PUBLIC_IP => tf.resource(
            kind_of(names::API_PUBLIC_IP),
            local(names::API_PUBLIC_IP),
            placed(public_ip(s.name("lb-ip"), body, tags(s, &r.id))),
        ),
        t if *t == PUBLIC_IP => {
            let pool = pool_of(&r.id);
            let mut block = public_ip(
                format!("${{local.{}_names[each.key]}}-ip", pool_local(pool)),
                body,
                tags(s, &indexed(&r.id)),
            );
            block["for_each"] = for_each_index(&pool_local(pool)).into();
            tf.resource("azurerm_public_ip", &pool_local(pool), placed(block))
        }
        t if *t == LOAD_BALANCER => load_balancer_blocks(s, r),
        t if *t == NETWORK_INTERFACE => nic_blocks(s, r),
        other => Err(Error::permanent(format!(
            "{} ({}) has no Terraform rendering yet",
            r.id, other.kind
        ))),
    }
}

fn public_ip(name: String, body: &Value, tags: Value) -> Value {
    json!({
        "name": name,
        "allocation_method": body["properties"]["publicIPAllocationMethod"],
        "ip_version": body["properties"]["publicIPAddressVersion"],
        "sku": body["sku"]["name"],
        "sku_tier": body["sku"]["tier"],
        "tags": tags,
    })
}

fn load_balancer_blocks(s: &Scope, r: &ArmResource) -> Result<Terraform, Error> {
    let p = &r.body["properties"];
    let frontend = &p["frontendIPConfigurations"][0];
    let probe = &p["probes"][0];
    let rule = &p["loadBalancingRules"][0]["properties"];
    let lb_id = reference(names::LOAD_BALANCER, "id");
    Terraform::default()
        .resource(
            kind_of(names::LOAD_BALANCER),
            local(names::LOAD_BALANCER),
            placed(json!({
                "name": s.name("lb"),
                "sku": r.body["sku"]["name"],
                "sku_tier": r.body["sku"]["tier"],
                "frontend_ip_configuration": [{
                    "name": frontend["name"],
                    "public_ip_address_id": reference(names::API_PUBLIC_IP, "id"),
                }],
                "tags": tags(s, &r.id),
            })),
        )?
        .resource(
            kind_of(names::BACKEND_POOL),
            local(names::BACKEND_POOL),
            json!({ "name": load_balancer::BACKEND_POOL, "loadbalancer_id": lb_id }),
        )?
        .resource(
            kind_of(names::PROBE),
            local(names::PROBE),
            json!({
                "name": probe["name"],
                "loadbalancer_id": lb_id,
                "protocol": probe["properties"]["protocol"],
                "port": probe["properties"]["port"],
                "interval_in_seconds": probe["properties"]["intervalInSeconds"],
                "number_of_probes": probe["properties"]["numberOfProbes"],
            }),
        )?
        .resource(
            "azurerm_lb_rule",
            "api",
            json!({
                "name": p["loadBalancingRules"][0]["name"],
                "loadbalancer_id": lb_id,
                "frontend_ip_configuration_name": frontend["name"],
                "backend_address_pool_ids": [reference(names::BACKEND_POOL, "id")],
                "probe_id": reference(names::PROBE, "id"),
                "protocol": rule["protocol"],
                "frontend_port": rule["frontendPort"],
                "backend_port": rule["backendPort"],
                "idle_timeout_in_minutes": rule["idleTimeoutInMinutes"],
                "floating_ip_enabled": rule["enableFloatingIP"],
                "load_distribution": rule["loadDistribution"],
            }),
        )
}

fn nic_blocks(s: &Scope, r: &ArmResource) -> Result<Terraform, Error> {
    let pool = pool_of(&r.id);
    let local = pool_local(pool);
    let p = &r.body["properties"];
    let config = &p["ipConfigurations"][0];
    let tf = Terraform::default().resource(
        "azurerm_network_interface",
        &local,
        placed(json!({
            "for_each": for_each_index(&local),
            "name": format!("${{local.{local}_names[each.key]}}-nic"),
            "ip_forwarding_enabled": p["enableIPForwarding"],
            "ip_configuration": [{
                "name": config["name"],
                "primary": config["properties"]["primary"],
                "subnet_id": reference(names::SUBNET, "id"),
                "private_ip_address_allocation": config["properties"]["privateIPAllocationMethod"],
                "public_ip_address_id": format!("${{azurerm_public_ip.{local}[each.key].id}}"),
            }],
            "tags": tags(s, &indexed(&r.id)),
        })),
    )?;
    if config["properties"]
        .get("loadBalancerBackendAddressPools")
        .is_none()
    {
        return Ok(tf);
    }
    // Control planes join the API load balancer's pool.
    tf.resource(
        "azurerm_network_interface_backend_address_pool_association",
        &local,
        json!({
            "for_each": format!("${{azurerm_network_interface.{local}}}"),
            "network_interface_id": "${each.value.id}",
            "ip_configuration_name": config["name"],
            "backend_address_pool_id": reference(names::BACKEND_POOL, "id"),
        }),
    )
}

/// A pool's VMs, from one of them.
pub fn virtual_machines(r: &ArmResource, pool: &str) -> Result<Terraform, Error> {
    debug_assert!(*r.ty == VIRTUAL_MACHINE);
    let s = &r.scope;
    let local = pool_local(pool);
    let p = &r.body["properties"];
    let os = &p["osProfile"];
    let image = &p["storageProfile"]["imageReference"];
    let disk = &p["storageProfile"]["osDisk"];
    let mut tags = tags(s, &indexed(&r.id));
    tags[POOL_TAG] = pool.into();
    let mut body = placed(json!({
        "for_each": for_each_index(&local),
        "name": format!("${{local.{local}_names[each.key]}}"),
        "computer_name": format!("${{local.{local}_names[each.key]}}"),
        "size": format!("${{var.{local}_size}}"),
        "admin_username": os["adminUsername"],
        "disable_password_authentication": os["linuxConfiguration"]["disablePasswordAuthentication"],
        "admin_ssh_key": [{ "username": os["adminUsername"], "public_key": "${var.ssh_public_key}" }],
        "network_interface_ids": [format!("${{azurerm_network_interface.{local}[each.key].id}}")],
        "os_disk": [{
            "caching": "ReadWrite",
            "storage_account_type": disk["managedDisk"]["storageAccountType"],
            "disk_size_gb": format!("${{var.{local}_disk_gb}}"),
        }],
        "identity": [{
            "type": "UserAssigned",
            "identity_ids": [reference(names::IDENTITY, "id")],
        }],
        "tags": tags,
    }));
    match image.get("id") {
        Some(id) => body["source_image_id"] = id.clone(),
        None => body["source_image_reference"] = json!([image]),
    }
    Terraform::default().resource("azurerm_linux_virtual_machine", &local, body)
}

fn variable(kind: &str, description: &str, default: Option<Value>) -> Value {
    let mut v = json!({ "type": kind, "description": description });
    if let Some(default) = default {
        v["default"] = default;
    }
    v
}

/// The whole module for `cluster`: `graph` (built by [`crate::graph`] with `scope`) rendered,
/// plus header, variables and outputs. `public_key` is the SSH key the machines admit.
pub fn document(
    scope: &Scope,
    cluster: &Cluster,
    graph: &Graph,
    public_key: &str,
) -> Result<Terraform, Error> {
    let spec = &cluster.spec;
    let mut tf = Terraform::default();
    tf.terraform.insert(
        "required_providers".into(),
        json!({ "azurerm": { "source": "hashicorp/azurerm", "version": AZURERM_PROVIDER_VERSION } }),
    );
    tf.terraform
        .insert("required_version".into(), json!(">= 1.5.0"));
    tf.provider.insert(
        "azurerm".into(),
        json!({ "features": {}, "subscription_id": "${var.subscription_id}" }),
    );
    let subscription = Some(scope.cloud.subscription.clone())
        .filter(|s| !s.is_empty())
        .map(Value::from);
    let admin: Vec<String> = spec.admin_cidrs.iter().map(ToString::to_string).collect();
    tf = tf
        .variable(
            "location",
            variable(
                "string",
                "Azure location",
                Some(json!(scope.cloud.location)),
            ),
        )?
        .variable(
            "subscription_id",
            variable("string", "Azure subscription", subscription),
        )?
        .variable(
            "admin_cidrs",
            variable(
                "list(string)",
                "Networks allowed to reach SSH (22) and the API server (6443)",
                Some(json!(admin)),
            ),
        )?
        .variable(
            "ssh_public_key",
            variable(
                "string",
                "The SSH public key the machines admit",
                Some(json!(public_key.trim())),
            ),
        )?;
    let mut nodes = serde_json::Map::new();
    for p in spec.machine_pools() {
        let (pool, count, size, disk_gb, retired) =
            (p.name, p.count, p.size, p.os_disk_gb, p.retired);
        let local = pool_local(pool);
        let prefix = scope.name(&name_prefix(pool));
        // The control plane's first machine is `<c>-master`, the others `<c>-master-N`.
        let names = if pool == CONTROL_PLANE_POOL {
            format!(
                "${{{{ for i in local.{local}_indexes : tostring(i) => i == 0 ? \"{prefix}\" : format(\"{prefix}-%d\", i) }}}}"
            )
        } else {
            format!(
                "${{{{ for i in local.{local}_indexes : tostring(i) => format(\"{prefix}-%d\", i) }}}}"
            )
        };
        tf = tf
            .merge(pool_indexes(&local, count, retired)?)?
            .local(&format!("{local}_names"), names.into())?
            .variable(
                &format!("{local}_size"),
                variable("string", &format!("VM size of {pool}"), Some(json!(size))),
            )?
            .variable(
                &format!("{local}_disk_gb"),
                variable(
                    "number",
                    &format!("OS disk GB of {pool}"),
                    Some(json!(disk_gb)),
                ),
            )?;
        if count == 0 {
            continue;
        }
        nodes.insert(
            pool.to_string(),
            json!({
                "indexes": format!("${{local.{local}_indexes}}"),
                "names": per_index(&local, &format!("azurerm_linux_virtual_machine.{local}"), "name"),
                "instance_ids": per_index(&local, &format!("azurerm_linux_virtual_machine.{local}"), "id"),
                "private_ips": per_index(&local, &format!("azurerm_network_interface.{local}"), "private_ip_address"),
                "public_ips": per_index(&local, &format!("azurerm_public_ip.{local}"), "ip_address"),
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
            json!({ "value": "azure", "description": "Cloud provider" }),
        )?
        .output("region", json!({ "value": LOCATION }))?
        .output(
            "ssh_user",
            json!({ "value": spec.admin_user, "description": "Login user on the machines" }),
        )?
        .output(
            "api_endpoint",
            json!({
                "value": reference(names::API_PUBLIC_IP, "ip_address"),
                "description": "Public IP of the API server load balancer (port 6443)",
            }),
        )?
        .output(
            "nodes",
            json!({
                "value": nodes,
                "description": "Machines by pool: names, VM ids, private and public addresses",
            }),
        )?;
    let rendered = clouder_engine::terraform::render(graph)?;
    tf.merge(rendered)
}
