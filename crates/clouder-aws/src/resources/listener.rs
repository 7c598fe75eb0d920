//! The load balancer's TCP 6443 listener, forwarding to the API target group.

use super::{ids, load_balancer};
use crate::cloud::{AwsCloud, Found, Scope, absent, classify};
use crate::terraform::{local, names, reference};
use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, ProtocolEnum};
use clouder_engine::terraform::Terraform;
use clouder_engine::{Error, Observed, Outputs, Resource};
use serde_json::json;
use std::sync::Arc;

pub const KIND: &str = "aws_lb_listener";
const API_PORT: i32 = 6443;

pub struct Listener {
    pub scope: Arc<Scope>,
}

async fn listeners_of(cloud: &AwsCloud, lb_arn: &str) -> Result<Vec<Found>, Error> {
    let out = absent(
        "listing listeners",
        cloud
            .elb
            .describe_listeners()
            .load_balancer_arn(lb_arn)
            .send()
            .await,
    )?;
    Ok(out
        .iter()
        .flat_map(|o| o.listeners())
        .map(|l| Found {
            resource_id: (l.port() == Some(API_PORT)).then(|| ids::API_LISTENER.to_string()),
            observed: Observed::new(l.listener_arn().unwrap_or_default()),
        })
        .collect())
}

/// The listeners of the cluster's load balancer, if it exists.
pub async fn list(cloud: &AwsCloud, cluster: &str) -> Result<Vec<Found>, Error> {
    let mut all = Vec::new();
    for lb in load_balancer::list(cloud, cluster).await? {
        all.extend(listeners_of(cloud, &lb.observed.cloud_id).await?);
    }
    Ok(all)
}

pub async fn delete(cloud: &AwsCloud, arn: &str) -> Result<(), Error> {
    absent(
        "deleting listener",
        cloud.elb.delete_listener().listener_arn(arn).send().await,
    )?;
    Ok(())
}

#[async_trait]
impl Resource for Listener {
    fn id(&self) -> &str {
        ids::API_LISTENER
    }
    fn kind(&self) -> &'static str {
        KIND
    }
    fn depends_on(&self) -> Vec<String> {
        vec![ids::API_LOAD_BALANCER.into(), ids::API_TARGET_GROUP.into()]
    }
    async fn find(&self) -> Result<Option<Observed>, Error> {
        let s = &self.scope;
        let Some(lb) = s
            .find(load_balancer::KIND, ids::API_LOAD_BALANCER, || {
                load_balancer::list(&s.cloud, &s.cluster)
            })
            .await?
        else {
            return Ok(None);
        };
        s.find(KIND, ids::API_LISTENER, || {
            listeners_of(&s.cloud, &lb.cloud_id)
        })
        .await
    }
    async fn create(&self, deps: &Outputs) -> Result<Observed, Error> {
        let s = &self.scope;
        let forward = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(deps.id_of(ids::API_TARGET_GROUP)?)
            .build();
        let out = s
            .cloud
            .elb
            .create_listener()
            .load_balancer_arn(deps.id_of(ids::API_LOAD_BALANCER)?)
            .protocol(ProtocolEnum::Tcp)
            .port(API_PORT)
            .default_actions(forward)
            .send()
            .await
            .map_err(|e| classify("creating the API listener", e))?;
        let arn = out
            .listeners()
            .first()
            .and_then(|l| l.listener_arn())
            .unwrap_or_default();
        Ok(Observed::new(arn))
    }
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        let body = json!({
            "load_balancer_arn": reference(names::LOAD_BALANCER, "arn"),
            "port": API_PORT,
            "protocol": "TCP",
            "default_action": [{
                "type": "forward",
                "target_group_arn": reference(names::TARGET_GROUP, "arn"),
            }],
        });
        Terraform::default()
            .resource(KIND, local(names::LISTENER), body)
            .map(Some)
    }
    async fn delete(&self, found: &Observed) -> Result<(), Error> {
        delete(&self.scope.cloud, &found.cloud_id).await
    }
}
