//! Provenance marks put on joined Nodes through the project's API server, and grouped back.

mod support;

use clouder_byoc::provenance::{self, Origin, Provenance};
use clouder_testkube::TestKube;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

async fn node(api: &Api<Node>, name: &str, taints: serde_json::Value) {
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"taints": taints},
    }))
    .unwrap();
    api.create(&PostParams::default(), &node).await.unwrap();
}

#[tokio::test]
async fn marks_are_applied_idempotently_and_grouped() {
    support::tls_provider();
    let kube = TestKube::start().await.unwrap();
    let nodes: Api<Node> = Api::all(kube.client().await.unwrap());
    let cp_taint =
        json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
    node(&nodes, "cp-0", cp_taint).await;
    node(&nodes, "w-aws", json!([])).await;
    node(&nodes, "jane-laptop", json!([])).await;
    node(&nodes, "legacy", json!([])).await;
    let origin = |provenance, owner: &str| Origin {
        provenance,
        owner: owner.into(),
        enrolled_at: "2026-11-25T20:39:01Z".parse().unwrap(),
        non_production_taint: true,
    };
    let cloud = provenance::labels_and_taints(&origin(Provenance::Aws, "platform"));
    let laptop = provenance::labels_and_taints(&origin(Provenance::Laptop, "jane@example.com"));
    let client = kube.client().await.unwrap();
    provenance::apply(&client, "cp-0", &cloud).await.unwrap();
    provenance::apply(&client, "w-aws", &cloud).await.unwrap();
    for _ in 0..2 {
        provenance::apply(&client, "jane-laptop", &laptop)
            .await
            .unwrap();
    }

    let laptop_node = nodes.get("jane-laptop").await.unwrap();
    let labels = laptop_node.metadata.labels.unwrap();
    assert_eq!(labels["clouder.io/provenance"], "laptop");
    assert_eq!(labels["clouder.io/owner"], "jane_example.com");
    assert_eq!(labels["clouder.io/enrolled-at"], "20261125T203901Z");
    assert_eq!(
        labels["kubernetes.io/hostname"], "jane-laptop",
        "other labels stay"
    );
    let taints = laptop_node.spec.unwrap().taints.unwrap();
    assert_eq!(taints.len(), 1, "applied twice, tainted once: {taints:?}");
    assert_eq!(
        (
            taints[0].key.as_str(),
            taints[0].value.as_deref(),
            taints[0].effect.as_str()
        ),
        ("clouder.io/non-production", Some("laptop"), "NoSchedule")
    );
    // The control plane keeps its own taint and gets none.
    let cp = nodes.get("cp-0").await.unwrap();
    let cp_taints = cp.spec.unwrap().taints.unwrap();
    assert_eq!(cp_taints.len(), 1);
    assert_eq!(cp_taints[0].key, "node-role.kubernetes.io/control-plane");

    let all = nodes.list(&ListParams::default()).await.unwrap().items;
    let groups = provenance::group(all.iter().map(provenance::of));
    assert_eq!(
        serde_json::to_value(&groups).unwrap(),
        json!({"aws": ["cp-0", "w-aws"], "laptop": ["jane-laptop"], "unknown": ["legacy"]})
    );
}
