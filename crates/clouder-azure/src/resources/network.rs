//! The cluster's network: VNet `<c>-vnet`, subnet `<c>-subnet` with the NSG attached, and the
//! NSG `<c>-nsg`, secure by default: SSH (22) and the API server (6443) only from the admin
//! CIDRs; the kubelet (10250) and all node traffic only from inside the VNet and the pod network.
//! Body shapes: azure-rest-api-specs specification/network/resource-manager/Microsoft.Network/
//! stable/2024-05-01/virtualNetwork.json and networkSecurityGroup.json (examples/
//! VirtualNetworkCreate.json, SubnetCreate.json, NetworkSecurityGroupCreateWithRule.json).

use super::{ArmResource, ids};
use crate::cloud::{SECURITY_GROUP, SUBNET, Scope, VIRTUAL_NETWORK};
use serde_json::{Value, json};
use std::sync::Arc;

pub fn virtual_network(scope: &Arc<Scope>, cidr: &str) -> ArmResource {
    ArmResource {
        scope: scope.clone(),
        id: ids::VIRTUAL_NETWORK.into(),
        ty: &VIRTUAL_NETWORK,
        arm_id: scope.id(&VIRTUAL_NETWORK, &scope.name("vnet")),
        depends: vec![ids::RESOURCE_GROUP.into()],
        body: json!({
            "location": scope.cloud.location,
            "tags": scope.tags(ids::VIRTUAL_NETWORK),
            "properties": { "addressSpace": { "addressPrefixes": [cidr] } },
        }),
        checked: &["/properties/addressSpace/addressPrefixes"],
        // A VNet PUT restates its subnets; changing the address space means re-creating.
        immutable: true,
        inject: None,
    }
}

pub fn subnet(scope: &Arc<Scope>, cidr: &str) -> ArmResource {
    let vnet = scope.id(&VIRTUAL_NETWORK, &scope.name("vnet"));
    ArmResource {
        scope: scope.clone(),
        id: ids::SUBNET.into(),
        ty: &SUBNET,
        arm_id: format!("{vnet}/subnets/{}", scope.name("subnet")),
        depends: vec![ids::VIRTUAL_NETWORK.into(), ids::SECURITY_GROUP.into()],
        body: json!({
            "properties": {
                "addressPrefix": cidr,
                "networkSecurityGroup": { "id": scope.id(&SECURITY_GROUP, &scope.name("nsg")) },
            },
        }),
        checked: &[
            "/properties/addressPrefix",
            "/properties/networkSecurityGroup",
        ],
        immutable: false,
        inject: None,
    }
}

/// The inbound rules: nothing from the internet but SSH and the API server from `admin`.
pub fn security_rules(admin: &[String], inside: &[String]) -> Value {
    let rule = |name: &str, priority: u32, protocol: &str, port: &str, from: &[String]| {
        json!({
            "name": name,
            "properties": {
                "priority": priority,
                "direction": "Inbound",
                "access": "Allow",
                "protocol": protocol,
                "sourcePortRange": "*",
                "destinationPortRange": port,
                "sourceAddressPrefixes": from,
                "destinationAddressPrefix": "*",
            },
        })
    };
    json!([
        rule("allow-ssh-admin", 100, "Tcp", "22", admin),
        rule("allow-api-admin", 110, "Tcp", "6443", admin),
        rule("allow-cluster-internal", 120, "*", "*", inside),
    ])
}

pub fn security_group(scope: &Arc<Scope>, admin: &[String], inside: &[String]) -> ArmResource {
    ArmResource {
        scope: scope.clone(),
        id: ids::SECURITY_GROUP.into(),
        ty: &SECURITY_GROUP,
        arm_id: scope.id(&SECURITY_GROUP, &scope.name("nsg")),
        depends: vec![ids::RESOURCE_GROUP.into()],
        body: json!({
            "location": scope.cloud.location,
            "tags": scope.tags(ids::SECURITY_GROUP),
            "properties": { "securityRules": security_rules(admin, inside) },
        }),
        checked: &["/properties/securityRules"],
        immutable: false,
        inject: None,
    }
}
