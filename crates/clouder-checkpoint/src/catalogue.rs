//! The checkpoint catalogue: each stored image is recorded in the state store only after the
//! backend holds all of it, and retention (keep the newest N, drop those older than a maximum
//! age) runs per container after every new checkpoint.

use crate::backend::{self, Backend, BackendError};
use crate::image::CheckpointImage;
use clouder_state::{CheckpointRecord, StateError, StateStore};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("no checkpoint {0} in the catalogue (see `clouder checkpoint ls`)")]
    Unknown(String),
}

pub type Result<T> = std::result::Result<T, CatalogueError>;

/// How many checkpoints of one container to keep, and for how long.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Retention {
    pub keep: Option<usize>,
    pub max_age: Option<Duration>,
}

/// Pure: the checkpoints that `retention` drops at `now` (Unix seconds). Counted per container
/// (cluster, namespace, pod, container); the newest of a container is never dropped by age alone
/// when `keep` asks for at least one.
pub fn expired(
    records: &[CheckpointRecord],
    retention: Retention,
    now: i64,
) -> Vec<&CheckpointRecord> {
    let mut by_container: BTreeMap<(&str, &str, &str, &str), Vec<&CheckpointRecord>> =
        BTreeMap::new();
    for r in records {
        by_container
            .entry((&r.cluster, &r.namespace, &r.pod, &r.container))
            .or_default()
            .push(r);
    }
    let mut out = Vec::new();
    for mut group in by_container.into_values() {
        group.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        for (rank, r) in group.into_iter().enumerate() {
            let over_count = retention.keep.is_some_and(|keep| rank >= keep);
            let protected = rank == 0 && retention.keep.is_some_and(|keep| keep >= 1);
            let too_old = retention
                .max_age
                .is_some_and(|age| now - r.created_at > age.as_secs() as i64);
            if over_count || (too_old && !protected) {
                out.push(r);
            }
        }
    }
    out
}

/// The catalogue id, which is also the image's tag: `NAMESPACE.POD.CONTAINER.TIME`, lower case,
/// within the 128 characters an OCI tag allows.
pub fn checkpoint_id(namespace: &str, pod: &str, container: &str, at: jiff::Timestamp) -> String {
    let time = at
        .strftime("%Y%m%dt%H%M%S%.3fz")
        .to_string()
        .replace('.', "");
    let mut id = format!("{namespace}.{pod}.{container}.{time}").to_lowercase();
    let keep_from = id.len().saturating_sub(128);
    id.drain(..keep_from);
    id
}

/// Stores `image` in `backend` and records it; then applies `retention` to the container's
/// checkpoints. If the push fails, nothing is recorded.
pub async fn store(
    state: &dyn StateStore,
    backend: &dyn Backend,
    image: &CheckpointImage,
    cluster: &str,
    labels: BTreeMap<String, String>,
    recorded: Option<&crate::pod::PodRecord>,
    retention: Retention,
) -> Result<(CheckpointRecord, backend::PushReport, Vec<String>)> {
    let m = &image.metadata;
    let namespace = m.namespace.clone().unwrap_or_else(|| "default".to_string());
    let pod = m.pod.clone().unwrap_or_else(|| m.container.clone());
    let at: jiff::Timestamp = m
        .checkpointed_at
        .parse()
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let id = checkpoint_id(&namespace, &pod, &m.container, at);
    let report = backend::push(backend, &image.oci, &id).await?;
    let record = CheckpointRecord {
        id,
        cluster: cluster.to_string(),
        namespace,
        pod,
        container: m.container.clone(),
        node: m.node.clone(),
        backend: backend.location(),
        reference: report.reference.clone(),
        manifest_digest: report.manifest_digest.clone(),
        image: m.image_ref.clone(),
        size: image.oci.blobs.iter().map(|(b, _)| b.size).sum::<u64>() + image.oci.manifest.size,
        labels,
        created_at: at.as_second(),
        pod_spec: recorded.map(|p| serde_json::to_value(p).expect("pod specs serialize")),
    };
    state.put_checkpoint(&record)?;
    let dropped = apply_retention(state, backend, &record, retention).await?;
    Ok((record, report, dropped))
}

