//! `clouder checkpoint` against clouder-testkube (pods and their status, as a kubelet reports
//! them) and a local OCI layout: create with retention, ls/show/rm, restore, and bad input that
//! leaves the catalogue untouched.

use super::harness::{Env, text};
use super::parity::adopted;
use clouder_checkpoint::testing::fake_archive;
use clouder_testenv::Lab;
use clouder_testenv::kubelet::{Behaviour, FakeKubelet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};

/// A pod `shop/web-0` on node `w-0` whose container `app` runs, as the kubelet would report it.
async fn running_pod(kube: &clouder_testkube::TestKube) {
    let client = kube.client().await.unwrap();
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let body = serde_json::from_value(serde_json::json!({"metadata": {"name": "shop"}})).unwrap();
    ns.create(&PostParams::default(), &body).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "shop");
    let pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-0", "labels": {"app": "web"}},
        "spec": {"nodeName": "w-0", "serviceAccountName": "default",
            "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "containers": [
                {"name": "app", "image": "app:1",
                 "resources": {"requests": {"cpu": "250m"}},
                 "ports": [{"containerPort": 8080}],
                 "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                 "env": [{"name": "API_KEY", "value": ENV_MARKER},
                         {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}]},
                {"name": "sidecar", "image": "side:1"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    play_kubelet(&pods, "web-0", &["app"]).await;
}

/// A literal env value of `shop/web-0`, which must never be recorded.
const ENV_MARKER: &str = "MARKER-env-value-of-web-0";

