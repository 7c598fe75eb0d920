//! The resource group: created (and tagged) by clouder, or an existing one named with `-g`.
//! An existing group is never deleted unless `--delete-rg` says so.
//! Shape: azure-rest-api-specs specification/resources/resource-manager/Microsoft.Resources/
//! stable/2021-04-01/resources.json (ResourceGroups_CreateOrUpdate, ResourceGroups_Delete: 202 +
//! Location polling).

use super::ids;
use crate::cloud::{CLUSTER_TAG, RESOURCE_GROUP, Scope, tag};
use async_trait::async_trait;
use clouder_engine::terraform::Terraform;
use clouder_engine::{Error, Observed, Outputs, Resource};
use serde_json::{Value, json};
use std::sync::Arc;

pub struct ResourceGroup {
    pub scope: Arc<Scope>,
    /// Named by the user (`-g`), so it may exist already; otherwise `<c>-rg`, clouder's own.
    pub named: bool,
}

/// The group as clouder sees it: `owned` when it carries this cluster's tag.
pub fn observe(scope: &Scope, body: &Value) -> Observed {
    let owned = tag(body, CLUSTER_TAG) == Some(scope.cluster.as_str());
    Observed::new(scope.group_id())
        .with("name", scope.resource_group.as_str())
        .with("owned", owned)
}

pub async fn find(scope: &Scope) -> Result<Option<Observed>, Error> {
    let body = scope
        .cloud
        .arm
        .get(&scope.group_id(), RESOURCE_GROUP.api_version)
        .await?;
    Ok(body.map(|b| observe(scope, &b)))
}

pub fn owned(found: &Observed) -> bool {
    found.attrs.get("owned") == Some(&Value::Bool(true))
}

pub async fn delete(scope: &Scope) -> Result<(), Error> {
    scope
        .cloud
        .arm
        .delete(&scope.group_id(), RESOURCE_GROUP.api_version)
        .await
}

#[async_trait]
impl Resource for ResourceGroup {
    fn id(&self) -> &str {
        ids::RESOURCE_GROUP
    }
    fn kind(&self) -> &'static str {
        RESOURCE_GROUP.kind
    }
    async fn find(&self) -> Result<Option<Observed>, Error> {
        find(&self.scope).await
    }
    async fn create(&self, _: &Outputs) -> Result<Observed, Error> {
        let s = &self.scope;
        let body = json!({ "location": s.cloud.location, "tags": s.tags(ids::RESOURCE_GROUP) });
        let written = s
            .cloud
            .arm
            .put(&s.group_id(), RESOURCE_GROUP.api_version, &body)
            .await?;
        Ok(observe(s, &written))
    }
    /// Deletes the group only when clouder created it, or `--delete-rg` was given.
    async fn delete(&self, found: &Observed) -> Result<(), Error> {
        if owned(found) || self.scope.delete_rg {
            delete(&self.scope).await
        } else {
            tracing::info!(group = %self.scope.resource_group, "keeping the existing resource group");
            Ok(())
        }
    }
    fn terraform(&self) -> Result<Option<Terraform>, Error> {
        crate::terraform::resource_group(&self.scope, self.named).map(Some)
    }
}
