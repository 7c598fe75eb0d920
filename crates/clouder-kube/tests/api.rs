//! clouder-kube against clouder-testkube (controllers, scheduler and a stand-in kubelet): apply
//! outcomes, waits and their timeouts, and drains that honour PodDisruptionBudgets.

use clouder_kube::manifest::{ObjectRef, parse};
use clouder_kube::{Applier, DrainOptions, Error, Outcome, drain, wait};
use clouder_testkube::{AutoKubelet, Kubelet, NodeConfig, TestKube};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use std::time::Duration;

async fn versions(applier: &Applier, objects: &[kube::api::DynamicObject]) -> Vec<String> {
    let mut v = Vec::new();
    for o in objects {
        let found = applier.find(&ObjectRef::of(o)).await.unwrap().unwrap();
        v.push(found.metadata.resource_version.unwrap());
    }
    v
}

async fn pods_on(client: &kube::Client, node: &str) -> usize {
    Api::<Pod>::all(client.clone())
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .unwrap()
        .items
        .len()
}

async fn cluster() -> (TestKube, kube::Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kube = TestKube::start_with_controllers().await.unwrap();
    let client = kube.client().await.unwrap();
    (kube, client)
}

const ADDON: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: tools}
data: {level: info}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: tools}
spec: {size: 3}
---
apiVersion: v1
kind: Namespace
metadata: {name: tools}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: ebs.csi.aws.com
"#;

#[tokio::test]
async fn apply_orders_namespaces_and_crds_first_and_a_rerun_changes_nothing() {
    let (_kube, client) = cluster().await;
    let applier = Applier::new(client.clone());
    let objects = parse("addon.yaml", ADDON).unwrap();

    let planned = applier.plan(&objects).await.unwrap();
    assert!(
        planned.iter().all(|a| a.outcome == Outcome::Created),
        "{planned:?}"
    );
    let first = applier.apply(&objects).await.unwrap();
    assert_eq!(first.len(), 5);
    assert!(
        first.iter().all(|a| a.outcome == Outcome::Created),
        "{first:?}"
    );
    // Results come back in the manifest's order, whatever order they were applied in.
    assert_eq!(first[2].object.to_string(), "Widget tools/w1");

    let planned = applier.plan(&objects).await.unwrap();
    assert!(
        planned.iter().all(|a| a.outcome == Outcome::Unchanged),
        "{planned:?}"
    );
    let before = versions(&applier, &objects).await;
    let again = applier.apply(&objects).await.unwrap();
    assert!(
        again.iter().all(|a| a.outcome == Outcome::Unchanged),
        "{again:?}"
    );
    assert_eq!(
        versions(&applier, &objects).await,
        before,
        "a re-apply wrote something"
    );

    // Drift made by someone else is taken back; the field manager is clouder.
    let cm = ObjectRef::new("v1", "ConfigMap", Some("tools"), "settings");
    let api = applier.api(&cm).await.unwrap();
    api.patch(
        "settings",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({"data": {"level": "debug"}})),
    )
    .await
    .unwrap();
    let planned = applier.plan(&objects).await.unwrap();
    assert_eq!(planned[0].outcome, Outcome::Configured, "{planned:?}");
    assert!(
        planned[1..].iter().all(|a| a.outcome == Outcome::Unchanged),
        "{planned:?}"
    );
    let fixed = applier.apply(&objects).await.unwrap();
    assert_eq!(fixed[0].outcome, Outcome::Configured);
    assert!(fixed[1..].iter().all(|a| a.outcome == Outcome::Unchanged));
    let now = applier.find(&cm).await.unwrap().unwrap();
    assert_eq!(now.data["data"]["level"], "info");
    let managers: Vec<_> = now
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"clouder".to_string()), "{managers:?}");

    // Deleting takes everything away, what others live in last.
    let deleted = applier.delete(&objects).await.unwrap();
    assert_eq!(deleted.len(), 5);
    let order: Vec<String> = deleted.iter().map(|o| o.kind.clone()).collect();
    assert_eq!(
        order,
        [
            "StorageClass",
            "Widget",
            "ConfigMap",
            "Namespace",
            "CustomResourceDefinition"
        ]
    );
    assert!(
        applier
            .find(&ObjectRef::of(&objects[4]))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn an_unknown_kind_is_named() {
    let (_kube, client) = cluster().await;
    let objects = parse(
        "x.yaml",
        "apiVersion: nope.io/v1\nkind: Gadget\nmetadata: {name: g}\n",
    )
    .unwrap();
    let err = Applier::new(client).apply(&objects).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("unknown kind Gadget in nope.io/v1"),
        "{err}"
    );
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx
        resources: {requests: {cpu: 500m}}
"#;

#[tokio::test]
async fn rollout_waits_for_available_replicas_and_a_timeout_says_why() {
    let (_kube, client) = cluster().await;
    let kubelet = Kubelet::new(client.clone());
    kubelet
        .register(&NodeConfig::new("w1").cpu("2"))
        .await
        .unwrap();
    let applier = Applier::new(client.clone());
    let objects = parse("web.yaml", WEB).unwrap();
    applier.apply(&objects).await.unwrap();
    let web = ObjectRef::of(&objects[0]);

    // Nothing runs the pods yet: the wait times out naming the object and what is missing.
    let err = wait::rollout(&applier, &web, Duration::from_millis(600))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }));
    let text = err.to_string();
    assert!(
        text.starts_with("timed out after 0s waiting for Deployment default/web: "),
        "{text}"
    );
    assert!(text.contains("of 2 updated replicas available"), "{text}");
    assert!(text.contains("last event: ScalingReplicaSet"), "{text}");

    let _running = kubelet.start();
    wait::rollout(&applier, &web, Duration::from_secs(20))
        .await
        .unwrap();
}

