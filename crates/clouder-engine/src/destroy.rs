use crate::apply::journal;
use crate::retry::retry;
use crate::{Action, ApplyOptions, Error, Event, Graph, Inventory, Reporter, plan};
use clouder_state::StateStore;
use futures::StreamExt;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Serialize)]
pub struct DestroySummary {
    pub deleted: usize,
    /// Tagged objects that remained after the last sweep, as `kind cloud-id`.
    pub remaining: Vec<String>,
    pub failed: BTreeMap<String, String>,
}

impl DestroySummary {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.remaining.is_empty()
    }
}

const SWEEPS: usize = 3;

/// Deletes what the graph finds in reverse dependency order, then sweeps every object still
/// tagged as the cluster's (leftovers of other specs, half-made objects) until none is left.
pub async fn destroy(
    graph: &Graph,
    inventory: &dyn Inventory,
    store: &dyn StateStore,
    options: &ApplyOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<DestroySummary, Error> {
    let mut summary = DestroySummary::default();
    let planned = plan(graph, inventory, options.concurrency, reporter).await?;

    let mut by_depth: BTreeMap<usize, Vec<_>> = BTreeMap::new();
    for item in planned.items.iter().filter(|i| i.found.is_some()) {
        by_depth.entry(item.depth).or_default().push(item);
    }
    reporter.event(Event::Phase {
        name: "destroy",
        total: by_depth.values().map(Vec::len).sum(),
    });
    for group in by_depth.values().rev() {
        let results = futures::stream::iter(group.iter().map(|item| async move {
            let resource = graph
                .get(&item.id)
                .expect("planned resources are in the graph");
            let found = item.found.as_ref().expect("filtered on found");
            reporter.event(Event::Started {
                id: &item.id,
                kind: &item.kind,
                action: &Action::Delete,
            });
            journal(
                store,
                options,
                &item.id,
                "delete",
                "started",
                &found.cloud_id,
            );
            (
                item,
                retry(options.retry, |_, _| {}, || resource.delete(found)).await,
            )
        }))
        .buffer_unordered(options.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
        for (item, result) in results {
            settle(
                store,
                options,
                reporter,
                &mut summary,
                &item.id,
                item.cloud_id.as_deref().unwrap_or(""),
                result,
            );
        }
    }

    for pass in 0..SWEEPS {
        inventory.refresh();
        let mut tagged = retry(options.retry, |_, _| {}, || inventory.tagged()).await?;
        if tagged.is_empty() {
            break;
        }
        if pass + 1 == SWEEPS {
            summary.remaining = tagged
                .iter()
                .map(|t| format!("{} {}", t.kind, t.cloud_id))
                .collect();
            break;
        }
        reporter.event(Event::Phase {
            name: "sweep",
            total: tagged.len(),
        });
        tagged.sort_by_key(|t| t.rank);
        let mut by_rank: BTreeMap<u32, Vec<_>> = BTreeMap::new();
        for t in &tagged {
            by_rank.entry(t.rank).or_default().push(t);
        }
        for group in by_rank.values() {
            let results = futures::stream::iter(group.iter().map(|t| async move {
                let id = t.resource_id.clone().unwrap_or_else(|| t.cloud_id.clone());
                reporter.event(Event::Started {
                    id: &id,
                    kind: &t.kind,
                    action: &Action::Delete,
                });
                (
                    id,
                    *t,
                    retry(options.retry, |_, _| {}, || inventory.delete(t)).await,
                )
            }))
            .buffer_unordered(options.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
            for (id, t, result) in results {
                settle(
                    store,
                    options,
                    reporter,
                    &mut summary,
                    &id,
                    &t.cloud_id,
                    result,
                );
            }
        }
    }
    Ok(summary)
}

fn settle(
    store: &dyn StateStore,
    options: &ApplyOptions<'_>,
    reporter: &dyn Reporter,
    summary: &mut DestroySummary,
    id: &str,
    cloud_id: &str,
    result: Result<(), Error>,
) {
    match result {
        Ok(()) => {
            let _ = store.delete_resource(options.cluster, id);
            journal(store, options, id, "delete", "done", cloud_id);
            reporter.event(Event::Done {
                id,
                action: &Action::Delete,
                cloud_id,
            });
            summary.deleted += 1;
            summary.failed.remove(id);
        }
        Err(err) => {
            journal(store, options, id, "delete", "failed", &err.message);
            reporter.event(Event::Failed {
                id,
                error: &err.message,
            });
            summary.failed.insert(id.to_string(), err.message);
        }
    }
}
