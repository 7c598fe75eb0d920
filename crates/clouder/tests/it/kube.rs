//! Commands that act through the Kubernetes API, against clouder-testkube (controllers, scheduler,
//! stand-in kubelet) and, for machines, the moto server: adopt, ingress on/off, and a scale-down
//! that drains the least-loaded worker before its machine goes.

use crate::harness::*;
use clouder_state::StateStore;
use clouder_testkube::{Kubelet, NodeConfig, TestKube};
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch, PatchParams};

const WEB: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "web", "namespace": "default"},
  "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "web"}},
    "template": {"metadata": {"labels": {"app": "web"}},
      "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}"#;

async fn testkube(
    workers: &[(&str, &str)],
) -> (TestKube, kube::Client, clouder_testkube::AutoKubelet) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kube = TestKube::start_with_controllers().await.unwrap();
    let client = kube.client().await.unwrap();
    let kubelet = Kubelet::new(client.clone());
    kubelet
        .register(&NodeConfig::control_plane("cp"))
        .await
        .unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    for (name, address) in workers {
        kubelet.register(&NodeConfig::new(name)).await.unwrap();
        let status = serde_json::json!({"status": {"addresses": [{"type": "InternalIP", "address": address}]}});
        nodes
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }
    let running = kubelet.start();
    (kube, client, running)
}

