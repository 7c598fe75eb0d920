//! `plan`, `deploy`, `status` and `rollback` of the releases in a services file.

use crate::apply::{Applier, FIELD_MANAGER, Outcome};
use crate::manifest::ObjectRef;
use crate::services::file::{Release, Services};
use crate::services::helm::Renderer;
use crate::services::history::{self, Revision, Status};
use crate::services::source::{self, Rendered};
use crate::services::{Error, Result, gate};
use clouder_spec::{SpecError, SpecErrors};
use futures::{StreamExt, stream};
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{Scope, pinned_kind};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Options {
    /// Releases of one wave deployed at once.
    pub parallelism: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { parallelism: 4 }
    }
}

/// Progress, as it happens (for people watching, and for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Wave(usize),
    Applying(String),
    Healthy(String),
    Failed { release: String, reason: String },
    RolledBack { release: String, to: Option<u32> },
}

/// Renders every release and checks its objects; every problem of every release is reported,
/// and nothing is applied. Objects without a namespace get the release's when their kind is
/// namespaced (asked of the API server, or of a CRD among the releases).
pub async fn prepare(
    applier: &Applier,
    services: &Services,
    helm: &dyn Renderer,
) -> Result<Vec<Rendered>> {
    let rendered = futures::future::join_all(services.releases.iter().map(|r| async move {
        let texts = source::fetch(r, helm).await?;
        Ok::<_, SpecErrors>(Rendered {
            release: r.clone(),
            objects: source::objects(r, texts)?,
        })
    }))
    .await;
    let mut problems = Vec::new();
    let mut ready = Vec::new();
    for r in rendered {
        match r {
            Ok(r) => ready.push(r),
            Err(e) => problems.extend(e.0),
        }
    }
    if !problems.is_empty() {
        return Err(SpecErrors(problems).into());
    }
    let crds: Vec<DynamicObject> = ready
        .iter()
        .flat_map(|r| &r.objects)
        .filter(|o| ObjectRef::of(o).kind == "CustomResourceDefinition")
        .cloned()
        .collect();
    let mut scopes: HashMap<GroupVersionKind, Option<bool>> = HashMap::new();
    for r in &mut ready {
        for o in &mut r.objects {
            let object = ObjectRef::of(o);
            let gvk = object.gvk();
            let namespaced = match scopes.get(&gvk) {
                Some(known) => *known,
                None => {
                    let found = namespaced(applier, &gvk, &crds).await?;
                    scopes.insert(gvk, found);
                    found
                }
            };
            match namespaced {
                None => problems.push(SpecError {
                    message: format!(
                        "{object}: unknown kind {} in {} (neither served by the cluster nor defined by a CRD of the releases)",
                        object.kind, object.api_version
                    ),
                    ..r.release.origin.clone()
                }),
                Some(true) if o.metadata.namespace.is_none() => {
                    o.metadata.namespace = Some(r.release.namespace.clone());
                }
                Some(_) => {}
            }
        }
    }
    // An object belongs to one release: two would undo each other's deploys and rollbacks.
    let mut owners: HashMap<_, &str> = HashMap::new();
    for r in &ready {
        for o in &r.objects {
            if let Some(other) = owners.insert(identity(o), &r.release.name)
                && other != r.release.name
            {
                problems.push(SpecError {
                    message: format!(
                        "{} is also in release {other}: an object belongs to one release",
                        ObjectRef::of(o)
                    ),
                    ..r.release.origin.clone()
                });
            }
        }
    }
    if !problems.is_empty() {
        return Err(SpecErrors(problems).into());
    }
    Ok(ready)
}

/// Whether `gvk` is namespaced; `None` when no one knows the kind.
async fn namespaced(
    applier: &Applier,
    gvk: &GroupVersionKind,
    crds: &[DynamicObject],
) -> Result<Option<bool>> {
    match pinned_kind(applier.client(), gvk).await {
        Ok((_, caps)) => return Ok(Some(caps.scope == Scope::Namespaced)),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(kube::Error::Discovery(_)) => {}
        Err(e) => {
            return Err(crate::Error::api(format!("discovering {}", gvk.kind))(e).into());
        }
    }
    Ok(crds
        .iter()
        .find(|c| {
            c.data["spec"]["group"] == gvk.group.as_str()
                && c.data["spec"]["names"]["kind"] == gvk.kind.as_str()
        })
        .map(|c| c.data["spec"]["scope"] == "Namespaced"))
}

