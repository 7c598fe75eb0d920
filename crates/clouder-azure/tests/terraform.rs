//! The Azure graph rendered as Terraform JSON for hashicorp/azurerm: golden files, every
//! reference declared, every type and required argument known to the provider's docs, the
//! machine names Terraform computes equal to clouder's (evaluated by `terraform console`), and
//! the module loading in Terraform.

use clouder_azure::resources::{machine_name, resource_group_name};
use clouder_azure::terraform::{AZURERM_PROVIDER_VERSION, document};
use clouder_azure::{AzureCloud, Scope};
use clouder_engine::terraform::references;
use clouder_testenv::terraform;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const SPEC: &str = "apiVersion: clouder.io/v1alpha1
kind: Cluster
metadata:
  name: tfaz
spec:
  provider: azure
  region: westeurope
  adminCidrs: [203.0.113.7/32, 198.51.100.0/24]
  controlPlane: {count: 3, size: Standard_D4s_v5}
  nodePools:
    - {name: workers, count: 2, size: Standard_B4ms, retired: [0]}
    - {name: gpu-pool, count: 1, size: Standard_NC4as_T4_v3, osDiskGb: 200}
";

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnMbqJ0xB3EJkfsUJEyQfSO0YjDLqfJd0X0aXxGJm5q test@clouder";
const SUBSCRIPTION: &str = "00000000-1111-2222-3333-444444444444";

fn cluster(spec: &str) -> clouder_spec::Cluster {
    clouder_spec::parse("cluster.yaml", spec).expect("valid spec")
}

fn scope(cluster: &clouder_spec::Cluster) -> std::sync::Arc<Scope> {
    Scope::new(
        AzureCloud::offline(SUBSCRIPTION, cluster.spec.region.as_deref().unwrap()),
        cluster.name(),
        &resource_group_name(cluster),
        false,
    )
}

fn files(spec: &str) -> Vec<(&'static str, String)> {
    let cluster = cluster(spec);
    let scope = scope(&cluster);
    let graph = clouder_azure::graph(scope.clone(), &cluster, KEY).unwrap();
    document(&scope, &cluster, &graph, KEY).unwrap().files()
}

fn module(spec: &str) -> Value {
    references::module(&files(spec)).unwrap()
}

