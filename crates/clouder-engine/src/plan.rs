use crate::retry::{Policy, retry};
use crate::{Error, Event, Graph, Inventory, Observed, Reporter, Tagged};
use futures::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use std::collections::HashMap;

/// What apply will do to one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", content = "changes", rename_all = "lowercase")]
pub enum Action {
    Create,
    Update(Vec<String>),
    Delete,
    #[serde(rename = "no-op")]
    NoOp,
}

impl Action {
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update(_) => "update",
            Action::Delete => "delete",
            Action::NoOp => "no-op",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanItem {
    pub id: String,
    pub kind: String,
    #[serde(flatten)]
    pub action: Action,
    /// The object found in the cloud, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_id: Option<String>,
    #[serde(skip)]
    pub found: Option<Observed>,
    /// For deletes: the tagged object that no desired resource claims.
    #[serde(skip)]
    pub orphan: Option<Tagged>,
    #[serde(skip)]
    pub depth: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub items: Vec<PlanItem>,
}

impl Plan {
    pub fn count(&self, verb: &str) -> usize {
        self.items
            .iter()
            .filter(|i| i.action.verb() == verb)
            .count()
    }

    /// True when apply would change nothing.
    pub fn is_empty(&self) -> bool {
        self.items.iter().all(|i| i.action == Action::NoOp)
    }
}

/// Finds every desired resource (all at once, at most `concurrency` in flight), diffs each
/// against what was found, and adds a delete for every tagged object no resource claims.
pub async fn plan(
    graph: &Graph,
    inventory: &dyn Inventory,
    concurrency: usize,
    reporter: &dyn Reporter,
) -> Result<Plan, Error> {
    let depths = graph
        .depths()
        .map_err(|e| Error::permanent(e.to_string()))?;
    reporter.event(Event::Phase {
        name: "plan",
        total: graph.len(),
    });
    let finds = stream::iter(graph.resources().cloned().map(|r| async move {
        let found = retry(Policy::default(), |_, _| {}, || r.find())
            .await
            .map_err(|e| Error::permanent(format!("finding {}: {}", r.id(), e.message)))?;
        Ok::<_, Error>((r, found))
    }))
    .buffer_unordered(concurrency.max(1));
    let (found, tagged) = tokio::join!(finds.try_collect::<Vec<_>>(), async {
        retry(Policy::default(), |_, _| {}, || inventory.tagged()).await
    });
    let (found, tagged) = (found?, tagged?);

    let mut claimed: HashMap<String, String> = HashMap::new();
    let mut items: Vec<PlanItem> = found
        .into_iter()
        .map(|(r, found)| {
            let action = match &found {
                None => Action::Create,
                Some(f) => {
                    let changes = r.changes(f);
                    if changes.is_empty() {
                        Action::NoOp
                    } else {
                        Action::Update(changes)
                    }
                }
            };
            if let Some(f) = &found {
                claimed.insert(r.id().to_string(), f.cloud_id.clone());
            }
            PlanItem {
                id: r.id().to_string(),
                kind: r.kind().to_string(),
                action,
                cloud_id: found.as_ref().map(|f| f.cloud_id.clone()),
                found,
                orphan: None,
                depth: depths[r.id()],
            }
        })
        .collect();
    items.sort_by(|a, b| (a.depth, &a.id).cmp(&(b.depth, &b.id)));

    let mut orphans: Vec<Tagged> = tagged
        .into_iter()
        .filter(|t| match &t.resource_id {
            Some(id) if graph.contains(id) => claimed.get(id) != Some(&t.cloud_id),
            _ => true,
        })
        .collect();
    orphans.sort_by(|a, b| {
        (a.rank, &a.resource_id, &a.cloud_id).cmp(&(b.rank, &b.resource_id, &b.cloud_id))
    });
    items.extend(orphans.into_iter().map(|t| PlanItem {
        id: t.resource_id.clone().unwrap_or_else(|| t.cloud_id.clone()),
        kind: t.kind.clone(),
        action: Action::Delete,
        cloud_id: Some(t.cloud_id.clone()),
        found: None,
        depth: 0,
        orphan: Some(t),
    }));
    Ok(Plan { items })
}