/// What a deploy did to one release.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum DeployOutcome {
    /// A new revision, healthy.
    Deployed { revision: u32 },
    /// Same objects as the deployed revision: no new revision (drift, if any, taken back).
    Unchanged { revision: u32, configured: usize },
    /// The gate (or the apply) failed; the release went back to `rolledBackTo` (or away).
    #[serde(rename_all = "camelCase")]
    Failed {
        reason: String,
        rolled_back_to: Option<u32>,
    },
    /// Not started: an earlier wave failed.
    Skipped { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseReport {
    pub name: String,
    pub namespace: String,
    pub wave: usize,
    pub version: String,
    #[serde(flatten)]
    pub outcome: DeployOutcome,
}

/// Deploys wave by wave; stops after the first wave in which a release failed.
pub async fn deploy(
    applier: &Applier,
    releases: &[Rendered],
    options: &Options,
    observe: &(dyn Fn(&Event) + Send + Sync),
) -> Result<Vec<ReleaseReport>> {
    let waves = releases
        .iter()
        .map(|r| r.release.wave)
        .max()
        .map_or(0, |w| w + 1);
    let mut reports = Vec::new();
    let mut stopped: Option<String> = None;
    for wave in 0..waves {
        let members: Vec<&Rendered> = releases.iter().filter(|r| r.release.wave == wave).collect();
        if let Some(why) = &stopped {
            reports.extend(members.iter().map(|r| {
                report(
                    &r.release,
                    DeployOutcome::Skipped {
                        reason: why.clone(),
                    },
                )
            }));
            continue;
        }
        observe(&Event::Wave(wave));
        let done: Vec<Result<ReleaseReport>> = stream::iter(members)
            .map(|r| async move {
                let outcome = deploy_release(applier, r, observe).await?;
                Ok(report(&r.release, outcome))
            })
            .buffered(options.parallelism.max(1))
            .collect()
            .await;
        for r in done {
            let r = r?;
            if matches!(r.outcome, DeployOutcome::Failed { .. }) && stopped.is_none() {
                stopped = Some(format!(
                    "wave {wave} failed: {} did not pass its gate",
                    r.name
                ));
            }
            reports.push(r);
        }
    }
    Ok(reports)
}

fn report(release: &Release, outcome: DeployOutcome) -> ReleaseReport {
    ReleaseReport {
        name: release.name.clone(),
        namespace: release.namespace.clone(),
        wave: release.wave,
        version: release.version.clone(),
        outcome,
    }
}

/// The objects as stored in a revision (and compared with it).
fn canonical(objects: &[DynamicObject]) -> serde_json::Value {
    serde_json::to_value(objects).expect("objects serialise")
}

fn current(revisions: &[Revision]) -> Option<&Revision> {
    revisions
        .iter()
        .rev()
        .find(|r| r.status == Status::Deployed)
}

async fn deploy_release(
    applier: &Applier,
    rendered: &Rendered,
    observe: &(dyn Fn(&Event) + Send + Sync),
) -> Result<DeployOutcome> {
    let Rendered { release, objects } = rendered;
    let client = applier.client();
    ensure_namespace(applier, &release.namespace).await?;
    let revisions = history::list(client, &release.namespace, &release.name).await?;
    let current = current(&revisions).cloned();
    let next = revisions.last().map_or(1, |r| r.revision + 1);
    let unchanged = current
        .as_ref()
        .filter(|c| canonical(&c.objects) == canonical(objects));
    observe(&Event::Applying(release.name.clone()));
    let attempt = async {
        let applied = applier.apply(objects).await?;
        gate::pass(applier, &release.gate, &release.namespace, objects).await?;
        Ok::<_, crate::Error>(applied)
    };
    let applied = match attempt.await {
        Ok(applied) => applied,
        Err(e) => {
            let reason = e.to_string();
            observe(&Event::Failed {
                release: release.name.clone(),
                reason: reason.clone(),
            });
            if unchanged.is_some() {
                // What failed is what already ran: there is nothing earlier to go back to.
                return Ok(DeployOutcome::Failed {
                    reason,
                    rolled_back_to: None,
                });
            }
            let failed = revision(release, next, objects, Status::Failed, &reason);
            history::store(client, &failed).await?;
            let to = match &current {
                Some(c) => {
                    applier.apply(&c.objects).await?;
                    applier.delete(&missing_from(objects, &c.objects)).await?;
                    Some(c.revision)
                }
                None => {
                    applier.delete(objects).await?;
                    None
                }
            };
            observe(&Event::RolledBack {
                release: release.name.clone(),
                to,
            });
            return Ok(DeployOutcome::Failed {
                reason,
                rolled_back_to: to,
            });
        }
    };
    observe(&Event::Healthy(release.name.clone()));
    if let Some(c) = unchanged {
        let configured = applied
            .iter()
            .filter(|a| a.outcome != Outcome::Unchanged)
            .count();
        return Ok(DeployOutcome::Unchanged {
            revision: c.revision,
            configured,
        });
    }
    let description = match &current {
        Some(c) => format!("upgrade from revision {}", c.revision),
        None => "install".to_string(),
    };
    if let Some(c) = &current {
        applier.delete(&missing_from(&c.objects, objects)).await?;
    }
    supersede(
        client,
        current,
        revision(release, next, objects, Status::Deployed, &description),
    )
    .await?;
    Ok(DeployOutcome::Deployed { revision: next })
}

/// Stores `new` as the deployed revision and marks the one it replaces superseded.
async fn supersede(client: &kube::Client, old: Option<Revision>, new: Revision) -> Result<()> {
    history::store(client, &new).await?;
    if let Some(mut old) = old {
        old.status = Status::Superseded;
        history::store(client, &old).await?;
    }
    Ok(())
}

fn revision(
    release: &Release,
    number: u32,
    objects: &[DynamicObject],
    status: Status,
    description: &str,
) -> Revision {
    Revision {
        name: release.name.clone(),
        namespace: release.namespace.clone(),
        revision: number,
        version: release.version.clone(),
        status,
        description: description.to_string(),
        objects: objects.to_vec(),
    }
}

async fn ensure_namespace(applier: &Applier, namespace: &str) -> crate::Result<()> {
    let ns: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}
    }))
    .expect("a namespace");
    applier.apply(&[ns]).await.map(|_| ())
}

