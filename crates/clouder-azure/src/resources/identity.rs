//! The nodes' user-assigned managed identity `<c>-identity` and its Contributor role on the
//! cluster's resource group (for the cloud provider and the Disk/File CSI drivers): no client
//! secret exists anywhere. Also the `azure.json` cloud config that setup places on nodes.
//! Shapes: azure-rest-api-specs specification/msi/resource-manager/Microsoft.ManagedIdentity/
//! stable/2023-01-31/ManagedIdentity.json and specification/authorization/resource-manager/
//! Microsoft.Authorization/stable/2022-04-01/authorization-RoleAssignmentsCalls.json
//! (examples/RoleAssignments_Create.json).

use super::{ArmResource, ids};
use crate::cloud::{IDENTITY, ROLE_ASSIGNMENT, Scope};
use serde_json::{Value, json};
use std::sync::Arc;

/// The built-in Contributor role.
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";

pub fn identity(scope: &Arc<Scope>) -> ArmResource {
    ArmResource {
        scope: scope.clone(),
        id: ids::IDENTITY.into(),
        ty: &IDENTITY,
        arm_id: scope.id(&IDENTITY, &scope.name("identity")),
        depends: vec![ids::RESOURCE_GROUP.into()],
        body: json!({ "location": scope.cloud.location, "tags": scope.tags(ids::IDENTITY) }),
        checked: &[],
        immutable: false,
        inject: None,
    }
}

/// Role assignment names are GUIDs; deriving it from the group and cluster makes the PUT
/// idempotent and the assignment findable without tags.
pub fn role_assignment_name(scope: &Scope) -> String {
    let key = format!(
        "clouder:{}:{}",
        scope.group_id().to_ascii_lowercase(),
        scope.cluster
    );
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, key.as_bytes()).to_string()
}

pub fn role_assignment(scope: &Arc<Scope>) -> ArmResource {
    ArmResource {
        scope: scope.clone(),
        id: ids::ROLE_ASSIGNMENT.into(),
        ty: &ROLE_ASSIGNMENT,
        arm_id: format!(
            "{}/providers/{}/{}",
            scope.group_id(),
            ROLE_ASSIGNMENT.path,
            role_assignment_name(scope)
        ),
        depends: vec![ids::IDENTITY.into()],
        body: json!({
            "properties": {
                "roleDefinitionId": format!(
                    "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}",
                    scope.cloud.subscription
                ),
                "principalId": "",
                "principalType": "ServicePrincipal",
            },
        }),
        checked: &["/properties/roleDefinitionId"],
        immutable: true,
        inject: Some((ids::IDENTITY, "principal_id", "/properties/principalId")),
    }
}

/// `/etc/kubernetes/azure.json` for cloud-provider-azure and the CSI drivers: the managed
/// identity by client id, never a secret.
pub fn cloud_config(scope: &Scope, identity_client_id: &str, tenant_id: &str) -> Value {
    json!({
        "cloud": "AzurePublicCloud",
        "tenantId": tenant_id,
        "subscriptionId": scope.cloud.subscription,
        "resourceGroup": scope.resource_group,
        "location": scope.cloud.location,
        "vmType": "standard",
        "vnetName": scope.name("vnet"),
        "vnetResourceGroup": scope.resource_group,
        "subnetName": scope.name("subnet"),
        "securityGroupName": scope.name("nsg"),
        "securityGroupResourceGroup": scope.resource_group,
        "loadBalancerSku": "standard",
        "useManagedIdentityExtension": true,
        "userAssignedIdentityID": identity_client_id,
        "useInstanceMetadata": true,
    })
}
