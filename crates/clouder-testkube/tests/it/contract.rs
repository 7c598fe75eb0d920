//! The contract: one set of expectations, two servers. Every case runs against testkube and, when
//! `CLOUDER_TEST_REAL_KUBECONFIG` names a real cluster's kubeconfig, against that cluster too, each
//! in a namespace of its own. A case that passes on the real cluster and fails on testkube is a
//! testkube bug.

use crate::common::status_of;
use clouder_testkube::TestKube;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::Client;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;
use std::sync::Once;

/// A server the contract runs against; the testkube one lives as long as this does.
struct Target {
    name: &'static str,
    client: Client,
    _kube: Option<TestKube>,
}

async fn targets() -> Vec<Target> {
    let kube = TestKube::start().await.expect("testkube starts");
    let mut all = vec![Target {
        name: "testkube",
        client: kube.client().await.unwrap(),
        _kube: Some(kube),
    }];
    match std::env::var_os("CLOUDER_TEST_REAL_KUBECONFIG") {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(&path)
                .unwrap_or_else(|e| panic!("CLOUDER_TEST_REAL_KUBECONFIG={path:?}: {e}"));
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .unwrap();
            all.push(Target {
                name: "real cluster",
                client: Client::try_from(config).unwrap(),
                _kube: None,
            });
        }
        None => {
            static NOTE: Once = Once::new();
            NOTE.call_once(|| {
                eprintln!(
                    "contract: CLOUDER_TEST_REAL_KUBECONFIG is not set; checking testkube only"
                )
            });
        }
    }
    all
}

/// A fresh namespace for one case on one server; deleted afterwards.
async fn namespace(client: &Client) -> String {
    let name = format!(
        "contract-{}",
        uuid::Uuid::new_v4().simple().to_string().split_at(8).0
    );
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    name
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $case() {
            for t in targets().await {
                let ns = namespace(&t.client).await;
                eprintln!("contract {} on {}", stringify!($case), t.name);
                cases::$case(t.client.clone(), &ns).await;
                let _ = Api::<Namespace>::all(t.client.clone()).delete(&ns, &DeleteParams::default()).await;
            }
        }
    )*};
}

contract!(
    writes_conflict_and_missing_objects_are_not_found,
    patches_merge_by_the_schema,
    server_side_apply_owns_fields,
    finalizers_hold_deletion,
    watches_see_every_change,
    label_selectors_filter_lists,
    pods_on_a_node_are_deleted_gracefully,
    pods_tolerate_an_unready_node_for_five_minutes,
);

/// A pod with a 20 s grace period, bound to a node no kubelet serves when `node` is given.
fn pod(name: &str, node: Option<&str>) -> Pod {
    let mut spec = json!({"terminationGracePeriodSeconds": 20, "containers": [{"name": "c", "image": "busybox"}]});
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn cm(name: &str, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).unwrap()
}

mod cases {
    use super::*;

    pub async fn writes_conflict_and_missing_objects_are_not_found(client: Client, ns: &str) {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let made = api
            .create(&PostParams::default(), &cm("c", json!({"a": "1"})))
            .await
            .unwrap();
        let dup = status_of(
            api.create(&PostParams::default(), &cm("c", json!({})))
                .await,
        );
        assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
        assert_eq!(dup.message, "configmaps \"c\" already exists");
        let missing = status_of(api.get("nope").await);
        assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
        assert_eq!(missing.message, "configmaps \"nope\" not found");
        let d = missing.details.unwrap();
        assert_eq!((d.name.as_str(), d.kind.as_str()), ("nope", "configmaps"));

        let mut fresh = made.clone();
        fresh.data = Some([("a".to_string(), "2".to_string())].into());
        api.replace("c", &PostParams::default(), &fresh)
            .await
            .unwrap();
        let stale = status_of(api.replace("c", &PostParams::default(), &made).await);
        assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
        assert_eq!(
            stale.message,
            "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"
        );
        let elsewhere: Api<ConfigMap> = Api::namespaced(client, "contract-missing-namespace");
        let gone = status_of(
            elsewhere
                .create(&PostParams::default(), &cm("c", json!({})))
                .await,
        );
        assert_eq!(
            (gone.code, gone.message.as_str()),
            (404, "namespaces \"contract-missing-namespace\" not found")
        );
    }