/// Drops the container's checkpoints that `retention` no longer keeps, from the backend first
/// and then from the catalogue; returns their ids.
pub async fn apply_retention(
    state: &dyn StateStore,
    backend: &dyn Backend,
    newest: &CheckpointRecord,
    retention: Retention,
) -> Result<Vec<String>> {
    let same_container: Vec<_> = state
        .checkpoints(&newest.cluster)?
        .into_iter()
        .filter(|r| {
            (&r.namespace, &r.pod, &r.container)
                == (&newest.namespace, &newest.pod, &newest.container)
        })
        .collect();
    let mut dropped = Vec::new();
    for r in expired(
        &same_container,
        retention,
        jiff::Timestamp::now().as_second(),
    ) {
        // Only images in this backend can be dropped through it; others wait for their own.
        if r.backend == backend.location() {
            remove(state, backend, &r.id).await?;
            dropped.push(r.id.clone());
        }
    }
    Ok(dropped)
}

/// Deletes a checkpoint's image from its backend, then its record. An image the backend no
/// longer has is forgotten all the same.
pub async fn remove(
    state: &dyn StateStore,
    backend: &dyn Backend,
    id: &str,
) -> Result<CheckpointRecord> {
    let record = state
        .checkpoint(id)?
        .ok_or_else(|| CatalogueError::Unknown(id.to_string()))?;
    match backend.delete(&record.id).await {
        Ok(()) | Err(BackendError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    state.delete_checkpoint(id)?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, container: &str, created_at: i64) -> CheckpointRecord {
        CheckpointRecord {
            id: id.into(),
            cluster: "c".into(),
            namespace: "default".into(),
            pod: "web".into(),
            container: container.into(),
            node: None,
            backend: "b".into(),
            reference: String::new(),
            manifest_digest: String::new(),
            image: String::new(),
            size: 0,
            labels: BTreeMap::new(),
            created_at,
            pod_spec: None,
        }
    }

    fn ids(records: Vec<&CheckpointRecord>) -> Vec<&str> {
        let mut ids: Vec<_> = records.into_iter().map(|r| r.id.as_str()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn retention_keeps_the_newest_n_per_container() {
        let records = [
            record("a1", "app", 1),
            record("a2", "app", 2),
            record("a3", "app", 3),
            record("s1", "sidecar", 1),
        ];
        let keep2 = Retention {
            keep: Some(2),
            max_age: None,
        };
        assert_eq!(ids(expired(&records, keep2, 10)), ["a1"]);
        assert_eq!(
            ids(expired(&records, Retention::default(), 10)),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn retention_drops_old_ones_but_keep_protects_each_containers_newest() {
        let records = [
            record("a1", "app", 100),
            record("a2", "app", 500),
            record("s1", "sidecar", 100),
        ];
        let max_age = Retention {
            keep: None,
            max_age: Some(Duration::from_secs(300)),
        };
        assert_eq!(ids(expired(&records, max_age, 700)), ["a1", "s1"]);
        assert_eq!(ids(expired(&records, max_age, 1000)), ["a1", "a2", "s1"]);
        let keep_one = Retention {
            keep: Some(1),
            max_age: Some(Duration::from_secs(300)),
        };
        assert_eq!(ids(expired(&records, keep_one, 1000)), ["a1"]);
    }

    #[test]
    fn ids_are_valid_tags() {
        let at: jiff::Timestamp = "2026-11-25T18:08:12.345678Z".parse().unwrap();
        assert_eq!(
            checkpoint_id("Default", "web-0", "app", at),
            "default.web-0.app.20261125t180812345z"
        );
        let long = checkpoint_id("ns", &"p".repeat(200), "c", at);
        assert_eq!(long.len(), 128);
        assert!(long.ends_with(".c.20261125t180812345z"));
    }
}