#[tokio::test]
async fn drain_moves_the_least_loaded_worker_honouring_the_budget() {
    let (_kube, client) = cluster().await;
    let kubelet = Kubelet::new(client.clone());
    kubelet
        .register(&NodeConfig::control_plane("cp"))
        .await
        .unwrap();
    for n in ["w1", "w2", "w3"] {
        kubelet
            .register(&NodeConfig::new(n).cpu("8").pods(20))
            .await
            .unwrap();
    }
    let _running = kubelet.start();
    let applier = Applier::new(client.clone());
    let setup = format!(
        "{WEB}\n---\n{}",
        r#"
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: default}
spec:
  minAvailable: 4
  selector: {matchLabels: {app: web}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: kube-system}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: a, image: busybox}]}
"#
    )
    .replace("replicas: 2", "replicas: 5");
    let objects = parse("setup.yaml", &setup).unwrap();
    applier.apply(&objects).await.unwrap();
    for o in &objects {
        wait::rollout(&applier, &ObjectRef::of(o), Duration::from_secs(20))
            .await
            .unwrap();
    }
    let loads = drain::workers_by_load(&client).await.unwrap();
    assert_eq!(
        loads.len(),
        3,
        "the control plane is never a candidate: {loads:?}"
    );
    let least = loads[0].clone();
    // The scheduler spread five web pods least-loaded first: 1, 2, 2.
    let counts: Vec<usize> = loads.iter().map(|l| l.pods).collect();
    assert_eq!(counts, [1, 2, 2], "{loads:?}");

    let options = DrainOptions {
        timeout: Duration::from_secs(30),
        retry: Duration::from_millis(100),
    };
    let report = drain::drain(&client, &least.node, &options).await.unwrap();
    assert_eq!(report.evicted.len(), 1, "{report:?}");
    assert_eq!(
        report.left_in_place, 1,
        "the DaemonSet pod stays: {report:?}"
    );
    assert_eq!(
        pods_on(&client, &least.node).await,
        1,
        "only the DaemonSet pod is left"
    );
    let node = Api::<Node>::all(client.clone())
        .get(&least.node)
        .await
        .unwrap();
    assert_eq!(node.spec.unwrap().unschedulable, Some(true));
    wait::rollout(
        &applier,
        &ObjectRef::of(&objects[0]),
        Duration::from_secs(20),
    )
    .await
    .unwrap();

    // minAvailable 4 of 5: one web pod may be away at a time, so draining two waits for the
    // first one's replacement to be Ready before the second goes.
    let next = &drain::workers_by_load(&client).await.unwrap()[1];
    assert_eq!(next.pods, 2, "{next:?}");
    let report = drain::drain(&client, &next.node, &options).await.unwrap();
    assert_eq!(report.evicted.len(), 2, "{report:?}");
    assert!(report.refusals >= 1, "{report:?}");

    drain::remove(&client, &least.node).await.unwrap();
    assert!(
        Api::<Node>::all(client.clone())
            .get_opt(&least.node)
            .await
            .unwrap()
            .is_none()
    );
    drain::remove(&client, &least.node).await.unwrap();
}

