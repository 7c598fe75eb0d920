//! Everything in the cluster's resource group that carries its tags (plus its subnet and role
//! assignment, known by name), listed and deleted without a spec: the sweep behind `terminate`
//! and the orphan check behind `plan`. The group itself only when clouder created it (or
//! `--delete-rg`).

use crate::cloud::*;
use crate::resources::{ids, list, resource_group};
use async_trait::async_trait;
use clouder_engine::{Error, Inventory, Tagged};
use std::sync::Arc;

pub struct AzureInventory {
    scope: Arc<Scope>,
}

/// Types in deletion order: VMs free NICs, NICs free IPs and the subnet, the subnet frees the
/// NSG; the group goes last.
const RANKS: [(&ArmType, u32); 9] = [
    (&VIRTUAL_MACHINE, 0),
    (&ROLE_ASSIGNMENT, 0),
    (&NETWORK_INTERFACE, 1),
    (&IDENTITY, 1),
    (&LOAD_BALANCER, 2),
    (&PUBLIC_IP, 3),
    (&SUBNET, 3),
    (&VIRTUAL_NETWORK, 4),
    (&SECURITY_GROUP, 5),
];
const GROUP_RANK: u32 = 6;

impl AzureInventory {
    pub fn new(scope: Arc<Scope>) -> Self {
        AzureInventory { scope }
    }
}

#[async_trait]
impl Inventory for AzureInventory {
    async fn tagged(&self) -> Result<Vec<Tagged>, Error> {
        let s = &self.scope;
        let lists = futures::future::try_join_all(RANKS.iter().map(|(ty, rank)| async move {
            let found = s.found_all(ty, || list(s, ty)).await?;
            Ok::<_, Error>(found.into_iter().map(move |f| Tagged {
                kind: ty.kind.to_string(),
                resource_id: f.resource_id,
                cloud_id: f.observed.cloud_id,
                rank: *rank,
            }))
        }))
        .await?;
        let mut all: Vec<Tagged> = lists.into_iter().flatten().collect();
        if let Some(group) = resource_group::find(s).await?
            && (resource_group::owned(&group) || s.delete_rg)
        {
            all.push(Tagged {
                kind: RESOURCE_GROUP.kind.into(),
                resource_id: Some(ids::RESOURCE_GROUP.into()),
                cloud_id: group.cloud_id,
                rank: GROUP_RANK,
            });
        }
        Ok(all)
    }

    fn refresh(&self) {
        self.scope.refresh();
    }

    async fn delete(&self, object: &Tagged) -> Result<(), Error> {
        if object.kind == RESOURCE_GROUP.kind {
            return resource_group::delete(&self.scope).await;
        }
        let ty = type_of(&object.kind)
            .ok_or_else(|| Error::permanent(format!("unknown kind {}", object.kind)))?;
        self.scope
            .cloud
            .arm
            .delete(&object.cloud_id, ty.api_version)
            .await
    }
}
