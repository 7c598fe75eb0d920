//! Create, get, list, update, patch and delete through kube-rs, with the real server's errors.

use crate::common::{raw, start, status_of};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"a": "1"}}),
    )
    .unwrap()
}

#[tokio::test]
async fn configmap_lifecycle() {
    let (_kube, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let created = api
        .create(&PostParams::default(), &cm("c", json!({"app": "a"})))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(
        meta.uid.is_some() && meta.creation_timestamp.is_some() && meta.resource_version.is_some()
    );
    assert_eq!(
        meta.generation, None,
        "configmaps have no spec, so no generation"
    );

    let got = api.get("c").await.unwrap();
    assert_eq!(got.data.unwrap()["a"], "1");

    let mut changed = api.get("c").await.unwrap();
    changed
        .data
        .as_mut()
        .unwrap()
        .insert("a".into(), "2".into());
    let updated = api
        .replace("c", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );

    let patched = api
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"b": "3"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap().len(), 2);
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/data/a", "value": "9"}]))
            .unwrap();
    let patched = api
        .patch("c", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["a"], "9");

    api.delete("c", &DeleteParams::default()).await.unwrap();
    let s = status_of(api.get("c").await);
    assert_eq!(
        (s.code, s.reason.as_str(), s.message.as_str()),
        (404, "NotFound", "configmaps \"c\" not found")
    );
}

#[tokio::test]
async fn conflicts_and_already_exists() {
    let (_kube, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = api
        .create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    let s = status_of(
        api.create(&PostParams::default(), &cm("c", json!({})))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));

    api.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "2"}})),
    )
    .await
    .unwrap();
    let s = status_of(api.replace("c", &PostParams::default(), &first).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(
        s.message.contains("the object has been modified"),
        "{}",
        s.message
    );
}

#[tokio::test]
async fn generate_name_and_missing_namespace() {
    let (_kube, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let body: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "gen-"}})).unwrap();
    let made = api.create(&PostParams::default(), &body).await.unwrap();
    let name = made.metadata.name.unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let nowhere: Api<ConfigMap> = Api::namespaced(client, "nope");
    let s = status_of(
        nowhere
            .create(&PostParams::default(), &cm("c", json!({})))
            .await,
    );
    assert_eq!(
        (s.code, s.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );
}

#[tokio::test]
async fn label_selectors_and_paging() {
    let (_kube, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        api.create(&PostParams::default(), &cm(name, json!({"app": app})))
            .await
            .unwrap();
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
        ),
        ["a", "b"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app!=web"))
                .await
                .unwrap()
        ),
        ["c"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app in (db,x)"))
                .await
                .unwrap()
        ),
        ["c"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("!app"))
                .await
                .unwrap()
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .unwrap()
        ),
        ["b"]
    );

    let page = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(page.clone()), ["a", "b"]);
    assert_eq!(page.metadata.remaining_item_count, Some(1));
    let token = page.metadata.continue_.clone().unwrap();
    let rest = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(rest.clone()), ["c"]);
    assert!(rest.metadata.continue_.is_none());
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let (_kube, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let body: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "f", "finalizers": ["example.com/hold"]}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &body).await.unwrap();
    let held = api
        .delete("f", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the held object comes back");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(
        api.get("f")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(status_of(api.get("f").await).code, 404);
}

