//! The API servers' target group: TCP 6443 on every control-plane machine.

use super::load_balancer::elb_tags;
use super::{ids, instance};
use crate::cloud::{AwsCloud, Found, Scope, absent, classify};
use crate::resources::CONTROL_PLANE_POOL;
use crate::terraform::{local, names, pool_local, reference, tags};
use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    ProtocolEnum, TargetDescription, TargetGroupAttribute, TargetTypeEnum,
};
use clouder_engine::terraform::Terraform;
use clouder_engine::{Error, Observed, Outputs, Resource};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

pub const KIND: &str = "aws_lb_target_group";
const API_PORT: i32 = 6443;
/// Marks a control plane that does not exist yet.
const PENDING: &str = "(new)";
/// With client IPs preserved, an NLB drops a target's connection to itself through it (AWS's
/// documented hairpin limit), and a control plane reaches the API through the NLB: off.
const PRESERVE_CLIENT_IP: &str = "preserve_client_ip.enabled";

async fn preserves_client_ip(cloud: &AwsCloud, arn: &str) -> Result<bool, Error> {
    let out = absent(
        "reading target group attributes",
        cloud
            .elb
            .describe_target_group_attributes()
            .target_group_arn(arn)
            .send()
            .await,
    )?;
    Ok(out
        .iter()
        .flat_map(|o| o.attributes())
        .any(|a| a.key() == Some(PRESERVE_CLIENT_IP) && a.value() == Some("true")))
}

pub struct TargetGroup {
    pub scope: Arc<Scope>,
    /// Graph ids of the control-plane instances.
    pub control_planes: Vec<String>,
}

pub fn name(cluster: &str) -> String {
    format!("{cluster}-api")
}

async fn targets(cloud: &AwsCloud, arn: &str) -> Result<Vec<String>, Error> {
    let health = absent(
        "reading target health",
        cloud
            .elb
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await,
    )?;
    Ok(health
        .iter()
        .flat_map(|h| h.target_health_descriptions())
        .filter_map(|d| d.target().and_then(|t| t.id()).map(str::to_string))
        .collect())
}

pub async fn list(cloud: &AwsCloud, cluster: &str) -> Result<Vec<Found>, Error> {
    let out = absent(
        "listing target groups",
        cloud
            .elb
            .describe_target_groups()
            .names(name(cluster))
            .send()
            .await,
    )?;
    let mut found = Vec::new();
    for tg in out.iter().flat_map(|o| o.target_groups()) {
        let arn = tg.target_group_arn().unwrap_or_default();
        found.push(Found {
            resource_id: Some(ids::API_TARGET_GROUP.to_string()),
            observed: Observed::new(arn)
                .with("targets", targets(cloud, arn).await?)
                .with("preserve_client_ip", preserves_client_ip(cloud, arn).await?),
        });
    }
    Ok(found)
}

pub async fn delete(cloud: &AwsCloud, arn: &str) -> Result<(), Error> {
    absent(
        "deleting target group",
        cloud
            .elb
            .delete_target_group()
            .target_group_arn(arn)
            .send()
            .await,
    )?;
    Ok(())
}