/// One node with a running stand-in kubelet, and `yaml` (its first object a Deployment) rolled
/// out on it; the kubelet runs while the returned guard lives.
async fn rolled_out_on(client: &kube::Client, node: &str, yaml: &str) -> AutoKubelet {
    let kubelet = Kubelet::new(client.clone());
    kubelet
        .register(&NodeConfig::new(node).cpu("4"))
        .await
        .unwrap();
    let running = kubelet.start();
    let applier = Applier::new(client.clone());
    let objects = parse("workload.yaml", yaml).unwrap();
    applier.apply(&objects).await.unwrap();
    wait::rollout(
        &applier,
        &ObjectRef::of(&objects[0]),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    running
}

#[tokio::test]
async fn a_budget_that_never_allows_it_times_out_naming_the_pods() {
    let (_kube, client) = cluster().await;
    let _running = rolled_out_on(
        &client,
        "w1",
        &format!(
            "{WEB}\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: web, namespace: default}}\nspec:\n  maxUnavailable: 0\n  selector: {{matchLabels: {{app: web}}}}\n"
        ),
    )
    .await;
    let options = DrainOptions {
        timeout: Duration::from_millis(500),
        retry: Duration::from_millis(100),
    };
    let err = drain::drain(&client, "w1", &options).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("timed out after 0s waiting for Node w1: evictions refused: default/web-"),
        "{text}"
    );
    assert!(text.contains("disruption budget"), "{text}");
}

/// An operator that tolerates every NoSchedule taint comes back to the cordoned node: the drain
/// moves the pods it found there, once, and ends (as `kubectl drain`), never chasing the new one.
#[tokio::test]
async fn a_replacement_that_tolerates_the_cordon_is_not_chased() {
    let (_kube, client) = cluster().await;
    let _running = rolled_out_on(
        &client,
        "only",
        &WEB.replace(
            "      containers:",
            "      tolerations: [{operator: Exists, effect: NoSchedule}]\n      containers:",
        )
        .replace("replicas: 2", "replicas: 1"),
    )
    .await;
    let options = DrainOptions {
        timeout: Duration::from_secs(5),
        retry: Duration::from_millis(100),
    };
    let report = drain::drain(&client, "only", &options).await.unwrap();
    assert_eq!(report.evicted.len(), 1, "{report:?}");
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let back: Vec<String> = pods
        .items
        .iter()
        .map(|p| format!("default/{}", p.metadata.name.clone().unwrap()))
        .collect();
    assert!(!back.contains(&report.evicted[0]), "{back:?}");
}

#[tokio::test]
async fn teardown_releases_load_balancers_and_claims_but_leaves_other_services() {
    let (_kube, client) = cluster().await;
    let applier = Applier::new(client.clone());
    let objects = parse(
        "apps.yaml",
        r#"
apiVersion: v1
kind: Service
metadata: {name: public, namespace: default}
spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: internal, namespace: default}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"#,
    )
    .unwrap();
    applier.apply(&objects).await.unwrap();
    let released =
        clouder_kube::teardown::release_cloud_resources(&client, Duration::from_secs(10))
            .await
            .unwrap();
    assert_eq!(released.load_balancers, ["default/public"]);
    assert_eq!(released.claims, ["default/data"]);
    assert!(released.pending.is_empty(), "{released:?}");
    let mut left = Vec::new();
    for o in &objects {
        left.push(applier.find(&ObjectRef::of(o)).await.unwrap().is_some());
    }
    assert_eq!(
        left,
        [false, true, false],
        "only the ClusterIP Service stays"
    );
}
