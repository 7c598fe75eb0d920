//! Server-side apply of manifests with field manager `clouder`: namespaces and CRDs first, the rest
//! in parallel; each object reports whether it was created, changed or left as it was.

use crate::manifest::ObjectRef;
use crate::{Error, Result, wait};
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use kube::discovery::{ApiCapabilities, Scope, pinned_kind};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub const FIELD_MANAGER: &str = "clouder";

/// Kinds that others live in or are defined by: applied (and ready) before the rest.
const FOUNDATION_KINDS: [&str; 2] = ["Namespace", "CustomResourceDefinition"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub object: ObjectRef,
    pub outcome: Outcome,
}

/// Applies and finds objects of any kind, resolving each kind once through discovery.
pub struct Applier {
    client: kube::Client,
    kinds: Mutex<HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>>,
    concurrency: usize,
    established_timeout: Duration,
}

impl Applier {
    pub fn new(client: kube::Client) -> Applier {
        Applier {
            client,
            kinds: Mutex::default(),
            concurrency: 16,
            established_timeout: Duration::from_secs(60),
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The API for `object`'s kind, in its namespace (`default` when a namespaced object names none).
    pub async fn api(&self, object: &ObjectRef) -> Result<Api<DynamicObject>> {
        let gvk = object.gvk();
        let cached = self.kinds.lock().expect("kinds").get(&gvk).cloned();
        let (resource, caps) = match cached {
            Some(found) => found,
            None => {
                let found = pinned_kind(&self.client, &gvk)
                    .await
                    .map_err(Error::api(format!(
                        "unknown kind {} in {}",
                        object.kind, object.api_version
                    )))?;
                self.kinds.lock().expect("kinds").insert(gvk, found.clone());
                found
            }
        };
        Ok(match caps.scope {
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
            Scope::Namespaced => Api::namespaced_with(
                self.client.clone(),
                object.namespace.as_deref().unwrap_or("default"),
                &resource,
            ),
        })
    }

    /// The object as the server has it, or `None`.
    pub async fn find(&self, object: &ObjectRef) -> Result<Option<DynamicObject>> {
        self.api(object)
            .await?
            .get_opt(&object.name)
            .await
            .map_err(Error::api(format!("reading {object}")))
    }

    /// Applies `objects`; results come back in the order given.
    pub async fn apply(&self, objects: &[DynamicObject]) -> Result<Vec<Applied>> {
        let (first, rest): (Vec<_>, Vec<_>) = objects
            .iter()
            .enumerate()
            .partition(|(_, o)| FOUNDATION_KINDS.contains(&ObjectRef::of(o).kind.as_str()));
        let mut results = self.apply_all(&first).await?;
        for applied in &results {
            if applied.1.object.kind == "CustomResourceDefinition" {
                wait::until(self, &applied.1.object, self.established_timeout, |o| {
                    wait::condition(o, "Established")
                })
                .await?;
            }
        }
        results.extend(self.apply_all(&rest).await?);
        results.sort_by_key(|(i, _)| *i);
        Ok(results.into_iter().map(|(_, a)| a).collect())
    }

    async fn apply_all(
        &self,
        objects: &[(usize, &DynamicObject)],
    ) -> Result<Vec<(usize, Applied)>> {
        stream::iter(objects)
            .map(|(i, o)| async move { Ok((*i, self.apply_one(o).await?)) })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await
    }

    async fn apply_one(&self, obj: &DynamicObject) -> Result<Applied> {
        let object = ObjectRef::of(obj);
        let api = self.api(&object).await?;
        let before = api
            .get_opt(&object.name)
            .await
            .map_err(Error::api(format!("reading {object}")))?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let after = api
            .patch(&object.name, &params, &Patch::Apply(obj))
            .await
            .map_err(Error::api(format!("applying {object}")))?;
        let outcome = match before {
            None => Outcome::Created,
            Some(b) if b.metadata.resource_version == after.metadata.resource_version => {
                Outcome::Unchanged
            }
            Some(_) => Outcome::Configured,
        };
        tracing::debug!(%object, ?outcome, "applied");
        Ok(Applied { object, outcome })
    }

    /// Deletes `objects` in the reverse of apply order (namespaces and CRDs last); returns the
    /// ones that existed.
    pub async fn delete(&self, objects: &[DynamicObject]) -> Result<Vec<ObjectRef>> {
        let (foundation, rest): (Vec<_>, Vec<_>) = objects
            .iter()
            .partition(|o| FOUNDATION_KINDS.contains(&ObjectRef::of(o).kind.as_str()));
        let mut deleted = Vec::new();
        for obj in rest.into_iter().rev().chain(foundation.into_iter().rev()) {
            let object = ObjectRef::of(obj);
            let api = match self.api(&object).await {
                Ok(api) => api,
                // A kind whose CRD is already gone has nothing left to delete.
                Err(Error::Api {
                    source: kube::Error::Api(s),
                    ..
                }) if s.code == 404 => continue,
                Err(e) => return Err(e),
            };
            match api.delete(&object.name, &DeleteParams::background()).await {
                Ok(_) => deleted.push(object),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(Error::api(format!("deleting {object}"))(e)),
            }
        }
        Ok(deleted)
    }
}
