//! The CheckpointPolicy controller against clouder-testkube, fake kubelets (one per node, one
//! CA) and a real sshd lab host the archives are fetched from: a due pod is checkpointed and
//! retention prunes its older checkpoint, a pod not due or not selected is left alone, a
//! failing checkpoint is reported in the status and tried again on the next tick without
//! stopping the others.

use super::checkpoint::{
    json, kubelet_client, kubelet_node, play_kubelet, pod_on, ssh_cluster, testkube,
};
use super::harness::{Env, text};
use clouder_checkpoint::policy::CheckpointPolicy;
use clouder_checkpoint::testing::fake_archive;
use clouder_testenv::Lab;
use clouder_testenv::endpoint::Ca;
use clouder_testenv::kubelet::{Behaviour, FakeKubelet};
use clouder_testenv::registry::RegistryPeer;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{CustomResourceExt as _, ResourceExt as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Kills the controller when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Installs the CRD and policy `NAMESPACE/NAME` with `spec`; returns the policies' API.
async fn install_policy(
    client: &kube::Client,
    (namespace, name): (&str, &str),
    spec: serde_json::Value,
) -> Api<CheckpointPolicy> {
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &CheckpointPolicy::crd())
        .await
        .unwrap();
    let policies: Api<CheckpointPolicy> = Api::namespaced(client.clone(), namespace);
    let policy = serde_json::from_value(serde_json::json!({
        "apiVersion": "clouder.io/v1alpha1", "kind": "CheckpointPolicy",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec,
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    policies
}

/// Policy `shop/agents`: pods labelled `app: agent` are checkpointed before their node drains,
/// into a registry (the restored pod's node pulls from it; the fake nodes here have no
/// containerd to import into — the import path is the smoke test's). The registry is returned
/// to be kept running.
async fn before_drain_policy(client: &kube::Client) -> RegistryPeer {
    let registry = RegistryPeer::start(None);
    let spec = serde_json::json!({
        "selector": {"matchLabels": {"app": "agent"}}, "triggers": {"beforeDrain": true},
        "destination": format!("{}/checkpoints", registry.host()),
    });
    install_policy(client, ("shop", "agents"), spec).await;
    registry
}

/// Records `node` as a host `byon add` joined, at `address:port`.
fn record_byon(env: &Env, cluster: &str, node: &str, (address, port): (&str, u16)) {
    use clouder_state::StateStore as _;
    let store = clouder_state::SqliteStore::open(&env.home().join("state.db")).unwrap();
    let attrs = serde_json::json!({"node": node, "address": address, "port": port, "user": "root",
        "provenance": "on-prem", "labels": [], "taints": []});
    let record = clouder_state::ResourceRecord {
        id: format!("byon/{node}"),
        kind: "byon_node".into(),
        cloud_id: String::new(),
        attrs,
        updated_at: 0,
    };
    store.put_resource(cluster, &record).unwrap();
}

/// A fake kubelet running pod `NAMESPACE/NAME`, answering `archive` for container `app`.
async fn kubelet_of(pod: &str, archive: Option<String>, ca: Option<Arc<Ca>>) -> FakeKubelet {
    let behaviour = Behaviour {
        archive,
        pod: Some(pod.into()),
        ..Behaviour::default()
    };
    let ca = ca.unwrap_or_else(|| Arc::new(Ca::new("kubelet-ca")));
    FakeKubelet::start_with(ca, behaviour).await
}

fn port(kubelet: &FakeKubelet) -> u16 {
    kubelet.url.rsplit_once(':').unwrap().1.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_checkpoints_due_pods_prunes_reports_and_retries_failures() {
    let (env, lab, kube) = one_host_cluster("pol", Lab::start(1), testkube().await).await;
    let address = lab.hosts[0].address.clone();
    let client = kube.client().await.unwrap();

    // Node w-0 runs web-0 (idle since its start yesterday: due) and web-2 (restarted: never
    // idle); w-1 runs web-1, whose checkpoint CRIU fails. `other` is not selected.
    let node_dir = tempfile::tempdir().unwrap();
    let archive = fake_archive(
        node_dir.path(),
        "checkpoint-web-0.tar",
        1 << 16,
        "2026-11-25T18:05:00Z",
    );
    let ca = Arc::new(Ca::new("kubelet-ca"));
    let w0 = kubelet_of(
        "shop/web-0",
        Some(archive.display().to_string()),
        Some(ca.clone()),
    )
    .await;
    let w1 = kubelet_of("shop/web-1", None, Some(ca)).await;
    kubelet_node(&kube, "w-0", &address, port(&w0)).await;
    kubelet_node(&kube, "w-1", &address, port(&w1)).await;
    pod_on(&kube, ("shop", "web-0"), "w-0", "app", "agent").await;
    pod_on(&kube, ("shop", "web-1"), "w-1", "broken", "agent").await;
    pod_on(&kube, ("shop", "web-2"), "w-0", "app", "agent").await;
    pod_on(&kube, ("shop", "other"), "w-0", "app", "web").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let restarted = serde_json::json!({"status": {"containerStatuses": [{"name": "app", "ready": true, "restartCount": 1, "image": "i", "imageID": "i", "state": {"running": {"startedAt": "2026-11-25T18:00:00Z"}}}]}});
    pods.patch_status("web-2", &PatchParams::default(), &Patch::Merge(&restarted))
        .await
        .unwrap();
    play_kubelet(&pods, "other", &["app"]).await;
    let kubelet_ca = kubelet_client(&env, "pol", &w0);

    // An older checkpoint of web-0 that retention (keepLast 1) drops.
    let layout = env.dir.path().join("layout");
    let old = fake_archive(env.dir.path(), "old.tar", 1 << 12, "2026-11-25T18:01:00Z");
    let seeded = json(&env.ok(&[
        "checkpoint",
        "create",
        "pol",
        "-n",
        "shop",
        "web-0",
        "--archive",
        old.to_str().unwrap(),
        "--to",
        layout.to_str().unwrap(),
        "-o",
        "json",
    ]));
    let old_id = seeded["checkpoint"]["id"].as_str().unwrap().to_string();

    let spec = serde_json::json!({
        "selector": {"matchLabels": {"app": "agent"}}, "schedule": "0 0 1 1 *",
        "retention": {"keepLast": 1}, "triggers": {"idleFor": "1m"},
        "destination": layout.to_str().unwrap(),
    });
    let policies = install_policy(&client, ("shop", "agents"), spec).await;

    let base = [
        "checkpoint",
        "controller",
        "pol",
        "--direct",
        "--kubelet-ca",
        &kubelet_ca,
        "--timeout",
        "5",
    ];
    let args = [&base[..], &["--tick", "1"]].concat();
    let controller = Running(
        env.command(&args)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Ticks go by until web-1 was tried twice: the failure did not stop the controller.
    let deadline = Instant::now() + Duration::from_secs(60);
    while w1.requests.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "web-1 was not retried on the next tick"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(controller);
    assert_eq!(
        *w0.requests.lock().unwrap(),
        ["/checkpoint/shop/web-0/app?timeout=5"],
        "web-0 checkpointed once (idle once), web-2 (restarted) and `other` never"
    );
    assert!(
        w1.requests
            .lock()
            .unwrap()
            .iter()
            .all(|r| r == "/checkpoint/shop/web-1/broken?timeout=5"),
        "{:?}",
        w1.requests.lock().unwrap()
    );
    assert!(
        !archive.exists(),
        "the archive was fetched and deleted on the node"
    );

    let status = policies.get("agents").await.unwrap().status.unwrap();
    let pods_status: Vec<&str> = status.pods.iter().map(|p| p.pod.as_str()).collect();
    assert_eq!(pods_status, ["web-0", "web-1", "web-2"], "{status:?}");
    let (web0, web1, web2) = (&status.pods[0], &status.pods[1], &status.pods[2]);
    let new_id = web0.last_checkpoint.clone().expect("web-0 checkpointed");
    assert!(
        web0.last_run.is_some() && web0.last_error.is_none(),
        "{web0:?}"
    );
    assert!(
        web1.last_error
            .as_deref()
            .is_some_and(|e| e.contains("criu failed"))
            && web1.last_run.is_none(),
        "{web1:?}"
    );
    assert_eq!(web2.last_run, None, "{web2:?}");
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "CheckpointFailed")
    );
    assert!(
        ready.message.contains("web-1: ") && !ready.message.contains("web-0"),
        "{}",
        ready.message
    );

    let listed = json(&env.ok(&["checkpoint", "ls", "pol", "-o", "json"]));
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [new_id.as_str()], "keepLast 1 dropped {old_id}");
    let shown = json(&env.ok(&["checkpoint", "show", &new_id, "-o", "json"]));
    assert_eq!(shown["labels"]["clouder.io/policy"], "agents");

    // One more look, as from cron: web-1 is tried again, web-0 is not due; the failure is the
    // exit status.
    let once = env.run(&[&base[..], &["--once", "-o", "json"]].concat());
    assert_eq!(once.status.code(), Some(1), "{}", text(&once.stderr));
    let rounds = json(&text(&once.stdout));
    assert_eq!(rounds[0]["policy"], "shop/agents");
    assert_eq!(rounds[0]["checkpointed"], serde_json::json!([]));
    assert_eq!(rounds[0]["failed"][0]["pod"], "web-1");
    assert_eq!(rounds[0]["failed"][0]["trigger"], "idle");
    assert!(
        text(&once.stderr).contains("1 checkpoint(s) failed"),
        "{}",
        text(&once.stderr)
    );
    assert_eq!(w0.requests.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_says_how_to_install_its_crd_and_reports_a_bad_policy() {
    let (env, _lab, kube) = one_host_cluster("crd", Lab::start(1), testkube().await).await;
    let out = env.run(&["checkpoint", "controller", "crd", "--once"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("the CheckpointPolicy CRD is not installed in crd: clouder checkpoint crd | clouder kubectl crd apply -f -"),
        "{}",
        text(&out.stderr)
    );

    let manifest = env.ok(&["checkpoint", "crd"]);
    let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&manifest).unwrap();
    assert_eq!(
        crd,
        CheckpointPolicy::crd(),
        "the printed manifest is the generated one"
    );
    let client = kube.client().await.unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    let policies: Api<CheckpointPolicy> = Api::namespaced(client, "default");
    let policy = serde_json::from_value(serde_json::json!({
        "apiVersion": "clouder.io/v1alpha1", "kind": "CheckpointPolicy",
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": {"selector": {}, "schedule": "every hour", "destination": "/tmp/nowhere"},
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    let out = env.run(&["checkpoint", "controller", "crd", "--once", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rounds = json(&text(&out.stdout));
    assert!(
        rounds[0]["invalid"]
            .as_str()
            .unwrap()
            .starts_with("spec.schedule `every hour` is not a cron expression"),
        "{rounds}"
    );
    let status = policies.get("bad").await.unwrap().status.unwrap();
    let ready = &status.conditions[0];
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidSpec")
    );
}

/// A test home and cluster NAME on `lab`'s one host, its API `kube`.
async fn one_host_cluster(
    name: &str,
    lab: Lab,
    kube: clouder_testkube::TestKube,
) -> (Env, Lab, clouder_testkube::TestKube) {
    let env = Env::new();
    let host = format!("{}:22", lab.hosts[0].address);
    let kube = ssh_cluster(&env, name, &lab.client_key(), &[host], kube).await;
    (env, lab, kube)
}

/// The kubelet of pod `shop/web-0`, whose checkpoint archive it wrote on `lab`'s host.
async fn kubelet_with_archive_on(lab: &Lab) -> (&'static str, FakeKubelet) {
    let dir = tempfile::tempdir().unwrap();
    let local = fake_archive(dir.path(), "a.tar", 1 << 16, "2026-11-25T18:05:00Z");
    let on_node = "/root/checkpoint-web-0_shop-app.tar";
    let bytes = std::fs::read(&local).unwrap();
    let wrote = on_host(lab, &format!("cat > {on_node}"), Some(&bytes)).await;
    assert!(wrote.ok(), "{wrote:?}");
    (
        on_node,
        kubelet_of("shop/web-0", Some(on_node.into()), None).await,
    )
}

/// Runs `script` on a lab host as root.
async fn on_host(lab: &Lab, script: &str, stdin: Option<&[u8]>) -> clouder_node::ssh::Output {
    let host = clouder_node::Host::new(&lab.hosts[0].address, "root");
    let key = clouder_node::ssh::load_key(&lab.client_key()).unwrap();
    let session = clouder_node::Session::connect(&host, key, None, Duration::from_secs(30))
        .await
        .unwrap();
    let out = session.run(script, stdin).await.unwrap();
    session.close().await;
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn byon_remove_checkpoints_before_draining_and_restores_elsewhere() {
    // A host of its own: `byon remove` resets kubeadm on it.
    let (env, lab, kube) = one_host_cluster(
        "by",
        Lab::start_rooted(1),
        clouder_testkube::TestKube::start_with_controllers()
            .await
            .unwrap(),
    )
    .await;
    let address = lab.hosts[0].address.clone();
    record_byon(&env, "by", "box-1", (&address, 22));
    let client = kube.client().await.unwrap();

    // The kubelet of box-1 checkpoints web-0 into an archive on the host.
    let (on_node, kubelet) = kubelet_with_archive_on(&lab).await;
    kubelet_node(&kube, "box-1", &address, port(&kubelet)).await;
    kubelet_node(&kube, "w-9", "192.0.2.9", port(&kubelet)).await;
    // The nodes' kubelets finish the deletions of evicted pods (their containers stopped).
    let _kubelets =
        clouder_testkube::Kubelet::new(kube.client().await.unwrap()).start_finishing_deletions();
    pod_on(&kube, ("shop", "web-0"), "box-1", "app", "agent").await;
    pod_on(&kube, ("shop", "other"), "box-1", "app", "web").await;
    let kubelet_ca = kubelet_client(&env, "by", &kubelet);
    let _registry = before_drain_policy(&client).await;

    // The test plays w-9's kubelet.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let kubelet_w9 = run_restored(&pods, "web-0", "w-9");
    let key = lab.client_key().display().to_string();
    let args = [
        "byon",
        "remove",
        "by",
        "box-1",
        "-i",
        &key,
        "--direct",
        "--kubelet-ca",
        &kubelet_ca,
        "--drain-timeout",
        "60",
        "-o",
        "json",
    ];
    let out = tokio::task::spawn_blocking({
        let command = env.command(&args).output();
        move || command
    })
    .await
    .unwrap()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    kubelet_w9.await.unwrap();
    let removed = json(&text(&out.stdout));
    let moved = &removed["moved"];
    assert_eq!(moved.as_array().unwrap().len(), 1, "{removed}");
    assert_eq!(moved[0]["pod"], "shop/web-0");
    assert_eq!(moved[0]["restored"]["node"], "w-9");
    let id = moved[0]["checkpoint"].as_str().unwrap();
    let shown = json(&env.ok(&["checkpoint", "show", id, "-o", "json"]));
    assert_eq!(shown["labels"]["clouder.io/trigger"], "before-drain");
    assert_eq!(shown["node"], "box-1");
    let restored = pods.get("web-0").await.unwrap();
    assert_eq!(restored.annotations()["clouder.io/checkpoint"], id);
    assert_eq!(
        restored.spec.unwrap().containers[0].image.as_deref(),
        shown["reference"].as_str()
    );
    assert!(
        pods.get_opt("other").await.unwrap().is_none(),
        "evicted, not checkpointed"
    );
    assert_eq!(
        *kubelet.requests.lock().unwrap(),
        ["/checkpoint/shop/web-0/app?timeout=60"]
    );
    let gone = on_host(&lab, &format!("test ! -e {on_node}"), None).await;
    assert!(gone.ok(), "the archive was deleted on the host");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_before_drain_checkpoint_stops_the_drain_unless_forced() {
    // The host is unreachable, so its pod's checkpoint fails (the kubelet is not even asked).
    let (env, lab, kube) = one_host_cluster("bf", Lab::start(1), testkube().await).await;
    let address = lab.hosts[0].address.clone();
    // Nothing listens on port 1: neither the archive nor the reset can reach it.
    record_byon(&env, "bf", "box-2", ("127.0.0.1", 1));
    let client = kube.client().await.unwrap();
    let kubelet = kubelet_of("shop/web-1", None, None).await;
    kubelet_node(&kube, "box-2", &address, port(&kubelet)).await;
    // The nodes' kubelets finish the deletions of evicted pods (their containers stopped).
    let _kubelets =
        clouder_testkube::Kubelet::new(kube.client().await.unwrap()).start_finishing_deletions();
    pod_on(&kube, ("shop", "web-1"), "box-2", "app", "agent").await;
    let kubelet_ca = kubelet_client(&env, "bf", &kubelet);
    let _registry = before_drain_policy(&client).await;
    let key = lab.client_key().display().to_string();
    let remove = |force: bool| {
        let mut args = vec![
            "byon",
            "remove",
            "bf",
            "box-2",
            "-i",
            &key,
            "--direct",
            "--kubelet-ca",
            &kubelet_ca,
            "-o",
            "json",
        ];
        if force {
            args.push("--force");
        }
        env.run(&args)
    };
    let stopped = remove(false);
    assert_eq!(stopped.status.code(), Some(1), "{}", text(&stopped.stderr));
    assert!(
        text(&stopped.stderr).contains(
            "checkpointing shop/web-1 (policy agents, beforeDrain) failed, so box-2 was not drained"
        ) && text(&stopped.stderr)
            .contains("node box-2 (root@127.0.0.1:1) is unreachable over SSH")
            && text(&stopped.stderr).contains("--force"),
        "{}",
        text(&stopped.stderr)
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    assert!(
        pods.get_opt("web-1").await.unwrap().is_some(),
        "nothing drained"
    );
    let node = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .get("box-2")
        .await
        .unwrap();
    assert_ne!(
        node.spec.and_then(|s| s.unschedulable),
        Some(true),
        "not even cordoned"
    );

    let forced = remove(true);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(
        text(&forced.stderr).contains("warning: shop/web-1 drains without a checkpoint (--force)"),
        "{}",
        text(&forced.stderr)
    );
    let removed = json(&text(&forced.stdout));
    assert_eq!(removed["moved"], serde_json::json!([]));
    assert_eq!(removed["evicted"], serde_json::json!(["shop/web-1"]));
    assert!(pods.get_opt("web-1").await.unwrap().is_none());
    assert_eq!(
        json(&env.ok(&["checkpoint", "ls", "bf", "-o", "json"])),
        serde_json::json!([])
    );
}

/// Plays the kubelet of `node` for the pod `shop/NAME` restored from a checkpoint: once the
/// scheduler put it there, its container runs.
fn run_restored(
    pods: &Api<Pod>,
    name: &'static str,
    node: &'static str,
) -> tokio::task::JoinHandle<()> {
    let pods = pods.clone();
    tokio::spawn(async move {
        loop {
            if let Some(p) = pods.get_opt(name).await.unwrap()
                && p.annotations().contains_key("clouder.io/checkpoint")
                && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        play_kubelet(&pods, name, &["app"]).await;
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_down_checkpoints_before_draining_and_restores_elsewhere() {
    use clouder_state::StateStore as _;
    // Two workers on moto in a lab /24, reached at their private addresses; the one scale
    // removes (the least loaded) is made real as a lab host.
    let env = Env::new();
    let subnet = Lab::free_subnet();
    let vpc = subnet.rsplit_once('.').unwrap().0;
    let file = super::harness::write(
        env.dir.path(),
        "cluster.yaml",
        &format!(
            "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: sc\nspec:\n  provider: aws\n  \
             region: {}\n  image: {}\n  adminCidrs: [203.0.113.7/32]\n  \
             ssh: {{publicKeyPath: {}, address: private}}\n  \
             network: {{vpcCidr: {vpc}.0.0/16, subnetCidr: {subnet}.0/24}}\n  \
             nodePools: [{{name: workers, count: 2}}]\n",
            super::harness::REGION,
            super::harness::IMAGE,
            env.key().display(),
        ),
    );
    env.ok(&["kubeadm", "apply", "-f", file.to_str().unwrap()]);
    let store = clouder_state::SqliteStore::open(&env.home().join("state.db")).unwrap();
    let mut record = store.cluster("sc").unwrap().unwrap();
    record.setup_complete = true;
    store.put_cluster(&record).unwrap();
    let ip = |index: &str| {
        store
            .resources("sc")
            .unwrap()
            .into_iter()
            .find(|r| r.id.ends_with(&format!("instance/workers-{index}")))
            .map(|r| r.attrs["private_ip"].as_str().unwrap().to_string())
            .unwrap()
    };
    let (w0, w1) = (ip("0"), ip("1"));
    let lab = Lab::start_rooted_at(std::slice::from_ref(&w0), &[]);

    let kube = clouder_testkube::TestKube::start_with_controllers()
        .await
        .unwrap();
    let kubeconfig = env.home().join("kubeadm/sc/kubeconfig");
    kube.write_kubeconfig(&kubeconfig).unwrap();
    let client = kube.client().await.unwrap();
    let (on_node, kubelet) = kubelet_with_archive_on(&lab).await;
    kubelet_node(&kube, "w0", &w0, port(&kubelet)).await;
    kubelet_node(&kube, "w1", &w1, port(&kubelet)).await;
    // The nodes' kubelets finish the deletions of evicted pods (their containers stopped).
    let _kubelets =
        clouder_testkube::Kubelet::new(kube.client().await.unwrap()).start_finishing_deletions();
    // w0 runs one pod, w1 two: w0 is the one to go.
    pod_on(&kube, ("shop", "web-0"), "w0", "app", "agent").await;
    pod_on(&kube, ("shop", "db-0"), "w1", "app", "db").await;
    pod_on(&kube, ("shop", "db-1"), "w1", "app", "db").await;
    let kubelet_ca = kubelet_client(&env, "sc", &kubelet);
    let _registry = before_drain_policy(&client).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let restored = run_restored(&pods, "web-0", "w1");
    let key = lab.client_key().display().to_string();
    let args = [
        "kubeadm",
        "scale",
        "sc",
        "-w",
        "1",
        "--force",
        "-u",
        "root",
        "-i",
        &key,
        "--direct",
        "--kubelet-ca",
        &kubelet_ca,
        "--drain-timeout",
        "60",
    ];
    let command = env.command(&args).output();
    let out = tokio::task::spawn_blocking(move || command)
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    restored.await.unwrap();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("checkpointed shop/web-0 before draining w0: ")
            && stderr.contains("drained w0: 1 pod(s) evicted")
            && stderr.contains("shop/web-0 restored from ")
            && stderr.contains(" on w1"),
        "{stderr}"
    );
    let web0 = pods.get("web-0").await.unwrap();
    let id = web0.annotations()["clouder.io/checkpoint"].clone();
    let shown = json(&env.ok(&["checkpoint", "show", &id, "-o", "json"]));
    assert_eq!(
        (
            shown["node"].as_str(),
            shown["labels"]["clouder.io/trigger"].as_str()
        ),
        (Some("w0"), Some("before-drain"))
    );
    assert!(
        on_host(&lab, &format!("test ! -e {on_node}"), None)
            .await
            .ok(),
        "archive deleted on w0"
    );
    let spec = store.cluster("sc").unwrap().unwrap().spec;
    assert_eq!(
        spec.pointer("/spec/nodePools/0/retired").unwrap(),
        &serde_json::json!([0])
    );
}
