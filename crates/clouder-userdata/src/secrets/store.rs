//! The user's Secret in the user's namespace: keys are variable names, and one annotation keeps
//! each key's source, version and update time (never a value, never a hash of one). Workloads
//! that consume the Secret roll out through a revision annotation on their pod template,
//! computed from sources and versions.

use super::source::{Fetched, Source};
use super::{SECRET_NAME, SecretValue, check_name, check_size};
use crate::Error;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, PodSpec, PodTemplateSpec, Secret};
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Each key's source, version and update time, as JSON.
pub const SOURCES_ANNOTATION: &str = "clouder.io/secret-sources";
/// On consumers' pod templates: changes when any secret's version does, rolling them out.
pub const REVISION_ANNOTATION: &str = "clouder.io/secrets-revision";
const MANAGED_LABEL: &str = "clouder.io/managed";
/// On runtime pods: `restart` deletes them when a secret they use changes (their owner makes
/// them again with the new values).
pub const RESTART_LABEL: &str = "clouder.io/secrets-rollout";

/// What `ls` shows of a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub source: String,
    pub version: String,
    pub updated: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    source: String,
    version: String,
    updated: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// What `sync` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Secrets whose source had a new version.
    pub updated: Vec<String>,
    /// Secrets whose source cannot be read again (stdin).
    pub skipped: Vec<String>,
    /// Deployments and StatefulSets rolled out (`kind/name`).
    pub rolled_out: Vec<String>,
}

/// A user's secrets, in namespace `namespace`.
pub struct SecretStore {
    client: kube::Client,
    namespace: String,
}

/// The Secret as read: data and per-key metadata.
#[derive(Default)]
struct Current {
    secret: Option<Secret>,
    data: BTreeMap<String, SecretValue>,
    meta: BTreeMap<String, Meta>,
}

fn kube_error(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |e| match e {
        kube::Error::Api(s) if s.code == 409 => Error::Failed(format!(
            "{what}: changed by someone else meanwhile; run the command again"
        )),
        e => Error::Failed(format!("{what}: {e}")),
    }
}

