//! Everything that carries a cluster's tags (or its IAM path and load balancer names), listed
//! and deleted without a spec: the sweep behind `terminate` and the orphan check behind `plan`.

use crate::cloud::{Found, Scope};
use crate::resources::*;
use async_trait::async_trait;
use clouder_engine::{Error, Inventory, Tagged};
use std::sync::Arc;

pub struct AwsInventory {
    scope: Arc<Scope>,
}

/// Kinds in deletion order: a rank's objects go before the next rank's.
const RANKS: [(&str, u32); 12] = [
    (instance::KIND, 0),
    (listener::KIND, 1),
    (load_balancer::KIND, 2),
    (target_group::KIND, 3),
    (node_role::PROFILE_KIND, 3),
    (key_pair::KIND, 3),
    (node_role::ROLE_KIND, 4),
    (security_group::KIND, 4),
    (route_table::KIND, 4),
    (internet_gateway::KIND, 5),
    (subnet::KIND, 6),
    (vpc::KIND, 7),
];

impl AwsInventory {
    /// The inventory of `scope`'s cluster, sharing its cache with the graph built on it.
    pub fn new(scope: Arc<Scope>) -> Self {
        AwsInventory { scope }
    }

    async fn list(&self, kind: &'static str) -> Result<Vec<Found>, Error> {
        self.scope.found_all(kind, || self.list_now(kind)).await
    }

    async fn list_now(&self, kind: &str) -> Result<Vec<Found>, Error> {
        let (cloud, cluster) = (self.scope.cloud.as_ref(), self.scope.cluster.as_str());
        match kind {
            instance::KIND => instance::list(cloud, cluster).await,
            listener::KIND => listener::list(cloud, cluster).await,
            load_balancer::KIND => load_balancer::list(cloud, cluster).await,
            target_group::KIND => target_group::list(cloud, cluster).await,
            node_role::PROFILE_KIND => node_role::list_profiles(cloud, cluster).await,
            node_role::ROLE_KIND => node_role::list_roles(cloud, cluster).await,
            key_pair::KIND => key_pair::list(cloud, cluster).await,
            security_group::KIND => security_group::list(cloud, cluster).await,
            route_table::KIND => route_table::list(cloud, cluster).await,
            internet_gateway::KIND => internet_gateway::list(cloud, cluster).await,
            subnet::KIND => subnet::list(cloud, cluster).await,
            vpc::KIND => vpc::list(cloud, cluster).await,
            other => Err(Error::permanent(format!("unknown kind {other}"))),
        }
    }
}

#[async_trait]
impl Inventory for AwsInventory {
    async fn tagged(&self) -> Result<Vec<Tagged>, Error> {
        let lists = futures::future::try_join_all(RANKS.iter().map(|(kind, rank)| async move {
            let found = self.list(kind).await?;
            Ok::<_, Error>(found.into_iter().map(move |f| Tagged {
                kind: kind.to_string(),
                resource_id: f.resource_id,
                cloud_id: f.observed.cloud_id,
                rank: *rank,
            }))
        }))
        .await?;
        Ok(lists.into_iter().flatten().collect())
    }

    fn refresh(&self) {
        self.scope.refresh();
    }

    async fn delete(&self, object: &Tagged) -> Result<(), Error> {
        let (cloud, id) = (self.scope.cloud.as_ref(), object.cloud_id.as_str());
        match object.kind.as_str() {
            instance::KIND => instance::delete(cloud, id).await,
            listener::KIND => listener::delete(cloud, id).await,
            load_balancer::KIND => load_balancer::delete(cloud, id).await,
            target_group::KIND => target_group::delete(cloud, id).await,
            node_role::PROFILE_KIND => node_role::delete_profile(cloud, id).await,
            node_role::ROLE_KIND => node_role::delete_role(cloud, id).await,
            key_pair::KIND => key_pair::delete(cloud, id).await,
            security_group::KIND => security_group::delete(cloud, id).await,
            route_table::KIND => route_table::delete(cloud, id).await,
            internet_gateway::KIND => internet_gateway::delete(cloud, id).await,
            subnet::KIND => subnet::delete(cloud, id).await,
            vpc::KIND => vpc::delete(cloud, id).await,
            other => Err(Error::permanent(format!("unknown kind {other}"))),
        }
    }
}
