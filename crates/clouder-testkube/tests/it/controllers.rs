//! `--controllers`: Deployments, ReplicaSets, DaemonSets and StatefulSets make pods, the scheduler
//! binds them, node lifecycle marks them, and the garbage collector follows owner references.

use clouder_testkube::{Kubelet, NodeConfig, TestKube};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

pub async fn start() -> (TestKube, Client, Kubelet) {
    let kube = TestKube::start_with_controllers()
        .await
        .expect("testkube starts");
    let client = kube.client().await.expect("admin client");
    let kubelet = Kubelet::new(client.clone());
    (kube, client, kubelet)
}

/// Polls `check` until it returns Some, or panics after 10 s with the last state it saw.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if tokio::time::Instant::now() > deadline => {
                panic!("timed out waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

pub fn from<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("a valid object")
}

pub fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    from(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": image}]}},
        }
    }))
}

async fn pods_of(client: &Client, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
}

fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.node_name.clone())
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn owner_uid<K: Resource>(o: &K) -> Option<String> {
    o.meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

fn dbg<T: Debug>(v: T) -> String {
    format!("{v:?}")
}

#[tokio::test]
async fn a_deployment_rolls_out_through_replica_sets_to_ready_pods() {
    let (_kube, client, kubelet) = start().await;
    for n in ["n1", "n2"] {
        kubelet.register(&NodeConfig::new(n)).await.unwrap();
    }
    let _running = kubelet.start();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d = deployments
        .create(&PostParams::default(), &deployment("web", 3, "nginx:1"))
        .await
        .unwrap();
    let done = eventually("the rollout", || async {
        let d = deployments.get("web").await.unwrap();
        let s = d.status.clone().unwrap_or_default();
        let available = s.conditions.iter().flatten().any(|c| {
            c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")
        });
        if s.available_replicas == Some(3) && s.updated_replicas == Some(3) && available {
            Ok(d)
        } else {
            Err(dbg(s))
        }
    })
    .await;
    let status = done.status.unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!((status.replicas, status.ready_replicas), (Some(3), Some(3)));
    let progressing = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );

    let sets = Api::<ReplicaSet>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(sets.len(), 1);
    let rs = &sets[0];
    assert_eq!(owner_uid(rs), d.metadata.uid);
    let hash = rs.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        rs.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), "default")
        .list(
            &ListParams::default().fields("involvedObject.name=web,involvedObject.kind=Deployment"),
        )
        .await
        .unwrap()
        .items;
    let said: Vec<(Option<String>, Option<String>)> =
        events.into_iter().map(|e| (e.reason, e.message)).collect();
    assert_eq!(
        said,
        [(
            Some("ScalingReplicaSet".into()),
            Some(format!("Scaled up replica set web-{hash} from 0 to 3"))
        )]
    );
    let pods = pods_of(&client, "app=web").await;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert_eq!(owner_uid(p), rs.metadata.uid);
        assert!(
            p.metadata
                .name
                .as_ref()
                .unwrap()
                .starts_with(&format!("web-{hash}-"))
        );
        assert!(matches!(node_of(p).as_deref(), Some("n1" | "n2")), "{p:?}");
        assert!(is_ready(p));
    }

    // A new template rolls a second ReplicaSet in and the first one down to zero.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    eventually("the second rollout", || async {
        let s = deployments
            .get("web")
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        let pods = pods_of(&client, "app=web").await;
        let new = pods
            .iter()
            .filter(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("nginx:2"))
            .count();
        if s.observed_generation == Some(2)
            && s.updated_replicas == Some(3)
            && s.replicas == Some(3)
            && s.available_replicas == Some(3)
            && new == 3
            && pods.len() == 3
        {
            Ok(())
        } else {
            Err(format!("{s:?}, {new} new of {}", pods.len()))
        }
    })
    .await;
    let sets = Api::<ReplicaSet>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let replicas: Vec<(String, i32)> = sets
        .iter()
        .map(|rs| {
            (
                rs.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"]
                    .clone(),
                rs.spec.replicas.unwrap(),
            )
        })
        .collect();
    assert_eq!(replicas.len(), 2);
    assert!(
        replicas.contains(&("1".into(), 0)) && replicas.contains(&("2".into(), 3)),
        "{replicas:?}"
    );

    // Scaling down removes pods; deleting (background) takes the ReplicaSets and pods along.
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    eventually("scale down", || async {
        let n = pods_of(&client, "app=web").await.len();
        if n == 1 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
    deployments
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    eventually("garbage collection", || async {
        let sets = Api::<ReplicaSet>::namespaced(client.clone(), "default")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len();
        let pods = pods_of(&client, "app=web").await.len();
        if (sets, pods) == (0, 0) {
            Ok(())
        } else {
            Err(format!("{sets} sets, {pods} pods"))
        }
    })
    .await;
}

#[tokio::test]
async fn the_scheduler_honours_requests_taints_and_selectors() {
    let (_kube, client, kubelet) = start().await;
    kubelet
        .register(&NodeConfig::new("small").cpu("1").label("disk", "hdd"))
        .await
        .unwrap();
    kubelet
        .register(&NodeConfig::new("big").cpu("8").label("disk", "ssd").taint(
            "dedicated",
            "db",
            "NoSchedule",
        ))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = |name: &str, cpu: &str, extra: Value| -> Pod {
        let mut spec = json!({"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}]});
        json_patch::merge(&mut spec, &extra);
        from(json!({"metadata": {"name": name}, "spec": spec}))
    };
    // Fits on `small` only: `big` is tainted.
    pods.create(&PostParams::default(), &pod("a", "500m", json!({})))
        .await
        .unwrap();
    // Too big for `small`, and `big` is tainted: unschedulable, with the reasons.
    pods.create(&PostParams::default(), &pod("b", "2", json!({})))
        .await
        .unwrap();
    // Tolerates the taint and selects ssd.
    pods.create(&PostParams::default(), &pod("c", "2", json!({"nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}))).await.unwrap();
    // `small` has 500m left.
    pods.create(&PostParams::default(), &pod("d", "600m", json!({})))
        .await
        .unwrap();
    let placed = eventually("scheduling", || async {
        let all = pods.list(&ListParams::default()).await.unwrap().items;
        let unschedulable = |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
                .filter(|c| c.status == "False")
                .and_then(|c| c.message.clone())
        };
        let got: Vec<(String, Option<String>, Option<String>)> = all
            .iter()
            .map(|p| {
                (
                    p.metadata.name.clone().unwrap(),
                    node_of(p),
                    unschedulable(p),
                )
            })
            .collect();
        if got.iter().all(|(_, n, u)| n.is_some() || u.is_some()) {
            Ok(got)
        } else {
            Err(dbg(&got))
        }
    })
    .await;
    assert_eq!(placed[0], ("a".into(), Some("small".into()), None));
    assert_eq!(
        placed[1],
        ("b".into(), None, Some("0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: db}.".into()))
    );
    assert_eq!(placed[2], ("c".into(), Some("big".into()), None));
    assert_eq!(placed[3].1, None, "{placed:?}");
    let scheduled = pods
        .get("a")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .unwrap();
    assert!(
        scheduled
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
    );

    // Deleting `a` frees room for `d`.
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    eventually("d bound", || async {
        let p = pods.get("d").await.unwrap();
        if node_of(&p).as_deref() == Some("small") {
            Ok(())
        } else {
            Err(dbg(node_of(&p)))
        }
    })
    .await;
}

#[tokio::test]
async fn a_not_ready_node_taints_itself_and_its_pods_turn_unready() {
    let (_kube, client, kubelet) = start().await;
    kubelet.register(&NodeConfig::new("n1")).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &from(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}))).await.unwrap();
    eventually("bound", || async {
        let p = pods.get("p").await.unwrap();
        node_of(&p).ok_or_else(|| dbg(&p.status))
    })
    .await;
    assert_eq!(kubelet.run_pods_on("n1").await.unwrap(), ["p"]);
    assert!(is_ready(&pods.get("p").await.unwrap()));

    kubelet.set_node_ready("n1", false).await.unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    eventually("pod unready and node tainted", || async {
        let p = pods.get("p").await.unwrap();
        let taints = nodes
            .get("n1")
            .await
            .unwrap()
            .spec
            .unwrap()
            .taints
            .unwrap_or_default();
        let keys: Vec<(String, String)> = taints
            .iter()
            .map(|t| (t.key.clone(), t.effect.clone()))
            .collect();
        let want = [
            (
                "node.kubernetes.io/not-ready".to_string(),
                "NoSchedule".to_string(),
            ),
            (
                "node.kubernetes.io/not-ready".to_string(),
                "NoExecute".to_string(),
            ),
        ];
        if !is_ready(&p) && keys == want {
            Ok(())
        } else {
            Err(format!("{keys:?}"))
        }
    })
    .await;
    // New pods wait for a Ready node.
    pods.create(&PostParams::default(), &from(json!({"metadata": {"name": "q"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}))).await.unwrap();
    let msg = eventually("q unschedulable", || async {
        let p = pods.get("q").await.unwrap();
        let c = p
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "PodScheduled");
        c.and_then(|c| c.message)
            .ok_or_else(|| "no condition".to_string())
    })
    .await;
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
    );

    kubelet.set_node_ready("n1", true).await.unwrap();
    eventually("q bound and taints gone", || async {
        let q = pods.get("q").await.unwrap();
        let taints = nodes.get("n1").await.unwrap().spec.unwrap().taints;
        if node_of(&q).is_some() && taints.is_none() {
            Ok(())
        } else {
            Err(dbg(taints))
        }
    })
    .await;
    // Pods of a Node that is deleted go with it.
    nodes.delete("n1", &DeleteParams::default()).await.unwrap();
    eventually("pods gone", || async {
        let n = pods.list(&ListParams::default()).await.unwrap().items.len();
        if n == 0 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
}

#[tokio::test]
async fn a_daemon_set_runs_one_pod_per_eligible_node() {
    let (_kube, client, kubelet) = start().await;
    kubelet.register(&NodeConfig::new("a")).await.unwrap();
    kubelet.register(&NodeConfig::new("b")).await.unwrap();
    kubelet
        .register(&NodeConfig::new("cp").taint(
            "node-role.kubernetes.io/control-plane",
            "",
            "NoSchedule",
        ))
        .await
        .unwrap();
    let _running = kubelet.start();
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let ds: DaemonSet = from(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "agent:1"}]}}}
    }));
    sets.create(&PostParams::default(), &ds).await.unwrap();
    let status = eventually("the daemon set ready", || async {
        let s = sets.get("agent").await.unwrap().status.unwrap_or_default();
        if s.number_ready == 2 && s.updated_number_scheduled == Some(2) {
            Ok(s)
        } else {
            Err(dbg(s))
        }
    })
    .await;
    assert_eq!(
        (
            status.desired_number_scheduled,
            status.current_number_scheduled,
            status.number_available
        ),
        (2, 2, Some(2))
    );
    let mut nodes: Vec<String> = pods_of(&client, "app=agent")
        .await
        .iter()
        .filter_map(node_of)
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["a", "b"]);

    // A new Node gets its pod; a node the set cannot tolerate does not.
    kubelet.register(&NodeConfig::new("c")).await.unwrap();
    eventually("a pod on the new node", || async {
        let s = sets.get("agent").await.unwrap().status.unwrap_or_default();
        if (s.desired_number_scheduled, s.number_ready) == (3, 3) {
            Ok(())
        } else {
            Err(dbg(s))
        }
    })
    .await;
    // A template change replaces the pods one at a time.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}});
    sets.patch("agent", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    eventually("the update", || async {
        let pods = pods_of(&client, "app=agent").await;
        let images: Vec<Option<String>> = pods
            .iter()
            .map(|p| p.spec.as_ref().unwrap().containers[0].image.clone())
            .collect();
        let s = sets.get("agent").await.unwrap().status.unwrap_or_default();
        if images.len() == 3
            && images.iter().all(|i| i.as_deref() == Some("agent:2"))
            && s.number_ready == 3
            && s.updated_number_scheduled == Some(3)
        {
            Ok(())
        } else {
            Err(format!("{images:?} {s:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn a_stateful_set_starts_pods_in_order() {
    let (_kube, client, kubelet) = start().await;
    kubelet.register(&NodeConfig::new("n1")).await.unwrap();
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let sts: StatefulSet = from(json!({
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 3, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "db:1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
        }
    }));
    sets.create(&PostParams::default(), &sts).await.unwrap();
    let names = || async {
        let mut n: Vec<String> = pods_of(&client, "app=db")
            .await
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        n.sort();
        n
    };
    for expected in [
        vec!["db-0"],
        vec!["db-0", "db-1"],
        vec!["db-0", "db-1", "db-2"],
    ] {
        let got = eventually("the next ordinal", || async {
            let got = names().await;
            let bound = pods_of(&client, "app=db")
                .await
                .iter()
                .all(|p| node_of(p).is_some());
            if got == expected && bound {
                Ok(got)
            } else {
                Err(dbg(got))
            }
        })
        .await;
        // Nothing further starts while the newest pod is not Ready.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(names().await, got);
        kubelet.run_pods_on("n1").await.unwrap();
    }
    let status = eventually("ready", || async {
        let s = sets.get("db").await.unwrap().status.unwrap_or_default();
        if s.ready_replicas == Some(3) {
            Ok(s)
        } else {
            Err(dbg(s))
        }
    })
    .await;
    assert_eq!(status.current_revision, status.update_revision);
    let pod = Api::<Pod>::namespaced(client.clone(), "default")
        .get("db-1")
        .await
        .unwrap();
    let labels = pod.metadata.labels.unwrap();
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "db-1");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "1");
    let claim = &pod.spec.unwrap().volumes.unwrap()[0];
    assert_eq!(
        claim.persistent_volume_claim.as_ref().unwrap().claim_name,
        "data-db-1"
    );
    let claims = Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(
        client.clone(),
        "default",
    );
    assert!(claims.get("data-db-2").await.is_ok());

    // Scale down removes the highest ordinal first, and the next only once it is gone.
    sets.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    let terminating = eventually("db-2 terminating", || async {
        let pods = pods_of(&client, "app=db").await;
        let going: Vec<String> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        if going.is_empty() {
            Err(dbg(pods.len()))
        } else {
            Ok(going)
        }
    })
    .await;
    assert_eq!(terminating, ["db-2"]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        names().await,
        ["db-0", "db-1", "db-2"],
        "db-1 waits for db-2 to be gone"
    );
    eventually("scale down", || async {
        // n1's kubelet finishes each graceful deletion.
        kubelet.finish_deletions_on("n1").await.unwrap();
        let got = names().await;
        if got == ["db-0"] {
            Ok(())
        } else {
            Err(dbg(got))
        }
    })
    .await;
}

#[tokio::test]
async fn deletion_propagates_in_the_foreground_background_or_not_at_all() {
    let (_kube, client, _kubelet) = start().await;
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rs = |name: &str| -> ReplicaSet {
        from(json!({
            "metadata": {"name": name},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"rs": name}}, "template": {"metadata": {"labels": {"rs": name}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}
        }))
    };
    for name in ["fg", "bg", "orphan"] {
        sets.create(&PostParams::default(), &rs(name))
            .await
            .unwrap();
        eventually("pods", || async {
            let n = pods_of(&client, &format!("rs={name}")).await.len();
            if n == 2 { Ok(()) } else { Err(n.to_string()) }
        })
        .await;
    }

    // Foreground: the owner stays, marked, until its dependents are gone.
    let fg = sets
        .delete("fg", &DeleteParams::foreground())
        .await
        .unwrap();
    let marked = fg
        .left()
        .expect("the owner is kept while its dependents go");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(
        marked.metadata.finalizers.as_deref(),
        Some(&["foregroundDeletion".to_string()][..])
    );
    eventually("foreground deletion", || async {
        let owner = sets.get_opt("fg").await.unwrap().is_some();
        let n = pods_of(&client, "rs=fg").await.len();
        if !owner && n == 0 {
            Ok(())
        } else {
            Err(format!("owner {owner}, {n} pods"))
        }
    })
    .await;

    sets.delete("bg", &DeleteParams::background())
        .await
        .unwrap();
    assert!(
        sets.get_opt("bg").await.unwrap().is_none(),
        "background deletion removes the owner at once"
    );
    eventually("background deletion", || async {
        let n = pods_of(&client, "rs=bg").await.len();
        if n == 0 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;

    sets.delete(
        "orphan",
        &DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let orphans = eventually("orphaning", || async {
        let owner = sets.get_opt("orphan").await.unwrap().is_some();
        let left = pods_of(&client, "rs=orphan").await;
        if !owner && left.iter().all(|p| p.metadata.owner_references.is_none()) {
            Ok(left)
        } else {
            Err(dbg(&left))
        }
    })
    .await;
    assert_eq!(orphans.len(), 2);
    // An owner of a kind the server does not serve cannot be known to be gone: the pod stays.
    let foreign: Pod = from(
        json!({"metadata": {"name": "foreign", "ownerReferences": [{"apiVersion": "example.com/v1", "kind": "Machine", "name": "m", "uid": "11111111-0000-0000-0000-000000000000"}]}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    );
    pods.create(&PostParams::default(), &foreign).await.unwrap();
    // Objects whose owner never existed are collected too.
    let stray: Pod = from(
        json!({"metadata": {"name": "stray", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gone", "uid": "00000000-0000-0000-0000-000000000000"}]}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    );
    pods.create(&PostParams::default(), &stray).await.unwrap();
    eventually("the stray collected", || async {
        if pods.get_opt("stray").await.unwrap().is_none() {
            Ok(())
        } else {
            Err("still there".to_string())
        }
    })
    .await;
    assert!(
        pods.get_opt("foreign").await.unwrap().is_some(),
        "the collector passed over it after it was created"
    );
}