impl SecretStore {
    pub fn new(client: kube::Client, namespace: impl Into<String>) -> Self {
        SecretStore {
            client,
            namespace: namespace.into(),
        }
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn read(&self) -> Result<Current, Error> {
        let secret = self
            .secrets()
            .get_opt(SECRET_NAME)
            .await
            .map_err(kube_error(format!(
                "reading secret {}/{SECRET_NAME}",
                self.namespace
            )))?;
        let Some(secret) = secret else {
            return Ok(Current::default());
        };
        let data = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), SecretValue::new(v.0.clone())))
            .collect();
        let meta = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SOURCES_ANNOTATION))
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default();
        Ok(Current {
            secret: Some(secret),
            data,
            meta,
        })
    }

    /// Names, sources, versions and update times, sorted by name.
    pub async fn ls(&self) -> Result<Vec<Entry>, Error> {
        let current = self.read().await?;
        Ok(current
            .data
            .keys()
            .map(|name| {
                let meta = current.meta.get(name);
                Entry {
                    name: name.clone(),
                    source: meta.map_or("unknown".into(), |m| m.source.clone()),
                    version: meta.map_or("".into(), |m| m.version.clone()),
                    updated: meta.map_or("".into(), |m| m.updated.clone()),
                }
            })
            .collect())
    }

    /// Stores `fetched` as secret `name`. The name and the total size are checked before any
    /// change; an unchanged value from the same source writes nothing.
    pub async fn set(
        &self,
        name: &str,
        source: &Source,
        fetched: Fetched,
    ) -> Result<(Outcome, Vec<String>), Error> {
        check_name(name)?;
        let mut current = self.read().await?;
        let label = source.label();
        let old = current.meta.get(name);
        let same_value = current.data.get(name) == Some(&fetched.value);
        if same_value && old.is_some_and(|m| m.source == label) {
            return Ok((Outcome::Unchanged, Vec::new()));
        }
        let version = fetched.version.clone().unwrap_or_else(|| {
            // Sources without versions count changes.
            match old.and_then(|m| m.version.parse::<u64>().ok()) {
                Some(n) if !same_value => (n + 1).to_string(),
                Some(n) => n.to_string(),
                None => "1".into(),
            }
        });
        let outcome = if current.data.contains_key(name) {
            Outcome::Updated
        } else {
            Outcome::Created
        };
        current.data.insert(name.into(), fetched.value);
        check_size(name, &current.data)?;
        current.meta.insert(name.into(), meta(label, version));
        let rolled = self.write(current).await?;
        Ok((outcome, rolled))
    }

    /// Removes secret `name`; false when there was none. Consumers are not rolled out: their
    /// pod specs name the key, so they are rebuilt (podspec) before they restart.
    pub async fn rm(&self, name: &str) -> Result<bool, Error> {
        let mut current = self.read().await?;
        if current.data.remove(name).is_none() {
            return Ok(false);
        }
        current.meta.remove(name);
        self.write_secret(&current).await?;
        Ok(true)
    }

    /// Reads every source again; new versions update the Secret (one write) and roll out its
    /// consumers.
    pub async fn sync(&self) -> Result<SyncReport, Error> {
        let mut current = self.read().await?;
        let mut report = SyncReport::default();
        let metas: Vec<(String, Meta)> = current
            .meta
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, old) in metas {
            let source = match Source::from_label(&old.source) {
                Some(s) if s.rereadable() => s,
                _ => {
                    report.skipped.push(name);
                    continue;
                }
            };
            let fetched = source.fetch(&mut std::io::empty()).await?;
            let same_value = current.data.get(&name) == Some(&fetched.value);
            let version = match fetched.version {
                Some(v) => v,
                None if same_value => old.version.clone(),
                None => old
                    .version
                    .parse::<u64>()
                    .map_or("1".into(), |n| (n + 1).to_string()),
            };
            if same_value && version == old.version {
                continue;
            }
            current.data.insert(name.clone(), fetched.value);
            check_size(&name, &current.data)?;
            current.meta.insert(name.clone(), meta(old.source, version));
            report.updated.push(name);
        }
        if !report.updated.is_empty() {
            report.rolled_out = self.write(current).await?;
        }
        Ok(report)
    }

    /// Writes the Secret and rolls out its consumers; returns those rolled out.
    async fn write(&self, current: Current) -> Result<Vec<String>, Error> {
        self.write_secret(&current).await?;
        self.roll_out(&revision(&current.meta)).await
    }

    async fn write_secret(&self, current: &Current) -> Result<(), Error> {
        let what = format!("writing secret {}/{SECRET_NAME}", self.namespace);
        let mut secret = current.secret.clone().unwrap_or_else(|| Secret {
            metadata: ObjectMeta {
                name: Some(SECRET_NAME.into()),
                namespace: Some(self.namespace.clone()),
                labels: Some([(MANAGED_LABEL.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            ..Default::default()
        });
        secret.data = Some(
            current
                .data
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.expose().to_vec())))
                .collect(),
        );
        secret.string_data = None;
        let sources = serde_json::to_string(&current.meta).expect("plain strings serialize");
        secret
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(SOURCES_ANNOTATION.into(), sources);
        let api = self.secrets();
        match &current.secret {
            // The resourceVersion read is sent back: a concurrent change is a conflict.
            Some(_) => api
                .replace(SECRET_NAME, &PostParams::default(), &secret)
                .await
                .map(|_| ())
                .map_err(kube_error(what)),
            None => {
                self.ensure_namespace().await?;
                api.create(&PostParams::default(), &secret)
                    .await
                    .map(|_| ())
                    .map_err(kube_error(what))
            }
        }
    }

    async fn ensure_namespace(&self) -> Result<(), Error> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let what = format!("creating namespace {}", self.namespace);
        if api
            .get_opt(&self.namespace)
            .await
            .map_err(kube_error(what.clone()))?
            .is_some()
        {
            return Ok(());
        }
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(self.namespace.clone()),
                labels: Some([(MANAGED_LABEL.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &ns).await {
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            r => r.map(|_| ()).map_err(kube_error(what)),
        }
    }

    /// Sets the revision annotation on every Deployment and StatefulSet whose pod template uses
    /// the Secret and does not carry this revision yet, and restarts the runtime pods that ask
    /// for it.
    async fn roll_out(&self, revision: &str) -> Result<Vec<String>, Error> {
        let mut rolled = self
            .roll_out_kind::<Deployment>("deployment", revision, |d| Some(&d.spec.template))
            .await?;
        rolled.extend(
            self.roll_out_kind::<StatefulSet>("statefulset", revision, |s| Some(&s.spec.template))
                .await?,
        );
        rolled.extend(self.restart_pods(revision).await?);
        Ok(rolled)
    }

    /// Pods labelled `clouder.io/secrets-rollout=restart` (runtime pods whose owner makes them
    /// again) that use the Secret and were not made with this revision are deleted.
    async fn restart_pods(&self, revision: &str) -> Result<Vec<String>, Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let what = format!("restarting runtime pods in {}", self.namespace);
        let pods = api
            .list(&ListParams::default().labels(&format!("{RESTART_LABEL}=restart")))
            .await
            .map_err(kube_error(what.clone()))?;
        let mut restarted = Vec::new();
        for pod in pods.items {
            let made_with = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION_ANNOTATION));
            if !pod.spec.as_ref().is_some_and(uses_secret)
                || made_with.map(String::as_str) == Some(revision)
            {
                continue;
            }
            let name = pod.metadata.name.unwrap_or_default();
            match api.delete(&name, &Default::default()).await {
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                r => {
                    r.map_err(kube_error(format!("{what}: {name}")))?;
                }
            }
            tracing::info!(pod = name, "restarted for changed secrets");
            restarted.push(format!("pod/{name}"));
        }
        Ok(restarted)
    }

    async fn roll_out_kind<K>(
        &self,
        kind: &str,
        revision: &str,
        template: impl Fn(&K) -> Option<&PodTemplateSpec>,
    ) -> Result<Vec<String>, Error>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.namespace);
        let what = format!("rolling out {kind}s in {}", self.namespace);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(kube_error(what.clone()))?;
        let mut rolled = Vec::new();
        for item in list.items {
            let Some(template) = template(&item) else {
                continue;
            };
            let current = template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(REVISION_ANNOTATION));
            if !template.spec.as_ref().is_some_and(uses_secret)
                || current.map(String::as_str) == Some(revision)
            {
                continue;
            }
            let name = item.meta().name.clone().unwrap_or_default();
            let patch = serde_json::json!({
                "spec": {"template": {"metadata": {"annotations": {REVISION_ANNOTATION: revision}}}}
            });
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(kube_error(format!("{what}: {name}")))?;
            tracing::info!(kind, name, "rolled out for changed secrets");
            rolled.push(format!("{kind}/{name}"));
        }
        Ok(rolled)
    }
}

