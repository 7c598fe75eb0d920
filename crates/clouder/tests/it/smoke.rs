//! `clouder kubeadm smoke-test` end to end with real parts: clouder-testkube as the API server,
//! the stand-in kubelet running pods through real containerd 2.1 + runc + CRIU (in the trixie
//! root filesystem), a real registry for the images, and an SSH lab host that is the node for
//! clouder (the kubelet runs in its network namespace; the archives it has the runtime write are
//! what the host serves at /var/lib/kubelet/checkpoints).

use super::checkpoint::ssh_cluster;
use super::harness::{Env, text};
use clouder_checkpoint::backend::Registry;
use clouder_testenv::Lab;
use clouder_testenv::cri::{CriNode, cri_rootfs};
use clouder_testenv::registry::{RegistryPeer, free_port};
use clouder_testkube::standin::{CRI_ENV, ROOT_ENV, pki};
use clouder_testkube::{Options, TestKube};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The stand-in kubelet, killed when dropped.
struct Kubelet(Child);

impl Drop for Kubelet {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The stand-in kubelet in the lab host's network namespace, rooted at `root`, running pods
/// through `node`'s containerd; its output appended to `log`.
fn spawn_kubelet(lab: &Lab, root: &Path, node: &CriNode, log: &Path, extra: &[&str]) -> Kubelet {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let socket = node.dir.path().join("run/containerd/containerd.sock");
    let host = &lab.hosts[0];
    Kubelet(
        host.command(clouder_testenv::nodekit::testkube_binary())
            .arg("kubelet")
            .arg(format!(
                "--kubeconfig={}",
                root.join("kubelet.conf").display()
            ))
            .arg(format!(
                "--config={}",
                root.join("var/lib/kubelet/config.yaml").display()
            ))
            .arg(format!(
                "--container-runtime-endpoint=unix://{}",
                socket.display()
            ))
            .arg(format!("--node-ip={}", host.address))
            .arg("--hostname-override=smoke-node")
            .args(extra)
            .env(ROOT_ENV, root)
            .env(CRI_ENV, "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// A one-node cluster `name` whose pods run for real, and where checkpoint images go.
struct World {
    env: Env,
    registry: RegistryPeer,
    image: String,
    /// Holds the `ctr` the host runs.
    _work: tempfile::TempDir,
    kube: TestKube,
    kubelet: Kubelet,
    lab: Lab,
    root: std::path::PathBuf,
    node: CriNode,
    kubelet_log: std::path::PathBuf,
}

impl World {
    async fn start(name: &str) -> World {
        let env = Env::new();
        let registry = RegistryPeer::start(None);
        let work = tempfile::tempdir_in("/var/tmp").unwrap();
        let base =
            Registry::new(&format!("{}/clouder-test/busybox", registry.host()), None).unwrap();
        let busybox = clouder_checkpoint::testing::busybox_image(
            work.path(),
            &cri_rootfs().join("usr/bin/busybox"),
        );
        clouder_checkpoint::push(&base, &busybox, "1")
            .await
            .unwrap();
        let image = format!("{}/clouder-test/busybox:1", registry.host());
        let node = CriNode::start(&image).await;
        let checkpoints = node.dir.path().join("checkpoints");
        std::fs::create_dir_all(&checkpoints).unwrap();
        // The host is the node for clouder: the runtime's socket where containerd has it, and
        // its `ctr` on PATH, as a containerd node has them (checkpoints imported over SSH).
        let ctr = work.path().join("ctr-bin");
        std::fs::create_dir_all(&ctr).unwrap();
        let from = cri_rootfs().join("usr/bin/ctr");
        if std::fs::hard_link(&from, ctr.join("ctr")).is_err() {
            std::fs::copy(&from, ctr.join("ctr")).unwrap();
        }
        let lab = Lab::start_rooted_with(
            1,
            &[
                (checkpoints.clone(), "/var/lib/kubelet/checkpoints"),
                (node.dir.path().join("run/containerd"), "/run/containerd"),
                (ctr, "/usr/local/bin"),
            ],
        );
        let host = &lab.hosts[0];

        // The API server on the lab's bridge, so the kubelet in the host's namespace reaches it;
        // it reaches the kubelet with the apiserver-kubelet-client certificate of a kubeadm PKI.
        let pki = pki::generate(Vec::new()).unwrap();
        let kube = TestKube::start_with(Options {
            bind: lab.gateway().parse().unwrap(),
            controllers: true,
            kubelet_client: Some((
                pki.kubelet_client.cert.clone(),
                pki.kubelet_client.key.clone(),
            )),
            ..Options::default()
        })
        .await
        .unwrap();

        // The kubelet's root: the cluster CA, its config, and the runtime's pod logs and
        // checkpoint archives where it looks for them.
        let root = env.dir.path().join("kubelet-root");
        let write = |path: &str, content: &str| {
            let full = root.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, content).unwrap();
        };
        write("etc/kubernetes/pki/ca.crt", &pki.ca.cert);
        let port = free_port();
        write(
            "var/lib/kubelet/config.yaml",
            &format!(
                "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nport: {port}\nauthentication:\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\n"
            ),
        );
        std::fs::create_dir_all(root.join("var/log")).unwrap();
        std::os::unix::fs::symlink(node.dir.path().join("pods"), root.join("var/log/pods"))
            .unwrap();
        std::os::unix::fs::symlink(&checkpoints, root.join("var/lib/kubelet/checkpoints")).unwrap();
        kube.write_kubeconfig(root.join("kubelet.conf")).unwrap();
        let kubelet_log = env.dir.path().join("kubelet.log");
        let kubelet = spawn_kubelet(&lab, &root, &node, &kubelet_log, &[]);

        // clouder knows the cluster: its kubeconfig, and the node as a `provider: ssh` host.
        let hosts = [format!("{}:22", host.address)];
        let kube = ssh_cluster(&env, name, &lab.client_key(), &hosts, kube).await;
        let nodes: Api<Node> = Api::all(kube.client().await.unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        while nodes.get_opt("smoke-node").await.unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the kubelet did not register: {}",
                std::fs::read_to_string(&kubelet_log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        World {
            env,
            registry,
            image,
            _work: work,
            kube,
            kubelet,
            lab,
            root,
            node,
            kubelet_log,
        }
    }

    fn smoke_test(&self, name: &str, extra_env: &[(&str, &str)]) -> std::process::Output {
        let to = format!("{}/clouder-test/checkpoints", self.registry.host());
        self.smoke_test_to(name, Some(&to), extra_env)
    }

    /// The smoke test storing its checkpoint in `to` (default: the cluster's local directory).
    fn smoke_test_to(
        &self,
        name: &str,
        to: Option<&str>,
        extra_env: &[(&str, &str)],
    ) -> std::process::Output {
        let mut args = vec![
            "kubeadm",
            "smoke-test",
            name,
            "--image",
            &self.image,
            "--timeout",
            "60",
            "-o",
            "json",
        ];
        if let Some(to) = to {
            args.extend(["--to", to]);
        }
        self.env.run_with(&args, extra_env)
    }

    /// The pod sandboxes in the runtime.
    async fn sandboxes(&self) -> Vec<clouder_checkpoint::cri::api::PodSandbox> {
        let request = clouder_checkpoint::cri::api::ListPodSandboxRequest::default();
        let mut runtime = self.node.cri.runtime();
        runtime
            .list_pod_sandbox(request)
            .await
            .unwrap()
            .into_inner()
            .items
    }

    /// Stops the kubelet (its pods keep running in the runtime) and starts it again with `extra`
    /// flags.
    fn restart_kubelet(&mut self, extra: &[&str]) {
        let _ = self.kubelet.0.kill();
        let _ = self.kubelet.0.wait();
        self.kubelet = spawn_kubelet(&self.lab, &self.root, &self.node, &self.kubelet_log, extra);
    }

    fn logs(&self) -> String {
        format!(
            "kubelet log:\n{}\ncontainerd log (tail):\n{}",
            std::fs::read_to_string(&self.kubelet_log).unwrap_or_default(),
            self.node
                .log()
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        )
    }
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&text(&out.stdout))
        .unwrap_or_else(|e| panic!("{e}: {}\nstderr: {}", text(&out.stdout), text(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread")]
async fn smoke_test_proves_the_restored_counter_kept_its_memory_and_fails_when_it_did_not() {
    let world = World::start("smoke").await;

    let out = world.smoke_test("smoke", &[]);
    let report = passed(&world, &out);
    assert_eq!(
        report["counter"]["restored_image"]
            .as_str()
            .unwrap()
            .split_once("@sha256:")
            .unwrap()
            .0,
        format!("{}/clouder-test/checkpoints", world.registry.host()),
        "pulled from the registry: {report:#}"
    );
    assert_eq!(report["counter"]["imported_bytes"], serde_json::Value::Null);
    // Cleaned up: the namespace goes and the checkpoint is forgotten.
    assert_eq!(report["cleaned_up"], true);
    let ls = world.env.run(&["checkpoint", "ls", "smoke", "-o", "json"]);
    assert_eq!(json(&ls), serde_json::json!([]), "{}", text(&ls.stderr));
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
        Api::all(world.kube.client().await.unwrap());
    let ns = namespaces
        .get_opt(report["namespace"].as_str().unwrap())
        .await
        .unwrap();
    assert!(
        ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        "the test namespace is deleted"
    );

    // A restore whose memory does not survive (started afresh from the counter's image): fails.
    let out = world.smoke_test("smoke", &[("CLOUDER_FAULT_FRESH_RESTORE", "1")]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}\n{}", world.logs());
    assert_eq!(report["passed"], false);
    let last = report["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["name"], "memory-survived");
    assert_eq!(last["outcome"], "failed");
    let checkpointed = report["counter"]["checkpointed"].as_u64().unwrap();
    let before = report["counter"]["before_checkpoint"].as_u64().unwrap();
    let first = report["counter"]["restored"][0].as_u64().unwrap();
    assert!(first < before, "{report:#}");
    let expected = format!(
        "the restored counter started at {first}, but it had counted to {before} before its checkpoint (the checkpoint holds {checkpointed}): the process's memory did not survive the restore"
    );
    assert_eq!(last["detail"], expected.as_str());
    assert!(
        text(&out.stderr).contains(&format!(
            "smoke test of smoke failed at memory-survived: {expected}"
        )),
        "{}",
        text(&out.stderr)
    );

    // With an ingress controller rolled out whose load balancer answers HTTP (here the registry).
    ingress_controller(&world, "127.0.0.1", world.registry.port).await;
    let out = world.smoke_test("smoke", &[]);
    let report = json(&out);
    assert!(out.status.success(), "{report:#}\n{}", world.logs());
    assert_eq!(report["steps"][0]["outcome"], "passed", "{report:#}");
    assert_eq!(
        report["steps"][0]["detail"],
        format!(
            "http://127.0.0.1:{}/ answered HTTP 200",
            world.registry.port
        )
        .as_str()
    );
}

/// Checks that the smoke test passed every step and the restored counter continued; its report.
fn passed(world: &World, out: &std::process::Output) -> serde_json::Value {
    let report = json(out);
    assert!(
        out.status.success(),
        "{}\n{report:#}\n{}",
        text(&out.stderr),
        world.logs()
    );
    assert_eq!(report["passed"], true);
    eprintln!("smoke-test report: {report:#}");
    let steps: Vec<(&str, &str)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("ingress", "skipped"),
            ("counter-runs", "passed"),
            ("checkpoint", "passed"),
            ("delete", "passed"),
            ("restore", "passed"),
            ("memory-survived", "passed"),
        ]
    );
    assert!(
        report["steps"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("the cluster has no ingress controller"),
        "{report:#}"
    );
    for step in report["steps"].as_array().unwrap() {
        assert!(step["seconds"].as_f64().unwrap() >= 0.0, "{step}");
    }
    let counter = &report["counter"];
    let checkpointed = counter["checkpointed"].as_u64().unwrap();
    let restored: Vec<u64> = counter["restored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let before = counter["before_checkpoint"].as_u64().unwrap();
    assert!(before >= 9, "counted for a while first: {report:#}");
    assert!(before <= checkpointed, "{report:#}");
    assert!(
        restored[0] > before && restored[0] <= checkpointed + 1,
        "the restored counter continues from where it was dumped (after {before}, by {checkpointed}): {restored:?}"
    );
    assert_eq!(restored[1], restored[0] + 1, "{restored:?}");
    assert_eq!(counter["node"], "smoke-node");
    assert_eq!(counter["restored_node"], "smoke-node");
    report
}

/// Without --to the checkpoint goes to the cluster's local directory; restore reads it back and
/// streams it over SSH into the node's containerd (real ctr), and the pod is created with
/// imagePullPolicy Never on that node. With --to s3://… (moto) the same, from S3.
#[tokio::test(flavor = "multi_thread")]
async fn smoke_test_restores_from_a_local_directory_and_from_s3_through_an_import_on_the_node() {
    let world = World::start("local").await;
    let out = world.smoke_test_to("local", None, &[]);
    let report = passed(&world, &out);
    let counter = &report["counter"];
    let id = counter["checkpoint"].as_str().unwrap();
    assert_eq!(
        counter["restored_image"],
        format!("localhost/clouder-checkpoint:{id}").as_str(),
        "{report:#}"
    );
    let imported = counter["imported_bytes"].as_u64().unwrap();
    assert!(
        imported > 100_000,
        "the archive went to the node: {imported}"
    );
    let restore = &report["steps"][4];
    assert_eq!(
        restore["detail"],
        format!("counter-restored runs on smoke-node (its image imported there, {imported} bytes)")
            .as_str()
    );
    // The image is in the cluster's private directory (an OCI layout) and, imported, in the
    // node's containerd, where the kubelet found it without pulling.
    let layout = world.env.home().join("kubeadm/local/checkpoints");
    let mode = std::os::unix::fs::PermissionsExt::mode(&layout.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
    assert!(layout.join("oci-layout").exists());
    let images = std::process::Command::new(cri_rootfs().join("usr/bin/ctr"))
        .arg(format!(
            "--address={}",
            world
                .node
                .dir
                .path()
                .join("run/containerd/containerd.sock")
                .display()
        ))
        .args(["-n", "k8s.io", "images", "ls", "-q"])
        .output()
        .unwrap();
    assert!(
        text(&images.stdout).contains(&format!("localhost/clouder-checkpoint:{id}")),
        "{}",
        text(&images.stdout)
    );

    // S3 on moto.
    let bucket = format!("smoke-{}", std::process::id());
    super::state::bucket(&bucket).await;
    let to = format!("s3://{bucket}/checkpoints");
    let s3 = [(
        "AWS_ENDPOINT_URL_S3",
        clouder_testenv::moto::serial_endpoint(),
    )];
    let out = world.smoke_test_to("local", Some(&to), &s3);
    let report = passed(&world, &out);
    assert!(report["counter"]["imported_bytes"].as_u64().unwrap() > 100_000);
}

/// What `enable-ingress-nginx` leaves in a cluster, reduced to what the ingress check reads: the
/// controller's Deployment (here a sleeping busybox, run for real) and its LoadBalancer Service,
/// whose address is `address` at port `port`.
async fn ingress_controller(world: &World, address: &str, port: u16) {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Namespace, Service};
    use kube::api::{Patch, PatchParams, PostParams};
    let client = world.kube.client().await.unwrap();
    let label = serde_json::json!({"clouder.io/addon": "ingress-nginx", "app": "ingress-nginx"});
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "ingress-nginx"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "ingress-nginx-controller", "labels": label},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "ingress-nginx"}}, "template": {
            "metadata": {"labels": label},
            "spec": {"containers": [{"name": "controller", "image": world.image, "command": ["/bin/sh", "-c", "sleep 3600"]}]},
        }},
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "ingress-nginx");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "ingress-nginx-controller", "labels": label},
        "spec": {"type": "LoadBalancer", "selector": {"app": "ingress-nginx"}, "ports": [{"name": "http", "port": port}]},
    }))
    .unwrap();
    let services: Api<Service> = Api::namespaced(client, "ingress-nginx");
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let status = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": address}]}}});
    services
        .patch_status(
            "ingress-nginx-controller",
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while deployments
        .get("ingress-nginx-controller")
        .await
        .unwrap()
        .status
        .and_then(|s| s.ready_replicas)
        != Some(1)
    {
        assert!(
            Instant::now() < deadline,
            "the controller did not roll out\n{}",
            world.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The stand-in kubelet on its own: real containers, their real status and logs through the
/// API server, checkpoints through the node proxy, and removal on deletion.
#[tokio::test(flavor = "multi_thread")]
async fn the_kubelet_stand_in_runs_pods_through_cri() {
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use kube::api::{DeleteParams, PostParams};
    let world = World::start("cri").await;
    let client = world.kube.client().await.unwrap();
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "work"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "work");
    let pod = |name: &str, script: &str| -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": world.image, "command": ["/bin/sh", "-c", script]}]},
        }))
        .unwrap()
    };
    pods.create(
        &PostParams::default(),
        &pod("once", "echo hello; echo world; exit 3"),
    )
    .await
    .unwrap();
    pods.create(&PostParams::default(), &pod("long", "echo up; sleep 3600"))
        .await
        .unwrap();
    let wait = async |name: &str, phase: &str| -> Pod {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let p = pods.get(name).await.unwrap();
            if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(phase) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "{name} not {phase}: {:?}\n{}",
                p.status,
                world.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };

    let once = wait("once", "Failed").await;
    let status = &once.status.unwrap().container_statuses.unwrap()[0];
    let terminated = status.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (3, Some("Error"))
    );
    assert!(
        status
            .container_id
            .as_deref()
            .unwrap()
            .starts_with("containerd://"),
        "{status:?}"
    );
    let log = pods.logs("once", &Default::default()).await.unwrap();
    assert_eq!(log, "hello\nworld\n");

    // imagePullPolicy: Never runs only what the runtime holds; a missing image is never pulled.
    let mut never = pod("never", "echo never");
    let c = &mut never.spec.as_mut().unwrap().containers[0];
    c.image = Some(format!(
        "{}/clouder-test/busybox:absent",
        world.registry.host()
    ));
    c.image_pull_policy = Some("Never".into());
    pods.create(&PostParams::default(), &never).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let waiting = loop {
        let p = pods.get("never").await.unwrap();
        let waiting = p
            .status
            .and_then(|s| s.container_statuses)
            .and_then(|c| c[0].state.as_ref()?.waiting.clone());
        if let Some(w) = waiting.filter(|w| w.reason.as_deref() != Some("ContainerCreating")) {
            break w;
        }
        assert!(Instant::now() < deadline, "{}", world.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(waiting.reason.as_deref(), Some("ErrImageNeverPull"));
    assert_eq!(
        waiting.message.unwrap(),
        format!(
            "Container image \"{}/clouder-test/busybox:absent\" is not present with pull policy of Never",
            world.registry.host()
        )
    );
    let asked = ["HEAD", "GET"].map(|m| {
        world
            .registry
            .requests(m, "/v2/clouder-test/busybox/manifests/absent")
    });
    assert_eq!(asked, [0, 0], "never pulled");
    pods.delete("never", &DeleteParams::default())
        .await
        .unwrap();
    // Gone from the runtime before the restart below counts what it takes over.
    let deadline = Instant::now() + Duration::from_secs(30);
    while world
        .sandboxes()
        .await
        .iter()
        .any(|s| s.metadata.as_ref().unwrap().name == "never")
    {
        assert!(Instant::now() < deadline, "{}", world.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let long = wait("long", "Running").await;
    let status = &long.status.unwrap().container_statuses.unwrap()[0];
    assert!(
        status.state.as_ref().unwrap().running.is_some() && status.ready,
        "{status:?}"
    );
    let nope = pods
        .logs(
            "long",
            &kube::api::LogParams {
                container: Some("nope".into()),
                ..Default::default()
            },
        )
        .await;
    assert!(
        nope.unwrap_err()
            .to_string()
            .contains("container nope is not valid for pod long")
    );

    // A restarted kubelet takes over the pods the runtime runs: none is started twice.
    let mut world = world;
    world.restart_kubelet(&[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&world.kubelet_log)
        .unwrap()
        .contains("took over 2 pods")
    {
        assert!(Instant::now() < deadline, "{}", world.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let long_sandboxes = world
        .sandboxes()
        .await
        .into_iter()
        .filter(|s| s.metadata.as_ref().unwrap().name == "long")
        .count();
    assert_eq!(long_sandboxes, 1, "{}", world.logs());

    // The checkpoint API through the API server's node proxy, answering as the kubelet does.
    let proxy = |path: &str| {
        http::Request::post(format!(
            "/api/v1/nodes/smoke-node/proxy/checkpoint/work/{path}"
        ))
        .body(Vec::new())
        .unwrap()
    };
    let answer = client
        .request_text(proxy("long/main?timeout=30"))
        .await
        .unwrap();
    let items: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let path = items["items"][0].as_str().unwrap();
    assert!(
        path.starts_with("/var/lib/kubelet/checkpoints/checkpoint-long_work-main-")
            && path.ends_with(".tar"),
        "{answer}"
    );
    let file = Path::new(path).file_name().unwrap();
    assert!(
        world
            .node
            .dir
            .path()
            .join("checkpoints")
            .join(file)
            .metadata()
            .unwrap()
            .len()
            > 0
    );
    for (target, expected) in [
        ("long/nope", "container nope does not exist"),
        ("gone/main", "pod does not exist"),
    ] {
        match client.request_text(proxy(target)).await {
            Err(kube::Error::Api(e)) => assert_eq!((e.code, e.message.trim()), (404, expected)),
            other => panic!("{target}: {other:?}"),
        }
    }

    // With the ContainerCheckpoint gate off the route does not exist: go-restful's plain 404.
    world.restart_kubelet(&["--feature-gates=ContainerCheckpoint=false"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.request_text(proxy("long/main")).await {
            Err(kube::Error::Api(e)) if e.code == 404 => {
                assert_eq!(e.message.trim(), "404 page not found");
                break;
            }
            // Not listening yet (503 from the API server) or still the old kubelet.
            other => assert!(Instant::now() < deadline, "{other:?}\n{}", world.logs()),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Deleted pods leave the runtime.
    for name in ["once", "long"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sandboxes = world.sandboxes().await;
        if sandboxes.is_empty()
            && pods
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .is_empty()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still there: {sandboxes:?}\n{}",
            world.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
