//! The nodes' security group. Secure by default: SSH (22) and the API server (6443) only from
//! the admin CIDRs; everything from inside the VPC and the pod network.

use super::{cluster_filter, ec2_tags, found, ids, tag_spec};
use crate::cloud::{AwsCloud, Found, Scope, absent, classify};
use crate::terraform::{local, names, reference, tags};
use async_trait::async_trait;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType};
use clouder_engine::terraform::Terraform;
use clouder_engine::{Error, Observed, Outputs, Resource};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

pub const KIND: &str = "aws_security_group";

const DUPLICATE: &str = "InvalidPermission.Duplicate";

pub struct SecurityGroup {
    pub scope: Arc<Scope>,
    pub vpc_cidr: String,
    pub pod_cidr: String,
    pub admin_cidrs: Vec<String>,
}

/// One ingress rule as `protocol:from-to:cidr`, the form plans print.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub protocol: String,
    pub ports: Option<(i32, i32)>,
    pub cidr: String,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ports {
            Some((a, b)) if a == b => write!(f, "{}:{a}:{}", self.protocol, self.cidr),
            Some((a, b)) => write!(f, "{}:{a}-{b}:{}", self.protocol, self.cidr),
            None => write!(f, "all:{}", self.cidr),
        }
    }
}

impl Rule {
    fn permission(&self) -> IpPermission {
        let range = IpRange::builder()
            .cidr_ip(&self.cidr)
            .description("clouder")
            .build();
        let p = IpPermission::builder()
            .ip_protocol(&self.protocol)
            .ip_ranges(range);
        match self.ports {
            Some((from, to)) => p.from_port(from).to_port(to).build(),
            None => p.build(),
        }
    }
}

impl SecurityGroup {
    pub fn desired_rules(&self) -> BTreeSet<Rule> {
        let tcp = |port: i32, cidr: &str| Rule {
            protocol: "tcp".into(),
            ports: Some((port, port)),
            cidr: cidr.into(),
        };
        let all = |cidr: &str| Rule {
            protocol: "-1".into(),
            ports: None,
            cidr: cidr.into(),
        };
        let mut rules: BTreeSet<Rule> = [all(&self.vpc_cidr), all(&self.pod_cidr)].into();
        for cidr in &self.admin_cidrs {
            rules.insert(tcp(22, cidr));
            rules.insert(tcp(6443, cidr));
        }
        rules
    }

    fn diff(&self, found: &Observed) -> (Vec<Rule>, Vec<Rule>) {
        let have: BTreeSet<String> = found
            .attrs
            .get("rules")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
        let want = self.desired_rules();
        let missing = want
            .iter()
            .filter(|r| !have.contains(&r.to_string()))
            .cloned()
            .collect();
        let wanted: BTreeSet<String> = want.iter().map(ToString::to_string).collect();
        let extra = have
            .iter()
            .filter(|r| !wanted.contains(*r))
            .filter_map(|r| parse_rule(r))
            .collect();
        (missing, extra)
    }
}

fn parse_rule(text: &str) -> Option<Rule> {
    let (head, cidr) = text.rsplit_once(':')?;
    if head == "all" {
        return Some(Rule {
            protocol: "-1".into(),
            ports: None,
            cidr: cidr.into(),
        });
    }
    let (protocol, ports) = head.split_once(':')?;
    let (from, to) = ports.split_once('-').unwrap_or((ports, ports));
    Some(Rule {
        protocol: protocol.into(),
        ports: Some((from.parse().ok()?, to.parse().ok()?)),
        cidr: cidr.into(),
    })
}

fn observed_rules(permissions: &[IpPermission]) -> Vec<String> {
    let mut rules = Vec::new();
    for p in permissions {
        let protocol = p.ip_protocol().unwrap_or("-1");
        let ports = match (protocol, p.from_port(), p.to_port()) {
            ("-1", ..) => None,
            (_, Some(a), Some(b)) => Some((a, b)),
            _ => None,
        };
        for range in p.ip_ranges() {
            let rule = Rule {
                protocol: protocol.into(),
                ports,
                cidr: range.cidr_ip().unwrap_or_default().into(),
            };
            rules.push(rule.to_string());
        }
    }
    rules.sort();
    rules
}

pub async fn list(cloud: &AwsCloud, cluster: &str) -> Result<Vec<Found>, Error> {
    let out = cloud
        .ec2
        .describe_security_groups()
        .filters(cluster_filter(cluster))
        .send()
        .await
        .map_err(|e| classify("listing security groups", e))?;
    Ok(out
        .security_groups()
        .iter()
        .map(|g| {
            let observed = Observed::new(g.group_id().unwrap_or_default())
                .with("rules", observed_rules(g.ip_permissions()));
            found(g.tags(), observed)
        })
        .collect())
}

pub async fn delete(cloud: &AwsCloud, group_id: &str) -> Result<(), Error> {
    absent(
        "deleting security group",
        cloud
            .ec2
            .delete_security_group()
            .group_id(group_id)
            .send()
            .await,
    )?;
    Ok(())
}