fn meta(source: String, version: String) -> Meta {
    Meta {
        source,
        version,
        updated: jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
            .map_or_else(|_| String::new(), |t| t.to_string()),
    }
}

/// A digest of sources and versions (not values): a new version means a new revision.
fn revision(meta: &BTreeMap<String, Meta>) -> String {
    let mut hash = Sha256::new();
    for (name, m) in meta {
        hash.update(format!("{name}\0{}\0{}\n", m.source, m.version));
    }
    hex::encode(&hash.finalize()[..8])
}

/// Whether a pod spec reads the user's Secret (variables, envFrom, or volumes).
pub fn uses_secret(spec: &PodSpec) -> bool {
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let in_env = containers.clone().any(|c| {
        c.env.iter().flatten().any(|e| {
            e.value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .is_some_and(|r| r.name == SECRET_NAME)
        }) || c
            .env_from
            .iter()
            .flatten()
            .any(|e| e.secret_ref.as_ref().is_some_and(|r| r.name == SECRET_NAME))
    });
    let in_volumes = spec.volumes.iter().flatten().any(|v| {
        v.secret
            .as_ref()
            .is_some_and(|s| s.secret_name.as_deref() == Some(SECRET_NAME))
            || v.projected.as_ref().is_some_and(|p| {
                p.sources
                    .iter()
                    .flatten()
                    .any(|s| s.secret.as_ref().is_some_and(|s| s.name == SECRET_NAME))
            })
    });
    in_env || in_volumes
}
