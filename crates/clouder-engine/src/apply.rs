use crate::deletion::{Deletion, delete_all};
use crate::retry::{Policy, retry};
use crate::{
    Action, Error, Event, Graph, Inventory, Observed, Outputs, Plan, PlanItem, Reporter, Tagged,
};
use clouder_state::{JournalEntry, ResourceRecord, StateStore, now};
use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

pub struct ApplyOptions<'a> {
    pub cluster: &'a str,
    /// Names the operation in the journal.
    pub operation: &'a str,
    /// Cloud calls in flight at once.
    pub concurrency: usize,
    pub retry: Policy,
}

#[derive(Debug, Default, Serialize)]
pub struct ApplySummary {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
    /// Resource id → error, for the resources that failed (their dependents were not tried).
    pub failed: BTreeMap<String, String>,
    pub skipped: Vec<String>,
}

impl ApplySummary {
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Executes `plan`: each resource starts as soon as its dependencies are done, at most
/// `concurrency` at once; orphans are deleted last, by rank. Every finished step is written to
/// the state store and journal before the next is reported, so a killed run resumes.
pub async fn apply(
    graph: &Graph,
    plan: &Plan,
    inventory: &dyn Inventory,
    store: &dyn StateStore,
    options: &ApplyOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<ApplySummary, Error> {
    let mut summary = ApplySummary::default();
    let outputs = Outputs::default();
    let items: HashMap<&str, &PlanItem> = plan
        .items
        .iter()
        .filter(|i| i.action != Action::Delete)
        .map(|i| (i.id.as_str(), i))
        .collect();
    let work = plan
        .items
        .iter()
        .filter(|i| !matches!(i.action, Action::NoOp))
        .count();
    reporter.event(Event::Phase {
        name: "apply",
        total: work,
    });

    // Kahn's algorithm, run live: a resource is ready when its last dependency finishes.
    let mut waiting: HashMap<&str, usize> = HashMap::new();
    let mut dependents: HashMap<String, Vec<&str>> = HashMap::new();
    let mut ready: Vec<&str> = Vec::new();
    for r in graph.resources() {
        let deps = r.depends_on();
        for d in &deps {
            dependents.entry(d.clone()).or_default().push(r.id());
        }
        if deps.is_empty() {
            ready.push(r.id());
        } else {
            waiting.insert(r.id(), deps.len());
        }
    }

    let mut running = FuturesUnordered::new();
    let step = |id: &str| {
        let resource = graph
            .get(id)
            .expect("planned resources are in the graph")
            .clone();
        let item = items.get(id).copied();
        let outputs = &outputs;
        async move {
            let Some(item) = item else {
                return (
                    resource,
                    Err(Error::permanent("resource missing from the plan")),
                );
            };
            let result = match &item.action {
                Action::NoOp => Ok(item.found.clone().unwrap_or_default()),
                action => {
                    reporter.event(Event::Started {
                        id: resource.id(),
                        kind: resource.kind(),
                        action,
                    });
                    journal(store, options, resource.id(), action.verb(), "started", "");
                    let on_retry = |attempt, err: &Error| {
                        reporter.event(Event::Retrying {
                            id: resource.id(),
                            attempt,
                            error: &err.message,
                        })
                    };
                    match action {
                        Action::Create => {
                            retry(options.retry, on_retry, || resource.create(outputs)).await
                        }
                        _ => {
                            let found = item.found.clone().unwrap_or_default();
                            retry(options.retry, on_retry, || resource.update(outputs, &found))
                                .await
                        }
                    }
                }
            };
            (resource, result)
        }
    };

    loop {
        while running.len() < options.concurrency.max(1) {
            let Some(id) = ready.pop() else { break };
            running.push(step(id));
        }
        let Some((resource, result)) = running.next().await else {
            break;
        };
        let id = resource.id().to_string();
        let action = items
            .get(id.as_str())
            .map(|i| i.action.clone())
            .unwrap_or(Action::NoOp);
        match result {
            Ok(observed) => {
                record(store, options.cluster, &id, resource.kind(), &observed);
                if action != Action::NoOp {
                    journal(
                        store,
                        options,
                        &id,
                        action.verb(),
                        "done",
                        &observed.cloud_id,
                    );
                    reporter.event(Event::Done {
                        id: &id,
                        action: &action,
                        cloud_id: &observed.cloud_id,
                    });
                }
                match action {
                    Action::Create => summary.created += 1,
                    Action::Update(_) => summary.updated += 1,
                    _ => summary.unchanged += 1,
                }
                outputs.set(&id, observed);
                for next in dependents.get(&id).into_iter().flatten() {
                    let left = waiting.get_mut(next).expect("dependent is waiting");
                    *left -= 1;
                    if *left == 0 {
                        waiting.remove(next);
                        ready.push(next);
                    }
                }
            }
            Err(err) => {
                journal(store, options, &id, action.verb(), "failed", &err.message);
                reporter.event(Event::Failed {
                    id: &id,
                    error: &err.message,
                });
                summary.failed.insert(id, err.message);
            }
        }
    }
    summary.skipped = waiting.keys().map(|k| k.to_string()).collect();
    summary.skipped.sort();

    if summary.ok() {
        delete_orphans(
            plan,
            graph,
            inventory,
            store,
            options,
            reporter,
            &mut summary,
        )
        .await;
    }
    Ok(summary)
}

async fn delete_orphans(
    plan: &Plan,
    graph: &Graph,
    inventory: &dyn Inventory,
    store: &dyn StateStore,
    options: &ApplyOptions<'_>,
    reporter: &dyn Reporter,
    summary: &mut ApplySummary,
) {
    let mut by_rank: BTreeMap<u32, Vec<&Tagged>> = BTreeMap::new();
    for orphan in plan.items.iter().filter_map(|i| i.orphan.as_ref()) {
        by_rank.entry(orphan.rank).or_default().push(orphan);
    }
    for group in by_rank.into_values() {
        let deletions = group
            .into_iter()
            .map(|t| {
                let id = t.resource_id.clone().unwrap_or_else(|| t.cloud_id.clone());
                // A duplicate of a live resource must not take that resource's record with it.
                let forget = !graph.contains(&id);
                Deletion {
                    id,
                    kind: t.kind.clone(),
                    cloud_id: t.cloud_id.clone(),
                    forget,
                    run: move || inventory.delete(t),
                }
            })
            .collect();
        let (deleted, failed) = delete_all(deletions, store, options, reporter).await;
        summary.deleted += deleted;
        summary.failed.extend(failed);
    }
}

/// State is a cache: a failed write costs a slower next plan, never correctness.
pub(crate) fn record(
    store: &dyn StateStore,
    cluster: &str,
    id: &str,
    kind: &str,
    observed: &Observed,
) {
    let record = ResourceRecord {
        id: id.to_string(),
        kind: kind.to_string(),
        cloud_id: observed.cloud_id.clone(),
        attrs: serde_json::Value::Object(observed.attrs.clone()),
        updated_at: now(),
    };
    if let Err(err) = store.put_resource(cluster, &record) {
        tracing::warn!(%err, resource = id, "could not record resource in state");
    }
}

pub(crate) fn journal(
    store: &dyn StateStore,
    options: &ApplyOptions<'_>,
    id: &str,
    action: &str,
    outcome: &str,
    message: &str,
) {
    let entry = JournalEntry {
        operation: options.operation.to_string(),
        resource: id.to_string(),
        action: action.to_string(),
        outcome: outcome.to_string(),
        message: message.to_string(),
        at: now(),
    };
    if let Err(err) = store.append_journal(options.cluster, &entry) {
        tracing::warn!(%err, resource = id, "could not append to the journal");
    }
}