/// Identity of an object across versions of its kind's API.
fn identity(o: &DynamicObject) -> (String, String, Option<String>, String) {
    let r = ObjectRef::of(o);
    (r.gvk().group, r.kind, r.namespace, r.name)
}

/// The objects of `old` that `new` does not have.
fn missing_from(old: &[DynamicObject], new: &[DynamicObject]) -> Vec<DynamicObject> {
    let keep: HashSet<_> = new.iter().map(identity).collect();
    old.iter()
        .filter(|o| !keep.contains(&identity(o)))
        .cloned()
        .collect()
}

/// What a deploy would do to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub object: String,
    /// create, configure, unchanged or delete.
    pub action: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleasePlan {
    pub name: String,
    pub namespace: String,
    pub wave: usize,
    pub version: String,
    pub revision: Option<u32>,
    pub changes: Vec<Change>,
}

/// What `deploy` would change, per release: each object created, configured (by a server-side
/// apply dry run that differs from what the server has) or unchanged, and what it would delete.
pub async fn plan(applier: &Applier, releases: &[Rendered]) -> Result<Vec<ReleasePlan>> {
    let mut plans = Vec::new();
    for Rendered { release, objects } in releases {
        let revisions = history::list(applier.client(), &release.namespace, &release.name).await?;
        let current = current(&revisions);
        let mut changes = Vec::new();
        for o in objects {
            changes.push(Change {
                object: ObjectRef::of(o).to_string(),
                action: dry_run(applier, o).await?,
            });
        }
        if let Some(c) = current {
            changes.extend(missing_from(&c.objects, objects).iter().map(|o| Change {
                object: ObjectRef::of(o).to_string(),
                action: "delete",
            }));
        }
        plans.push(ReleasePlan {
            name: release.name.clone(),
            namespace: release.namespace.clone(),
            wave: release.wave,
            version: release.version.clone(),
            revision: current.map(|c| c.revision),
            changes,
        });
    }
    Ok(plans)
}

async fn dry_run(applier: &Applier, o: &DynamicObject) -> crate::Result<&'static str> {
    let object = ObjectRef::of(o);
    let api = match applier.api(&object).await {
        Ok(api) => api,
        // A kind a CRD of the releases will define does not exist yet: creating it is the change.
        Err(crate::Error::Api {
            source: kube::Error::Api(s),
            ..
        }) if s.code == 404 => return Ok("create"),
        Err(crate::Error::Api {
            source: kube::Error::Discovery(_),
            ..
        }) => return Ok("create"),
        Err(e) => return Err(e),
    };
    let Some(before) = api
        .get_opt(&object.name)
        .await
        .map_err(crate::Error::api(format!("reading {object}")))?
    else {
        return Ok("create");
    };
    let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    let after = api
        .patch(&object.name, &params, &Patch::Apply(o))
        .await
        .map_err(crate::Error::api(format!("dry-run applying {object}")))?;
    Ok(if comparable(&before) == comparable(&after) {
        "unchanged"
    } else {
        "configure"
    })
}

