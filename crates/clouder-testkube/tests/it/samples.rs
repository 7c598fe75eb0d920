//! Replays requests captured from a real kube-apiserver v1.36 and compares the response shapes.

use crate::common::{raw, start};
use serde_json::Value;

fn samples() -> Value {
    let text = include_str!("../data/samples.json");
    serde_json::from_str::<Value>(text).unwrap()["samples"].clone()
}

/// Status code, reason, message and the fields of each cause must match; uids and times may not.
fn assert_same_shape(name: &str, want_code: u64, want: &Value, code: u16, got: &Value) {
    assert_eq!(
        u64::from(code),
        want_code,
        "{name}: status code; body {got}"
    );
    if want["kind"] == "Status" {
        for k in ["kind", "apiVersion", "status", "reason", "message", "code"] {
            assert_eq!(got[k], want[k], "{name}: Status.{k}");
        }
        let (wd, gd) = (&want["details"], &got["details"]);
        for k in ["name", "kind", "group"] {
            assert_eq!(gd[k], wd[k], "{name}: details.{k}");
        }
        let causes = |d: &Value| -> Vec<Value> {
            d["causes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| serde_json::json!([c["reason"], c["field"], c["message"]]))
                .collect()
        };
        assert_eq!(causes(gd), causes(wd), "{name}: details.causes");
    } else {
        assert_eq!(got["kind"], want["kind"], "{name}: kind");
        assert_eq!(got["apiVersion"], want["apiVersion"], "{name}: apiVersion");
        for k in ["name", "namespace", "generateName", "labels", "finalizers"] {
            assert_eq!(
                got["metadata"][k].is_null(),
                want["metadata"][k].is_null(),
                "{name}: metadata.{k} presence"
            );
        }
        for k in ["uid", "resourceVersion", "creationTimestamp"] {
            assert!(
                got["metadata"][k].is_string(),
                "{name}: metadata.{k} is set"
            );
        }
        let managers = |v: &Value| -> Vec<Value> {
            v["metadata"]["managedFields"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["operation"] == "Apply")
                .map(|m| serde_json::json!([m["manager"], m["fieldsV1"]]))
                .collect()
        };
        assert_eq!(
            managers(got),
            managers(want),
            "{name}: applied managedFields"
        );
    }
}

#[tokio::test]
async fn replayed_requests_answer_like_the_real_server() {
    let (_kube, client) = start().await;
    let all = samples();
    let sequence = [
        "create namespace",
        "create",
        "create again (AlreadyExists)",
        "create with generateName",
        "create in a missing namespace",
        "namespace in body differs from the path",
        "get missing (NotFound)",
        "update with stale resourceVersion (Conflict)",
        "server-side apply (create)",
        "server-side apply conflict",
        "server-side apply force",
        "json patch test failure",
    ];
    for name in sequence {
        let s = &all[name];
        let req = &s["request"];
        let mut body = req["body"].clone();
        // The capture logged the second apply's body for the first; the response shows what was sent.
        if name == "server-side apply (create)" {
            body["data"] = s["body"]["data"].clone();
        }
        let body = (!body.is_null()).then_some(&body);
        let (code, got) = raw(
            &client,
            req["method"].as_str().unwrap(),
            req["path"].as_str().unwrap(),
            req["contentType"].as_str(),
            body,
        )
        .await;
        assert_same_shape(name, s["status"].as_u64().unwrap(), &s["body"], code, &got);
    }
}

#[tokio::test]
async fn discovery_matches_the_real_server_for_served_resources() {
    let (_kube, client) = start().await;
    let all = samples();
    for name in [
        "discovery /api/v1",
        "discovery /apis/apps/v1",
        "discovery /apis/policy/v1",
        "discovery /apis/apiextensions.k8s.io/v1",
    ] {
        let s = &all[name];
        let (code, got) = raw(
            &client,
            "GET",
            s["request"]["path"].as_str().unwrap(),
            None,
            None,
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(got["kind"], s["body"]["kind"]);
        assert_eq!(
            got["apiVersion"], s["body"]["apiVersion"],
            "{name}: apiVersion"
        );
        assert_eq!(got["groupVersion"], s["body"]["groupVersion"]);
        let ours = got["resources"].as_array().unwrap();
        for want in s["body"]["resources"].as_array().unwrap() {
            let Some(have) = ours.iter().find(|r| r["name"] == want["name"]) else {
                continue;
            };
            for k in [
                "singularName",
                "namespaced",
                "kind",
                "verbs",
                "shortNames",
                "group",
                "version",
            ] {
                let norm = |v: &Value| match v.as_array() {
                    Some(a) => {
                        let mut a: Vec<String> = a.iter().map(|x| x.to_string()).collect();
                        a.sort();
                        serde_json::json!(a)
                    }
                    None => v.clone(),
                };
                assert_eq!(
                    norm(&have[k]),
                    norm(&want[k]),
                    "{name}: {}.{k}",
                    want["name"]
                );
            }
        }
        let covered = ours
            .iter()
            .filter(|r| {
                s["body"]["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|w| w["name"] == r["name"])
            })
            .count();
        assert!(
            covered * 2 >= ours.len(),
            "{name}: most served resources appear in the real discovery"
        );
    }
    let (_, v) = raw(&client, "GET", "/version", None, None).await;
    let want = &all["discovery /version"]["body"];
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&v), keys(want));
}

/// Lists: the kind, and which of `continue` and `remainingItemCount` are present.
#[tokio::test]
async fn paged_lists_answer_like_the_real_server() {
    let (_kube, client) = start().await;
    let all = samples();
    raw(
        &client,
        "POST",
        "/api/v1/namespaces",
        Some("application/json"),
        Some(&all["create namespace"]["request"]["body"]),
    )
    .await;
    for (name, labels) in [
        ("c", serde_json::json!({"app": "a"})),
        ("d", serde_json::json!({})),
    ] {
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}});
        let (code, _) = raw(
            &client,
            "POST",
            "/api/v1/namespaces/t1/configmaps",
            Some("application/json"),
            Some(&cm),
        )
        .await;
        assert_eq!(code, 201);
    }
    for name in [
        "list with labelSelector and limit=1",
        "list with limit=1 (continue token)",
    ] {
        let s = &all[name];
        let (code, got) = raw(
            &client,
            "GET",
            s["request"]["path"].as_str().unwrap(),
            None,
            None,
        )
        .await;
        let want = &s["body"];
        assert_eq!(u64::from(code), s["status"].as_u64().unwrap(), "{name}");
        assert_eq!(
            (&got["kind"], &got["apiVersion"]),
            (&want["kind"], &want["apiVersion"]),
            "{name}"
        );
        for k in ["resourceVersion", "continue", "remainingItemCount"] {
            assert_eq!(
                got["metadata"][k].is_null(),
                want["metadata"][k].is_null(),
                "{name}: metadata.{k} presence"
            );
        }
        assert_eq!(
            got["items"].as_array().unwrap().len(),
            want["items"].as_array().unwrap().len(),
            "{name}"
        );
        assert!(
            got["items"][0].get("kind").is_none(),
            "{name}: list items carry no kind"
        );
    }
}

