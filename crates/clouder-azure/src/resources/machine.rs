//! One machine: its public IP `<vm>-ip`, NIC `<vm>-nic` (control planes join the API load
//! balancer's pool) and Linux VM: SSH key only, no password, managed OS disk deleted with it,
//! the nodes' user-assigned identity.
//! Shapes: azure-rest-api-specs specification/compute/resource-manager/Microsoft.Compute/
//! ComputeRP/stable/2024-07-01/virtualMachine.json (examples/virtualMachineExamples/
//! VirtualMachine_Create_LinuxVmWithSshAuthentication.json) and specification/network/
//! resource-manager/Microsoft.Network/stable/2024-05-01/networkInterface.json.

use super::{ArmResource, CONTROL_PLANE_POOL, ids, list, load_balancer};
use crate::cloud::{
    IDENTITY, NETWORK_INTERFACE, PUBLIC_IP, Scope, VIRTUAL_MACHINE, VIRTUAL_NETWORK,
};
use async_trait::async_trait;
use clouder_engine::terraform::Terraform;
use clouder_engine::{Error, Graph, GraphError, Observed, Outputs, Resource};
use serde_json::{Value, json};
use std::sync::Arc;

pub const POOL_TAG: &str = "clouder.io/pool";

/// A marketplace image reference, or a custom image by resource id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    Marketplace {
        publisher: String,
        offer: String,
        sku: String,
        version: String,
    },
    Id(String),
}

impl Image {
    /// The aliases, `publisher:offer:sku:version` (as `az vm create --image` takes), or an id.
    pub fn from_spec(image: &str) -> Self {
        let urn = |s: &str| {
            let p: Vec<&str> = s.split(':').collect();
            Image::Marketplace {
                publisher: p[0].into(),
                offer: p[1].into(),
                sku: p[2].into(),
                version: p[3].into(),
            }
        };
        match image {
            "Ubuntu2204" => urn("Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest"),
            "Debian12" => urn("Debian:debian-12:12-gen2:latest"),
            id if id.starts_with('/') => Image::Id(id.to_string()),
            u if u.split(':').count() == 4 => urn(u),
            _ => urn("Canonical:ubuntu-24_04-lts:server:latest"),
        }
    }

    fn reference(&self) -> Value {
        match self {
            Image::Marketplace {
                publisher,
                offer,
                sku,
                version,
            } => json!({ "publisher": publisher, "offer": offer, "sku": sku, "version": version }),
            Image::Id(id) => json!({ "id": id }),
        }
    }
}

pub struct Login {
    pub user: String,
    pub public_key: String,
}

pub struct Machine<'a> {
    pub pool: &'a str,
    pub index: u32,
    pub name: &'a str,
    pub size: &'a str,
    pub disk_gb: u32,
}

/// Adds a machine's public IP, NIC and VM to the graph.
pub fn add(
    g: &mut Graph,
    scope: &Arc<Scope>,
    m: &Machine<'_>,
    image: &Image,
    login: &Login,
) -> Result<(), GraphError> {
    let (vm_id, nic_id, ip_id) = (
        ids::instance(m.pool, m.index),
        ids::nic(m.pool, m.index),
        ids::public_ip(m.pool, m.index),
    );
    let ip_arm = scope.id(&PUBLIC_IP, &format!("{}-ip", m.name));
    g.add(ArmResource {
        scope: scope.clone(),
        id: ip_id.clone(),
        ty: &PUBLIC_IP,
        arm_id: ip_arm.clone(),
        depends: vec![ids::RESOURCE_GROUP.into()],
        body: load_balancer::public_ip_body(scope, &ip_id),
        checked: &["/sku/name"],
        immutable: true,
        inject: None,
    })?;

    let control_plane = m.pool == CONTROL_PLANE_POOL;
    let mut ip_config = json!({
        "name": "ipconfig1",
        "properties": {
            "primary": true,
            "privateIPAllocationMethod": "Dynamic",
            "subnet": { "id": format!("{}/subnets/{}", scope.id(&VIRTUAL_NETWORK, &scope.name("vnet")), scope.name("subnet")) },
            "publicIPAddress": { "id": ip_arm },
        },
    });
    let mut nic_deps = vec![ids::SUBNET.to_string(), ip_id.clone()];
    if control_plane {
        ip_config["properties"]["loadBalancerBackendAddressPools"] =
            json!([{ "id": load_balancer::backend_pool_id(scope) }]);
        nic_deps.push(ids::API_LOAD_BALANCER.into());
    }
    let nic_arm = scope.id(&NETWORK_INTERFACE, &format!("{}-nic", m.name));
    g.add(ArmResource {
        scope: scope.clone(),
        id: nic_id.clone(),
        ty: &NETWORK_INTERFACE,
        arm_id: nic_arm.clone(),
        depends: nic_deps,
        body: json!({
            "location": scope.cloud.location,
            "tags": scope.tags(&nic_id),
            // Pod traffic leaves nodes with pod addresses.
            "properties": { "enableIPForwarding": true, "ipConfigurations": [ip_config] },
        }),
        checked: &["/properties/ipConfigurations"],
        immutable: false,
        inject: None,
    })?;

    let mut tags = scope.tags(&vm_id);
    tags[POOL_TAG] = m.pool.into();
    let home = format!("/home/{}/.ssh/authorized_keys", login.user);
    let body = json!({
        "location": scope.cloud.location,
        "tags": tags,
        "identity": {
            "type": "UserAssigned",
            "userAssignedIdentities": { scope.id(&IDENTITY, &scope.name("identity")): {} },
        },
        "properties": {
            "hardwareProfile": { "vmSize": m.size },
            "storageProfile": {
                "imageReference": image.reference(),
                "osDisk": {
                    "createOption": "FromImage",
                    "diskSizeGB": m.disk_gb,
                    "managedDisk": { "storageAccountType": "StandardSSD_LRS" },
                    "deleteOption": "Delete",
                },
            },
            "osProfile": {
                "computerName": m.name,
                "adminUsername": login.user,
                "linuxConfiguration": {
                    "disablePasswordAuthentication": true,
                    "ssh": { "publicKeys": [{ "path": home, "keyData": login.public_key }] },
                },
            },
            "networkProfile": {
                "networkInterfaces": [{ "id": nic_arm, "properties": { "primary": true, "deleteOption": "Detach" } }],
            },
        },
    });
    g.add(VirtualMachine {
        arm: ArmResource {
            scope: scope.clone(),
            id: vm_id,
            ty: &VIRTUAL_MACHINE,
            arm_id: scope.id(&VIRTUAL_MACHINE, m.name),
            depends: vec![nic_id.clone(), ip_id.clone(), ids::IDENTITY.into()],
            body,
            checked: &["/properties/hardwareProfile/vmSize"],
            immutable: false,
            inject: None,
        },
        name: m.name.to_string(),
        pool: m.pool.to_string(),
        nic: nic_id,
        ip: ip_id,
    })
}

