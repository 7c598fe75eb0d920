//! One EC2 machine: a control plane or a worker of a pool. Encrypted gp3 root volume of the
//! requested size, IMDSv2 only, the node instance profile, the cluster's key pair.

use super::{cluster_filter, ec2_tags, found, ids, tag_of, tag_spec};
use crate::cloud::{AwsCloud, Found, Scope, absent, classify};
use crate::terraform::{local, names, pool_local, pool_var, reference, tags, var};
use async_trait::async_trait;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification,
    InstanceMetadataOptionsRequest, InstanceStateName, InstanceType, ResourceType, Tag, VolumeType,
};
use clouder_engine::terraform::{Terraform, for_each_index};
use clouder_engine::{Billable, Error, Observed, Outputs, Resource};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub const KIND: &str = "aws_instance";
pub const POOL_TAG: &str = "clouder.io/pool";

/// Which machine image to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageChoice {
    Id(String),
    /// The newest image of `owner` whose name matches `pattern`.
    Newest {
        owner: &'static str,
        pattern: &'static str,
    },
}

impl ImageChoice {
    /// `ami-…` as given, or one of the documented aliases.
    pub fn from_spec(image: &str) -> Self {
        const CANONICAL: &str = "099720109477";
        const DEBIAN: &str = "136693071363";
        match image {
            "Ubuntu2204" => ImageChoice::Newest {
                owner: CANONICAL,
                pattern: "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*",
            },
            "Debian12" => ImageChoice::Newest {
                owner: DEBIAN,
                pattern: "debian-12-amd64-*",
            },
            id if id.starts_with("ami-") => ImageChoice::Id(id.to_string()),
            _ => ImageChoice::Newest {
                owner: CANONICAL,
                pattern: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
            },
        }
    }
}

pub struct Instance {
    pub scope: Arc<Scope>,
    pub id: String,
    pub name: String,
    pub pool: String,
    pub size: String,
    pub disk_gb: u32,
    pub image: ImageChoice,
}

const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

pub async fn list(cloud: &AwsCloud, cluster: &str) -> Result<Vec<Found>, Error> {
    let live = Filter::builder()
        .name("instance-state-name")
        .set_values(Some(LIVE_STATES.iter().map(|s| s.to_string()).collect()))
        .build();
    let mut pages = cloud
        .ec2
        .describe_instances()
        .filters(cluster_filter(cluster))
        .filters(live)
        .into_paginator()
        .items()
        .send();
    let mut found_all = Vec::new();
    while let Some(reservation) = pages.next().await {
        let reservation = reservation.map_err(|e| classify("listing instances", e))?;
        for i in reservation.instances() {
            let observed = Observed::new(i.instance_id().unwrap_or_default())
                .with(
                    "size",
                    i.instance_type().map(|t| t.as_str()).unwrap_or_default(),
                )
                .with("name", tag_of(i.tags(), "Name").unwrap_or_default())
                .with("pool", tag_of(i.tags(), POOL_TAG).unwrap_or_default())
                .with("private_ip", i.private_ip_address().unwrap_or_default())
                .with("public_ip", i.public_ip_address().unwrap_or_default())
                .with(
                    "state",
                    i.state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str())
                        .unwrap_or_default(),
                );
            found_all.push(found(i.tags(), observed));
        }
    }
    Ok(found_all)
}