#[async_trait]
impl Resource for SecurityGroup {
    fn id(&self) -> &str {
        ids::SECURITY_GROUP
    }
    fn kind(&self) -> &'static str {
        KIND
    }
    fn depends_on(&self) -> Vec<String> {
        vec![ids::VPC.into()]
    }
    async fn find(&self) -> Result<Option<Observed>, Error> {
        let s = &self.scope;
        s.find(KIND, ids::SECURITY_GROUP, || list(&s.cloud, &s.cluster))
            .await
    }
    fn changes(&self, found: &Observed) -> Vec<String> {
        let (missing, extra) = self.diff(found);
        missing
            .iter()
            .map(|r| format!("+ ingress {r}"))
            .chain(extra.iter().map(|r| format!("- ingress {r}")))
            .collect()
    }
    async fn create(&self, deps: &Outputs) -> Result<Observed, Error> {
        let s = &self.scope;
        let name = s.name("nodes");
        let tags = ec2_tags(s, ids::SECURITY_GROUP, &name);
        let out = s
            .cloud
            .ec2
            .create_security_group()
            .group_name(&name)
            .description(format!("clouder cluster {} nodes", s.cluster))
            .vpc_id(deps.id_of(ids::VPC)?)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, &tags))
            .send()
            .await
            .map_err(|e| classify("creating security group", e))?;
        self.update(deps, &Observed::new(out.group_id().unwrap_or_default()))
            .await
    }
    async fn update(&self, _: &Outputs, found: &Observed) -> Result<Observed, Error> {
        let ec2 = &self.scope.cloud.ec2;
        let (missing, extra) = self.diff(found);
        if !missing.is_empty() {
            let all = ec2
                .authorize_security_group_ingress()
                .group_id(&found.cloud_id)
                .set_ip_permissions(Some(missing.iter().map(Rule::permission).collect()))
                .send()
                .await;
            // A retried call that had already landed finds some rules there, and AWS refuses the
            // whole batch: then each rule on its own, one already there counting as done.
            if let Err(e) = all {
                if e.code() != Some(DUPLICATE) {
                    return Err(classify("opening security group rules", e));
                }
                for rule in &missing {
                    match ec2
                        .authorize_security_group_ingress()
                        .group_id(&found.cloud_id)
                        .ip_permissions(rule.permission())
                        .send()
                        .await
                    {
                        Err(e) if e.code() != Some(DUPLICATE) => {
                            return Err(classify("opening security group rules", e));
                        }
                        _ => {}
                    }
                }
            }
        }
        if !extra.is_empty() {
            ec2.revoke_security_group_ingress()
                .group_id(&found.cloud_id)
                .set_ip_permissions(Some(extra.iter().map(Rule::permission).collect()))
                .send()
                .await
                .map_err(|e| classify("closing security group rules", e))?;
        }
        let rules: Vec<String> = self
            .desired_rules()
            .iter()
            .map(ToString::to_string)
            .collect();
        Ok(Observed::new(&found.cloud_id).with("rules", rules))
    }
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        const INGRESS: &str = "aws_vpc_security_group_ingress_rule";
        let s = &self.scope;
        let name = s.name("nodes");
        let group = reference(names::SECURITY_GROUP, "id");
        let everything = |cidr: &str| {
            json!({
                "security_group_id": group,
                "ip_protocol": "-1",
                "cidr_ipv4": cidr,
                "description": "clouder",
            })
        };
        // SSH and the API server from each admin network, as `admin_cidrs` lists them.
        let admin = |port: i32| {
            json!({
                "for_each": "${toset(var.admin_cidrs)}",
                "security_group_id": group,
                "ip_protocol": "tcp",
                "from_port": port,
                "to_port": port,
                "cidr_ipv4": "${each.value}",
                "description": "clouder",
            })
        };
        let body = json!({
            "name": name,
            "description": format!("clouder cluster {} nodes", s.cluster),
            "vpc_id": reference(names::VPC, "id"),
            "tags": tags(s, ids::SECURITY_GROUP, &name),
        });
        Terraform::default()
            .resource(KIND, local(names::SECURITY_GROUP), body)?
            .resource(INGRESS, "vpc", everything(&self.vpc_cidr))?
            .resource(INGRESS, "pods", everything(&self.pod_cidr))?
            .resource(INGRESS, "ssh", admin(22))?
            .resource(INGRESS, "api", admin(6443))?
            // AWS's default allow-all egress, which Terraform removes unless declared.
            .resource(
                "aws_vpc_security_group_egress_rule",
                "all",
                everything("0.0.0.0/0"),
            )
            .map(Some)
    }
    async fn delete(&self, found: &Observed) -> Result<(), Error> {
        delete(&self.scope.cloud, &found.cloud_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_print_and_parse_back() {
        for text in [
            "tcp:22:203.0.113.0/24",
            "tcp:30000-32767:10.0.0.0/16",
            "all:10.244.0.0/16",
        ] {
            assert_eq!(parse_rule(text).unwrap().to_string(), text);
        }
    }
}
