//! The route table: a default route to the internet gateway, associated with the subnet.

use super::{cluster_filter, ec2_tags, found, ids, tag_spec};
use crate::cloud::{AwsCloud, Found, Scope, absent, classify};
use crate::terraform::{local, names, reference, tags};
use async_trait::async_trait;
use aws_sdk_ec2::types::ResourceType;
use clouder_engine::terraform::Terraform;
use clouder_engine::{Error, Observed, Outputs, Resource};
use serde_json::json;
use std::sync::Arc;

pub const KIND: &str = "aws_route_table";
const DEFAULT_ROUTE: &str = "0.0.0.0/0";

pub struct RouteTable {
    pub scope: Arc<Scope>,
}

pub async fn list(cloud: &AwsCloud, cluster: &str) -> Result<Vec<Found>, Error> {
    let out = cloud
        .ec2
        .describe_route_tables()
        .filters(cluster_filter(cluster))
        .send()
        .await
        .map_err(|e| classify("listing route tables", e))?;
    Ok(out
        .route_tables()
        .iter()
        .map(|t| {
            let gateway = t
                .routes()
                .iter()
                .find(|r| r.destination_cidr_block() == Some(DEFAULT_ROUTE))
                .and_then(|r| r.gateway_id())
                .unwrap_or_default();
            let subnets: Vec<&str> = t
                .associations()
                .iter()
                .filter_map(|a| a.subnet_id())
                .collect();
            let observed = Observed::new(t.route_table_id().unwrap_or_default())
                .with("gateway", gateway)
                .with("subnets", subnets);
            found(t.tags(), observed)
        })
        .collect())
}

/// Removes subnet associations, then deletes.
pub async fn delete(cloud: &AwsCloud, table_id: &str) -> Result<(), Error> {
    let described = absent(
        "describing route table",
        cloud
            .ec2
            .describe_route_tables()
            .route_table_ids(table_id)
            .send()
            .await,
    )?;
    let associations = described
        .iter()
        .flat_map(|d| d.route_tables())
        .flat_map(|t| t.associations())
        .filter(|a| !a.main().unwrap_or_default())
        .filter_map(|a| a.route_table_association_id());
    for association in associations {
        absent(
            "disassociating route table",
            cloud
                .ec2
                .disassociate_route_table()
                .association_id(association)
                .send()
                .await,
        )?;
    }
    absent(
        "deleting route table",
        cloud
            .ec2
            .delete_route_table()
            .route_table_id(table_id)
            .send()
            .await,
    )?;
    Ok(())
}

#[async_trait]
impl Resource for RouteTable {
    fn id(&self) -> &str {
        ids::ROUTE_TABLE
    }
    fn kind(&self) -> &'static str {
        KIND
    }
    fn depends_on(&self) -> Vec<String> {
        vec![
            ids::VPC.into(),
            ids::SUBNET.into(),
            ids::INTERNET_GATEWAY.into(),
        ]
    }
    async fn find(&self) -> Result<Option<Observed>, Error> {
        let s = &self.scope;
        s.find(KIND, ids::ROUTE_TABLE, || list(&s.cloud, &s.cluster))
            .await
    }
    fn changes(&self, found: &Observed) -> Vec<String> {
        let mut changes = Vec::new();
        if found.attr("gateway").unwrap_or_default().is_empty() {
            changes.push(format!(
                "add route {DEFAULT_ROUTE} via the internet gateway"
            ));
        }
        if found
            .attrs
            .get("subnets")
            .and_then(|s| s.as_array())
            .is_none_or(|s| s.is_empty())
        {
            changes.push("associate with the subnet".into());
        }
        changes
    }
    async fn create(&self, deps: &Outputs) -> Result<Observed, Error> {
        let s = &self.scope;
        let tags = ec2_tags(s, ids::ROUTE_TABLE, &s.name("rtb"));
        let out = s
            .cloud
            .ec2
            .create_route_table()
            .vpc_id(deps.id_of(ids::VPC)?)
            .tag_specifications(tag_spec(ResourceType::RouteTable, &tags))
            .send()
            .await
            .map_err(|e| classify("creating route table", e))?;
        let id = out
            .route_table()
            .and_then(|t| t.route_table_id())
            .unwrap_or_default();
        self.update(deps, &Observed::new(id)).await
    }
    async fn update(&self, deps: &Outputs, found: &Observed) -> Result<Observed, Error> {
        let ec2 = &self.scope.cloud.ec2;
        let mut observed = found.clone();
        let changes = self.changes(found);
        if changes.iter().any(|c| c.starts_with("add route")) {
            let gateway = deps.id_of(ids::INTERNET_GATEWAY)?;
            ec2.create_route()
                .route_table_id(&found.cloud_id)
                .destination_cidr_block(DEFAULT_ROUTE)
                .gateway_id(&gateway)
                .send()
                .await
                .map_err(|e| classify("adding the default route", e))?;
            observed = observed.with("gateway", gateway);
        }
        if changes.iter().any(|c| c.starts_with("associate")) {
            let subnet = deps.id_of(ids::SUBNET)?;
            ec2.associate_route_table()
                .route_table_id(&found.cloud_id)
                .subnet_id(&subnet)
                .send()
                .await
                .map_err(|e| classify("associating the route table", e))?;
            observed = observed.with("subnets", vec![subnet]);
        }
        Ok(observed)
    }
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        let s = &self.scope;
        let table = json!({
            "vpc_id": reference(names::VPC, "id"),
            "route": [{
                "cidr_block": DEFAULT_ROUTE,
                "gateway_id": reference(names::INTERNET_GATEWAY, "id"),
            }],
            "tags": tags(s, ids::ROUTE_TABLE, &s.name("rtb")),
        });
        let association = json!({
            "route_table_id": reference(names::ROUTE_TABLE, "id"),
            "subnet_id": reference(names::SUBNET, "id"),
        });
        Terraform::default()
            .resource(KIND, local(names::ROUTE_TABLE), table)?
            .resource(
                "aws_route_table_association",
                local(names::ROUTE_TABLE_ASSOCIATION),
                association,
            )
            .map(Some)
    }
    async fn delete(&self, found: &Observed) -> Result<(), Error> {
        delete(&self.scope.cloud, &found.cloud_id).await
    }
}