/// Reports the named containers of a pod as running, as its kubelet does.
pub async fn play_kubelet(pods: &Api<Pod>, name: &str, running: &[&str]) {
    let statuses: Vec<_> = running
        .iter()
        .map(|c| serde_json::json!({"name": c, "ready": true, "restartCount": 0, "image": "i", "imageID": "i", "state": {"running": {"startedAt": "2026-11-25T18:00:00Z"}}}))
        .collect();
    let status = serde_json::json!({"status": {"phase": "Running", "containerStatuses": statuses}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

pub fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_are_stored_listed_kept_and_removed() {
    let env = Env::new();
    let kube = adopted(&env, "ck").await;
    running_pod(&kube).await;
    let layout = env.dir.path().join("layout");
    let to = layout.to_str().unwrap();
    let mut ids = Vec::new();
    for (n, at) in [
        "2026-11-25T18:01:00Z",
        "2026-11-25T18:02:00Z",
        "2026-11-25T18:03:00Z",
    ]
    .iter()
    .enumerate()
    {
        let archive = fake_archive(env.dir.path(), &format!("{n}.tar"), 1 << 16, at);
        let out = json(&env.ok(&[
            "checkpoint",
            "create",
            "ck",
            "-n",
            "shop",
            "web-0",
            "-c",
            "app",
            "--archive",
            archive.to_str().unwrap(),
            "--to",
            to,
            "--keep",
            "2",
            "--label",
            "reason=test",
            "-o",
            "json",
        ]));
        let id = out["checkpoint"]["id"].as_str().unwrap().to_string();
        assert_eq!(out["checkpoint"]["node"], "w-0");
        assert_eq!(out["checkpoint"]["labels"]["reason"], "test");
        assert_eq!(
            out["dropped"].as_array().unwrap().len(),
            usize::from(n == 2),
            "{out}"
        );
        ids.push(id);
    }
    let listed = json(&env.ok(&["checkpoint", "ls", "ck", "-o", "json"]));
    let listed: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        listed,
        [ids[2].clone(), ids[1].clone()],
        "newest first, the oldest dropped by --keep 2"
    );
    let table = env.ok(&["checkpoint", "ls", "ck"]);
    assert!(
        table.starts_with("ID") && table.contains("shop/web-0") && table.contains(&ids[2]),
        "{table}"
    );

    let shown = json(&env.ok(&["checkpoint", "show", &ids[2], "-o", "json"]));
    assert_eq!(shown["reference"], format!("oci:{to}:{}", ids[2]));
    assert_eq!(
        shown["image"],
        "localhost:5000/app@sha256:1111111111111111111111111111111111111111111111111111111111111111"
    );

    env.ok(&["checkpoint", "rm", &ids[1]]);
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    assert!(
        !index.contains(&ids[1]) && index.contains(&ids[2]),
        "{index}"
    );
    let gone = env.run(&["checkpoint", "show", &ids[1]]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        text(&gone.stderr).contains(&format!("no checkpoint {} in the catalogue", ids[1])),
        "{}",
        text(&gone.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_and_leaves_the_catalogue_empty() {
    let env = Env::new();
    let kube = adopted(&env, "bad").await;
    running_pod(&kube).await;
    let archive = fake_archive(env.dir.path(), "a.tar", 1 << 12, "2026-11-25T18:01:00Z");
    let archive = archive.to_str().unwrap();
    let layout = env.dir.path().join("layout");
    let to = layout.to_str().unwrap();
    let garbage = env.dir.path().join("garbage.tar");
    std::fs::write(&garbage, vec![7u8; 2048]).unwrap();
    let unreachable = format!(
        "127.0.0.1:{}/checkpoints",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let cases: [(&[&str], i32, &str); 6] = [
        (
            &["-n", "shop", "nope", "--archive", archive, "--to", to],
            1,
            "pod shop/nope not found in cluster bad",
        ),
        (
            &[
                "-n",
                "shop",
                "web-0",
                "-c",
                "db",
                "--archive",
                archive,
                "--to",
                to,
            ],
            1,
            "pod shop/web-0 has no container db (it has: app, sidecar)",
        ),
        (
            &[
                "-n",
                "shop",
                "web-0",
                "-c",
                "sidecar",
                "--archive",
                archive,
                "--to",
                to,
            ],
            1,
            "container sidecar of pod shop/web-0 is not running",
        ),
        (
            &[
                "-n",
                "shop",
                "web-0",
                "--archive",
                garbage.to_str().unwrap(),
                "--to",
                to,
            ],
            1,
            "garbage.tar is not a readable tar archive",
        ),
        (
            &[
                "-n",
                "shop",
                "web-0",
                "--archive",
                archive,
                "--to",
                &unreachable,
            ],
            1,
            &format!("{unreachable} is unreachable"),
        ),
        (
            &["-n", "default", "web-0", "--archive", archive, "--to", to],
            1,
            "pod default/web-0 not found",
        ),
    ];
    for (args, code, message) in cases {
        let mut all = vec!["checkpoint", "create", "bad"];
        all.extend_from_slice(args);
        let out = env.run(&all);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{all:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(message),
            "{all:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(
        json(&env.ok(&["checkpoint", "ls", "bad", "-o", "json"])),
        serde_json::json!([]),
        "nothing half-written"
    );
    assert!(!layout.join("index.json").exists(), "no image half-stored");

    let no_kubeconfig = env.run(&[
        "checkpoint",
        "create",
        "ghost",
        "web-0",
        "--archive",
        archive,
        "--to",
        to,
    ]);
    assert_eq!(no_kubeconfig.status.code(), Some(2));
    assert!(
        text(&no_kubeconfig.stderr).contains("cluster ghost has no kubeconfig"),
        "{}",
        text(&no_kubeconfig.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_creates_a_pod_from_the_checkpoint_image_and_waits_until_it_runs() {
    let env = Env::new();
    let kube = adopted(&env, "rs").await;
    running_pod(&kube).await;
    let archive = fake_archive(env.dir.path(), "a.tar", 1 << 12, "2026-11-25T18:01:00Z");
    // In a registry: the node pulls it (the import path is the smoke test's).
    let registry = clouder_testenv::registry::RegistryPeer::start(None);
    let to = format!("{}/checkpoints", registry.host());
    let created = json(&env.ok(&[
        "checkpoint",
        "create",
        "rs",
        "-n",
        "shop",
        "web-0",
        "--archive",
        archive.to_str().unwrap(),
        "--to",
        &to,
        "-o",
        "json",
    ]));
    let id = created["checkpoint"]["id"].as_str().unwrap().to_string();
    // The pod is recorded, its literal env value is not: nowhere in the state store.
    let state = std::fs::read(env.home().join("state.db")).unwrap();
    assert!(
        !String::from_utf8_lossy(&state).contains(ENV_MARKER),
        "the literal env value is in the state store"
    );
    let shown = json(&env.ok(&["checkpoint", "show", &id, "-o", "json"]));
    assert_eq!(
        shown["pod_spec"]["droppedEnv"],
        serde_json::json!(["app/API_KEY"])
    );

    // The test plays the kubelet of w-1: once the restored pod appears, its container runs.
    let pods: Api<Pod> = Api::namespaced(kube.client().await.unwrap(), "shop");
    let kubelet = tokio::spawn({
        let pods = pods.clone();
        async move {
            while pods.get_opt("web-0-restored").await.unwrap().is_none() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            play_kubelet(&pods, "web-0-restored", &["app"]).await;
        }
    });
    let restore_id = id.clone();
    let out = tokio::task::spawn_blocking(move || {
        let out = env.run(&[
            "checkpoint",
            "restore",
            "rs",
            &restore_id,
            "--node",
            "w-1",
            "-o",
            "json",
        ]);
        (env, out)
    })
    .await
    .unwrap();
    let (env, out) = out;
    assert!(out.status.success(), "{}", text(&out.stderr));
    kubelet.await.unwrap();
    let restored = json(&text(&out.stdout));
    assert_eq!(restored["pod"], "shop/web-0-restored");
    assert_eq!(restored["node"], "w-1");
    assert!(restored["seconds"].as_f64().unwrap() < 30.0);
    assert_eq!(restored["dropped_env"], serde_json::json!(["app/API_KEY"]));
    // The original pod again, on w-1, from the checkpoint image, without the literal value.
    let pod = pods.get("web-0-restored").await.unwrap();
    let spec = serde_json::to_value(pod.spec.unwrap()).unwrap();
    assert_eq!(spec["nodeName"], "w-1");
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["tolerations"][0]["key"], "batch");
    assert_eq!(spec["volumes"][0]["name"], "scratch");
    let app = &spec["containers"][0];
    assert_eq!(app["name"], "app");
    assert_eq!(app["image"], created["checkpoint"]["reference"]);
    assert_eq!(app["resources"]["requests"]["cpu"], "250m");
    assert_eq!(app["ports"][0]["containerPort"], 8080);
    assert_eq!(app["volumeMounts"][0]["mountPath"], "/scratch");
    assert_eq!(
        app["env"],
        serde_json::json!([{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}])
    );
    assert_eq!(
        (
            &spec["containers"][1]["name"],
            &spec["containers"][1]["image"]
        ),
        (&serde_json::json!("sidecar"), &serde_json::json!("side:1"))
    );
    assert_eq!(pod.metadata.labels.unwrap()["app"], "web");
    assert_eq!(
        pod.metadata.annotations.unwrap()["clouder.io/checkpoint"],
        id
    );

    let wrong = env.run(&["checkpoint", "restore", "other", &id]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        text(&wrong.stderr).contains("belongs to cluster rs, not other"),
        "{}",
        text(&wrong.stderr)
    );
}

/// A `provider: ssh` cluster set up by clouder whose hosts are `hosts` (`address:port`, logged in
/// as root with the lab's key) and whose API is `kube`.
pub async fn ssh_cluster(
    env: &Env,
    name: &str,
    key: &std::path::Path,
    hosts: &[String],
    kube: clouder_testkube::TestKube,
) -> clouder_testkube::TestKube {
    use clouder_state::StateStore;
    let dir = env.home().join("kubeadm").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    kube.write_kubeconfig(dir.join("kubeconfig")).unwrap();
    let hosts: Vec<String> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let (address, port) = h.split_once(':').unwrap();
            let role = if i == 0 { "control-plane" } else { "worker" };
            format!("    - {{address: {address}, port: {port}, user: root, role: {role}}}\n")
        })
        .collect();
    let yaml = format!(
        "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: {name}\nspec:\n  provider: ssh\n  \
         ssh: {{privateKeyPath: {}}}\n  hosts:\n{}",
        key.display(),
        hosts.concat()
    );
    let spec = clouder_spec::parse("test.yaml", &yaml).unwrap();
    let store = clouder_state::SqliteStore::open(&env.home().join("state.db")).unwrap();
    store
        .put_cluster(&clouder_state::ClusterRecord {
            name: name.to_string(),
            provider: "ssh".into(),
            region: None,
            context: None,
            spec: serde_json::to_value(&spec).unwrap(),
            status: "ready".into(),
            setup_complete: true,
            created_at: 0,
            updated_at: 0,
        })
        .unwrap();
    kube
}

/// A Ready Node whose kubelet listens at `localhost:kubelet_port` (its Hostname address, the
/// one the API server prefers) and whose InternalIP is `address`.
pub async fn kubelet_node(
    kube: &clouder_testkube::TestKube,
    name: &str,
    address: &str,
    kubelet_port: u16,
) {
    use k8s_openapi::api::core::v1::Node;
    let nodes: Api<Node> = Api::all(kube.client().await.unwrap());
    let node = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let status = serde_json::json!({"status": {
        "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": "localhost"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "conditions": [{"type": "Ready", "status": "True"}],
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// A pod `NAMESPACE/NAME` labelled `app: LABEL` on `node` whose one container runs.
pub async fn pod_on(
    kube: &clouder_testkube::TestKube,
    (namespace, name): (&str, &str),
    node: &str,
    container: &str,
    label: &str,
) {
    let client = kube.client().await.unwrap();
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let body =
        serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).unwrap();
    let _ = ns.create(&PostParams::default(), &body).await;
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": label}},
        "spec": {"nodeName": node, "containers": [{"name": container, "image": "app:1"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    play_kubelet(&pods, name, &[container]).await;
}

/// The kubelet client certificate `get-config` would have fetched, signed by the fake
/// kubelet's CA; and that CA, for `--kubelet-ca`.
pub fn kubelet_client(env: &Env, cluster: &str, kubelet: &FakeKubelet) -> String {
    let dir = env.home().join("kubeadm").join(cluster);
    let (pem, _, _) = kubelet.ca.sign("kube-apiserver-kubelet-client", &[]);
    std::fs::write(dir.join("apiserver-kubelet-client.crt"), pem.cert).unwrap();
    std::fs::write(dir.join("apiserver-kubelet-client.key"), pem.key).unwrap();
    let ca = dir.join("kubelet-ca.crt");
    std::fs::write(&ca, &kubelet.ca.pem).unwrap();
    ca.display().to_string()
}

/// The files under `dir`, recursively.
pub fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn create_fetches_the_archive_from_the_node_over_ssh_and_deletes_it_there() {
    let env = Env::new();
    let lab = Lab::start(1);
    let address = lab.hosts[0].address.clone();
    // Nothing listens on port 1 of this machine: a host that refuses SSH.
    let refusing = "127.0.0.1:1".to_string();
    let kube = ssh_cluster(
        &env,
        "ssh",
        &lab.client_key(),
        &[format!("{address}:22"), refusing],
        testkube().await,
    )
    .await;
    // Unrooted lab hosts see this machine's files: the kubelet "wrote" the archive here.
    let node_dir = tempfile::tempdir().unwrap();
    let archive = fake_archive(
        node_dir.path(),
        "checkpoint-web-0_shop-app.tar",
        1 << 20,
        "2026-11-25T18:01:00Z",
    );
    let bytes = std::fs::read(&archive).unwrap();
    let kubelet = FakeKubelet::start(Behaviour {
        archive: Some(archive.display().to_string()),
        pod: Some("shop/web-0".into()),
        ..Behaviour::default()
    })
    .await;
    let port: u16 = kubelet.url.rsplit_once(':').unwrap().1.parse().unwrap();
    kubelet_node(&kube, "w-0", &address, port).await;
    kubelet_node(&kube, "w-1", "192.0.2.99", port).await;
    kubelet_node(&kube, "w-2", "127.0.0.1", port).await;
    pod_on(&kube, ("shop", "web-0"), "w-0", "app", "web").await;
    let ca = kubelet_client(&env, "ssh", &kubelet);
    let layout = env.dir.path().join("layout");
    let tmp = env.dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let create = |pod: &str| {
        let args = [
            "checkpoint",
            "create",
            "ssh",
            "-n",
            "shop",
            pod,
            "--direct",
            "--kubelet-ca",
            &ca,
            "--to",
            layout.to_str().unwrap(),
            "--timeout",
            "5",
            "-o",
            "json",
        ];
        env.run_with(&args, &[("TMPDIR", tmp.to_str().unwrap())])
    };

    let out = create("web-0");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let created = json(&text(&out.stdout));
    assert_eq!(created["checkpoint"]["node"], "w-0");
    assert_eq!(
        *kubelet.requests.lock().unwrap(),
        ["/checkpoint/shop/web-0/app?timeout=5"]
    );
    assert!(!archive.exists(), "the archive was deleted on the node");
    assert!(
        files(&layout)
            .iter()
            .any(|b| std::fs::read(b).unwrap() == bytes),
        "the image's layer is the node's archive, byte for byte"
    );
    assert_eq!(
        files(&tmp),
        Vec::<std::path::PathBuf>::new(),
        "the local copy is gone"
    );

    // The kubelet answers the same path again, but the file is gone now.
    let again = create("web-0");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains(&format!(
            "node w-0 (root@{address}:22): cannot read the checkpoint archive {}",
            archive.display()
        )) && text(&again.stderr).contains("No such file or directory"),
        "{}",
        text(&again.stderr)
    );

    // A node clouder has no host for is refused before its kubelet is asked.
    pod_on(&kube, ("shop", "web-1"), "w-1", "app", "web").await;
    let asked = kubelet.requests.lock().unwrap().len();
    let unknown = create("web-1");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown.stderr).contains("node w-1 of cluster ssh: no host recorded for the cluster has its name or addresses (192.0.2.99, localhost)")
            && text(&unknown.stderr).contains("pass --archive"),
        "{}",
        text(&unknown.stderr)
    );
    assert_eq!(
        kubelet.requests.lock().unwrap().len(),
        asked,
        "the kubelet was not asked"
    );

    pod_on(&kube, ("shop", "web-2"), "w-2", "app", "web").await;
    let unreachable = create("web-2");
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(
        text(&unreachable.stderr).contains(
            "node w-2 (root@127.0.0.1:1) is unreachable over SSH, so no checkpoint was taken"
        ),
        "{}",
        text(&unreachable.stderr)
    );
    let listed = json(&env.ok(&["checkpoint", "ls", "ssh", "-o", "json"]));
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "only the one that was stored: {listed}"
    );
}

pub async fn testkube() -> clouder_testkube::TestKube {
    clouder_testkube::TestKube::start().await.unwrap()
}
