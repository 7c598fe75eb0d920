//! The resource types this fake serves, with the api-version each accepts (the versions
//! clouder pins) and whether writes are long-running operations.
//!
//! Shapes follow the public specs in github.com/Azure/azure-rest-api-specs:
//! - resource groups: specification/resources/resource-manager/Microsoft.Resources/stable/2021-04-01/resources.json
//! - network: specification/network/resource-manager/Microsoft.Network/stable/2024-05-01/
//!   (virtualNetwork.json, networkSecurityGroup.json, publicIpAddress.json, networkInterface.json,
//!   loadBalancer.json; examples/VirtualNetworkCreate.json, SubnetDelete.json, ...)
//! - compute: specification/compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-07-01/virtualMachine.json
//! - identities: specification/msi/resource-manager/Microsoft.ManagedIdentity/stable/2023-01-31/ManagedIdentity.json
//! - role assignments: specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/authorization-RoleAssignmentsCalls.json

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// `Microsoft.Network/virtualNetworks/subnets`, as ARM spells it in `type`.
    pub ty: &'static str,
    pub api_version: &'static str,
    /// PUT and DELETE answer at once with an `Azure-AsyncOperation` to poll.
    pub long_running: bool,
    /// Only one other resource may point at it (a NIC's public IP, a VM's NIC).
    pub exclusive: bool,
    /// The error code of a DELETE refused because something points at it.
    pub in_use_code: Option<&'static str>,
}

pub const RESOURCE_GROUP: Kind = Kind {
    ty: "Microsoft.Resources/resourceGroups",
    api_version: "2021-04-01",
    long_running: false,
    exclusive: false,
    in_use_code: None,
};

const NETWORK: &str = "2024-05-01";

pub const KINDS: [Kind; 10] = [
    Kind {
        ty: "Microsoft.Network/virtualNetworks",
        api_version: NETWORK,
        long_running: true,
        exclusive: false,
        in_use_code: Some("InUseSubnetCannotBeDeleted"),
    },
    Kind {
        ty: "Microsoft.Network/virtualNetworks/subnets",
        api_version: NETWORK,
        long_running: true,
        exclusive: false,
        in_use_code: Some("InUseSubnetCannotBeDeleted"),
    },
    Kind {
        ty: "Microsoft.Network/networkSecurityGroups",
        api_version: NETWORK,
        long_running: true,
        exclusive: false,
        in_use_code: Some("InUseNetworkSecurityGroupCannotBeDeleted"),
    },
    Kind {
        ty: "Microsoft.Network/publicIPAddresses",
        api_version: NETWORK,
        long_running: true,
        exclusive: true,
        in_use_code: Some("PublicIPAddressCannotBeDeleted"),
    },
    Kind {
        ty: "Microsoft.Network/networkInterfaces",
        api_version: NETWORK,
        long_running: true,
        exclusive: true,
        in_use_code: Some("NicInUse"),
    },
    Kind {
        ty: "Microsoft.Network/loadBalancers",
        api_version: NETWORK,
        long_running: true,
        exclusive: false,
        in_use_code: None,
    },
    Kind {
        ty: "Microsoft.Compute/virtualMachines",
        api_version: "2024-07-01",
        long_running: true,
        exclusive: false,
        in_use_code: None,
    },
    Kind {
        ty: "Microsoft.Compute/disks",
        api_version: "2024-03-02",
        long_running: true,
        exclusive: false,
        in_use_code: Some("OperationNotAllowed"),
    },
    Kind {
        ty: "Microsoft.ManagedIdentity/userAssignedIdentities",
        api_version: "2023-01-31",
        long_running: false,
        exclusive: false,
        in_use_code: None,
    },
    Kind {
        ty: "Microsoft.Authorization/roleAssignments",
        api_version: "2022-04-01",
        long_running: false,
        exclusive: false,
        in_use_code: None,
    },
];

/// The kind of `ty`, compared case-insensitively as ARM does.
pub fn by_type(ty: &str) -> Option<Kind> {
    KINDS
        .iter()
        .chain(std::iter::once(&RESOURCE_GROUP))
        .find(|k| k.ty.eq_ignore_ascii_case(ty))
        .copied()
}