#[test]
fn golden_files() {
    for (name, text) in files(SPEC) {
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn rendering_is_deterministic_and_sorted() {
    let (a, b) = (files(SPEC), files(SPEC));
    assert_eq!(a, b);
    for (name, text) in &a {
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
    for spec in [
        SPEC.to_string(),
        SPEC.replace("region:", "resourceGroup: team-rg\n  region:"),
    ] {
        let checked = references::check(&module(&spec))
            .unwrap_or_else(|dangling| panic!("references to nothing: {dangling:#?}"));
        assert!(
            checked > 60,
            "only {checked} references found: the scan is broken"
        );
    }
}

/// Types with the arguments the provider marks "(Required)", from its docs at v4.81.0 in the
/// repository hashicorp/terraform-provider-azurerm, at the paths given (published at
/// https://registry.terraform.io/providers/hashicorp/azurerm/4.81.0/docs/...). `address_space`,
/// `address_prefixes` and `admin_username` are documented optional but exactly-one-of with
/// options we do not use, so they are required here. Types absent here fail the test.
const PROVIDER_DOCS: &[(&str, &str, &[&str])] = &[
    (
        "azurerm_resource_group",
        "website/docs/r/resource_group.html.markdown",
        &["name", "location"],
    ),
    (
        "data.azurerm_resource_group",
        "website/docs/d/resource_group.html.markdown",
        &["name"],
    ),
    (
        "azurerm_virtual_network",
        "website/docs/r/virtual_network.html.markdown",
        &["name", "resource_group_name", "location", "address_space"],
    ),
    (
        "azurerm_subnet",
        "website/docs/r/subnet.html.markdown",
        &[
            "name",
            "resource_group_name",
            "virtual_network_name",
            "address_prefixes",
        ],
    ),
    (
        "azurerm_network_security_group",
        "website/docs/r/network_security_group.html.markdown",
        &["name", "resource_group_name", "location"],
    ),
    (
        "azurerm_network_security_rule",
        "website/docs/r/network_security_rule.html.markdown",
        &[
            "name",
            "resource_group_name",
            "network_security_group_name",
            "protocol",
            "access",
            "priority",
            "direction",
        ],
    ),
    (
        "azurerm_subnet_network_security_group_association",
        "website/docs/r/subnet_network_security_group_association.html.markdown",
        &["network_security_group_id", "subnet_id"],
    ),
    (
        "azurerm_user_assigned_identity",
        "website/docs/r/user_assigned_identity.html.markdown",
        &["location", "name", "resource_group_name"],
    ),
    (
        "azurerm_role_assignment",
        "website/docs/r/role_assignment.html.markdown",
        &["scope", "principal_id"],
    ),
    (
        "azurerm_public_ip",
        "website/docs/r/public_ip.html.markdown",
        &[
            "name",
            "resource_group_name",
            "location",
            "allocation_method",
        ],
    ),
    (
        "azurerm_lb",
        "website/docs/r/lb.html.markdown",
        &["name", "resource_group_name", "location"],
    ),
    (
        "azurerm_lb_backend_address_pool",
        "website/docs/r/lb_backend_address_pool.html.markdown",
        &["name", "loadbalancer_id"],
    ),
    (
        "azurerm_lb_probe",
        "website/docs/r/lb_probe.html.markdown",
        &["name", "loadbalancer_id", "port"],
    ),
    (
        "azurerm_lb_rule",
        "website/docs/r/lb_rule.html.markdown",
        &[
            "name",
            "loadbalancer_id",
            "frontend_ip_configuration_name",
            "protocol",
            "frontend_port",
            "backend_port",
        ],
    ),
    (
        "azurerm_network_interface",
        "website/docs/r/network_interface.html.markdown",
        &[
            "ip_configuration",
            "location",
            "name",
            "resource_group_name",
        ],
    ),
    (
        "azurerm_network_interface_backend_address_pool_association",
        "website/docs/r/network_interface_backend_address_pool_association.html.markdown",
        &[
            "network_interface_id",
            "ip_configuration_name",
            "backend_address_pool_id",
        ],
    ),
    (
        "azurerm_linux_virtual_machine",
        "website/docs/r/linux_virtual_machine.html.markdown",
        &[
            "location",
            "name",
            "network_interface_ids",
            "os_disk",
            "resource_group_name",
            "size",
            "admin_username",
        ],
    ),
];

/// Nested blocks and their required arguments (same docs).
const NESTED_REQUIRED: &[(&str, &str, &[&str])] = &[
    ("azurerm_lb", "frontend_ip_configuration", &["name"]),
    (
        "azurerm_network_interface",
        "ip_configuration",
        &["name", "private_ip_address_allocation"],
    ),
    ("azurerm_linux_virtual_machine", "os_disk", &["caching"]),
    (
        "azurerm_linux_virtual_machine",
        "admin_ssh_key",
        &["username", "public_key"],
    ),
    (
        "azurerm_linux_virtual_machine",
        "source_image_reference",
        &["publisher", "offer", "sku", "version"],
    ),
    ("azurerm_linux_virtual_machine", "identity", &["type"]),
];

#[test]
fn every_type_and_required_argument_exists_in_the_provider() {
    assert_eq!(
        AZURERM_PROVIDER_VERSION, "4.81.0",
        "re-check the table against the new docs"
    );
    // Both ways of placing the group: created, or named with -g (read).
    let mut both = module(SPEC);
    let named = module(&SPEC.replace("region:", "resourceGroup: team-rg\n  region:"));
    both["data"] = named["data"].clone();
    let missing = references::missing_arguments(&both, PROVIDER_DOCS, NESTED_REQUIRED);
    assert!(missing.is_empty(), "{missing:#?}");
    // Names the 4.x provider renamed are the new ones.
    let resources = &both["resource"];
    assert_eq!(
        resources["azurerm_lb_rule"]["api"]["floating_ip_enabled"],
        false
    );
    assert_eq!(
        resources["azurerm_network_interface"]["workers"]["ip_forwarding_enabled"],
        true
    );
}

#[test]
fn variables_carry_the_spec_and_outputs_what_setup_needs() {
    let m = module(SPEC);
    let default = |v: &str| m["variable"][v]["default"].clone();
    assert_eq!(default("location"), "westeurope");
    assert_eq!(default("subscription_id"), SUBSCRIPTION);
    assert_eq!(default("control_plane_count"), 3);
    assert_eq!(default("workers_retired"), json!([0]));
    assert_eq!(default("workers_size"), "Standard_B4ms");
    assert_eq!(default("gpu_pool_disk_gb"), 200);
    assert_eq!(
        default("admin_cidrs"),
        json!(["203.0.113.7/32", "198.51.100.0/24"])
    );
    assert_eq!(default("ssh_public_key"), KEY);
    let rules = &m["resource"]["azurerm_network_security_rule"];
    assert_eq!(
        rules["allow_ssh_admin"]["source_address_prefixes"],
        "${var.admin_cidrs}"
    );
    assert_eq!(rules["allow_api_admin"]["destination_port_range"], "6443");
    let vm = &m["resource"]["azurerm_linux_virtual_machine"]["workers"];
    assert_eq!(
        vm["tags"]["clouder.io/resource"],
        "instance/workers-${each.key}"
    );
    assert_eq!(vm["tags"]["clouder.io/cluster"], "tfaz");
    assert_eq!(
        vm["admin_ssh_key"][0]["public_key"],
        "${var.ssh_public_key}"
    );
    assert_eq!(
        m["provider"]["azurerm"]["subscription_id"],
        "${var.subscription_id}"
    );
    let nodes = m["output"]["nodes"]["value"].as_object().unwrap();
    assert_eq!(
        nodes.keys().collect::<Vec<_>>(),
        ["control-plane", "gpu-pool", "workers"]
    );
    assert_eq!(m["output"]["provider"]["value"], "azure");
    assert_eq!(
        m["output"]["api_endpoint"]["value"],
        "${azurerm_public_ip.api.ip_address}"
    );

    // A group named with -g is read, not created; the module never deletes it.
    let named = module(&SPEC.replace("region:", "resourceGroup: team-rg\n  region:"));
    assert!(named["resource"].get("azurerm_resource_group").is_none());
    assert_eq!(
        named["data"]["azurerm_resource_group"]["main"]["name"],
        "team-rg"
    );
    // Without a known subscription, the variable has no default: Terraform asks for it.
    let cluster = cluster(SPEC);
    let scope = Scope::new(
        AzureCloud::offline("", "westeurope"),
        "tfaz",
        "tfaz-rg",
        false,
    );
    let graph = clouder_azure::graph(scope.clone(), &cluster, KEY).unwrap();
    let doc = document(&scope, &cluster, &graph, KEY).unwrap();
    assert!(doc.variable["subscription_id"].get("default").is_none());
}

/// Terraform computes the machines' indexes and names as clouder does: `terraform console`
/// evaluates the module's locals (it needs no provider for them).
#[test]
fn terraform_names_the_machines_as_clouder_does() {
    if !terraform::present() {
        return;
    }
    let m = module(SPEC);
    let dir = tempfile::tempdir().unwrap();
    // The pools' locals only: the others refer to resources, which need the provider.
    let pools: serde_json::Map<String, Value> = m["locals"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.ends_with("_indexes") || k.ends_with("_names"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let only = json!({ "variable": m["variable"], "locals": pools });
    std::fs::write(dir.path().join("main.tf.json"), only.to_string()).unwrap();
    let computed = terraform::evaluate(
        dir.path(),
        "[local.control_plane_names, local.workers_names, local.gpu_pool_names]",
    );

    let cluster = cluster(SPEC);
    let scope = scope(&cluster);
    let expected = |pool: &str, indexes: Vec<u32>| -> Value {
        indexes
            .into_iter()
            .map(|i| (i.to_string(), Value::from(machine_name(&scope, pool, i))))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let spec = &cluster.spec;
    assert_eq!(
        computed,
        json!([
            expected("control-plane", (0..spec.control_plane.count).collect()),
            expected("workers", spec.node_pools[0].indexes()),
            expected("gpu-pool", spec.node_pools[1].indexes()),
        ])
    );
    assert_eq!(computed[1], json!({"1": "tfaz-node-1", "2": "tfaz-node-2"}));
}

/// Terraform loads the module and resolves the pinned provider requirement (and validates it
/// where the provider plugin is installed).
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
        providers.contains(&format!("hashicorp/azurerm] {AZURERM_PROVIDER_VERSION}")),
        "{providers}"
    );
    terraform::validate(dir.path(), "hashicorp/azurerm", AZURERM_PROVIDER_VERSION);
}
