use crate::deletion::{Deletion, delete_all};
use crate::retry::retry;
use crate::{ApplyOptions, Error, Event, Graph, Inventory, Reporter, plan};
use clouder_state::StateStore;
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

    fn count(&mut self, (deleted, failed): (usize, Vec<(String, String)>)) {
        self.deleted += deleted;
        self.failed.extend(failed);
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
    for group in by_depth.into_values().rev() {
        let deletions = group
            .into_iter()
            .map(|item| {
                let resource = graph
                    .get(&item.id)
                    .expect("planned resources are in the graph");
                let found = item.found.as_ref().expect("filtered on found");
                Deletion {
                    id: item.id.clone(),
                    kind: item.kind.clone(),
                    cloud_id: found.cloud_id.clone(),
                    forget: true,
                    run: move || resource.delete(found),
                }
            })
            .collect();
        summary.count(delete_all(deletions, store, options, reporter).await);
    }
    for pass in 0..SWEEPS {
        inventory.refresh();
        let tagged = retry(options.retry, |_, _| {}, || inventory.tagged()).await?;
        if tagged.is_empty() {
            // Whatever failed before is gone now (a later sweep or its parent took it).
            summary.failed.clear();
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
        summary.failed.clear();
        let mut by_rank: BTreeMap<u32, Vec<_>> = BTreeMap::new();
        for t in &tagged {
            by_rank.entry(t.rank).or_default().push(t);
        }
        for group in by_rank.into_values() {
            let deletions = group
                .into_iter()
                .map(|t| Deletion {
                    id: t.resource_id.clone().unwrap_or_else(|| t.cloud_id.clone()),
                    kind: t.kind.clone(),
                    cloud_id: t.cloud_id.clone(),
                    forget: true,
                    run: move || inventory.delete(t),
                })
                .collect();
            summary.count(delete_all(deletions, store, options, reporter).await);
        }
    }
    Ok(summary)
}