/// The object without what every write changes by itself.
fn comparable(o: &DynamicObject) -> serde_json::Value {
    let mut v = serde_json::to_value(o).expect("objects serialise");
    if let Some(meta) = v["metadata"].as_object_mut() {
        for field in ["managedFields", "resourceVersion", "generation"] {
            meta.remove(field);
        }
    }
    v
}

/// One release as the cluster has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseStatus {
    pub name: String,
    pub namespace: String,
    pub wave: usize,
    /// The deployed revision.
    pub revision: Option<u32>,
    pub version: Option<String>,
    /// `deployed`, `failed` (its latest attempt failed and nothing is deployed) or `not deployed`.
    pub status: String,
    /// `healthy`, or the first workload that is not and why.
    pub health: String,
    /// The latest revision's description (a failed gate's reason).
    pub description: String,
}

pub async fn status(applier: &Applier, services: &Services) -> Result<Vec<ReleaseStatus>> {
    let mut out = Vec::new();
    for r in &services.releases {
        let revisions = history::list(applier.client(), &r.namespace, &r.name).await?;
        let deployed = current(&revisions);
        let latest = revisions.last();
        let health = match deployed {
            Some(d) => gate::health(applier, &d.objects)
                .await?
                .unwrap_or_else(|| "healthy".into()),
            None => "-".into(),
        };
        out.push(ReleaseStatus {
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            wave: r.wave,
            revision: deployed.map(|d| d.revision),
            version: deployed.map(|d| d.version.clone()),
            status: match (deployed, latest) {
                (Some(_), _) => "deployed".into(),
                (None, Some(l)) => l.status.to_string(),
                (None, None) => "not deployed".into(),
            },
            health,
            description: latest.map(|l| l.description.clone()).unwrap_or_default(),
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackReport {
    pub name: String,
    pub namespace: String,
    /// The revision whose objects now run.
    pub to: u32,
    /// The new revision recording it.
    pub revision: u32,
    pub deleted: Vec<String>,
}

/// Re-applies revision `to` (default: the one deployed before the current one) as a new revision,
/// deletes what the current revision has that it does not, and waits for its workloads.
pub async fn rollback(
    applier: &Applier,
    name: &str,
    to: Option<u32>,
    timeout: Duration,
) -> Result<RollbackReport> {
    let client = applier.client();
    let invalid = |message: String| {
        Error::Invalid(SpecErrors(vec![SpecError {
            file: "release".into(),
            line: 0,
            column: 0,
            path: name.into(),
            message,
        }]))
    };
    let namespace = history::find_namespace(client, name)
        .await?
        .ok_or_else(|| invalid("no such release in the cluster".into()))?;
    let revisions = history::list(client, &namespace, name).await?;
    let current = current(&revisions).cloned();
    let deployed_before = |r: &&Revision| {
        r.status != Status::Failed && Some(r.revision) < current.as_ref().map(|c| c.revision)
    };
    let target = match to {
        Some(n) => revisions.iter().find(|r| r.revision == n),
        None => revisions.iter().rev().find(deployed_before),
    }
    .ok_or_else(|| {
        let known: Vec<String> = revisions
            .iter()
            .map(|r| format!("{} ({})", r.revision, r.status))
            .collect();
        invalid(match to {
            Some(n) => format!("has no revision {n} (revisions: {})", known.join(", ")),
            None => format!(
                "has no earlier deployed revision to go back to (revisions: {})",
                known.join(", ")
            ),
        })
    })?
    .clone();
    let next = revisions.last().map_or(1, |r| r.revision + 1);
    applier.apply(&target.objects).await?;
    let deleted = match &current {
        Some(c) => {
            applier
                .delete(&missing_from(&c.objects, &target.objects))
                .await?
        }
        None => Vec::new(),
    };
    let new = Revision {
        revision: next,
        status: Status::Deployed,
        description: format!("rollback to revision {}", target.revision),
        ..target.clone()
    };
    // Recorded before the wait: these objects are what runs now, healthy or not (`status` says).
    supersede(client, current, new).await?;
    let gate = crate::services::file::Gate {
        timeout,
        condition: None,
    };
    gate::pass(applier, &gate, &namespace, &target.objects).await?;
    Ok(RollbackReport {
        name: name.to_string(),
        namespace,
        to: target.revision,
        revision: next,
        deleted: deleted.iter().map(ToString::to_string).collect(),
    })
}
