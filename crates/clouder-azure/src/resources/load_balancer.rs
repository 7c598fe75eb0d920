//! The API server's Standard load balancer `<c>-lb` on public IP `<c>-lb-ip`: TCP 6443 to the
//! control planes' pool, with a TCP health probe on 6443.
//! Shapes: azure-rest-api-specs specification/network/resource-manager/Microsoft.Network/stable/
//! 2024-05-01/loadBalancer.json (examples/LoadBalancerCreateStandardSku.json) and
//! publicIpAddress.json (examples/PublicIpAddressCreateSku.json).

use super::{ArmResource, ids};
use crate::cloud::{LOAD_BALANCER, PUBLIC_IP, Scope};
use serde_json::{Value, json};
use std::sync::Arc;

pub const BACKEND_POOL: &str = "control-plane";

/// A Standard, static public IPv4 address.
pub fn public_ip_body(scope: &Scope, resource_id: &str) -> Value {
    json!({
        "location": scope.cloud.location,
        "tags": scope.tags(resource_id),
        "sku": { "name": "Standard", "tier": "Regional" },
        "properties": { "publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4" },
    })
}

pub fn public_ip(scope: &Arc<Scope>) -> ArmResource {
    ArmResource {
        scope: scope.clone(),
        id: ids::API_PUBLIC_IP.into(),
        ty: &PUBLIC_IP,
        arm_id: scope.id(&PUBLIC_IP, &scope.name("lb-ip")),
        depends: vec![ids::RESOURCE_GROUP.into()],
        body: public_ip_body(scope, ids::API_PUBLIC_IP),
        checked: &["/sku/name"],
        immutable: true,
        inject: None,
    }
}

/// The id of the control planes' backend pool, which their NICs join.
pub fn backend_pool_id(scope: &Scope) -> String {
    format!(
        "{}/backendAddressPools/{BACKEND_POOL}",
        scope.id(&LOAD_BALANCER, &scope.name("lb"))
    )
}

pub fn load_balancer(scope: &Arc<Scope>) -> ArmResource {
    let lb = scope.id(&LOAD_BALANCER, &scope.name("lb"));
    ArmResource {
        scope: scope.clone(),
        id: ids::API_LOAD_BALANCER.into(),
        ty: &LOAD_BALANCER,
        arm_id: lb.clone(),
        depends: vec![ids::API_PUBLIC_IP.into()],
        body: json!({
            "location": scope.cloud.location,
            "tags": scope.tags(ids::API_LOAD_BALANCER),
            "sku": { "name": "Standard", "tier": "Regional" },
            "properties": {
                "frontendIPConfigurations": [{
                    "name": "api",
                    "properties": { "publicIPAddress": { "id": scope.id(&PUBLIC_IP, &scope.name("lb-ip")) } },
                }],
                "backendAddressPools": [{ "name": BACKEND_POOL }],
                "probes": [{
                    "name": "api",
                    "properties": { "protocol": "Tcp", "port": 6443, "intervalInSeconds": 5, "numberOfProbes": 2 },
                }],
                "loadBalancingRules": [{
                    "name": "api",
                    "properties": {
                        "frontendIPConfiguration": { "id": format!("{lb}/frontendIPConfigurations/api") },
                        "backendAddressPool": { "id": format!("{lb}/backendAddressPools/{BACKEND_POOL}") },
                        "probe": { "id": format!("{lb}/probes/api") },
                        "protocol": "Tcp",
                        "frontendPort": 6443,
                        "backendPort": 6443,
                        "idleTimeoutInMinutes": 30,
                        "enableFloatingIP": false,
                        "loadDistribution": "Default",
                    },
                }],
            },
        }),
        checked: &[
            "/properties/probes",
            "/properties/loadBalancingRules",
            "/properties/backendAddressPools",
        ],
        immutable: false,
        inject: None,
    }
}
