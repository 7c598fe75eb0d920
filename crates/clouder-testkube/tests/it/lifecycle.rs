//! What happens to pods over time with `--controllers`: graceful deletion finished by the kubelet,
//! the pod GC, the taint manager's NoExecute evictions, and the timers of Deployments
//! (`minReadySeconds`, `progressDeadlineSeconds`).

use crate::controllers::{deployment, eventually, from, start};
use clouder_testkube::NodeConfig;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};

fn bound_pod(name: &str, node: &str, tolerations: serde_json::Value) -> Pod {
    from(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "tolerations": tolerations, "containers": [{"name": "c", "image": "x"}]},
    }))
}

fn condition(p: &Pod, kind: &str) -> Option<(String, Option<String>)> {
    let c = p
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)?;
    Some((c.status.clone(), c.reason.clone()))
}

fn terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

async fn gone(pods: &Api<Pod>, name: &str) {
    eventually(&format!("{name} gone"), || async {
        match pods.get(name).await {
            Err(_) => Ok(()),
            Ok(p) => Err(format!("{:?}", p.metadata)),
        }
    })
    .await
}

/// Replaces the node's taints with one NoExecute taint, as an administrator does.
async fn set_no_execute(nodes: &Api<Node>, node: &str, key: &str, value: &str) {
    let taints = json!({"spec": {"taints": [{"key": key, "value": value, "effect": "NoExecute"}]}});
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(taints))
        .await
        .unwrap();
}

