//! The network load balancer in front of the API servers: the cluster's stable endpoint.

use super::ids;
use crate::cloud::{AwsCloud, Found, Scope, absent, classify};
use crate::terraform::{local, names, reference, tags};
use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{LoadBalancerSchemeEnum, LoadBalancerTypeEnum, Tag};
use clouder_engine::terraform::Terraform;
use clouder_engine::{Billable, Error, Observed, Outputs, Resource};
use serde_json::json;
use std::sync::Arc;

pub const KIND: &str = "aws_lb";

pub struct LoadBalancer {
    pub scope: Arc<Scope>,
}

/// `NAME-api`; names are unique per account and region, and at most 32 characters.
pub fn name(cluster: &str) -> String {
    format!("{cluster}-api")
}

pub(crate) fn elb_tags(scope: &Scope, id: &str, name: &str) -> Vec<Tag> {
    scope
        .tags(id, name)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

pub async fn list(cloud: &AwsCloud, cluster: &str) -> Result<Vec<Found>, Error> {
    let out = absent(
        "listing load balancers",
        cloud
            .elb
            .describe_load_balancers()
            .names(name(cluster))
            .send()
            .await,
    )?;
    Ok(out
        .iter()
        .flat_map(|o| o.load_balancers())
        .map(|lb| Found {
            resource_id: Some(ids::API_LOAD_BALANCER.to_string()),
            observed: Observed::new(lb.load_balancer_arn().unwrap_or_default())
                .with("dns_name", lb.dns_name().unwrap_or_default()),
        })
        .collect())
}

pub async fn delete(cloud: &AwsCloud, arn: &str) -> Result<(), Error> {
    absent(
        "deleting load balancer",
        cloud
            .elb
            .delete_load_balancer()
            .load_balancer_arn(arn)
            .send()
            .await,
    )?;
    Ok(())
}

#[async_trait]
impl Resource for LoadBalancer {
    fn id(&self) -> &str {
        ids::API_LOAD_BALANCER
    }
    fn kind(&self) -> &'static str {
        KIND
    }
    fn depends_on(&self) -> Vec<String> {
        vec![ids::SUBNET.into(), ids::ROUTE_TABLE.into()]
    }
    async fn find(&self) -> Result<Option<Observed>, Error> {
        let s = &self.scope;
        s.find(KIND, ids::API_LOAD_BALANCER, || list(&s.cloud, &s.cluster))
            .await
    }
    async fn create(&self, deps: &Outputs) -> Result<Observed, Error> {
        let s = &self.scope;
        let name = name(&s.cluster);
        let out = s
            .cloud
            .elb
            .create_load_balancer()
            .name(&name)
            .r#type(LoadBalancerTypeEnum::Network)
            .scheme(LoadBalancerSchemeEnum::InternetFacing)
            .subnets(deps.id_of(ids::SUBNET)?)
            .set_tags(Some(elb_tags(s, ids::API_LOAD_BALANCER, &name)))
            .send()
            .await
            .map_err(|e| classify("creating the API load balancer", e))?;
        let lb = out
            .load_balancers()
            .first()
            .ok_or_else(|| Error::permanent("CreateLoadBalancer returned no load balancer"))?;
        Ok(Observed::new(lb.load_balancer_arn().unwrap_or_default())
            .with("dns_name", lb.dns_name().unwrap_or_default()))
    }
    /// An internet-facing network load balancer in one subnet: its hours and one public address.
    fn billing(&self) -> Vec<Billable> {
        vec![
            Billable::LoadBalancer {
                class: "network".into(),
            },
            Billable::PublicIpv4,
        ]
    }
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        let s = &self.scope;
        let name = name(&s.cluster);
        let body = json!({
            "name": name,
            "internal": false,
            "load_balancer_type": "network",
            "subnets": [reference(names::SUBNET, "id")],
            "tags": tags(s, ids::API_LOAD_BALANCER, &name),
        });
        Terraform::default()
            .resource(KIND, local(names::LOAD_BALANCER), body)
            .map(Some)
    }
    async fn delete(&self, found: &Observed) -> Result<(), Error> {
        delete(&self.scope.cloud, &found.cloud_id).await
    }
}
