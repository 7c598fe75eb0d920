//! The cluster's subnet: public addresses on launch (machines reach package mirrors directly),
//! tagged for the AWS Load Balancer Controller's subnet discovery.

use super::{cluster_filter, ec2_tags, found, ids, tag_spec};
use crate::cloud::{AwsCloud, Found, Scope, absent, classify};
use crate::terraform::{local, names, reference, tags};
use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Tag};
use clouder_engine::terraform::Terraform;
use clouder_engine::{Error, Observed, Outputs, Resource};
use serde_json::json;
use std::sync::Arc;

pub const KIND: &str = "aws_subnet";

pub struct Subnet {
    pub scope: Arc<Scope>,
    pub cidr: String,
}

pub async fn list(cloud: &AwsCloud, cluster: &str) -> Result<Vec<Found>, Error> {
    let out = cloud
        .ec2
        .describe_subnets()
        .filters(cluster_filter(cluster))
        .send()
        .await
        .map_err(|e| classify("listing subnets", e))?;
    Ok(out
        .subnets()
        .iter()
        .map(|s| {
            let observed = Observed::new(s.subnet_id().unwrap_or_default())
                .with("cidr", s.cidr_block().unwrap_or_default())
                .with("vpc", s.vpc_id().unwrap_or_default())
                .with("public_ip", s.map_public_ip_on_launch().unwrap_or_default());
            found(s.tags(), observed)
        })
        .collect())
}

pub async fn delete(cloud: &AwsCloud, subnet_id: &str) -> Result<(), Error> {
    absent(
        "deleting subnet",
        cloud.ec2.delete_subnet().subnet_id(subnet_id).send().await,
    )?;
    Ok(())
}

#[async_trait]
impl Resource for Subnet {
    fn id(&self) -> &str {
        ids::SUBNET
    }
    fn kind(&self) -> &'static str {
        KIND
    }
    fn depends_on(&self) -> Vec<String> {
        vec![ids::VPC.into()]
    }
    async fn find(&self) -> Result<Option<Observed>, Error> {
        let s = &self.scope;
        s.find(KIND, ids::SUBNET, || list(&s.cloud, &s.cluster))
            .await
    }
    fn changes(&self, found: &Observed) -> Vec<String> {
        let mut changes = Vec::new();
        if found.attrs.get("public_ip") != Some(&true.into()) {
            changes.push("map public IPs on launch".to_string());
        }
        if let Some(cidr) = found.attr("cidr").filter(|c| *c != self.cidr) {
            changes.push(format!(
                "CIDR is {cidr}, spec says {} (cannot change in place)",
                self.cidr
            ));
        }
        changes
    }
    async fn create(&self, deps: &Outputs) -> Result<Observed, Error> {
        let s = &self.scope;
        let vpc = deps.id_of(ids::VPC)?;
        let mut tags = ec2_tags(s, ids::SUBNET, &s.name("subnet"));
        tags.push(
            Tag::builder()
                .key("kubernetes.io/role/elb")
                .value("1")
                .build(),
        );
        let out = s
            .cloud
            .ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(&self.cidr)
            .tag_specifications(tag_spec(ResourceType::Subnet, &tags))
            .send()
            .await
            .map_err(|e| classify("creating subnet", e))?;
        let id = out.subnet().and_then(|s| s.subnet_id()).unwrap_or_default();
        let created = Observed::new(id)
            .with("cidr", self.cidr.as_str())
            .with("vpc", vpc);
        self.update(deps, &created).await
    }
    async fn update(&self, _: &Outputs, found: &Observed) -> Result<Observed, Error> {
        if found.attr("cidr").is_some_and(|c| c != self.cidr) {
            return Err(Error::permanent(self.changes(found).join("; ")));
        }
        self.scope
            .cloud
            .ec2
            .modify_subnet_attribute()
            .subnet_id(&found.cloud_id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .map_err(|e| classify("enabling public IPs on the subnet", e))?;
        Ok(found.clone().with("public_ip", true))
    }
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        let s = &self.scope;
        let mut tags = tags(s, ids::SUBNET, &s.name("subnet"));
        tags["kubernetes.io/role/elb"] = json!("1");
        let body = json!({
            "vpc_id": reference(names::VPC, "id"),
            "cidr_block": self.cidr,
            "map_public_ip_on_launch": true,
            "tags": tags,
        });
        Terraform::default()
            .resource(KIND, local(names::SUBNET), body)
            .map(Some)
    }
    async fn delete(&self, found: &Observed) -> Result<(), Error> {
        delete(&self.scope.cloud, &found.cloud_id).await
    }
}