#[tokio::test]
async fn pods_status_subresource_and_generation() {
    let (_kube, client) = start().await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running"}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(
        created.status.unwrap().phase.as_deref(),
        Some("Pending"),
        "status is the server's on create"
    );
    assert_eq!(created.metadata.generation, Some(1));

    let ready = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
    let after = api
        .patch_status("p", &PatchParams::default(), &Patch::Merge(&ready))
        .await
        .unwrap();
    assert_eq!(after.status.unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(
        after.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );

    // The main resource ignores status and bumps generation on spec changes.
    let spec = json!({"spec": {"activeDeadlineSeconds": 5}, "status": {"phase": "Failed"}});
    let after = api
        .patch("p", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    assert_eq!(after.status.unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(after.metadata.generation, Some(2));

    // Strategic merge patch merges containers by name.
    let smp = json!({"spec": {"containers": [{"name": "d", "image": "x"}]}});
    let after = api
        .patch("p", &PatchParams::default(), &Patch::Strategic(&smp))
        .await
        .unwrap();
    assert_eq!(after.spec.unwrap().containers.len(), 2);
}

#[tokio::test]
async fn deployment_scale_subresource() {
    let (_kube, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .unwrap();
    let after = api.get("web").await.unwrap();
    assert_eq!(after.spec.replicas, Some(5));
    assert_eq!(after.metadata.generation, Some(2));
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_contents() {
    let (_kube, client) = start().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "t1"}})).unwrap();
    let made = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(
        made.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
        "t1"
    );
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "t1");
    api.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    // A finalizer on one object holds the namespace in Terminating until it is released.
    let mut held = cm("held", json!({}));
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    let terminating = nss.delete("t1", &DeleteParams::default()).await.unwrap();
    let ns = terminating
        .left()
        .expect("the namespace is kept while its contents go");
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    assert!(ns.metadata.deletion_timestamp.is_some());
    let refused = status_of(
        api.create(&PostParams::default(), &cm("d", json!({})))
            .await,
    );
    assert_eq!((refused.code, refused.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        refused.message,
        "configmaps \"d\" is forbidden: unable to create new content in namespace t1 because it is being terminated"
    );
    crate::controllers::eventually("the contents deleted", || async {
        let c = api.get_opt("c").await.unwrap();
        let held = api.get("held").await.unwrap();
        if c.is_none() && held.metadata.deletion_timestamp.is_some() {
            Ok(())
        } else {
            Err(format!("{c:?}"))
        }
    })
    .await;
    assert!(
        nss.get("t1").await.is_ok(),
        "a held object keeps the namespace"
    );
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    crate::controllers::eventually("the namespace removed", || async {
        match raw(&client, "GET", "/api/v1/namespaces/t1", None, None).await {
            (404, _) => Ok(()),
            (_, v) => Err(v.to_string()),
        }
    })
    .await;
    assert_eq!(status_of(api.get("c").await).code, 404);
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.metadata.name.unwrap())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let (code, _) = raw(&client, "GET", "/api/v1/namespaces/t1", None, None).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn delete_preconditions_are_checked() {
    let (_kube, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    let stale = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("other".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let s = status_of(api.delete("c", &stale).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(
        s.message
            .contains("Precondition failed: UID in precondition: other"),
        "{}",
        s.message
    );
    let uid = api.get("c").await.unwrap().metadata.uid;
    let right = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid,
            resource_version: None,
        }),
        ..Default::default()
    };
    api.delete("c", &right).await.unwrap();
}

#[tokio::test]
async fn delete_collection_by_label_and_pods_by_node() {
    let (_kube, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for (name, app) in [("a", "x"), ("b", "x"), ("c", "y")] {
        api.create(&PostParams::default(), &cm(name, json!({"app": app})))
            .await
            .unwrap();
    }
    let gone = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app=x"),
        )
        .await
        .unwrap();
    assert_eq!(gone.left().unwrap().items.len(), 2);
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["c"]);

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, node) in [("p1", "n1"), ("p2", "n2")] {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]}})).unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    let all: Api<Pod> = Api::all(client);
    let on_n2 = all
        .list(&ListParams::default().fields("spec.nodeName=n2,status.phase=Pending"))
        .await
        .unwrap();
    assert_eq!(
        on_n2
            .items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect::<Vec<_>>(),
        ["p2"]
    );
}

#[tokio::test]
async fn malformed_objects_are_refused_not_fatal() {
    let (_kube, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    for patch in [
        json!({"metadata": "x"}),
        json!({"metadata": {"labels": ["a"]}}),
    ] {
        let s = status_of(
            api.patch("c", &PatchParams::default(), &Patch::Merge(&patch))
                .await,
        );
        assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"), "{patch}");
    }
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "", "value": 1}])).unwrap();
    assert_eq!(
        status_of(
            api.patch("c", &PatchParams::default(), &Patch::<()>::Json(jp))
                .await
        )
        .code,
        400
    );
    let (code, _) = raw(
        &client,
        "POST",
        "/api/v1/namespaces",
        Some("application/json"),
        Some(&json!({"metadata": {"name": "n", "labels": "x"}})),
    )
    .await;
    assert_eq!(code, 400);
    assert!(api.get("c").await.is_ok(), "the server still answers");
}

#[tokio::test]
async fn secret_string_data_is_written_into_data_and_never_returned() {
    use k8s_openapi::api::core::v1::Secret;
    let (_kube, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client, "default");
    let body: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "data": {"kept": "a2VwdA==", "over": "b2xk"},
        "stringData": {"over": "new", "plain": "text"}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &body).await.unwrap();
    assert!(created.string_data.is_none());
    let data = created.data.unwrap();
    let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    assert_eq!(
        (text("kept"), text("over"), text("plain")),
        ("kept".into(), "new".into(), "text".into())
    );
    assert_eq!(created.type_.as_deref(), Some("Opaque"));

    // Server-side apply goes through the same write path.
    let patch = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"plain": "changed"}});
    let applied = api
        .patch("s", &PatchParams::apply("t").force(), &Patch::Apply(&patch))
        .await
        .unwrap();
    assert!(applied.string_data.is_none());
    assert_eq!(applied.data.unwrap()["plain"].0, b"changed");
}
