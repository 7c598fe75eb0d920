//! The SSH key pair every machine trusts: the user's public key, imported (never generated, so
//! no private key ever passes through AWS or clouder's state).

use super::{cluster_filter, ec2_tags, found, ids, tag_spec};
use crate::cloud::{AwsCloud, Found, Scope, absent, classify};
use crate::terraform::{local, names, tags};
use async_trait::async_trait;
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::ResourceType;
use clouder_engine::terraform::Terraform;
use clouder_engine::{Error, Observed, Outputs, Resource};
use serde_json::json;
use std::sync::Arc;

pub const KIND: &str = "aws_key_pair";

pub struct KeyPair {
    pub scope: Arc<Scope>,
    /// OpenSSH public key line.
    pub public_key: String,
}

pub async fn list(cloud: &AwsCloud, cluster: &str) -> Result<Vec<Found>, Error> {
    let out = cloud
        .ec2
        .describe_key_pairs()
        .filters(cluster_filter(cluster))
        .send()
        .await
        .map_err(|e| classify("listing key pairs", e))?;
    Ok(out
        .key_pairs()
        .iter()
        .map(|k| found(k.tags(), Observed::new(k.key_name().unwrap_or_default())))
        .collect())
}

pub async fn delete(cloud: &AwsCloud, key_name: &str) -> Result<(), Error> {
    absent(
        "deleting key pair",
        cloud.ec2.delete_key_pair().key_name(key_name).send().await,
    )?;
    Ok(())
}

#[async_trait]
impl Resource for KeyPair {
    fn id(&self) -> &str {
        ids::KEY_PAIR
    }
    fn kind(&self) -> &'static str {
        KIND
    }
    async fn find(&self) -> Result<Option<Observed>, Error> {
        let s = &self.scope;
        s.find(KIND, ids::KEY_PAIR, || list(&s.cloud, &s.cluster))
            .await
    }
    async fn create(&self, _: &Outputs) -> Result<Observed, Error> {
        let s = &self.scope;
        let name = format!("clouder-{}", s.cluster);
        let tags = ec2_tags(s, ids::KEY_PAIR, &name);
        s.cloud
            .ec2
            .import_key_pair()
            .key_name(&name)
            .public_key_material(Blob::new(self.public_key.as_bytes()))
            .tag_specifications(tag_spec(ResourceType::KeyPair, &tags))
            .send()
            .await
            .map_err(|e| classify("importing the SSH public key", e))?;
        Ok(Observed::new(name))
    }
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        let s = &self.scope;
        let name = format!("clouder-{}", s.cluster);
        let body = json!({
            "key_name": name,
            "public_key": crate::terraform::var("ssh_public_key"),
            "tags": tags(s, ids::KEY_PAIR, &name),
        });
        let mut variable = json!({
            "type": "string",
            "description": "OpenSSH public key installed on every machine",
        });
        if !self.public_key.is_empty() {
            variable["default"] = json!(self.public_key);
        }
        Terraform::default()
            .variable("ssh_public_key", variable)?
            .resource(KIND, local(names::KEY_PAIR), body)
            .map(Some)
    }
    async fn delete(&self, found: &Observed) -> Result<(), Error> {
        delete(&self.scope.cloud, &found.cloud_id).await
    }
}
