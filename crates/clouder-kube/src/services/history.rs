//! Release history, kept in the cluster as Helm keeps it: one Secret per revision,
//! `clouder.release.NAME.vN` in the release's namespace, labelled `owner=clouder`, `name`,
//! `version` and `status`, holding the revision (its rendered objects included) as gzipped JSON.

use crate::apply::FIELD_MANAGER;
use crate::{Error, Result};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

pub const SECRET_TYPE: &str = "clouder.io/release.v1";
const KEY: &str = "release";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// What the cluster runs now (one per release).
    Deployed,
    /// Failed its gate or its apply; the release went back to the revision before.
    Failed,
    /// Replaced by a later revision.
    Superseded,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Deployed => "deployed",
            Status::Failed => "failed",
            Status::Superseded => "superseded",
        })
    }
}

/// One deployed (or attempted) revision of a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub name: String,
    pub namespace: String,
    pub revision: u32,
    /// The release's pinned version.
    pub version: String,
    pub status: Status,
    /// Why it has this status (a gate's timeout, `rollback to 2`, …).
    pub description: String,
    /// The rendered objects, as applied.
    pub objects: Vec<DynamicObject>,
}

impl Revision {
    pub fn secret_name(name: &str, revision: u32) -> String {
        format!("clouder.release.{name}.v{revision}")
    }
}

fn secrets(client: &kube::Client, namespace: &str) -> Api<Secret> {
    Api::namespaced(client.clone(), namespace)
}

/// Every stored revision of `name` in `namespace`, oldest first.
pub async fn list(client: &kube::Client, namespace: &str, name: &str) -> Result<Vec<Revision>> {
    let selector = format!("owner=clouder,name={name}");
    let found = secrets(client, namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::api(format!(
            "listing the revisions of {namespace}/{name}"
        )))?;
    let mut revisions = found.items.iter().map(decode).collect::<Result<Vec<_>>>()?;
    revisions.sort_by_key(|r| r.revision);
    Ok(revisions)
}

/// The namespace holding `name`'s revisions, whichever it is (for `rollback NAME`).
pub async fn find_namespace(client: &kube::Client, name: &str) -> Result<Option<String>> {
    let found = Api::<Secret>::all(client.clone())
        .list(&ListParams::default().labels(&format!("owner=clouder,name={name}")))
        .await
        .map_err(Error::api(format!("looking for release {name}")))?;
    Ok(found.items.into_iter().find_map(|s| s.metadata.namespace))
}

/// Writes (or rewrites) a revision's Secret.
pub async fn store(client: &kube::Client, revision: &Revision) -> Result<()> {
    let name = Revision::secret_name(&revision.name, revision.revision);
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&serde_json::to_vec(revision).expect("revisions serialise"))
        .and_then(|_| gz.flush())
        .expect("gzip to memory");
    let labels = [
        ("owner", "clouder".to_string()),
        ("name", revision.name.clone()),
        ("version", revision.revision.to_string()),
        ("status", revision.status.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(revision.namespace.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.into()),
        data: Some(
            [(KEY.to_string(), ByteString(gz.finish().expect("gzip")))]
                .into_iter()
                .collect(),
        ),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&secret).expect("secrets serialise");
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    secrets(client, &revision.namespace)
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(value),
        )
        .await
        .map_err(Error::api(format!(
            "storing revision {} of {}/{}",
            revision.revision, revision.namespace, revision.name
        )))?;
    Ok(())
}

fn decode(secret: &Secret) -> Result<Revision> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let bad = |why: String| Error::Refused(format!("release secret {name}: {why}"));
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .ok_or_else(|| bad(format!("no `{KEY}` key")))?;
    let mut json = Vec::new();
    GzDecoder::new(data.0.as_slice())
        .read_to_end(&mut json)
        .map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| bad(e.to_string()))
}
