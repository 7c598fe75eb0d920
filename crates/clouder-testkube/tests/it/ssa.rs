//! Server-side apply through kube-rs: ownership, no-op re-apply, conflicts and force.

use crate::common::{start, status_of};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

fn config(x: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"x": x}})
}

#[tokio::test]
async fn apply_twice_is_a_no_op() {
    let (_kube, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = api
        .patch("s", &PatchParams::apply("one"), &Patch::Apply(config("1")))
        .await
        .unwrap();
    let mf = first.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(
        (mf[0].manager.as_deref(), mf[0].operation.as_deref()),
        (Some("one"), Some("Apply"))
    );
    assert_eq!(mf[0].fields_type.as_deref(), Some("FieldsV1"));
    assert_eq!(
        mf[0].fields_v1.as_ref().unwrap().0,
        json!({"f:data": {"f:x": {}}})
    );
    let second = api
        .patch("s", &PatchParams::apply("one"), &Patch::Apply(config("1")))
        .await
        .unwrap();
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
}

#[tokio::test]
async fn conflicting_manager_is_refused_then_forced() {
    let (_kube, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.patch("s", &PatchParams::apply("one"), &Patch::Apply(config("1")))
        .await
        .unwrap();
    let s = status_of(
        api.patch("s", &PatchParams::apply("two"), &Patch::Apply(config("2")))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        s.message,
        "Apply failed with 1 conflict: conflict with \"one\": .data.x"
    );
    let causes = s.details.unwrap().causes;
    assert_eq!(causes[0].field, ".data.x");
    assert_eq!(causes[0].reason, "FieldManagerConflict");

    // The same value is shared ownership, not a conflict.
    api.patch(
        "s",
        &PatchParams::apply("three"),
        &Patch::Apply(config("1")),
    )
    .await
    .unwrap();

    let forced = api
        .patch(
            "s",
            &PatchParams::apply("two").force(),
            &Patch::Apply(config("2")),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["x"], "2");
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["two"]);
}

#[tokio::test]
async fn fields_dropped_from_the_config_are_removed() {
    let (_kube, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let both = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s", "labels": {"a": "1"}}, "data": {"x": "1", "y": "2"}});
    api.patch("s", &PatchParams::apply("m"), &Patch::Apply(both))
        .await
        .unwrap();
    let after = api
        .patch("s", &PatchParams::apply("m"), &Patch::Apply(config("1")))
        .await
        .unwrap();
    assert_eq!(after.data.unwrap().len(), 1);
    assert!(after.metadata.labels.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn apply_through_the_status_subresource_owns_status_only() {
    use k8s_openapi::api::core::v1::Pod;
    let (_kube, client) = start().await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    api.patch("p", &PatchParams::apply("owner"), &Patch::Apply(&pod))
        .await
        .unwrap();
    let status = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Running"}});
    let after = api
        .patch_status("p", &PatchParams::apply("kubelet"), &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(after.status.unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(
        after.spec.unwrap().containers[0].image.as_deref(),
        Some("i")
    );
    let kubelet = after
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some("kubelet"))
        .unwrap();
    assert_eq!(kubelet.subresource.as_deref(), Some("status"));
    assert_eq!(
        kubelet.fields_v1.unwrap().0,
        json!({"f:status": {"f:phase": {}}})
    );
}
