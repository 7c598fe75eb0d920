//! The cluster's VPC, with DNS support and hostnames (kubeadm and the cloud controllers need both).

use super::{cluster_filter, ec2_tags, found, ids, tag_spec};
use crate::cloud::{AwsCloud, Found, Scope, absent, classify};
use crate::terraform::{local, names, tags};
use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};
use clouder_engine::terraform::Terraform;
use clouder_engine::{Error, Observed, Outputs, Resource};
use serde_json::json;
use std::sync::Arc;

pub const KIND: &str = "aws_vpc";

pub struct Vpc {
    pub scope: Arc<Scope>,
    pub cidr: String,
}

pub async fn list(cloud: &AwsCloud, cluster: &str) -> Result<Vec<Found>, Error> {
    let out = cloud
        .ec2
        .describe_vpcs()
        .filters(cluster_filter(cluster))
        .send()
        .await
        .map_err(|e| classify("listing VPCs", e))?;
    Ok(out
        .vpcs()
        .iter()
        .map(|v| {
            let observed = Observed::new(v.vpc_id().unwrap_or_default())
                .with("cidr", v.cidr_block().unwrap_or_default());
            found(v.tags(), observed)
        })
        .collect())
}

pub async fn delete(cloud: &AwsCloud, vpc_id: &str) -> Result<(), Error> {
    absent(
        "deleting VPC",
        cloud.ec2.delete_vpc().vpc_id(vpc_id).send().await,
    )?;
    Ok(())
}

#[async_trait]
impl Resource for Vpc {
    fn id(&self) -> &str {
        ids::VPC
    }
    fn kind(&self) -> &'static str {
        KIND
    }
    async fn find(&self) -> Result<Option<Observed>, Error> {
        let s = &self.scope;
        s.find(KIND, ids::VPC, || list(&s.cloud, &s.cluster)).await
    }
    fn changes(&self, found: &Observed) -> Vec<String> {
        match found.attr("cidr") {
            Some(cidr) if cidr != self.cidr => {
                vec![format!(
                    "CIDR is {cidr}, spec says {} (a VPC's CIDR cannot change: terminate and re-create)",
                    self.cidr
                )]
            }
            _ => Vec::new(),
        }
    }
    async fn create(&self, _: &Outputs) -> Result<Observed, Error> {
        let s = &self.scope;
        let ec2 = &s.cloud.ec2;
        let tags = ec2_tags(s, ids::VPC, &s.name("vpc"));
        let out = ec2
            .create_vpc()
            .cidr_block(&self.cidr)
            .tag_specifications(tag_spec(ResourceType::Vpc, &tags))
            .send()
            .await
            .map_err(|e| classify("creating VPC", e))?;
        let vpc_id = out
            .vpc()
            .and_then(|v| v.vpc_id())
            .unwrap_or_default()
            .to_string();
        for hostnames in [false, true] {
            let on = AttributeBooleanValue::builder().value(true).build();
            let call = ec2.modify_vpc_attribute().vpc_id(&vpc_id);
            let call = if hostnames {
                call.enable_dns_hostnames(on)
            } else {
                call.enable_dns_support(on)
            };
            call.send()
                .await
                .map_err(|e| classify("enabling VPC DNS", e))?;
        }
        Ok(Observed::new(vpc_id).with("cidr", self.cidr.as_str()))
    }
    async fn update(&self, _: &Outputs, found: &Observed) -> Result<Observed, Error> {
        Err(Error::permanent(self.changes(found).join("; ")))
    }
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        let s = &self.scope;
        let body = json!({
            "cidr_block": self.cidr,
            "enable_dns_support": true,
            "enable_dns_hostnames": true,
            "tags": tags(s, ids::VPC, &s.name("vpc")),
        });
        Terraform::default()
            .resource(KIND, local(names::VPC), body)
            .map(Some)
    }
    async fn delete(&self, found: &Observed) -> Result<(), Error> {
        delete(&self.scope.cloud, &found.cloud_id).await
    }
}
