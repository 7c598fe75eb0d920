//! The engine against an in-memory cloud: ordering, parallelism, failure isolation, orphans,
//! destroy. No network: these are the engine's specification.

use async_trait::async_trait;
use clouder_engine::*;
use clouder_state::{SqliteStore, StateStore};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A cloud that keeps objects by resource id and logs every mutation.
#[derive(Default)]
struct Cloud {
    objects: Mutex<BTreeMap<String, String>>,
    log: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    failing: Mutex<Vec<String>>,
    next: AtomicUsize,
}

impl Cloud {
    fn log(&self, entry: String) {
        self.log.lock().unwrap().push(entry);
    }
    fn position(&self, entry: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .position(|e| e == entry)
            .unwrap_or_else(|| panic!("{entry} not in log"))
    }
}

struct Thing {
    cloud: Arc<Cloud>,
    id: String,
    deps: Vec<String>,
}

#[async_trait]
impl Resource for Thing {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "thing"
    }
    fn depends_on(&self) -> Vec<String> {
        self.deps.clone()
    }
    async fn find(&self) -> Result<Option<Observed>, Error> {
        Ok(self
            .cloud
            .objects
            .lock()
            .unwrap()
            .get(&self.id)
            .map(Observed::new))
    }
    async fn create(&self, deps: &Outputs) -> Result<Observed, Error> {
        for d in &self.deps {
            deps.get(d)?; // a dependency's output must be there
        }
        let now = self.cloud.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.cloud.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.cloud.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.cloud.failing.lock().unwrap().contains(&self.id) {
            return Err(Error::permanent(format!("{} refused", self.id)));
        }
        let cloud_id = format!("c-{}", self.cloud.next.fetch_add(1, Ordering::SeqCst));
        self.cloud
            .objects
            .lock()
            .unwrap()
            .insert(self.id.clone(), cloud_id.clone());
        self.cloud.log(format!("create {}", self.id));
        Ok(Observed::new(cloud_id))
    }
    async fn delete(&self, _: &Observed) -> Result<(), Error> {
        self.cloud.objects.lock().unwrap().remove(&self.id);
        self.cloud.log(format!("delete {}", self.id));
        Ok(())
    }
}

struct Tags(Arc<Cloud>);

#[async_trait]
impl Inventory for Tags {
    async fn tagged(&self) -> Result<Vec<Tagged>, Error> {
        Ok(self
            .0
            .objects
            .lock()
            .unwrap()
            .iter()
            .map(|(id, cloud_id)| Tagged {
                kind: "thing".into(),
                resource_id: Some(id.clone()),
                cloud_id: cloud_id.clone(),
                rank: 0,
            })
            .collect())
    }
    async fn delete(&self, object: &Tagged) -> Result<(), Error> {
        let id = object.resource_id.clone().unwrap();
        self.0.objects.lock().unwrap().remove(&id);
        self.0.log(format!("sweep {id}"));
        Ok(())
    }
}

/// net ← subnet ← {vm-0 … vm-(n-1)} ← lb
fn graph(cloud: &Arc<Cloud>, vms: usize) -> Graph {
    let mut g = Graph::new();
    let thing = |id: &str, deps: &[&str]| Thing {
        cloud: cloud.clone(),
        id: id.into(),
        deps: deps.iter().map(|d| d.to_string()).collect(),
    };
    g.add(thing("net", &[])).unwrap();
    g.add(thing("subnet", &["net"])).unwrap();
    let names: Vec<String> = (0..vms).map(|i| format!("vm-{i}")).collect();
    for n in &names {
        g.add(thing(n, &["subnet"])).unwrap();
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    g.add(thing("lb", &refs)).unwrap();
    g
}

fn options(concurrency: usize) -> ApplyOptions<'static> {
    ApplyOptions {
        cluster: "c",
        operation: "test",
        concurrency,
        retry: retry::Policy::default(),
    }
}

async fn converge(
    g: &Graph,
    cloud: &Arc<Cloud>,
    store: &dyn StateStore,
    concurrency: usize,
) -> (Plan, ApplySummary) {
    let inv = Tags(cloud.clone());
    let p = plan(g, &inv, concurrency, &Silent).await.unwrap();
    let s = apply(g, &p, &inv, store, &options(concurrency), &Silent)
        .await
        .unwrap();
    (p, s)
}