fn strings(found: &Observed, key: &str) -> BTreeSet<String> {
    found
        .attrs
        .get(key)
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

#[async_trait]
impl Resource for TargetGroup {
    fn id(&self) -> &str {
        ids::API_TARGET_GROUP
    }
    fn kind(&self) -> &'static str {
        KIND
    }
    fn depends_on(&self) -> Vec<String> {
        let mut deps = vec![ids::VPC.to_string()];
        deps.extend(self.control_planes.iter().cloned());
        deps
    }
    /// Also notes which instances should be targets now, found by their tags like any other.
    async fn find(&self) -> Result<Option<Observed>, Error> {
        let s = &self.scope;
        let Some(found) = s
            .find(KIND, ids::API_TARGET_GROUP, || list(&s.cloud, &s.cluster))
            .await?
        else {
            return Ok(None);
        };
        let mut want = Vec::new();
        for cp in &self.control_planes {
            let machine = s
                .find(instance::KIND, cp, || instance::list(&s.cloud, &s.cluster))
                .await?;
            want.push(machine.map_or_else(|| PENDING.to_string(), |m| m.cloud_id));
        }
        Ok(Some(found.with("want", want)))
    }
    fn changes(&self, found: &Observed) -> Vec<String> {
        let (have, want) = (strings(found, "targets"), strings(found, "want"));
        let mut changes: Vec<String> = want
            .difference(&have)
            .map(|t| format!("+ target {t}"))
            .collect();
        changes.extend(have.difference(&want).map(|t| format!("- target {t}")));
        if found.attrs.get("preserve_client_ip") == Some(&json!(true)) {
            changes.push(format!("{PRESERVE_CLIENT_IP}: true → false"));
        }
        changes
    }
    async fn create(&self, deps: &Outputs) -> Result<Observed, Error> {
        let s = &self.scope;
        let name = name(&s.cluster);
        let out = s
            .cloud
            .elb
            .create_target_group()
            .name(&name)
            .protocol(ProtocolEnum::Tcp)
            .port(API_PORT)
            .vpc_id(deps.id_of(ids::VPC)?)
            .target_type(TargetTypeEnum::Instance)
            .health_check_protocol(ProtocolEnum::Tcp)
            .set_tags(Some(elb_tags(s, ids::API_TARGET_GROUP, &name)))
            .send()
            .await
            .map_err(|e| classify("creating the API target group", e))?;
        let arn = out
            .target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
            .unwrap_or_default();
        self.update(deps, &Observed::new(arn)).await
    }
    async fn update(&self, deps: &Outputs, found: &Observed) -> Result<Observed, Error> {
        let elb = &self.scope.cloud.elb;
        let want: BTreeSet<String> = self
            .control_planes
            .iter()
            .map(|cp| deps.id_of(cp))
            .collect::<Result<_, _>>()?;
        let have = strings(found, "targets");
        let describe = |ids: Vec<&String>| -> Option<Vec<TargetDescription>> {
            Some(
                ids.into_iter()
                    .map(|id| TargetDescription::builder().id(id).port(API_PORT).build())
                    .collect(),
            )
        };
        let add: Vec<&String> = want.difference(&have).collect();
        if !add.is_empty() {
            elb.register_targets()
                .target_group_arn(&found.cloud_id)
                .set_targets(describe(add))
                .send()
                .await
                .map_err(|e| classify("registering control planes with the API target group", e))?;
        }
        let remove: Vec<&String> = have.difference(&want).collect();
        if !remove.is_empty() {
            elb.deregister_targets()
                .target_group_arn(&found.cloud_id)
                .set_targets(describe(remove))
                .send()
                .await
                .map_err(|e| classify("deregistering old control planes", e))?;
        }
        if found.attrs.get("preserve_client_ip") != Some(&json!(false)) {
            elb.modify_target_group_attributes()
                .target_group_arn(&found.cloud_id)
                .attributes(
                    TargetGroupAttribute::builder()
                        .key(PRESERVE_CLIENT_IP)
                        .value("false")
                        .build(),
                )
                .send()
                .await
                .map_err(|e| classify("turning off client IP preservation", e))?;
        }
        let want: Vec<String> = want.into_iter().collect();
        Ok(Observed::new(&found.cloud_id)
            .with("targets", want.clone())
            .with("want", want)
            .with("preserve_client_ip", false))
    }
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        let s = &self.scope;
        let name = name(&s.cluster);
        let body = json!({
            "name": name,
            "port": API_PORT,
            "protocol": "TCP",
            "vpc_id": reference(names::VPC, "id"),
            "target_type": "instance",
            "preserve_client_ip": "false",
            "health_check": { "protocol": "TCP" },
            "tags": tags(s, ids::API_TARGET_GROUP, &name),
        });
        // One attachment per control plane, however many `control_plane_count` makes.
        let attachment = json!({
            "for_each": format!("${{aws_instance.{}}}", pool_local(CONTROL_PLANE_POOL)),
            "target_group_arn": reference(names::TARGET_GROUP, "arn"),
            "target_id": "${each.value.id}",
            "port": API_PORT,
        });
        Terraform::default()
            .resource(KIND, local(names::TARGET_GROUP), body)?
            .resource(
                "aws_lb_target_group_attachment",
                local(names::TARGET_GROUP),
                attachment,
            )
            .map(Some)
    }
    async fn delete(&self, found: &Observed) -> Result<(), Error> {
        delete(&self.scope.cloud, &found.cloud_id).await
    }
}
