//! Watches: kube-rs's watcher, raw resumption from a resourceVersion, selectors and bookmarks.

use crate::common::start;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use std::time::Duration;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "w"}}})).unwrap()
}

#[tokio::test]
async fn runtime_watcher_sees_added_modified_deleted() {
    let (_kube, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    // The initial listing ends with InitDone; only then do changes arrive as Apply/Delete.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Event::InitDone => break,
            _ => continue,
        }
    }
    api.create(&PostParams::default(), &cm("w")).await.unwrap();
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
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            Event::Apply(o) => seen.push(format!("apply {}", o.data.map(|d| d.len()).unwrap_or(0))),
            Event::Delete(_) => seen.push("delete".to_string()),
            _ => {}
        }
    }
    assert_eq!(seen, ["apply 0", "apply 1", "delete"]);
}

#[tokio::test]
async fn raw_watch_resumes_from_a_resource_version_with_selectors() {
    let (_kube, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let other: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "b"}})).unwrap();
    api.create(&PostParams::default(), &other).await.unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "gone"}}})),
    )
    .await
    .unwrap();

    let wp = WatchParams::default().labels("app=w").timeout(2);
    let events: Vec<WatchEvent<ConfigMap>> = api
        .watch(&wp, &rv)
        .await
        .unwrap()
        .take(3)
        .try_collect()
        .await
        .unwrap();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.clone().unwrap()),
            WatchEvent::Modified(o) => format!("MODIFIED {}", o.metadata.name.clone().unwrap()),
            WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.clone().unwrap()),
            WatchEvent::Bookmark(_) => "BOOKMARK".to_string(),
            WatchEvent::Error(e) => format!("ERROR {}", e.code),
        })
        .collect();
    // `b` never matches; `a` leaving the selection is a DELETED for this watcher.
    assert_eq!(kinds, ["ADDED a", "DELETED a", "BOOKMARK"]);
}

#[tokio::test]
async fn watch_ends_after_timeout_seconds() {
    let (_kube, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let stream = api
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), &rv)
        .await
        .unwrap();
    let events: Vec<_> = tokio::time::timeout(Duration::from_secs(10), stream.collect::<Vec<_>>())
        .await
        .expect("the server ends the watch");
    assert!(events.is_empty());
}

#[tokio::test]
async fn resuming_from_a_compacted_resource_version_is_410_expired() {
    let options = clouder_testkube::Options {
        watch_history: 3,
        ..Default::default()
    };
    let kube = clouder_testkube::TestKube::start_with(options)
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(kube.client().await.unwrap(), "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for n in ["a", "b", "c", "d", "e"] {
        api.create(&PostParams::default(), &cm(n)).await.unwrap();
    }
    let events: Vec<WatchEvent<ConfigMap>> = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    match events.as_slice() {
        [WatchEvent::Error(e)] => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected one 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_watcher_does_not_hold_up_writes_or_other_watchers() {
    let options = clouder_testkube::Options {
        watch_backlog: 8,
        ..Default::default()
    };
    let kube = clouder_testkube::TestKube::start_with(options)
        .await
        .unwrap();
    let client = kube.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("big"))
        .await
        .unwrap();
    let rv = api
        .get("big")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default().disable_bookmarks();
    // Opened and never read while the writes happen.
    let slow = api.watch(&wp, &rv).await.unwrap().boxed();
    let mut fast = api.watch(&wp, &rv).await.unwrap().boxed();
    let payload = "x".repeat(1_000_000);
    let writes = 40;
    for i in 0..writes {
        let patch = json!({"data": {"payload": payload, "i": i.to_string()}});
        api.patch("big", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        // Keep the fast watcher drained so only the slow one falls behind.
        match tokio::time::timeout(Duration::from_secs(10), fast.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Modified(o) => assert_eq!(o.data.unwrap()["i"], i.to_string()),
            other => panic!("unexpected event {other:?}"),
        }
    }
    // The slow watcher gets what was buffered, then 410 Expired: it must list and watch again.
    let events: Vec<WatchEvent<ConfigMap>> =
        tokio::time::timeout(Duration::from_secs(20), slow.try_collect())
            .await
            .unwrap()
            .unwrap();
    assert!(events.len() < writes + 1, "{} events", events.len());
    match events.last() {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => panic!("expected a 410 at the end, got {other:?}"),
    }
}