#[tokio::test]
async fn apply_creates_dependencies_first_in_parallel_and_a_rerun_is_a_no_op() {
    let cloud = Arc::new(Cloud::default());
    let store = SqliteStore::in_memory().unwrap();
    let g = graph(&cloud, 8);
    let (first, summary) = converge(&g, &cloud, &store, 4).await;
    assert_eq!(first.count("create"), 11);
    assert_eq!(summary.created, 11);
    assert!(cloud.position("create net") < cloud.position("create subnet"));
    for i in 0..8 {
        assert!(cloud.position("create subnet") < cloud.position(&format!("create vm-{i}")));
        assert!(cloud.position(&format!("create vm-{i}")) < cloud.position("create lb"));
    }
    let max = cloud.max_in_flight.load(Ordering::SeqCst);
    assert!(
        max > 1 && max <= 4,
        "VMs ran in parallel within the bound: {max}"
    );
    assert_eq!(
        store.resources("c").unwrap().len(),
        11,
        "every step is recorded"
    );

    let (again, summary) = converge(&g, &cloud, &store, 4).await;
    assert!(again.is_empty());
    assert_eq!(summary.unchanged, 11);
    assert_eq!(
        cloud.log.lock().unwrap().len(),
        11,
        "no mutation on a re-run"
    );
}

#[tokio::test]
async fn a_failure_skips_only_its_dependents_and_a_rerun_finishes() {
    let cloud = Arc::new(Cloud::default());
    let store = SqliteStore::in_memory().unwrap();
    cloud.failing.lock().unwrap().push("vm-1".into());
    let g = graph(&cloud, 3);
    let (_, summary) = converge(&g, &cloud, &store, 8).await;
    assert_eq!(summary.failed.keys().collect::<Vec<_>>(), ["vm-1"]);
    assert_eq!(summary.skipped, ["lb"]);
    assert_eq!(summary.created, 4, "net, subnet, vm-0, vm-2");
    let journal = store.journal("c", 100).unwrap();
    assert!(
        journal
            .iter()
            .any(|e| e.resource == "vm-1" && e.outcome == "failed")
    );

    cloud.failing.lock().unwrap().clear();
    let (p, summary) = converge(&g, &cloud, &store, 8).await;
    assert_eq!((p.count("create"), p.count("no-op")), (2, 4));
    assert!(summary.ok());
    assert_eq!(summary.created, 2);
}

#[tokio::test]
async fn tagged_objects_no_resource_claims_are_deleted_by_apply() {
    let cloud = Arc::new(Cloud::default());
    let store = SqliteStore::in_memory().unwrap();
    converge(&graph(&cloud, 3), &cloud, &store, 4).await;
    let smaller = graph(&cloud, 1);
    let (p, summary) = converge(&smaller, &cloud, &store, 4).await;
    let deletes: Vec<&str> = p
        .items
        .iter()
        .filter(|i| i.action == Action::Delete)
        .map(|i| i.id.as_str())
        .collect();
    assert_eq!(deletes, ["vm-1", "vm-2"]);
    assert_eq!(summary.deleted, 2);
    assert_eq!(cloud.objects.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn destroy_goes_in_reverse_order_and_sweeps_what_the_graph_does_not_know() {
    let cloud = Arc::new(Cloud::default());
    let store = SqliteStore::in_memory().unwrap();
    converge(&graph(&cloud, 3), &cloud, &store, 4).await;
    // A spec that forgot two VMs: the sweep still finds them by their tags.
    let forgetful = graph(&cloud, 1);
    let summary = destroy(
        &forgetful,
        &Tags(cloud.clone()),
        &store,
        &options(4),
        &Silent,
    )
    .await
    .unwrap();
    assert!(summary.ok(), "{summary:?}");
    assert!(cloud.objects.lock().unwrap().is_empty());
    assert!(cloud.position("delete lb") < cloud.position("delete vm-0"));
    assert!(cloud.position("delete vm-0") < cloud.position("delete subnet"));
    assert!(cloud.position("delete subnet") < cloud.position("delete net"));
    assert!(cloud.position("sweep vm-1") > 0 && cloud.position("sweep vm-2") > 0);
    assert!(store.resources("c").unwrap().is_empty());
}

#[test]
fn graphs_reject_duplicates_missing_dependencies_and_cycles() {
    let cloud = Arc::new(Cloud::default());
    let thing = |id: &str, deps: &[&str]| Thing {
        cloud: cloud.clone(),
        id: id.into(),
        deps: deps.iter().map(|d| d.to_string()).collect(),
    };
    let mut g = Graph::new();
    g.add(thing("a", &["b"])).unwrap();
    assert_eq!(
        g.add(thing("a", &[])),
        Err(GraphError::Duplicate("a".into()))
    );
    assert!(matches!(
        g.depths(),
        Err(GraphError::MissingDependency { .. })
    ));
    g.add(thing("b", &["a"])).unwrap();
    assert!(matches!(g.depths(), Err(GraphError::Cycle(_))));
}