    pub async fn patches_merge_by_the_schema(client: Client, ns: &str) {
        let api: Api<Deployment> = Api::namespaced(client, ns);
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "d"}}, "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "a", "image": "registry.invalid/a", "ports": [{"containerPort": 80}]}, {"name": "b", "image": "registry.invalid/b"}]}
            }}
        }))
        .unwrap();
        api.create(&PostParams::default(), &d).await.unwrap();
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "registry.invalid/b2"}, {"name": "a", "ports": [{"containerPort": 81}]}]}}}});
        let after = api
            .patch("d", &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .unwrap();
        let cs = after.spec.template.spec.unwrap().containers;
        let summary: Vec<(String, Option<String>, usize)> = cs
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.image.clone(),
                    c.ports.as_ref().map_or(0, Vec::len),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("a".into(), Some("registry.invalid/a".into()), 2),
                ("b".into(), Some("registry.invalid/b2".into()), 0)
            ]
        );
        assert_eq!(after.metadata.generation, Some(2));
        let merged = api
            .patch(
                "d",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})),
            )
            .await
            .unwrap();
        assert_eq!(
            merged.metadata.generation,
            Some(2),
            "metadata changes leave the generation"
        );
        let failed = status_of(
            api.patch(
                "d",
                &PatchParams::default(),
                &Patch::<()>::Json(
                    serde_json::from_value(
                        json!([{"op": "test", "path": "/spec/replicas", "value": 5}]),
                    )
                    .unwrap(),
                ),
            )
            .await,
        );
        assert_eq!((failed.code, failed.reason.as_str()), (422, "Invalid"));
    }

    pub async fn server_side_apply_owns_fields(client: Client, ns: &str) {
        let api: Api<ConfigMap> = Api::namespaced(client, ns);
        let config = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"k": v}});
        let one = PatchParams::apply("one");
        let first = api
            .patch("s", &one, &Patch::Apply(config("1")))
            .await
            .unwrap();
        let again = api
            .patch("s", &one, &Patch::Apply(config("1")))
            .await
            .unwrap();
        assert_eq!(
            first.metadata.resource_version, again.metadata.resource_version,
            "re-apply is a no-op"
        );
        let refused = status_of(
            api.patch("s", &PatchParams::apply("two"), &Patch::Apply(config("2")))
                .await,
        );
        assert_eq!((refused.code, refused.reason.as_str()), (409, "Conflict"));
        assert_eq!(
            refused.message,
            "Apply failed with 1 conflict: conflict with \"one\": .data.k"
        );
        let causes = refused.details.unwrap().causes;
        assert_eq!(
            (causes[0].reason.as_str(), causes[0].field.as_str()),
            ("FieldManagerConflict", ".data.k")
        );
        let forced = api
            .patch(
                "s",
                &PatchParams::apply("two").force(),
                &Patch::Apply(config("2")),
            )
            .await
            .unwrap();
        let managers: Vec<String> = forced
            .metadata
            .managed_fields
            .unwrap()
            .into_iter()
            .filter_map(|m| m.manager)
            .collect();
        assert_eq!(managers, ["two"]);
    }

    pub async fn finalizers_hold_deletion(client: Client, ns: &str) {
        let api: Api<ConfigMap> = Api::namespaced(client, ns);
        let mut held = cm("f", json!({}));
        held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
        api.create(&PostParams::default(), &held).await.unwrap();
        let marked = api
            .delete("f", &DeleteParams::default())
            .await
            .unwrap()
            .left()
            .expect("kept while held");
        assert!(marked.metadata.deletion_timestamp.is_some());
        assert!(api.get("f").await.is_ok());
        api.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
        assert_eq!(status_of(api.get("f").await).code, 404);
    }

    pub async fn watches_see_every_change(client: Client, ns: &str) {
        let api: Api<ConfigMap> = Api::namespaced(client, ns);
        let start = api
            .list(&ListParams::default())
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        let mut stream = api
            .watch(&WatchParams::default().timeout(10), &start)
            .await
            .unwrap()
            .boxed();
        api.create(&PostParams::default(), &cm("w", json!({})))
            .await
            .unwrap();
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "v"}})),
        )
        .await
        .unwrap();
        api.delete("w", &DeleteParams::default()).await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 3 {
            match stream
                .try_next()
                .await
                .unwrap()
                .expect("the watch stays open")
            {
                WatchEvent::Added(c) => seen.push(("ADDED", c.data)),
                WatchEvent::Modified(c) => seen.push(("MODIFIED", c.data)),
                WatchEvent::Deleted(c) => seen.push(("DELETED", c.data)),
                WatchEvent::Bookmark(_) => {}
                WatchEvent::Error(e) => panic!("{e:?}"),
            }
        }
        let data = Some([("k".to_string(), "v".to_string())].into());
        assert_eq!(
            seen,
            [
                ("ADDED", None),
                ("MODIFIED", data.clone()),
                ("DELETED", data)
            ]
        );
    }

    pub async fn label_selectors_filter_lists(client: Client, ns: &str) {
        let api: Api<ConfigMap> = Api::namespaced(client, ns);
        for (name, labels) in [
            ("a", json!({"tier": "web", "env": "prod"})),
            ("b", json!({"tier": "db", "env": "prod"})),
            ("c", json!({"tier": "web"})),
        ] {
            let c: ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
                    .unwrap();
            api.create(&PostParams::default(), &c).await.unwrap();
        }
        let names = |sel: &'static str| {
            let api = api.clone();
            async move {
                let mut n: Vec<String> = api
                    .list(&ListParams::default().labels(sel))
                    .await
                    .unwrap()
                    .items
                    .into_iter()
                    .filter_map(|c| c.metadata.name)
                    .collect();
                n.sort();
                n
            }
        };
        assert_eq!(names("tier=web").await, ["a", "c"]);
        assert_eq!(names("tier in (web,db),env").await, ["a", "b"]);
        assert_eq!(names("!env").await, ["c"]);
        assert_eq!(names("tier!=web").await, ["b"]);
        let page = api.list(&ListParams::default().limit(2)).await.unwrap();
        assert_eq!(page.items.len(), 2);
        let rest = api
            .list(
                &ListParams::default()
                    .limit(2)
                    .continue_token(page.metadata.continue_.as_deref().unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 1);
        assert!(rest.metadata.continue_.is_none_or(|c| c.is_empty()));
    }

    pub async fn pods_on_a_node_are_deleted_gracefully(client: Client, ns: &str) {
        let api: Api<Pod> = Api::namespaced(client, ns);
        let grace = |p: &Pod| p.metadata.deletion_grace_period_seconds;
        let deadline = |p: &Pod| p.metadata.deletion_timestamp.clone().unwrap().0;
        // No kubelet has an unbound pod: it goes at once.
        api.create(&PostParams::default(), &pod("free", None))
            .await
            .unwrap();
        api.delete("free", &DeleteParams::default()).await.unwrap();
        assert_eq!(status_of(api.get("free").await).code, 404);

        let made = api
            .create(
                &PostParams::default(),
                &pod("bound", Some("contract-gone-node")),
            )
            .await
            .unwrap();
        let rv = made.metadata.resource_version.clone().unwrap();
        let mut stream = api
            .watch(&WatchParams::default().timeout(10), &rv)
            .await
            .unwrap()
            .boxed();
        let asked = jiff::Timestamp::now();
        let marked = api
            .delete("bound", &DeleteParams::default())
            .await
            .unwrap()
            .left()
            .expect("the pod comes back");
        // Its own grace period: marked for the kubelet to stop it, and still there.
        assert_eq!(grace(&marked), Some(20));
        let wait = deadline(&marked).duration_since(asked).as_secs();
        assert!((18..=21).contains(&wait), "deletion in {wait}s");
        let live = api.get("bound").await.unwrap();
        assert_eq!(grace(&live), Some(20));
        // A second DELETE may shorten the grace period, never lengthen it.
        let longer = DeleteParams::default().grace_period(60);
        let same = api.delete("bound", &longer).await.unwrap().left().unwrap();
        assert_eq!(
            (grace(&same), deadline(&same)),
            (Some(20), deadline(&marked))
        );
        let shorter = DeleteParams::default().grace_period(5);
        let short = api.delete("bound", &shorter).await.unwrap().left().unwrap();
        assert_eq!(grace(&short), Some(5));
        assert_eq!(
            deadline(&marked).duration_since(deadline(&short)).as_secs(),
            15
        );
        // The kubelet's final word: grace 0 for this very pod (a stale uid is refused).
        let stale = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(kube::api::Preconditions {
                uid: Some("00000000-0000-0000-0000-000000000000".into()),
                resource_version: None,
            }),
            ..Default::default()
        };
        assert_eq!(status_of(api.delete("bound", &stale).await).code, 409);
        let finish = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: made.metadata.uid.clone(),
                resource_version: None,
            }),
            ..stale
        };
        api.delete("bound", &finish).await.unwrap();
        assert_eq!(status_of(api.get("bound").await).code, 404);
        let mut kinds = Vec::new();
        while kinds.last() != Some(&"DELETED") {
            match stream.try_next().await.unwrap().expect("the watch goes on") {
                WatchEvent::Modified(p) => {
                    assert!(p.metadata.deletion_timestamp.is_some());
                    kinds.push("MODIFIED");
                }
                WatchEvent::Deleted(_) => kinds.push("DELETED"),
                WatchEvent::Bookmark(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        // Marked, shortened, and at 0 (the store writes each mark) before it goes.
        assert_eq!(kinds, ["MODIFIED", "MODIFIED", "MODIFIED", "DELETED"]);
    }

    pub async fn pods_tolerate_an_unready_node_for_five_minutes(client: Client, ns: &str) {
        let api: Api<Pod> = Api::namespaced(client, ns);
        let tolerations = |p: &Pod| {
            let mut t: Vec<(String, String, String, Option<i64>)> = p
                .spec
                .clone()
                .unwrap()
                .tolerations
                .unwrap_or_default()
                .into_iter()
                .map(|t| {
                    (
                        t.key.unwrap_or_default(),
                        t.operator.unwrap_or_default(),
                        t.effect.unwrap_or_default(),
                        t.toleration_seconds,
                    )
                })
                .collect();
            t.sort();
            t
        };
        let plain = api
            .create(&PostParams::default(), &pod("plain", None))
            .await
            .unwrap();
        let default = |key: &str| {
            (
                key.to_string(),
                "Exists".to_string(),
                "NoExecute".to_string(),
                Some(300),
            )
        };
        assert_eq!(
            tolerations(&plain),
            [
                default("node.kubernetes.io/not-ready"),
                default("node.kubernetes.io/unreachable")
            ]
        );
        // A pod that tolerates one of them itself keeps its own and gets only the other.
        let mut own = pod("own", None);
        own.spec.as_mut().unwrap().tolerations = Some(vec![
            serde_json::from_value(json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2})).unwrap(),
        ]);
        let own = api.create(&PostParams::default(), &own).await.unwrap();
        assert_eq!(
            tolerations(&own),
            [
                default("node.kubernetes.io/not-ready"),
                (
                    "node.kubernetes.io/unreachable".into(),
                    "Exists".into(),
                    "NoExecute".into(),
                    Some(2)
                )
            ]
        );
    }
}
