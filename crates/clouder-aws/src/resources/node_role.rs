//! The nodes' IAM role (with the permissions the EBS CSI driver, the AWS Load Balancer Controller
//! and the cloud controller need) and the instance profile that hands it to the machines.
//! IAM is global: names and paths carry the region so same-named clusters in two regions differ.

use super::ids;
use crate::cloud::{AwsCloud, Found, Scope, absent, classify};
use crate::terraform::{local, names, reference, tags, var};
use async_trait::async_trait;
use aws_sdk_iam::types::Tag;
use clouder_engine::terraform::Terraform;
use clouder_engine::{Error, Observed, Outputs, Resource};
use serde_json::json;
use std::sync::Arc;

pub const ROLE_KIND: &str = "aws_iam_role";
pub const PROFILE_KIND: &str = "aws_iam_instance_profile";
const POLICY_NAME: &str = "clouder-node";

const ASSUME_ROLE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// What in-cluster integrations do with the node's credentials.
pub const NODE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
{"Sid":"EbsCsiDriver","Effect":"Allow","Action":["ec2:CreateVolume","ec2:DeleteVolume","ec2:AttachVolume","ec2:DetachVolume","ec2:ModifyVolume","ec2:CreateSnapshot","ec2:DeleteSnapshot","ec2:CreateTags","ec2:DeleteTags","ec2:DescribeAvailabilityZones","ec2:DescribeInstances","ec2:DescribeSnapshots","ec2:DescribeTags","ec2:DescribeVolumes","ec2:DescribeVolumesModifications"],"Resource":"*"},
{"Sid":"LoadBalancerController","Effect":"Allow","Action":["elasticloadbalancing:*","ec2:Describe*","ec2:CreateSecurityGroup","ec2:DeleteSecurityGroup","ec2:AuthorizeSecurityGroupIngress","ec2:RevokeSecurityGroupIngress","ec2:GetSecurityGroupsForVpc","acm:ListCertificates","acm:DescribeCertificate","iam:ListServerCertificates","iam:GetServerCertificate","cognito-idp:DescribeUserPoolClient","waf-regional:*","wafv2:*","shield:*"],"Resource":"*"},
{"Sid":"ServiceLinkedRole","Effect":"Allow","Action":"iam:CreateServiceLinkedRole","Resource":"*","Condition":{"StringEquals":{"iam:AWSServiceName":"elasticloadbalancing.amazonaws.com"}}},
{"Sid":"CloudController","Effect":"Allow","Action":["autoscaling:DescribeAutoScalingGroups","autoscaling:DescribeLaunchConfigurations","autoscaling:DescribeTags","ec2:ModifyInstanceAttribute","ec2:CreateRoute","ec2:DeleteRoute","ec2:DescribeRouteTables","kms:DescribeKey"],"Resource":"*"}
]}"#;

/// `/clouder/REGION/CLUSTER/`: lists a cluster's IAM objects with one call.
pub fn path(cloud: &AwsCloud, cluster: &str) -> String {
    path_in(&cloud.region, cluster)
}

pub fn role_name(cloud: &AwsCloud, cluster: &str) -> String {
    role_name_in(&cloud.region, cluster)
}

fn path_in(region: &str, cluster: &str) -> String {
    format!("/clouder/{region}/{cluster}/")
}

fn role_name_in(region: &str, cluster: &str) -> String {
    format!("clouder-{cluster}-{region}-nodes")
}