#[tokio::test]
async fn deleted_pods_terminate_until_their_kubelet_finishes_them() {
    let (_kube, client, kubelet) = start().await;
    kubelet.register(&NodeConfig::new("n1")).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rs: ReplicaSet = from(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}},
    }));
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    sets.create(&PostParams::default(), &rs).await.unwrap();
    let lp = ListParams::default().labels("app=web");
    eventually("two bound pods", || async {
        let l = pods.list(&lp).await.unwrap().items;
        let bound = l
            .iter()
            .filter(|p| p.spec.as_ref().unwrap().node_name.is_some());
        if bound.count() == 2 {
            Ok(())
        } else {
            Err(format!("{}", l.len()))
        }
    })
    .await;
    // Scaled down, the ReplicaSet deletes a pod; it terminates (30 s by default) and is no longer
    // counted, while it is still there.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    let going = eventually("a terminating pod", || async {
        let l = pods.list(&lp).await.unwrap().items;
        match l.iter().find(|p| terminating(p)) {
            Some(p) => Ok(p.clone()),
            None => Err(format!("{}", l.len())),
        }
    })
    .await;
    assert_eq!(going.metadata.deletion_grace_period_seconds, Some(30));
    let status = eventually("replicas 1", || async {
        let s = sets.get("web").await.unwrap().status.unwrap();
        if s.replicas == 1 {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    assert_eq!(status.replicas, 1);
    assert_eq!(
        pods.list(&lp).await.unwrap().items.len(),
        2,
        "still terminating"
    );
    // Status writes (its kubelet reporting it stopping) do not end a graceful deletion.
    let name = going.metadata.name.clone().unwrap();
    kubelet
        .set_pod_ready("default", &name, false)
        .await
        .unwrap();
    assert!(terminating(&pods.get(&name).await.unwrap()));
    // n1's kubelet finishes it.
    assert_eq!(
        kubelet.finish_deletions_on("n1").await.unwrap(),
        std::slice::from_ref(&name)
    );
    assert_eq!(crate::common::status_of(pods.get(&name).await).code, 404);
    assert_eq!(pods.list(&lp).await.unwrap().items.len(), 1);
    // With the background kubelet, a deletion finishes on its own.
    let _running = kubelet.start();
    let last = pods.list(&lp).await.unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    pods.delete(&last, &DeleteParams::default()).await.unwrap();
    eventually("the replacement only", || async {
        let l = pods.list(&lp).await.unwrap().items;
        let names: Vec<String> = l.iter().filter_map(|p| p.metadata.name.clone()).collect();
        if l.len() == 1 && !names.contains(&last) {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn the_pod_gc_force_deletes_pods_of_gone_or_out_of_service_nodes() {
    let (_kube, client, kubelet) = start().await;
    for n in ["n1", "n2"] {
        kubelet.register(&NodeConfig::new(n)).await.unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let nodes: Api<Node> = Api::all(client.clone());
    // A pod that tolerates the out-of-service taint stays until deleted; then it terminates.
    let forever = json!([{"operator": "Exists"}]);
    for (name, node) in [("a", "n1"), ("b", "n2")] {
        pods.create(
            &PostParams::default(),
            &bound_pod(name, node, forever.clone()),
        )
        .await
        .unwrap();
        pods.delete(name, &DeleteParams::default()).await.unwrap();
        assert!(terminating(&pods.get(name).await.unwrap()));
    }
    // n1 is gone: its pods are force-deleted with no kubelet to finish them.
    nodes.delete("n1", &DeleteParams::default()).await.unwrap();
    gone(&pods, "a").await;
    // n2 NotReady: its terminating pod stays, as on a real cluster, until the node is declared
    // out of service.
    kubelet.set_node_ready("n2", false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(terminating(&pods.get("b").await.unwrap()));
    set_no_execute(
        &nodes,
        "n2",
        "node.kubernetes.io/out-of-service",
        "nodeshutdown",
    )
    .await;
    gone(&pods, "b").await;
}

#[tokio::test]
async fn no_execute_taints_evict_pods_after_their_toleration_seconds() {
    let (_kube, client, kubelet) = start().await;
    kubelet.register(&NodeConfig::new("n1")).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let nodes: Api<Node> = Api::all(client.clone());
    let not_ready = |secs: Option<i64>| {
        let mut t = json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"});
        if let Some(s) = secs {
            t["tolerationSeconds"] = json!(s);
        }
        json!([t])
    };
    for (name, tolerations) in [
        ("brief", not_ready(Some(2))),
        ("forever", not_ready(None)),
        ("default", json!([])),
    ] {
        pods.create(&PostParams::default(), &bound_pod(name, "n1", tolerations))
            .await
            .unwrap();
    }
    kubelet.run_pods_on("n1").await.unwrap();
    kubelet.set_node_ready("n1", false).await.unwrap();
    let tainted = eventually("the not-ready NoExecute taint", || async {
        let n = nodes.get("n1").await.unwrap();
        let taints = n.spec.unwrap().taints.unwrap_or_default();
        match taints
            .iter()
            .find(|t| t.key == "node.kubernetes.io/not-ready" && t.effect == "NoExecute")
        {
            Some(t) => Ok(t.time_added.clone()),
            None => Err(format!("{taints:?}")),
        }
    })
    .await;
    assert!(
        tainted.is_some(),
        "a NoExecute taint records when it was added"
    );
    let seen = Instant::now();
    // Not before its 2 s (counted from the taint's whole second, so at least 1 s from now).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!terminating(&pods.get("brief").await.unwrap()));
    let evicted = eventually("brief evicted", || async {
        let p = pods.get("brief").await.unwrap();
        if terminating(&p) {
            Ok(p)
        } else {
            Err(format!("{:?}", p.metadata))
        }
    })
    .await;
    assert!(
        seen.elapsed() >= Duration::from_millis(900),
        "{:?}",
        seen.elapsed()
    );
    assert_eq!(
        condition(&evicted, "DisruptionTarget"),
        Some(("True".into(), Some("DeletionByTaintManager".into())))
    );
    for name in ["forever", "default"] {
        let p = pods.get(name).await.unwrap();
        assert!(!terminating(&p), "{name} tolerates not-ready for longer");
        assert_eq!(
            condition(&p, "Ready"),
            Some(("False".into(), Some("NodeNotReady".into())))
        );
    }
    // A NoExecute taint nothing tolerates evicts at once; a Ready node loses its not-ready taint.
    kubelet.set_node_ready("n1", true).await.unwrap();
    set_no_execute(&nodes, "n1", "dedicated", "db").await;
    eventually("forever and default evicted", || async {
        let l = pods.list(&ListParams::default()).await.unwrap().items;
        let left: Vec<_> = l
            .iter()
            .filter(|p| !terminating(p))
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
    let taints = nodes.get("n1").await.unwrap().spec.unwrap().taints.unwrap();
    let keys: Vec<&str> = taints.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, ["dedicated"]);
}

fn progressing(d: &Deployment) -> Option<(String, String, String)> {
    let c = d
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))?;
    Some((c.status.clone()?, c.reason.clone()?, c.message.clone()?))
}

#[tokio::test]
async fn pods_count_as_available_after_min_ready_seconds() {
    let (_kube, client, kubelet) = start().await;
    kubelet.register(&NodeConfig::new("n1")).await.unwrap();
    let _running = kubelet.start();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("slow", 2, "x:1");
    d.spec.min_ready_seconds = Some(2);
    api.create(&PostParams::default(), &d).await.unwrap();
    let ready_at = eventually("ready, not yet available", || async {
        let s = api.get("slow").await.unwrap().status.unwrap_or_default();
        if s.ready_replicas == Some(2) {
            Ok((Instant::now(), s))
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    let (ready_at, status) = ready_at;
    assert_eq!(status.available_replicas, None, "{status:?}");
    let done = eventually("available", || async {
        let d = api.get("slow").await.unwrap();
        let s = d.status.clone().unwrap_or_default();
        if s.available_replicas == Some(2) {
            Ok(d)
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    assert!(
        ready_at.elapsed() >= Duration::from_millis(900),
        "{:?}",
        ready_at.elapsed()
    );
    let (status, reason, message) = progressing(&done).unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "NewReplicaSetAvailable")
    );
    assert!(
        message.ends_with("has successfully progressed."),
        "{message}"
    );
}

#[tokio::test]
async fn a_rollout_without_progress_exceeds_its_deadline() {
    let (_kube, client, _kubelet) = start().await;
    // No node: the pods are never scheduled, so the rollout cannot progress.
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("stuck", 1, "x:1");
    d.spec.progress_deadline_seconds = Some(1);
    api.create(&PostParams::default(), &d).await.unwrap();
    let stuck = eventually("deadline exceeded", || async {
        let d = api.get("stuck").await.unwrap();
        match progressing(&d) {
            Some(p) if p.0 == "False" => Ok(p),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(stuck.1, "ProgressDeadlineExceeded");
    assert!(
        stuck.2.starts_with("ReplicaSet \"stuck-")
            && stuck.2.ends_with("\" has timed out progressing."),
        "{}",
        stuck.2
    );
    // Progress again (a node, a kubelet) completes it.
    let kubelet = clouder_testkube::Kubelet::new(client.clone());
    kubelet.register(&NodeConfig::new("n1")).await.unwrap();
    let _running = kubelet.start();
    eventually("complete", || async {
        let d = api.get("stuck").await.unwrap();
        match progressing(&d) {
            Some(p) if p.1 == "NewReplicaSetAvailable" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

#[tokio::test]
async fn recreate_starts_new_pods_once_the_old_are_gone() {
    let (_kube, client, kubelet) = start().await;
    kubelet.register(&NodeConfig::new("n1")).await.unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("re", 1, "x:1");
    d.spec.strategy = Some(from(json!({"type": "Recreate"})));
    api.create(&PostParams::default(), &d).await.unwrap();
    let lp = ListParams::default().labels("app=re");
    eventually("a bound pod", || async {
        let l = pods.list(&lp).await.unwrap().items;
        if l.iter()
            .any(|p| p.spec.as_ref().unwrap().node_name.is_some())
        {
            Ok(())
        } else {
            Err(format!("{}", l.len()))
        }
    })
    .await;
    kubelet.run_pods_on("n1").await.unwrap();
    let image =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:2"}]}}}});
    api.patch("re", &PatchParams::default(), &Patch::Strategic(image))
        .await
        .unwrap();
    eventually("the old pod terminating", || async {
        let l = pods.list(&lp).await.unwrap().items;
        if l.len() == 1 && terminating(&l[0]) {
            Ok(())
        } else {
            Err(format!("{l:?}"))
        }
    })
    .await;
    // No new pod while the old one terminates.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pods.list(&lp).await.unwrap().items.len(), 1);
    kubelet.finish_deletions_on("n1").await.unwrap();
    eventually("the new pod", || async {
        let l = pods.list(&lp).await.unwrap().items;
        let image = |p: &Pod| p.spec.as_ref().unwrap().containers[0].image.clone();
        if l.len() == 1 && image(&l[0]).as_deref() == Some("x:2") {
            Ok(())
        } else {
            Err(format!("{}", l.len()))
        }
    })
    .await;
}
