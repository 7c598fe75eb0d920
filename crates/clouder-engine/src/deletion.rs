//! The one way the engine deletes: a group at once (bounded), each with retries, journaled,
//! reported, and forgotten from state when gone.

use crate::apply::journal;
use crate::retry::retry;
use crate::{Action, ApplyOptions, Error, Event, Reporter};
use clouder_state::StateStore;
use futures::StreamExt;
use std::future::Future;

pub(crate) struct Deletion<F> {
    /// Graph id, or the cloud id of an object no resource claims.
    pub id: String,
    pub kind: String,
    pub cloud_id: String,
    /// Drop the state record of `id` once deleted (not for a duplicate of a live resource).
    pub forget: bool,
    pub run: F,
}

/// Deletes `group`; returns how many went and the failures by id.
pub(crate) async fn delete_all<F, Fut>(
    group: Vec<Deletion<F>>,
    store: &dyn StateStore,
    options: &ApplyOptions<'_>,
    reporter: &dyn Reporter,
) -> (usize, Vec<(String, String)>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let results = futures::stream::iter(group.into_iter().map(|d| async move {
        reporter.event(Event::Started {
            id: &d.id,
            kind: &d.kind,
            action: &Action::Delete,
        });
        journal(store, options, &d.id, "delete", "started", &d.cloud_id);
        let result = retry(options.retry, |_, _| {}, &d.run).await;
        (d, result)
    }))
    .buffer_unordered(options.concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    let (mut deleted, mut failed) = (0, Vec::new());
    for (d, result) in results {
        match result {
            Ok(()) => {
                if d.forget {
                    let _ = store.delete_resource(options.cluster, &d.id);
                }
                journal(store, options, &d.id, "delete", "done", &d.cloud_id);
                reporter.event(Event::Done {
                    id: &d.id,
                    action: &Action::Delete,
                    cloud_id: &d.cloud_id,
                });
                deleted += 1;
            }
            Err(err) => {
                journal(store, options, &d.id, "delete", "failed", &err.message);
                reporter.event(Event::Failed {
                    id: &d.id,
                    error: &err.message,
                });
                failed.push((d.id, err.message));
            }
        }
    }
    (deleted, failed)
}