fn iam_tags(scope: &Scope, id: &str, name: &str) -> Vec<Tag> {
    scope
        .tags(id, name)
        .into_iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

pub struct NodeRole {
    pub scope: Arc<Scope>,
}

pub async fn list_roles(cloud: &AwsCloud, cluster: &str) -> Result<Vec<Found>, Error> {
    let out = cloud
        .iam
        .list_roles()
        .path_prefix(path(cloud, cluster))
        .send()
        .await
        .map_err(|e| classify("listing IAM roles", e))?;
    let ours = role_name(cloud, cluster);
    let mut found = Vec::new();
    // Filtered here too: not every IAM implementation honours PathPrefix.
    for role in out
        .roles()
        .iter()
        .filter(|r| r.path() == path(cloud, cluster))
    {
        let name = role.role_name();
        let policy = absent(
            "reading the node role policy",
            cloud
                .iam
                .get_role_policy()
                .role_name(name)
                .policy_name(POLICY_NAME)
                .send()
                .await,
        )?;
        found.push(Found {
            resource_id: (name == ours).then(|| ids::NODE_ROLE.to_string()),
            observed: Observed::new(name).with("policy", policy.is_some()),
        });
    }
    Ok(found)
}

/// Deletes inline and attached policies, instance profile memberships, then the role.
pub async fn delete_role(cloud: &AwsCloud, name: &str) -> Result<(), Error> {
    let iam = &cloud.iam;
    if let Some(policies) = absent(
        "listing role policies",
        iam.list_role_policies().role_name(name).send().await,
    )? {
        for policy in policies.policy_names() {
            absent(
                "deleting role policy",
                iam.delete_role_policy()
                    .role_name(name)
                    .policy_name(policy)
                    .send()
                    .await,
            )?;
        }
    }
    if let Some(attached) = absent(
        "listing attached policies",
        iam.list_attached_role_policies()
            .role_name(name)
            .send()
            .await,
    )? {
        for policy in attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn())
        {
            absent(
                "detaching role policy",
                iam.detach_role_policy()
                    .role_name(name)
                    .policy_arn(policy)
                    .send()
                    .await,
            )?;
        }
    }
    if let Some(profiles) = absent(
        "listing instance profiles of role",
        iam.list_instance_profiles_for_role()
            .role_name(name)
            .send()
            .await,
    )? {
        for profile in profiles.instance_profiles() {
            absent(
                "removing role from instance profile",
                iam.remove_role_from_instance_profile()
                    .instance_profile_name(profile.instance_profile_name())
                    .role_name(name)
                    .send()
                    .await,
            )?;
        }
    }
    absent(
        "deleting IAM role",
        iam.delete_role().role_name(name).send().await,
    )?;
    Ok(())
}

#[async_trait]
impl Resource for NodeRole {
    fn id(&self) -> &str {
        ids::NODE_ROLE
    }
    fn kind(&self) -> &'static str {
        ROLE_KIND
    }
    async fn find(&self) -> Result<Option<Observed>, Error> {
        let s = &self.scope;
        s.find(ROLE_KIND, ids::NODE_ROLE, || {
            list_roles(&s.cloud, &s.cluster)
        })
        .await
    }
    fn changes(&self, found: &Observed) -> Vec<String> {
        if found.attrs.get("policy") == Some(&true.into()) {
            Vec::new()
        } else {
            vec![format!("put inline policy {POLICY_NAME}")]
        }
    }
    async fn create(&self, deps: &Outputs) -> Result<Observed, Error> {
        let s = &self.scope;
        let name = role_name(&s.cloud, &s.cluster);
        s.cloud
            .iam
            .create_role()
            .role_name(&name)
            .path(path(&s.cloud, &s.cluster))
            .assume_role_policy_document(ASSUME_ROLE)
            .description(format!("clouder cluster {} nodes", s.cluster))
            .set_tags(Some(iam_tags(s, ids::NODE_ROLE, &name)))
            .send()
            .await
            .map_err(|e| classify("creating the node IAM role", e))?;
        self.update(deps, &Observed::new(name)).await
    }
    async fn update(&self, _: &Outputs, found: &Observed) -> Result<Observed, Error> {
        self.scope
            .cloud
            .iam
            .put_role_policy()
            .role_name(&found.cloud_id)
            .policy_name(POLICY_NAME)
            .policy_document(NODE_POLICY)
            .send()
            .await
            .map_err(|e| classify("putting the node role policy", e))?;
        Ok(found.clone().with("policy", true))
    }
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        let s = &self.scope;
        let name = role_name_in(&var("region"), &s.cluster);
        let role = json!({
            "name": name,
            "path": path_in(&var("region"), &s.cluster),
            "assume_role_policy": ASSUME_ROLE,
            "description": format!("clouder cluster {} nodes", s.cluster),
            "tags": tags(s, ids::NODE_ROLE, &name),
        });
        let policy = json!({
            "name": POLICY_NAME,
            "role": reference(names::NODE_ROLE, "id"),
            "policy": NODE_POLICY,
        });
        Terraform::default()
            .resource(ROLE_KIND, local(names::NODE_ROLE), role)?
            .resource("aws_iam_role_policy", local(names::NODE_ROLE), policy)
            .map(Some)
    }
    async fn delete(&self, found: &Observed) -> Result<(), Error> {
        delete_role(&self.scope.cloud, &found.cloud_id).await
    }
}