/// A VM, observed with what commands show of a machine: name, pool, size, addresses.
pub struct VirtualMachine {
    pub arm: ArmResource,
    pub name: String,
    pub pool: String,
    nic: String,
    ip: String,
}

impl VirtualMachine {
    fn machine(&self, o: Observed, private_ip: &str, public_ip: &str) -> Observed {
        o.with("name", self.name.as_str())
            .with("pool", self.pool.as_str())
            .with("private_ip", private_ip)
            .with("public_ip", public_ip)
    }

    /// An attribute of the object claimed by graph id `id` in this plan's listing of `ty`.
    async fn listed(
        &self,
        ty: &'static crate::cloud::ArmType,
        id: &str,
        attr: &str,
    ) -> Result<String, Error> {
        let s = &self.arm.scope;
        let all = s.found_all(ty, || list(s, ty)).await?;
        Ok(all
            .iter()
            .find(|f| f.resource_id.as_deref() == Some(id))
            .and_then(|f| f.observed.attr(attr))
            .unwrap_or_default()
            .to_string())
    }
}

#[async_trait]
impl Resource for VirtualMachine {
    fn id(&self) -> &str {
        &self.arm.id
    }
    fn kind(&self) -> &'static str {
        self.arm.kind()
    }
    fn depends_on(&self) -> Vec<String> {
        self.arm.depends_on()
    }
    async fn find(&self) -> Result<Option<Observed>, Error> {
        let Some(found) = self.arm.find().await? else {
            return Ok(None);
        };
        let private_ip = self
            .listed(&NETWORK_INTERFACE, &self.nic, "private_ip")
            .await?;
        let public_ip = self.listed(&PUBLIC_IP, &self.ip, "ip_address").await?;
        Ok(Some(self.machine(found, &private_ip, &public_ip)))
    }
    fn changes(&self, found: &Observed) -> Vec<String> {
        self.arm.changes(found)
    }
    async fn create(&self, deps: &Outputs) -> Result<Observed, Error> {
        let o = self.arm.create(deps).await?;
        let private_ip = deps
            .get(&self.nic)?
            .attr("private_ip")
            .unwrap_or_default()
            .to_string();
        let public_ip = deps
            .get(&self.ip)
            .map(|o| o.attr("ip_address").unwrap_or_default().to_string());
        Ok(self.machine(o, &private_ip, &public_ip.unwrap_or_default()))
    }
    async fn update(&self, deps: &Outputs, found: &Observed) -> Result<Observed, Error> {
        let o = self.arm.update(deps, found).await?;
        let keep = |k: &str| found.attr(k).unwrap_or_default().to_string();
        Ok(self.machine(o, &keep("private_ip"), &keep("public_ip")))
    }
    async fn delete(&self, found: &Observed) -> Result<(), Error> {
        self.arm.delete(found).await
    }
    /// Every machine of the pool renders the same block, `for_each` over its indexes.
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        crate::terraform::virtual_machines(&self.arm, &self.pool).map(Some)
    }
}
