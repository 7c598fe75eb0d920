//! CustomResourceDefinitions: established at once, served, validated and pruned, and deleted with
//! their custom resources.

use crate::common::{raw, start, status_of};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

fn samples() -> Value {
    serde_json::from_str::<Value>(include_str!("../data/samples.json")).unwrap()["samples"].clone()
}

async fn install_widget_crd(client: &kube::Client) -> CustomResourceDefinition {
    let body = samples()["create CRD"]["request"]["body"].clone();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(body).unwrap(),
    )
    .await
    .unwrap()
}

fn widgets(client: &kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("bar.example.com", "v1", "Widget"),
        "widgets",
    );
    Api::namespaced_with(client.clone(), "default", &ar)
}

#[tokio::test]
async fn a_crd_is_established_and_discoverable() {
    let (_kube, client) = start().await;
    let crd = install_widget_crd(&client).await;
    let conditions = crd.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    assert_eq!(crd.spec.names.list_kind.as_deref(), Some("WidgetList"));

    let want = &samples()["discovery /apis/bar.example.com/v1"]["body"];
    let (code, got) = raw(&client, "GET", "/apis/bar.example.com/v1", None, None).await;
    assert_eq!(code, 200);
    let shape = |v: &Value| -> Vec<Value> {
        v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut verbs: Vec<String> = r["verbs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_string())
                    .collect();
                verbs.sort();
                json!([
                    r["name"],
                    r["singularName"],
                    r["namespaced"],
                    r["kind"],
                    verbs
                ])
            })
            .collect()
    };
    assert_eq!(shape(&got), shape(want));
    let (_, groups) = raw(&client, "GET", "/apis", None, None).await;
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "bar.example.com")
    );
}

#[tokio::test]
async fn custom_resources_are_validated_like_the_real_server() {
    let (_kube, client) = start().await;
    install_widget_crd(&client).await;
    let all = samples();
    for name in [
        "invalid custom resource (Invalid)",
        "custom resource missing required field",
    ] {
        let s = &all[name];
        let path = s["request"]["path"]
            .as_str()
            .unwrap()
            .replace("/t1/", "/default/");
        let (code, got) = raw(
            &client,
            "POST",
            &path,
            Some("application/json"),
            Some(&s["request"]["body"]),
        )
        .await;
        assert_eq!(u64::from(code), s["status"].as_u64().unwrap(), "{name}");
        for k in ["reason", "message", "details"] {
            assert_eq!(got[k], s["body"][k], "{name}: {k}");
        }
    }
}

#[tokio::test]
async fn custom_resources_crud_status_and_cascade() {
    let (_kube, client) = start().await;
    install_widget_crd(&client).await;
    let api = widgets(&client);
    let w: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "bar.example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"size": 2, "unknown": true}, "status": {"ignored": 1}
    }))
    .unwrap();
    let made = api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(
        made.data["spec"],
        json!({"size": 2}),
        "unknown fields are pruned"
    );
    assert!(
        made.data.get("status").is_none(),
        "status is written through the subresource"
    );
    assert_eq!(made.metadata.generation, Some(1));

    let st = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .unwrap();
    assert_eq!(st.data["status"]["ready"], true);
    let cfg = json!({"apiVersion": "bar.example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}});
    let applied = api
        .patch("w", &PatchParams::apply("me").force(), &Patch::Apply(&cfg))
        .await
        .unwrap();
    assert_eq!(
        (
            applied.data["spec"]["size"].as_i64(),
            applied.metadata.generation
        ),
        (Some(3), Some(2))
    );

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("widgets.bar.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let (code, _) = raw(
        &client,
        "GET",
        "/apis/bar.example.com/v1/namespaces/default/widgets/w",
        None,
        None,
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        status_of(crds.get("widgets.bar.example.com").await).code,
        404
    );
}