/// Terminates and waits until the machine is gone, so its network interfaces free the subnet
/// and security group for deletion.
pub async fn delete(cloud: &AwsCloud, instance_id: &str) -> Result<(), Error> {
    absent(
        "terminating instance",
        cloud
            .ec2
            .terminate_instances()
            .instance_ids(instance_id)
            .send()
            .await,
    )?;
    let mut pause = Duration::from_millis(100);
    for _ in 0..60 {
        let out = absent(
            "waiting for termination",
            cloud
                .ec2
                .describe_instances()
                .instance_ids(instance_id)
                .send()
                .await,
        )?;
        let state = out
            .iter()
            .flat_map(|o| o.reservations())
            .flat_map(|r| r.instances())
            .filter_map(|i| i.state().and_then(|s| s.name()).cloned())
            .next();
        if matches!(state, None | Some(InstanceStateName::Terminated)) {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
    Err(Error::transient(format!(
        "instance {instance_id} is still terminating"
    )))
}

/// The image id and its root device name, resolved once per plan.
async fn image(scope: &Scope, choice: &ImageChoice) -> Result<(String, String), Error> {
    let resolved = scope
        .image
        .get_or_try_init(|| async {
            let ec2 = &scope.cloud.ec2;
            let call = match choice {
                ImageChoice::Id(id) => ec2.describe_images().image_ids(id),
                ImageChoice::Newest { owner, pattern } => ec2
                    .describe_images()
                    .owners(*owner)
                    .filters(Filter::builder().name("name").values(*pattern).build()),
            };
            let out = call
                .send()
                .await
                .map_err(|e| classify("looking up the machine image", e))?;
            let newest = out
                .images()
                .iter()
                .max_by_key(|i| i.creation_date().unwrap_or_default().to_string())
                .ok_or_else(|| {
                    Error::permanent(format!(
                        "no machine image matches {choice:?} in {}",
                        scope.cloud.region
                    ))
                })?;
            let root = newest.root_device_name().unwrap_or("/dev/sda1");
            Ok::<_, Error>(format!("{}\n{root}", newest.image_id().unwrap_or_default()))
        })
        .await?;
    let (id, root) = resolved
        .split_once('\n')
        .unwrap_or((resolved.as_str(), "/dev/sda1"));
    Ok((id.to_string(), root.to_string()))
}

#[async_trait]
impl Resource for Instance {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        KIND
    }
    fn depends_on(&self) -> Vec<String> {
        [
            ids::SUBNET,
            ids::SECURITY_GROUP,
            ids::KEY_PAIR,
            ids::NODE_PROFILE,
            ids::ROUTE_TABLE,
        ]
        .map(String::from)
        .to_vec()
    }
    async fn find(&self) -> Result<Option<Observed>, Error> {
        let s = &self.scope;
        s.find(KIND, &self.id, || list(&s.cloud, &s.cluster)).await
    }
    fn changes(&self, found: &Observed) -> Vec<String> {
        match found.attr("state") {
            Some("stopped" | "stopping") => vec!["start the stopped machine".into()],
            _ => Vec::new(),
        }
    }
    async fn create(&self, deps: &Outputs) -> Result<Observed, Error> {
        let s = &self.scope;
        let (image_id, root_device) = image(s, &self.image).await?;
        let mut tags = ec2_tags(s, &self.id, &self.name);
        tags.push(Tag::builder().key(POOL_TAG).value(&self.pool).build());
        let root = EbsBlockDevice::builder()
            .volume_size(self.disk_gb as i32)
            .volume_type(VolumeType::Gp3)
            .encrypted(true)
            .delete_on_termination(true)
            .build();
        // Idempotency for the SDK's own retries of this one call; find-by-tag covers re-runs.
        let token: String = format!("{}-{}-{}", s.run_token, s.cluster, self.id)
            .chars()
            .take(64)
            .collect();
        let out = s
            .cloud
            .ec2
            .run_instances()
            .client_token(token)
            .image_id(image_id)
            .instance_type(InstanceType::from(self.size.as_str()))
            .min_count(1)
            .max_count(1)
            .key_name(deps.id_of(ids::KEY_PAIR)?)
            .subnet_id(deps.id_of(ids::SUBNET)?)
            .security_group_ids(deps.id_of(ids::SECURITY_GROUP)?)
            .iam_instance_profile(
                IamInstanceProfileSpecification::builder()
                    .name(deps.id_of(ids::NODE_PROFILE)?)
                    .build(),
            )
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name(root_device)
                    .ebs(root)
                    .build(),
            )
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .http_put_response_hop_limit(2)
                    .build(),
            )
            .tag_specifications(tag_spec(ResourceType::Instance, &tags))
            .tag_specifications(tag_spec(ResourceType::Volume, &tags))
            .send()
            .await
            .map_err(|e| classify(&format!("launching {}", self.name), e))?;
        let i = out
            .instances()
            .first()
            .ok_or_else(|| Error::permanent("RunInstances returned no instance"))?;
        Ok(Observed::new(i.instance_id().unwrap_or_default())
            .with("name", self.name.as_str())
            .with("size", self.size.as_str())
            .with("pool", self.pool.as_str())
            .with("private_ip", i.private_ip_address().unwrap_or_default())
            .with("public_ip", i.public_ip_address().unwrap_or_default())
            .with("state", "pending"))
    }
    async fn update(&self, _: &Outputs, found: &Observed) -> Result<Observed, Error> {
        self.scope
            .cloud
            .ec2
            .start_instances()
            .instance_ids(&found.cloud_id)
            .send()
            .await
            .map_err(|e| classify(&format!("starting {}", self.name), e))?;
        Ok(found.clone().with("state", "pending"))
    }
    fn billing(&self) -> Vec<Billable> {
        vec![
            Billable::Machine {
                size: self.size.clone(),
            },
            Billable::Disk {
                class: "gp3".into(),
                gb: self.disk_gb,
            },
            // The subnet maps a public address onto every machine.
            Billable::PublicIpv4,
        ]
    }
    /// The machines of this one's pool as one block over the pool's indexes: every machine of
    /// the pool renders the same block, with names and ids templated over `each.key`.
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        let s = &self.scope;
        let indexed = |text: &str| {
            let prefix = text.rsplit_once('-').map_or(text, |(p, _)| p);
            format!("{prefix}-${{each.key}}")
        };
        let mut tags = tags(s, &indexed(&self.id), &indexed(&self.name));
        tags[POOL_TAG] = json!(self.pool);
        let mut tf = Terraform::default();
        let ami = match &self.image {
            ImageChoice::Id(id) => id.clone(),
            ImageChoice::Newest { owner, pattern } => {
                tf = tf.data(
                    "aws_ami",
                    local(names::IMAGE),
                    json!({
                        "most_recent": true,
                        "owners": [owner],
                        "filter": [{ "name": "name", "values": [pattern] }],
                    }),
                )?;
                reference(names::IMAGE, "id")
            }
        };
        let body = json!({
            "for_each": for_each_index(&pool_local(&self.pool)),
            "ami": ami,
            "instance_type": var(&pool_var(&self.pool, "size")),
            "subnet_id": reference(names::SUBNET, "id"),
            "vpc_security_group_ids": [reference(names::SECURITY_GROUP, "id")],
            "key_name": reference(names::KEY_PAIR, "key_name"),
            "iam_instance_profile": reference(names::NODE_PROFILE, "name"),
            "root_block_device": {
                "volume_size": var(&pool_var(&self.pool, "disk_gb")),
                "volume_type": "gp3",
                "encrypted": true,
                "delete_on_termination": true,
            },
            "metadata_options": {
                "http_tokens": "required",
                "http_put_response_hop_limit": 2,
            },
            "tags": tags,
            "volume_tags": tags,
            // Machines boot with a route to the internet, as the graph's dependency says.
            "depends_on": [names::ROUTE_TABLE_ASSOCIATION],
        });
        tf.resource(KIND, &pool_local(&self.pool), body).map(Some)
    }
    async fn delete(&self, found: &Observed) -> Result<(), Error> {
        delete(&self.scope.cloud, &found.cloud_id).await
    }
}

/// The machine's serial console log as cloud-init wrote it (host keys included); empty while
/// AWS has none yet, which is the case for the first minutes of a machine's life.
pub async fn console_output(cloud: &AwsCloud, instance_id: &str) -> Result<String, Error> {
    let out = cloud
        .ec2
        .get_console_output()
        .instance_id(instance_id)
        .send()
        .await
        .map_err(|e| classify("reading the console output", e))?;
    let encoded = out.output().unwrap_or_default();
    let bytes = aws_smithy_types::base64::decode(encoded)
        .map_err(|e| Error::permanent(format!("console output of {instance_id}: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