pub struct NodeInstanceProfile {
    pub scope: Arc<Scope>,
}

pub async fn list_profiles(cloud: &AwsCloud, cluster: &str) -> Result<Vec<Found>, Error> {
    let out = cloud
        .iam
        .list_instance_profiles()
        .path_prefix(path(cloud, cluster))
        .send()
        .await
        .map_err(|e| classify("listing instance profiles", e))?;
    let ours = role_name(cloud, cluster);
    Ok(out
        .instance_profiles()
        .iter()
        .filter(|p| p.path() == path(cloud, cluster))
        .map(|p| {
            let roles: Vec<&str> = p.roles().iter().map(|r| r.role_name()).collect();
            Found {
                resource_id: (p.instance_profile_name() == ours)
                    .then(|| ids::NODE_PROFILE.to_string()),
                observed: Observed::new(p.instance_profile_name()).with("roles", roles),
            }
        })
        .collect())
}

pub async fn delete_profile(cloud: &AwsCloud, name: &str) -> Result<(), Error> {
    let iam = &cloud.iam;
    if let Some(profile) = absent(
        "reading instance profile",
        iam.get_instance_profile()
            .instance_profile_name(name)
            .send()
            .await,
    )? {
        for role in profile
            .instance_profile()
            .map(|p| p.roles())
            .unwrap_or_default()
        {
            absent(
                "removing role from instance profile",
                iam.remove_role_from_instance_profile()
                    .instance_profile_name(name)
                    .role_name(role.role_name())
                    .send()
                    .await,
            )?;
        }
    }
    absent(
        "deleting instance profile",
        iam.delete_instance_profile()
            .instance_profile_name(name)
            .send()
            .await,
    )?;
    Ok(())
}

#[async_trait]
impl Resource for NodeInstanceProfile {
    fn id(&self) -> &str {
        ids::NODE_PROFILE
    }
    fn kind(&self) -> &'static str {
        PROFILE_KIND
    }
    fn depends_on(&self) -> Vec<String> {
        vec![ids::NODE_ROLE.into()]
    }
    async fn find(&self) -> Result<Option<Observed>, Error> {
        let s = &self.scope;
        s.find(PROFILE_KIND, ids::NODE_PROFILE, || {
            list_profiles(&s.cloud, &s.cluster)
        })
        .await
    }
    fn changes(&self, found: &Observed) -> Vec<String> {
        let role = role_name(&self.scope.cloud, &self.scope.cluster);
        let has = found
            .attrs
            .get("roles")
            .and_then(|r| r.as_array())
            .is_some_and(|r| r.iter().any(|n| n == &role));
        if has {
            Vec::new()
        } else {
            vec![format!("add role {role}")]
        }
    }
    async fn create(&self, deps: &Outputs) -> Result<Observed, Error> {
        let s = &self.scope;
        let name = role_name(&s.cloud, &s.cluster);
        s.cloud
            .iam
            .create_instance_profile()
            .instance_profile_name(&name)
            .path(path(&s.cloud, &s.cluster))
            .set_tags(Some(iam_tags(s, ids::NODE_PROFILE, &name)))
            .send()
            .await
            .map_err(|e| classify("creating the node instance profile", e))?;
        self.update(deps, &Observed::new(name)).await
    }
    async fn update(&self, deps: &Outputs, found: &Observed) -> Result<Observed, Error> {
        let role = deps.id_of(ids::NODE_ROLE)?;
        self.scope
            .cloud
            .iam
            .add_role_to_instance_profile()
            .instance_profile_name(&found.cloud_id)
            .role_name(&role)
            .send()
            .await
            .map_err(|e| classify("adding the role to the instance profile", e))?;
        Ok(found.clone().with("roles", vec![role]))
    }
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        let s = &self.scope;
        let name = role_name_in(&var("region"), &s.cluster);
        let body = json!({
            "name": name,
            "path": path_in(&var("region"), &s.cluster),
            "role": reference(names::NODE_ROLE, "name"),
            "tags": tags(s, ids::NODE_PROFILE, &name),
        });
        Terraform::default()
            .resource(PROFILE_KIND, local(names::NODE_PROFILE), body)
            .map(Some)
    }
    async fn delete(&self, found: &Observed) -> Result<(), Error> {
        delete_profile(&self.scope.cloud, &found.cloud_id).await
    }
}
