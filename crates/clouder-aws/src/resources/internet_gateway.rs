//! The internet gateway, attached to the cluster's VPC.

use super::{cluster_filter, ec2_tags, found, ids, tag_spec};
use crate::cloud::{AwsCloud, Found, Scope, absent, classify};
use crate::terraform::{local, names, reference, tags};
use async_trait::async_trait;
use aws_sdk_ec2::types::ResourceType;
use clouder_engine::terraform::Terraform;
use clouder_engine::{Error, Observed, Outputs, Resource};
use serde_json::json;
use std::sync::Arc;

pub const KIND: &str = "aws_internet_gateway";

pub struct InternetGateway {
    pub scope: Arc<Scope>,
}

pub async fn list(cloud: &AwsCloud, cluster: &str) -> Result<Vec<Found>, Error> {
    let out = cloud
        .ec2
        .describe_internet_gateways()
        .filters(cluster_filter(cluster))
        .send()
        .await
        .map_err(|e| classify("listing internet gateways", e))?;
    Ok(out
        .internet_gateways()
        .iter()
        .map(|g| {
            let vpc = g
                .attachments()
                .first()
                .and_then(|a| a.vpc_id())
                .unwrap_or_default();
            found(
                g.tags(),
                Observed::new(g.internet_gateway_id().unwrap_or_default()).with("vpc", vpc),
            )
        })
        .collect())
}

/// Detaches from every VPC, then deletes.
pub async fn delete(cloud: &AwsCloud, igw_id: &str) -> Result<(), Error> {
    let described = absent(
        "describing internet gateway",
        cloud
            .ec2
            .describe_internet_gateways()
            .internet_gateway_ids(igw_id)
            .send()
            .await,
    )?;
    let attachments = described
        .iter()
        .flat_map(|d| d.internet_gateways())
        .flat_map(|g| g.attachments())
        .filter_map(|a| a.vpc_id());
    for vpc in attachments {
        absent(
            "detaching internet gateway",
            cloud
                .ec2
                .detach_internet_gateway()
                .internet_gateway_id(igw_id)
                .vpc_id(vpc)
                .send()
                .await,
        )?;
    }
    absent(
        "deleting internet gateway",
        cloud
            .ec2
            .delete_internet_gateway()
            .internet_gateway_id(igw_id)
            .send()
            .await,
    )?;
    Ok(())
}

#[async_trait]
impl Resource for InternetGateway {
    fn id(&self) -> &str {
        ids::INTERNET_GATEWAY
    }
    fn kind(&self) -> &'static str {
        KIND
    }
    fn depends_on(&self) -> Vec<String> {
        vec![ids::VPC.into()]
    }
    async fn find(&self) -> Result<Option<Observed>, Error> {
        let s = &self.scope;
        s.find(KIND, ids::INTERNET_GATEWAY, || list(&s.cloud, &s.cluster))
            .await
    }
    fn changes(&self, found: &Observed) -> Vec<String> {
        if found.attr("vpc").unwrap_or_default().is_empty() {
            vec!["attach to the VPC".into()]
        } else {
            Vec::new()
        }
    }
    async fn create(&self, deps: &Outputs) -> Result<Observed, Error> {
        let s = &self.scope;
        let tags = ec2_tags(s, ids::INTERNET_GATEWAY, &s.name("igw"));
        let out = s
            .cloud
            .ec2
            .create_internet_gateway()
            .tag_specifications(tag_spec(ResourceType::InternetGateway, &tags))
            .send()
            .await
            .map_err(|e| classify("creating internet gateway", e))?;
        let id = out
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .unwrap_or_default();
        self.update(deps, &Observed::new(id)).await
    }
    async fn update(&self, deps: &Outputs, found: &Observed) -> Result<Observed, Error> {
        let vpc = deps.id_of(ids::VPC)?;
        self.scope
            .cloud
            .ec2
            .attach_internet_gateway()
            .internet_gateway_id(&found.cloud_id)
            .vpc_id(&vpc)
            .send()
            .await
            .map_err(|e| classify("attaching internet gateway", e))?;
        Ok(found.clone().with("vpc", vpc))
    }
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        let s = &self.scope;
        let body = json!({
            "vpc_id": reference(names::VPC, "id"),
            "tags": tags(s, ids::INTERNET_GATEWAY, &s.name("igw")),
        });
        Terraform::default()
            .resource(KIND, local(names::INTERNET_GATEWAY), body)
            .map(Some)
    }
    async fn delete(&self, found: &Observed) -> Result<(), Error> {
        delete(&self.scope.cloud, &found.cloud_id).await
    }
}