async fn deploy_web(client: &kube::Client) {
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "default");
    let web: serde_json::Value = serde_json::from_str(WEB).unwrap();
    deployments
        .patch("web", &PatchParams::apply("test"), &Patch::Apply(&web))
        .await
        .unwrap();
    for _ in 0..100 {
        let d = deployments.get("web").await.unwrap();
        if d.status.and_then(|s| s.available_replicas) == Some(5) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("web never became available");
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_then_ingress_on_and_off_then_terminate_only_forgets() {
    let (kube, client, _running) = testkube(&[("w1", "10.0.0.1"), ("w2", "10.0.0.2")]).await;
    let env = Env::new();
    let file = env.dir.path().join("legacy.kubeconfig");
    kube.write_kubeconfig(&file).unwrap();

    let adopted: serde_json::Value = serde_json::from_str(&env.ok(&[
        "kubeadm",
        "adopt",
        "legacy",
        "--kubeconfig",
        file.to_str().unwrap(),
        "--provider",
        "aws",
        "-r",
        "eu-west-1",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(adopted["workers"], 2, "{adopted}");
    let kept = env.home().join("kubeadm/legacy/kubeconfig");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // ingress-nginx is retired: refused on this 1.36 API server, before anything is applied.
    let retired = env.run(&["kubeadm", "enable-ingress-nginx", "legacy"]);
    assert_eq!(retired.status.code(), Some(2), "{}", text(&retired.stderr));
    assert!(
        text(&retired.stderr).contains("retired upstream"),
        "{}",
        text(&retired.stderr)
    );

    let enabled: serde_json::Value = serde_json::from_str(&env.ok(&[
        "kubeadm",
        "enable-ingress-traefik",
        "legacy",
        "--timeout",
        "30",
        "-o",
        "json",
    ]))
    .unwrap();
    let objects = enabled["objects"].as_array().unwrap();
    assert!(
        objects
            .iter()
            .all(|o| o.as_str().unwrap().ends_with(" created")),
        "{enabled}"
    );
    let services: Api<Service> = Api::namespaced(client.clone(), "traefik");
    let lb = services.get("traefik").await.unwrap();
    assert_eq!(
        lb.metadata.annotations.unwrap()["service.beta.kubernetes.io/aws-load-balancer-type"],
        "external"
    );
    let again: serde_json::Value = serde_json::from_str(&env.ok(&[
        "kubeadm",
        "enable-ingress-traefik",
        "legacy",
        "-o",
        "json",
    ]))
    .unwrap();
    let objects = again["objects"].as_array().unwrap();
    assert!(
        objects
            .iter()
            .all(|o| o.as_str().unwrap().ends_with(" unchanged")),
        "{again}"
    );

    let info: serde_json::Value =
        serde_json::from_str(&env.ok(&["kubeadm", "info", "legacy", "-o", "json"])).unwrap();
    assert_eq!(info["live"]["nodes"].as_array().unwrap().len(), 3, "{info}");
    assert_eq!(
        info["live"]["addons"][0]["name"], "ingress-traefik",
        "{info}"
    );
    assert_eq!(info["live"]["addons"][0]["healthy"], true, "{info}");

    // Without a terminal or --force it refuses and deletes nothing.
    let refused = env.run(&["kubeadm", "disable-ingress-traefik", "legacy"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("--force"));
    assert!(services.get_opt("traefik").await.unwrap().is_some());
    env.ok(&["kubeadm", "disable-ingress-traefik", "legacy", "--force"]);
    assert!(services.get_opt("traefik").await.unwrap().is_none());

    // A cluster clouder did not create is forgotten, never deleted.
    let out = env.ok(&["kubeadm", "terminate", "legacy", "--force"]);
    assert!(out.contains("untouched"), "{out}");
    assert!(!kept.exists());
    let nodes: Api<Node> = Api::all(client.clone());
    assert_eq!(
        nodes.list(&Default::default()).await.unwrap().items.len(),
        3
    );
}

/// A moto cluster of three workers that clouder records as set up, with a testkube API whose
/// workers (`w0`…`w2`) carry the machines' private addresses.
struct SetUp {
    env: Env,
    store: clouder_state::SqliteStore,
    /// (node, private address), by node name.
    machines: Vec<(String, String)>,
    _kube: TestKube,
    client: kube::Client,
    _running: clouder_testkube::AutoKubelet,
}

async fn set_up(name: &str) -> SetUp {
    let env = Env::new();
    env.create(name, 3, &[]);
    let store = clouder_state::SqliteStore::open(&env.home().join("state.db")).unwrap();
    let mut record = store.cluster(name).unwrap().unwrap();
    record.setup_complete = true;
    store.put_cluster(&record).unwrap();
    let mut machines: Vec<(String, String)> = store
        .resources(name)
        .unwrap()
        .into_iter()
        .filter(|r| r.id.contains("instance/workers-"))
        .map(|r| {
            let index = r.id.rsplit_once('-').unwrap().1.to_string();
            (
                format!("w{index}"),
                r.attrs["private_ip"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    machines.sort();
    assert_eq!(machines.len(), 3, "{machines:?}");
    let workers: Vec<(&str, &str)> = machines
        .iter()
        .map(|(n, a)| (n.as_str(), a.as_str()))
        .collect();
    let (kube, client, running) = testkube(&workers).await;
    kube.write_kubeconfig(env.home().join(format!("kubeadm/{name}/kubeconfig")))
        .unwrap();
    SetUp {
        env,
        store,
        machines,
        _kube: kube,
        client,
        _running: running,
    }
}

/// Instance state by private address.
async fn instance_states(name: &str) -> std::collections::BTreeMap<String, String> {
    let described = cloud()
        .await
        .ec2
        .describe_instances()
        .filters(cluster_filter(name))
        .send()
        .await
        .unwrap();
    described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| {
            Some((
                i.private_ip_address()?.to_string(),
                i.state()?.name()?.as_str().to_string(),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_down_drains_the_least_loaded_worker_and_removes_its_machine() {
    let name = "drainy";
    let cluster = set_up(name).await;
    let SetUp {
        env,
        store,
        machines,
        client,
        ..
    } = &cluster;
    deploy_web(client).await;
    let loads = clouder_kube::drain::workers_by_load(client).await.unwrap();
    let least = &loads[0];
    assert_eq!(least.pods, 1, "five pods over three workers: {loads:?}");
    let index: u32 = least.node.trim_start_matches('w').parse().unwrap();

    let out = env.run(&["kubeadm", "scale", name, "-w", "2", "--force", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("drained {}: 1 pod(s) evicted", least.node)));

    let nodes: Api<Node> = Api::all(client.clone());
    assert!(nodes.get_opt(&least.node).await.unwrap().is_none());
    let states = instance_states(name).await;
    for (node, ip) in machines {
        let want = if *node == least.node {
            "terminated"
        } else {
            "running"
        };
        assert_eq!(states[ip], want, "{node} ({ip})");
    }
    let spec = store.cluster(name).unwrap().unwrap().spec;
    assert_eq!(
        spec.pointer("/spec/nodePools/0/retired").unwrap(),
        &serde_json::json!([index])
    );
    assert_eq!(spec.pointer("/spec/nodePools/0/count").unwrap(), 2);

    // The remaining machines keep their names: a plan of the recorded spec changes nothing. The
    // cluster is set up, so the plan also says what its addons would get (none installed yet).
    let plan: serde_json::Value =
        serde_json::from_str(&env.ok(&["kubeadm", "plan", name, "-o", "json"])).unwrap();
    for change in ["create", "update", "delete"] {
        assert_eq!(plan["summary"][change], 0, "{change}: {plan}");
    }
    let addons: Vec<&str> = plan["addons"]["addons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["addon"].as_str().unwrap())
        .collect();
    assert_eq!(
        addons,
        ["aws-ebs-csi", "aws-load-balancer-controller"],
        "{plan}"
    );
    assert!(
        plan["addons"]["addons"][0]["created"].as_u64() > Some(0),
        "{plan}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_removes_not_ready_workers_and_their_machines_after_confirmation() {
    let name = "prunable";
    let cluster = set_up(name).await;
    let SetUp {
        env,
        store,
        machines,
        client,
        ..
    } = &cluster;
    Kubelet::new(client.clone())
        .set_node_ready("w1", false)
        .await
        .unwrap();

    let refused = env.run(&["kubeadm", "prune", name]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("w1"),
        "the list is shown before asking"
    );
    let nodes: Api<Node> = Api::all(client.clone());
    assert!(nodes.get_opt("w1").await.unwrap().is_some());

    let pruned: serde_json::Value =
        serde_json::from_str(&env.ok(&["kubeadm", "prune", name, "--force", "-o", "json"]))
            .unwrap();
    assert_eq!(pruned[0]["node"], "w1", "{pruned}");
    assert_eq!(pruned[0]["machine"], "workers-1", "{pruned}");
    assert!(nodes.get_opt("w1").await.unwrap().is_none());
    let states = instance_states(name).await;
    for (node, ip) in machines {
        let want = if node == "w1" {
            "terminated"
        } else {
            "running"
        };
        assert_eq!(states[ip], want, "{node} ({ip})");
    }
    let spec = store.cluster(name).unwrap().unwrap().spec;
    assert_eq!(
        spec.pointer("/spec/nodePools/0/retired").unwrap(),
        &serde_json::json!([1])
    );

    // Everything Ready: nothing to prune, nothing asked.
    let again = env.ok(&["kubeadm", "prune", name]);
    assert!(again.contains("Nothing to prune"), "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_retires_machines_that_never_became_nodes_once_past_their_grace() {
    let name = "unjoined";
    let cluster = set_up(name).await;
    let SetUp {
        env,
        store,
        machines,
        client,
        ..
    } = &cluster;
    // The third worker's machine runs, but no Node answers for its address.
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.delete("w2", &Default::default()).await.unwrap();

    let fresh = env.ok(&["kubeadm", "prune", name]);
    assert!(
        fresh.contains("Nothing to prune"),
        "a machine clouder saw moments ago may still be joining: {fresh}"
    );
    let pruned: serde_json::Value = serde_json::from_str(&env.ok(&[
        "kubeadm",
        "prune",
        name,
        "--unjoined-after",
        "0",
        "--force",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        pruned,
        serde_json::json!([{"node": null, "reason": "never joined", "address": machines[2].1, "machine": "workers-2"}])
    );
    let states = instance_states(name).await;
    assert_eq!(states[&machines[2].1], "terminated");
    assert_eq!(states[&machines[0].1], "running");
    let spec = store.cluster(name).unwrap().unwrap().spec;
    assert_eq!(
        spec.pointer("/spec/nodePools/0/retired").unwrap(),
        &serde_json::json!([2])
    );
}

const SHOP: &str = "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata: {name: shop}\nspec:\n  provider: aws\n  region: eu-west-1\n  adminCidrs: [203.0.113.7/32]\n  image: ami-785db401\n";

#[tokio::test(flavor = "multi_thread")]
async fn apply_of_an_adopted_cluster_converges_its_addons_from_the_spec() {
    let (kube, client, _running) = testkube(&[("w1", "10.0.0.1"), ("w2", "10.0.0.2")]).await;
    let env = Env::new();
    let file = env.dir.path().join("k.kubeconfig");
    kube.write_kubeconfig(&file).unwrap();
    env.ok(&[
        "kubeadm",
        "adopt",
        "shop",
        "--kubeconfig",
        file.to_str().unwrap(),
    ]);

    let spec = write(
        env.dir.path(),
        "shop.yaml",
        &format!(
            "{SHOP}  addons:\n    ingress: traefik\n    certManager: {{issuer: selfSigned, issuerName: internal}}\n"
        ),
    );
    let planned: serde_json::Value = serde_json::from_str(&env.ok(&[
        "kubeadm",
        "plan",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        planned["addons"][2]["addon"], "ingress-traefik",
        "{planned}"
    );
    assert_eq!(planned["addons"][2]["created"], 7, "{planned}");
    let first: serde_json::Value = serde_json::from_str(&env.ok(&[
        "kubeadm",
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        "json",
    ]))
    .unwrap();
    let addons: Vec<&str> = first["addons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["addon"].as_str().unwrap())
        .collect();
    assert_eq!(
        addons,
        [
            "aws-ebs-csi",
            "aws-load-balancer-controller",
            "ingress-traefik",
            "cert-manager",
            "cluster-issuer"
        ],
        "{first}"
    );
    assert!(
        first["addons"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["created"].as_u64() > Some(0))
    );
    let issuers = Api::<kube::api::DynamicObject>::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "cert-manager.io",
            "v1",
            "ClusterIssuer",
        )),
    );
    let internal = issuers.get("internal").await.unwrap();
    assert!(internal.data["spec"]["selfSigned"].is_object());

    let again: serde_json::Value = serde_json::from_str(&env.ok(&[
        "kubeadm",
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        "json",
    ]))
    .unwrap();
    let replanned: serde_json::Value = serde_json::from_str(&env.ok(&[
        "kubeadm",
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "--dry-run",
        "-o",
        "json",
    ]))
    .unwrap();
    let quiet = |a: &serde_json::Value| a["created"] == 0 && a["configured"] == 0;
    assert!(
        replanned["addons"].as_array().unwrap().iter().all(quiet),
        "{replanned}"
    );
    for a in again["addons"].as_array().unwrap() {
        assert_eq!(
            (a["created"].as_u64(), a["configured"].as_u64()),
            (Some(0), Some(0)),
            "{again}"
        );
    }

    // A spec asking for ACME without a contact is refused before anything is applied.
    let bad = write(
        env.dir.path(),
        "bad.yaml",
        &format!("{SHOP}  addons:\n    certManager: {{issuer: acme}}\n"),
    );
    let out = env.run(&["kubeadm", "apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.yaml:") && err.contains("spec.addons.certManager.email"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_of_a_set_up_cloud_cluster_converges_its_addons_and_user_storage() {
    let name = "stow";
    let cluster = set_up(name).await;
    let SetUp {
        env, store, client, ..
    } = &cluster;
    let mut spec = store.cluster(name).unwrap().unwrap().spec;
    spec["spec"]["storage"] = serde_json::json!({
        "nfs": {"inCluster": {"size": "200Gi"}},
        "agentImage": "registry.example/clouder:dev",
    });
    let file = write(env.dir.path(), "stow.yaml", &spec.to_string());
    let file = file.to_str().unwrap();
    let apply = |extra: &[&str]| -> serde_json::Value {
        let args = [&["kubeadm", "apply", "-f", file, "-o", "json"], extra].concat();
        serde_json::from_str(&env.ok(&args)).unwrap()
    };
    let addon = |out: &serde_json::Value, name: &str| -> serde_json::Value {
        out["addons"]["addons"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["addon"] == name))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .clone()
    };

    let planned = apply(&["--dry-run"]);
    assert_eq!(
        planned["summary"]["create"], 0,
        "the machines stand: {planned}"
    );
    assert!(addon(&planned, "user-storage")["created"].as_u64() > Some(0));

    let applied = apply(&[]);
    assert_eq!(applied["result"]["created"], 0, "{applied}");
    for name in ["aws-ebs-csi", "user-storage", "node-agent"] {
        assert!(
            addon(&applied, name)["created"].as_u64() > Some(0),
            "{name}: {applied}"
        );
    }
    let pv: Api<k8s_openapi::api::core::v1::PersistentVolume> = Api::all(client.clone());
    let pv = pv.get("clouder-userdata").await.unwrap().spec.unwrap();
    assert_eq!(
        pv.persistent_volume_reclaim_policy.as_deref(),
        Some("Retain")
    );
    assert_eq!(pv.access_modes, Some(vec!["ReadWriteMany".to_string()]));
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(client.clone(), "runtimes");
    let claim = claims.get("clouder-userdata").await.unwrap().spec.unwrap();
    assert_eq!(claim.volume_name.as_deref(), Some("clouder-userdata"));
    // Applied means rolled out: the NFS server runs, and the agent runs on every node.
    let servers: Api<k8s_openapi::api::apps::v1::StatefulSet> =
        Api::namespaced(client.clone(), "clouder-storage");
    let server = servers.get("clouder-nfs").await.unwrap().status.unwrap();
    assert_eq!(server.ready_replicas, Some(1));
    let agents: Api<k8s_openapi::api::apps::v1::DaemonSet> =
        Api::namespaced(client.clone(), "clouder-storage");
    let agent = agents.get("clouder-node-agent").await.unwrap();
    let status = agent.status.clone().unwrap();
    assert_eq!(
        (status.desired_number_scheduled, status.number_ready),
        (4, 4),
        "the control plane and three workers"
    );
    let agent = serde_json::to_value(&agent).unwrap();
    assert_eq!(
        agent.pointer("/spec/template/spec/containers/0/image"),
        Some(&serde_json::json!("registry.example/clouder:dev"))
    );

    let again = apply(&[]);
    for a in again["addons"]["addons"].as_array().unwrap() {
        assert_eq!(
            (a["created"].as_u64(), a["configured"].as_u64()),
            (Some(0), Some(0)),
            "a re-run changes nothing: {again}"
        );
    }
}
