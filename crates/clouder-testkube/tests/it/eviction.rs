//! Pod eviction against a PodDisruptionBudget, as `kubectl drain` does it.

use crate::common::{start, status_of};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn ready_pod(api: &Api<Pod>, name: &str) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    api.create(&PostParams::default(), &pod).await.unwrap();
    let ready = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&ready))
        .await
        .unwrap();
}

#[tokio::test]
async fn eviction_is_refused_by_the_budget_then_allowed() {
    let (_kube, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, "default");
    ready_pod(&pods, "p").await;
    let pdb: PodDisruptionBudget =
        serde_json::from_value(json!({"metadata": {"name": "pdb"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "x"}}}}))
            .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();

    let s = status_of(pods.evict("p", &EvictParams::default()).await);
    assert_eq!((s.code, s.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(
        s.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let cause = &s.details.unwrap().causes[0];
    assert_eq!(cause.reason, "DisruptionBudget");
    assert_eq!(
        cause.message,
        "The disruption budget pdb needs 1 healthy pods and has 1 currently"
    );
    assert!(
        pods.get("p").await.is_ok(),
        "a refused eviction leaves the pod"
    );

    // A second healthy pod leaves room for one disruption.
    ready_pod(&pods, "q").await;
    let ok = pods.evict("p", &EvictParams::default()).await.unwrap();
    assert_eq!(ok.code, 201);
    assert_eq!(status_of(pods.get("p").await).code, 404);
    assert_eq!(
        status_of(pods.evict("q", &EvictParams::default()).await).code,
        429
    );
}

#[tokio::test]
async fn eviction_without_a_budget_deletes_the_pod() {
    let (_kube, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    ready_pod(&pods, "p").await;
    pods.evict("p", &EvictParams::default()).await.unwrap();
    assert_eq!(status_of(pods.get("p").await).code, 404);
}