/// Deleting an object held by a finalizer, and a PodDisruptionBudget refusing then allowing an eviction.
#[tokio::test]
async fn finalizers_and_eviction_answer_like_the_real_server() {
    let (_kube, client) = start().await;
    let all = samples();
    raw(
        &client,
        "POST",
        "/api/v1/namespaces",
        Some("application/json"),
        Some(&all["create namespace"]["request"]["body"]),
    )
    .await;
    let held = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "f", "finalizers": ["bar.example.com/hold"]}});
    raw(
        &client,
        "POST",
        "/api/v1/namespaces/t1/configmaps",
        Some("application/json"),
        Some(&held),
    )
    .await;
    let s = &all["delete with finalizer"];
    let (code, got) = raw(
        &client,
        "DELETE",
        s["request"]["path"].as_str().unwrap(),
        None,
        None,
    )
    .await;
    assert_eq!(u64::from(code), s["status"].as_u64().unwrap());
    for k in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "finalizers",
    ] {
        assert_eq!(
            got["metadata"][k].is_null(),
            s["body"]["metadata"][k].is_null(),
            "metadata.{k}"
        );
    }
    assert_eq!(
        got["metadata"]["deletionGracePeriodSeconds"],
        s["body"]["metadata"]["deletionGracePeriodSeconds"]
    );

    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    raw(
        &client,
        "POST",
        "/api/v1/namespaces/t1/pods",
        Some("application/json"),
        Some(&pod),
    )
    .await;
    let ready =
        serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let (code, _) = raw(
        &client,
        "PATCH",
        "/api/v1/namespaces/t1/pods/p/status",
        Some("application/merge-patch+json"),
        Some(&ready),
    )
    .await;
    assert_eq!(code, 200);
    let pdb = serde_json::json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdb"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "x"}}}});
    raw(
        &client,
        "POST",
        "/apis/policy/v1/namespaces/t1/poddisruptionbudgets",
        Some("application/json"),
        Some(&pdb),
    )
    .await;
    let s = &all["eviction refused by PDB"];
    let req = &s["request"];
    let (code, got) = raw(
        &client,
        "POST",
        req["path"].as_str().unwrap(),
        Some("application/json"),
        Some(&req["body"]),
    )
    .await;
    assert_same_shape(
        "eviction refused by PDB",
        s["status"].as_u64().unwrap(),
        &s["body"],
        code,
        &got,
    );

    let (code, _) = raw(
        &client,
        "DELETE",
        "/apis/policy/v1/namespaces/t1/poddisruptionbudgets/pdb",
        None,
        None,
    )
    .await;
    assert_eq!(code, 200);
    let s = &all["eviction accepted"];
    let req = &s["request"];
    let (code, got) = raw(
        &client,
        "POST",
        req["path"].as_str().unwrap(),
        Some("application/json"),
        Some(&req["body"]),
    )
    .await;
    assert_eq!(
        (u64::from(code), &got),
        (s["status"].as_u64().unwrap(), &s["body"])
    );
}

/// The read-only user's refusal: same code, reason and details (the real message adds RBAC detail).
#[tokio::test]
async fn read_only_refusal_answers_like_the_real_server() {
    let (kube, _) = start().await;
    let reader = kube.read_only_client().await.unwrap();
    let s = &samples()["forbidden (read-only user creates)"];
    let req = &s["request"];
    let (code, got) = raw(
        &reader,
        "POST",
        req["path"].as_str().unwrap(),
        Some("application/json"),
        Some(&req["body"]),
    )
    .await;
    assert_eq!(u64::from(code), s["status"].as_u64().unwrap());
    for k in ["kind", "status", "reason", "details", "code"] {
        assert_eq!(got[k], s["body"][k], "{k}");
    }
    let prefix = "namespaces is forbidden: User \"reader\" cannot create resource \"namespaces\" in API group \"\" at the cluster scope";
    assert!(s["body"]["message"].as_str().unwrap().starts_with(prefix));
    assert_eq!(got["message"], prefix);
}
