//! `kubeadm upgrade-kubelet` and `byon add|remove` end to end: a `provider: ssh` cluster on real
//! sshd hosts with the nodekit's packages of two minor versions, upgraded node by node, then a
//! fourth host joined and removed.

use crate::harness::*;
use crate::ssh_provider::{kit_spec_text, kubeadm_calls, kubectl, rows};
use clouder_testenv::{Lab, NodeKit};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FROM: &str = "1.33.2-1.1";
const TO: &str = "1.34.1-1.1";

fn nodes(kubeconfig: &Path) -> Vec<Value> {
    let list: Value =
        serde_json::from_str(&kubectl(kubeconfig, &["get", "nodes", "-o", "json"])).unwrap();
    list["items"].as_array().unwrap().clone()
}

/// The nodes, or None while the API server is away (`upgrade apply` restarts it).
fn nodes_if_served(kubeconfig: &Path) -> Option<Vec<Value>> {
    let out = std::process::Command::new(clouder_testenv::nodekit::real_kubectl())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["get", "nodes", "-o", "json"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let list: Value = serde_json::from_slice(&out.stdout).ok()?;
    list["items"].as_array().cloned()
}

fn name_of(node: &Value) -> String {
    node["metadata"]["name"].as_str().unwrap().to_string()
}

fn kubelet_versions(kubeconfig: &Path) -> BTreeMap<String, String> {
    nodes(kubeconfig)
        .iter()
        .map(|n| {
            let v = n["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap();
            (name_of(n), v.to_string())
        })
        .collect()
}

fn ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Polls until `check` holds (or panics naming `what`).
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The running pods of a Deployment: name → node.
fn pods(kubeconfig: &Path, app: &str) -> BTreeMap<String, String> {
    let list: Value = serde_json::from_str(&kubectl(
        kubeconfig,
        &["get", "pods", "-l", &format!("app={app}"), "-o", "json"],
    ))
    .unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .map(|p| {
            (
                name_of(p),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The kubeadm commands a host ran, but `version` (the probes ask it).
fn changing_calls(lab: &Lab, host: usize) -> Vec<String> {
    kubeadm_calls(lab, host)
        .into_iter()
        .map(|(args, _)| args.join(" "))
        .filter(|a| !a.starts_with("version"))
        .collect()
}

/// Records, while it runs, every node seen cordoned (`spec.unschedulable`) and in what order.
struct CordonWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(String, String)>>>,
    thread: std::thread::JoinHandle<()>,
}

impl CordonWatch {
    fn start(kubeconfig: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let thread = {
            let (stop, seen, kubeconfig) =
                (stop.clone(), Arc::clone(&seen), kubeconfig.to_path_buf());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    for n in nodes_if_served(&kubeconfig).unwrap_or_default() {
                        if n["spec"]["unschedulable"] == true {
                            let version = n["status"]["nodeInfo"]["kubeletVersion"].to_string();
                            let mut seen = seen.lock().unwrap();
                            let entry = (name_of(&n), version);
                            if !seen.contains(&entry) {
                                seen.push(entry);
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(150));
                }
            })
        };
        CordonWatch { stop, seen, thread }
    }

    /// (node, kubelet version) pairs seen cordoned, first sightings in order.
    fn stop(self) -> Vec<(String, String)> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        Arc::try_unwrap(self.seen).unwrap().into_inner().unwrap()
    }
}

#[test]
fn a_cluster_is_upgraded_node_by_node_then_a_host_joins_and_leaves_it() {
    let (old, new) = (NodeKit::shared(FROM), NodeKit::shared(TO));
    let shares = [old.share(), new.share()];
    let shares: Vec<_> = shares
        .iter()
        .map(|(h, g)| (h.clone(), g.as_str()))
        .collect();
    let lab = Lab::start_rooted_with(4, &shares);
    let env = Env::new();
    let spec = write(
        env.dir.path(),
        "up.yaml",
        &kit_spec_text(&lab, 3, old, "up"),
    );
    let spec_134 = write(
        env.dir.path(),
        "up-1.34.yaml",
        &kit_spec_text(&lab, 3, new, "up"),
    );
    let spec_135 = write(
        env.dir.path(),
        "up-1.35.yaml",
        &kit_spec_text(&lab, 3, new, "up").replace("version: '1.34.1'", "version: '1.35.0'"),
    );
    let started = Instant::now();
    env.ok(&["kubeadm", "apply", "-f", spec.to_str().unwrap()]);
    eprintln!(
        "bootstrap of 3 hosts: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let kubeconfig = env.home().join("kubeadm/up/kubeconfig");
    let by_address: BTreeMap<String, String> = nodes(&kubeconfig)
        .iter()
        .map(|n| {
            let ip = n["status"]["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["type"] == "InternalIP")
                .unwrap()["address"]
                .as_str()
                .unwrap()
                .to_string();
            (ip, name_of(n))
        })
        .collect();
    let node_of = |i: usize| by_address[&lab.hosts[i].address].clone();
    let (cp, workers) = (node_of(0), [node_of(1), node_of(2)]);

    // Pods the drains must move.
    kubectl(
        &kubeconfig,
        &[
            "create",
            "deployment",
            "web",
            "--image=registry.k8s.io/pause:3.10",
            "--replicas=2",
        ],
    );
    let before = eventually("the web pods to run", || {
        let p = pods(&kubeconfig, "web");
        (p.len() == 2).then_some(p)
    });

    // Refused before any change: two minors at once, and a version change through apply.
    let skipped = env.run(&[
        "kubeadm",
        "upgrade-kubelet",
        "up",
        "--k8s-version",
        "1.35.0",
    ]);
    assert_eq!(skipped.status.code(), Some(2), "{}", text(&skipped.stderr));
    let says = text(&skipped.stderr);
    assert!(
        says.contains("1.33.2 → 1.35.0 skips a minor version")
            && says.contains("nothing was changed"),
        "{says}"
    );
    let through_file = env.run(&[
        "kubeadm",
        "upgrade-kubelet",
        "-f",
        spec_135.to_str().unwrap(),
    ]);
    assert_eq!(
        through_file.status.code(),
        Some(2),
        "{}",
        text(&through_file.stderr)
    );
    let by_apply = env.run(&["kubeadm", "apply", "-f", spec_134.to_str().unwrap()]);
    assert_eq!(
        by_apply.status.code(),
        Some(2),
        "{}",
        text(&by_apply.stderr)
    );
    assert!(
        text(&by_apply.stderr).contains("upgrade-kubelet"),
        "{}",
        text(&by_apply.stderr)
    );
    assert!(
        (0..3).all(|i| !changing_calls(&lab, i)
            .iter()
            .any(|c| c.starts_with("upgrade"))),
        "no host was upgraded"
    );
    assert!(
        kubelet_versions(&kubeconfig)
            .values()
            .all(|v| v == "v1.33.2")
    );

    // The upgrade: control plane first, then the workers, each drained around its kubelet.
    let watch = CordonWatch::start(&kubeconfig);
    let started = Instant::now();
    let out = env.run(&[
        "kubeadm",
        "upgrade-kubelet",
        "-f",
        spec_134.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let seconds = started.elapsed().as_secs_f64();
    let cordoned = watch.stop();
    eprintln!("upgrade of 3 nodes 1.33.2 → 1.34.1: {seconds:.1}s");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rolled = rows(&out);
    let order: Vec<(&str, &str)> = rolled
        .iter()
        .map(|r| (r["node"].as_str().unwrap(), r["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        order,
        [
            (cp.as_str(), "upgraded"),
            (workers[0].as_str(), "upgraded"),
            (workers[1].as_str(), "upgraded")
        ]
    );
    assert_eq!(
        rolled[0]["steps"],
        json!([
            "kubeadm package",
            "kubeadm upgrade apply",
            "kubelet packages"
        ])
    );
    for row in &rolled[1..] {
        assert_eq!(
            row["steps"],
            json!([
                "kubeadm package",
                "kubeadm upgrade node",
                "kubelet packages"
            ]),
            "{row}"
        );
    }
    let upgraded = eventually("every kubelet at v1.34.1", || {
        let v = kubelet_versions(&kubeconfig);
        v.values().all(|v| v == "v1.34.1").then_some(v)
    });
    assert_eq!(upgraded.len(), 3);
    let upgrades = |i| -> Vec<String> {
        changing_calls(&lab, i)
            .into_iter()
            .filter(|c| c.starts_with("upgrade"))
            .collect()
    };
    assert_eq!(upgrades(0), ["upgrade apply --yes v1.34.1"]);
    assert_eq!(upgrades(1), ["upgrade node"]);
    assert_eq!(upgrades(2), ["upgrade node"]);
    let manifest = lab
        .written_by_host(0, "/etc/kubernetes/manifests/kube-apiserver.yaml")
        .unwrap();
    assert!(
        manifest.contains("image: registry.k8s.io/kube-apiserver:v1.34.1"),
        "{manifest}"
    );
    let config = kubectl(
        &kubeconfig,
        &[
            "get",
            "configmap",
            "-n",
            "kube-system",
            "kubeadm-config",
            "-o",
            "jsonpath={.data.ClusterConfiguration}",
        ],
    );
    assert!(config.contains("kubernetesVersion: v1.34.1"), "{config}");
    // Each node was seen cordoned while its kubelet was still the old one, the control plane
    // before the workers; the workers' pods were evicted and run again elsewhere.
    let first_seen: Vec<&str> = {
        let mut names = Vec::new();
        for (n, _) in &cordoned {
            if !names.contains(&n.as_str()) {
                names.push(n.as_str());
            }
        }
        names
    };
    assert_eq!(
        first_seen,
        [cp.as_str(), workers[0].as_str(), workers[1].as_str()],
        "{cordoned:?}"
    );
    for n in [&cp, &workers[0], &workers[1]] {
        assert!(
            cordoned.contains(&(n.clone(), "\"v1.33.2\"".into())),
            "{n} cordoned before its kubelet moved: {cordoned:?}"
        );
    }
    assert!(
        nodes(&kubeconfig)
            .iter()
            .all(|n| n["spec"]["unschedulable"] != true),
        "every node uncordoned"
    );
    let after = eventually("the web pods to run again", || {
        let p = pods(&kubeconfig, "web");
        (p.len() == 2).then_some(p)
    });
    let kept: BTreeSet<_> = after.keys().filter(|p| before.contains_key(*p)).collect();
    assert!(
        kept.is_empty(),
        "every original pod was evicted: {before:?} → {after:?}"
    );

    // A re-run finds every node done: no drain, no kubeadm command.
    let calls: Vec<usize> = (0..3).map(|i| changing_calls(&lab, i).len()).collect();
    let again = env.run(&["kubeadm", "upgrade-kubelet", "up", "-o", "json"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    for row in rows(&again) {
        assert_eq!(row["result"], "unchanged", "{row}");
        assert_eq!(row["steps"], json!([]), "{row}");
    }
    assert_eq!(
        (0..3)
            .map(|i| changing_calls(&lab, i).len())
            .collect::<Vec<_>>(),
        calls
    );

    // BYON: the fourth host joins the upgraded cluster (at its version, from its repository).
    let host = format!("root@{}", lab.hosts[3].address);
    let key = lab.client_key();
    let key = key.to_str().unwrap();
    let add = [
        "byon",
        "add",
        "up",
        "--host",
        &host,
        "-i",
        key,
        "--label",
        "team=ml",
        "--taint",
        "dedicated=ml:NoSchedule",
        "--provenance",
        "laptop",
        "-o",
        "json",
    ];
    let started = Instant::now();
    let added: Value = serde_json::from_str(&env.ok(&add)).unwrap();
    eprintln!("byon add: {:.1}s", started.elapsed().as_secs_f64());
    let byon = added["node"].as_str().unwrap().to_string();
    let joined = |want: bool| {
        eventually("the BYON node", || {
            let n = nodes(&kubeconfig).into_iter().find(|n| name_of(n) == byon);
            match (n, want) {
                (Some(n), true) if ready(&n) => Some(Some(n)),
                (None, false) => Some(None),
                _ => None,
            }
        })
    };
    let node = joined(true).unwrap();
    let labels = &node["metadata"]["labels"];
    assert_eq!(labels["team"], "ml", "{labels}");
    assert_eq!(labels["clouder.io/provenance"], "laptop", "{labels}");
    let taints = node["spec"]["taints"].as_array().unwrap();
    assert!(
        taints
            .iter()
            .any(|t| t["key"] == "dedicated" && t["value"] == "ml" && t["effect"] == "NoSchedule"),
        "{taints:?}"
    );
    assert!(
        taints
            .iter()
            .any(|t| t["key"] == "clouder.io/non-production" && t["effect"] == "NoSchedule"),
        "a laptop is no production machine: {taints:?}"
    );
    assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.34.1");
    let listed: Value = serde_json::from_str(&env.ok(&["byon", "ls", "up", "-o", "json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["node"], byon.as_str());
    assert_eq!(listed[0]["provenance"], "laptop");
    let twice = env.run(&add);
    assert_eq!(twice.status.code(), Some(2), "{}", text(&twice.stderr));
    assert!(
        text(&twice.stderr).contains("is already a machine of `up`"),
        "{}",
        text(&twice.stderr)
    );

    // A pod only that host takes, for the removal's drain to evict.
    let ml = write(
        env.dir.path(),
        "ml.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ml}\nspec:\n  replicas: 1\n  \
         selector: {matchLabels: {app: ml}}\n  template:\n    metadata: {labels: {app: ml}}\n    spec:\n      \
         nodeSelector: {team: ml}\n      tolerations: [{key: dedicated, value: ml, effect: NoSchedule}, \
         {key: clouder.io/non-production, operator: Exists, effect: NoSchedule}]\n      \
         containers: [{name: ml, image: registry.k8s.io/pause:3.10}]\n",
    );
    kubectl(&kubeconfig, &["apply", "-f", ml.to_str().unwrap()]);
    let ml_pod = eventually("the ml pod to run", || {
        pods(&kubeconfig, "ml").into_iter().next()
    });
    assert_eq!(ml_pod.1, byon);

    let removed: Value =
        serde_json::from_str(&env.ok(&["byon", "remove", "up", &byon, "-i", key, "-o", "json"]))
            .unwrap();
    assert_eq!(removed["reset"], true, "{removed}");
    assert!(
        removed["evicted"].to_string().contains(&ml_pod.0),
        "{removed}"
    );
    assert!(joined(false).is_none());
    assert_eq!(lab.written_by_host(3, "/etc/kubernetes/kubelet.conf"), None);
    assert!(
        changing_calls(&lab, 3).iter().any(|c| c == "reset --force"),
        "{:?}",
        changing_calls(&lab, 3)
    );
    assert_eq!(env.ok(&["byon", "ls", "up", "-o", "json"]).trim(), "[]");

    // The reset host can join again.
    env.ok(&add);
    assert!(joined(true).is_some());
}
