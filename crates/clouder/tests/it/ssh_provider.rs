//! `provider: ssh`: a cluster on hosts the user already has, bootstrapped over SSH — here real
//! sshd hosts with their own root filesystems.

use crate::harness::*;
use clouder_testenv::lab::debian_mirror;
use clouder_testenv::{Lab, NodeKit, nodekit};
use serde_json::Value;
use std::sync::Arc;

/// The Kubernetes version the nodekit's packages are built as.
const K8S: &str = "1.33.2";
const K8S_PACKAGE: &str = "1.33.2-1.1";
pub const PHASES: [&str; 4] = [
    "prerequisites",
    "container runtime",
    "criu",
    "kubernetes packages",
];

/// Package sources for the lab: `mirror` serves containerd and CRIU (Debian's sid, through the
/// lab's NAT); without a nodekit no registry here serves kubeadm, so that phase always fails, at
/// the same place.
pub fn sources(mirror: bool) -> String {
    let apt = |packages: &str| {
        if mirror {
            format!(
                "{{uri: {}, suite: sid, components: [main], packages: [{packages}]}}",
                debian_mirror()
            )
        } else {
            "{uri: 'file:/srv/clouder-no-mirror/', suite: /}".to_string()
        }
    };
    format!(
        "  sources:\n    containerd: {{apt: {}}}\n    criu: {{apt: {}}}\n    kubernetes: {{apt: {{uri: 'file:/srv/clouder-no-mirror/', suite: /}}}}\n",
        apt("containerd, runc"),
        apt("criu, iptables")
    )
}

fn spec(env: &Env, lab: &Lab, name: &str, mirror: bool) -> std::path::PathBuf {
    let hosts: Vec<String> = lab
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            format!(
                "    - {{address: {}, role: {}}}\n",
                h.address,
                if i == 0 { "control-plane" } else { "worker" }
            )
        })
        .collect();
    let body = format!(
        "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: {name}\nspec:\n  provider: ssh\n  adminUser: root\n  \
         ssh: {{privateKeyPath: {}}}\n{}  hosts:\n{}",
        lab.client_key().display(),
        sources(mirror),
        hosts.concat()
    );
    write(env.dir.path(), &format!("{name}.yaml"), &body)
}

/// A spec whose Kubernetes packages (at the kit's version) and CNI manifest come from `kit` (the
/// hosts see it at its guest_dir); the lab's first `hosts` hosts, host 0 the control plane, the
/// last of them a laptop (tainted non-production).
pub fn kit_spec_text(lab: &Lab, hosts: usize, kit: &NodeKit, name: &str) -> String {
    let version = kit.version().split('-').next().unwrap();
    let hosts: Vec<String> = lab.hosts[..hosts]
        .iter()
        .enumerate()
        .map(|(i, h)| match i {
            0 => format!("    - {{address: {}, role: control-plane}}\n", h.address),
            i if i == hosts - 1 => format!(
                "    - {{address: {}, role: worker, provenance: laptop, owner: jane}}\n",
                h.address
            ),
            _ => format!("    - {{address: {}, role: worker}}\n", h.address),
        })
        .collect();
    let kit_sources: String = kit
        .sources()
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    format!(
        "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: {name}\nspec:\n  provider: ssh\n  adminUser: root\n  \
         kubernetes: {{version: '{version}'}}\n  ssh: {{privateKeyPath: {}}}\n{}{kit_sources}  hosts:\n{}",
        lab.client_key().display(),
        sources(true).replace(
            "    kubernetes: {apt: {uri: 'file:/srv/clouder-no-mirror/', suite: /}}\n",
            ""
        ),
        hosts.concat()
    )
}

fn kit_spec(env: &Env, lab: &Lab, kit: &NodeKit, name: &str) -> std::path::PathBuf {
    let body = kit_spec_text(lab, lab.hosts.len(), kit, name);
    write(env.dir.path(), &format!("{name}.yaml"), &body)
}

/// `kubeadm apply -f FILE`, which must succeed on every host; its rows.
fn applied_everywhere(env: &Env, file: &str) -> Vec<serde_json::Value> {
    let out = env.run(&["kubeadm", "apply", "-f", file, "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = rows(&out);
    for row in &rows {
        assert_eq!(row["ok"], true, "{row}");
    }
    rows
}

/// A re-run of `kubeadm apply -f file` that succeeds everywhere and applies no phase.
fn rerun_applies_nothing(env: &Env, file: &str) -> Vec<serde_json::Value> {
    let rows = applied_everywhere(env, file);
    for row in &rows {
        assert_eq!(row["applied"], serde_json::json!([]), "{row}");
    }
    rows
}

pub fn rows(out: &std::process::Output) -> Vec<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn hosts_are_bootstrapped_once_and_a_rerun_resumes_where_each_stopped() {
    let lab = Lab::start_rooted(2);
    let env = Env::new();
    let file = spec(&env, &lab, "onprem", true);
    let f = file.to_str().unwrap();
    let done = serde_json::json!(["prerequisites", "container runtime", "criu"]);

    let first = env.run(&["kubeadm", "apply", "-f", f, "-o", "json"]);
    assert_eq!(first.status.code(), Some(1), "{}", text(&first.stderr));
    for row in rows(&first) {
        assert_eq!(row["ok"], false, "{row}");
        assert_eq!(row["applied"], done, "{row}");
        let error = row["error"].as_str().unwrap();
        assert!(
            error.contains("phase `kubernetes packages` failed")
                && error.contains("clouder-no-mirror"),
            "{error}"
        );
    }
    assert!(
        text(&first.stderr).contains("2 of 2 host(s) failed"),
        "{}",
        text(&first.stderr)
    );
    let again = env.run(&["kubeadm", "apply", "-f", f, "-o", "json"]);
    for row in rows(&again) {
        assert_eq!(
            row["applied"],
            serde_json::json!([]),
            "nothing done is redone: {row}"
        );
        assert_eq!(row["skipped"], done, "{row}");
        assert!(
            row["error"]
                .as_str()
                .unwrap()
                .contains("kubernetes packages"),
            "{row}"
        );
    }
    let info: serde_json::Value =
        serde_json::from_str(&env.ok(&["kubeadm", "info", "onprem", "-o", "json"])).unwrap();
    assert_eq!(info["cluster"]["provider"], "ssh");
    assert_eq!(info["cluster"]["status"], "failed");
}

#[test]
fn a_rebuilt_host_is_refused_by_its_pinned_key_while_the_others_finish() {
    let mut lab = Lab::start_rooted(2);
    let env = Env::new();
    let file = spec(&env, &lab, "pinned", false);
    let f = file.to_str().unwrap();
    env.run(&["kubeadm", "apply", "-f", f]);

    let key = lab.client_key();
    lab.hosts[1].start_sshd(&key, false);
    let out = env.run(&["kubeadm", "apply", "-f", f, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let rows = rows(&out);
    let other = rows[0]["error"].as_str().unwrap();
    assert!(
        other.contains("container runtime") && !other.contains("MISMATCH"),
        "the other host goes on to its next phase: {other}"
    );
    let error = rows[1]["error"].as_str().unwrap();
    assert!(
        error.contains("HOST KEY MISMATCH") && error.contains(&lab.hosts[1].address),
        "{error}"
    );
    assert!(
        text(&out.stderr).contains("2 of 2 host(s) failed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_host_lists_are_refused_before_connecting() {
    let env = Env::new();
    let wire = Tripwire::new();
    let port = wire.endpoint().rsplit(':').next().unwrap().to_string();
    let head = "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: badhosts\nspec:\n  provider: ssh\n  hosts:\n";
    let cases = [
        (
            format!("    - {{address: 127.0.0.1, port: {port}, role: worker}}\n"),
            "spec.hosts: at least one host needs `role: control-plane`",
        ),
        (
            format!(
                "    - {{address: 127.0.0.1, port: {port}, role: control-plane}}\n    - {{address: 127.0.0.1, port: {port}, role: worker}}\n"
            ),
            "is listed twice",
        ),
        (
            format!("    - {{address: 127.0.0.1, port: {port}, role: master}}\n"),
            "unknown variant `master`",
        ),
    ];
    for (hosts, says) in cases {
        let file = write(env.dir.path(), "hosts.yaml", &format!("{head}{hosts}"));
        let out = env.run(&["kubeadm", "apply", "-f", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{hosts}");
        assert!(
            text(&out.stderr).contains(says),
            "{says}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("hosts.yaml:"),
            "located: {}",
            text(&out.stderr)
        );
    }
    assert!(!wire.touched(), "no host was contacted");
}

/// Files a kubeadm control plane has, written over SSH (the host has its own root filesystem).
pub fn plant_control_plane_files(lab: &Lab) {
    let script = "set -e\nmkdir -p /etc/kubernetes/pki\n\
        printf '%s\\n' 'apiVersion: v1' 'kind: Config' 'clusters:' '- name: onprem' '  cluster:' \
        '    certificate-authority-data: Q0E=' '    server: https://10.0.0.10:6443' 'users:' \
        '- name: kubernetes-admin' '  user:' '    token: admin-secret' 'contexts:' \
        '- name: admin@onprem' '  context: {cluster: onprem, user: kubernetes-admin}' \
        'current-context: admin@onprem' > /etc/kubernetes/admin.conf\n\
        echo CERT > /etc/kubernetes/pki/apiserver-kubelet-client.crt\n\
        echo KEY > /etc/kubernetes/pki/apiserver-kubelet-client.key\n";
    let fleet = clouder_node::Fleet::new(
        clouder_node::ssh::load_key(&lab.client_key()).unwrap(),
        Arc::new(clouder_node::fleet::MemoryPins::default()),
    );
    let host = clouder_node::Host::new(&lab.hosts[0].address, "root");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let out = runtime.block_on(async {
        let session = fleet.connect(&host).await.unwrap();
        session.script(script).await.unwrap()
    });
    assert!(out.ok(), "{out:?}");
}

#[test]
fn get_config_fetches_the_kubeconfig_with_the_public_server_and_the_kubelet_client() {
    let lab = Lab::start_rooted(2);
    let env = Env::new();
    let file = spec(&env, &lab, "fetched", false);
    let missing = env.run(&["kubeadm", "get-config", "fetched"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("no cluster named `fetched`"),
        "{}",
        text(&missing.stderr)
    );

    env.run(&["kubeadm", "apply", "-f", file.to_str().unwrap()]);
    let not_set_up = env.run(&["kubeadm", "get-config", "fetched"]);
    assert_eq!(not_set_up.status.code(), Some(1));
    assert!(
        text(&not_set_up.stderr).contains("/etc/kubernetes/admin.conf"),
        "{}",
        text(&not_set_up.stderr)
    );

    plant_control_plane_files(&lab);
    let out: serde_json::Value =
        serde_json::from_str(&env.ok(&["kubeadm", "get-config", "fetched", "-o", "json"])).unwrap();
    let server = format!("https://{}:6443", lab.hosts[0].address);
    assert_eq!(out["server"], server.as_str());
    let dir = env.home().join("kubeadm/fetched");
    let kubeconfig = std::fs::read_to_string(dir.join("kubeconfig")).unwrap();
    assert!(
        kubeconfig.contains(&format!("server: {server}")),
        "{kubeconfig}"
    );
    assert!(
        kubeconfig.contains("token: admin-secret")
            && kubeconfig.contains("current-context: admin@onprem")
    );
    for (file, content) in [
        ("apiserver-kubelet-client.crt", "CERT\n"),
        ("apiserver-kubelet-client.key", "KEY\n"),
        ("kubeconfig", ""),
    ] {
        let path = dir.join(file);
        assert!(std::fs::read_to_string(&path).unwrap().starts_with(content));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600,
            "{file}"
        );
    }
    let export = env.ok(&["kubeadm", "use", "fetched", "--print-export"]);
    assert_eq!(
        export.trim(),
        format!("export KUBECONFIG={}", dir.join("kubeconfig").display())
    );
}

/// The kubeadm invocations a host's stand-in recorded: (arguments, configuration).
pub fn kubeadm_calls(lab: &Lab, host: usize) -> Vec<(Vec<String>, String)> {
    lab.written_by_host(host, "/var/log/kubeadm-standin.log")
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let args = v["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            (args, v["config"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// `kubeadm init` (not one of its phases) and `kubeadm join` runs on each host.
fn inits_and_joins(lab: &Lab) -> Vec<(usize, usize)> {
    (0..lab.hosts.len())
        .map(|i| {
            let calls = kubeadm_calls(lab, i);
            let count = |verb: &str| {
                calls
                    .iter()
                    .filter(|(a, _)| a.first().map(String::as_str) == Some(verb))
                    .filter(|(a, _)| a.get(1).map(String::as_str) != Some("phase"))
                    .count()
            };
            (count("init"), count("join"))
        })
        .collect()
}

pub fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(nodekit::real_kubectl())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The cluster's Nodes, as the real kubectl lists them.
fn cluster_nodes(kubeconfig: &std::path::Path) -> Vec<Value> {
    let nodes: Value =
        serde_json::from_str(&kubectl(kubeconfig, &["get", "nodes", "-o", "json"])).unwrap();
    nodes["items"].as_array().unwrap().clone()
}

/// The Node whose InternalIP is `address`, asserted Ready.
fn ready_node_at<'a>(nodes: &'a [Value], address: &str) -> &'a Value {
    let node = nodes
        .iter()
        .find(|n| {
            n["status"]["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["type"] == "InternalIP" && a["address"] == address)
        })
        .unwrap_or_else(|| panic!("no node with InternalIP {address}: {nodes:?}"));
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    assert!(ready, "{node}");
    node
}

#[test]
fn three_hosts_become_a_cluster_end_to_end_and_a_rerun_changes_nothing() {
    let kit = NodeKit::shared(K8S_PACKAGE);
    let (repo, guest) = kit.share();
    let lab = Lab::start_rooted_with(3, &[(repo, &guest)]);
    let env = Env::new();
    let file = kit_spec(&env, &lab, kit, "kit");
    let f = file.to_str().unwrap();

    for row in applied_everywhere(&env, f) {
        assert_eq!(row["applied"], serde_json::json!(PHASES), "{row}");
    }
    assert_eq!(
        inits_and_joins(&lab),
        [(1, 0), (0, 1), (0, 1)],
        "init on the first control plane only, one join on each worker"
    );
    // Joins pinned the CA the control plane made.
    let ca = lab
        .written_by_host(0, "/etc/kubernetes/pki/ca.crt")
        .unwrap();
    let hash = clouder_node::cluster::ca_cert_hash(&ca).unwrap();
    for worker in [1, 2] {
        let calls = kubeadm_calls(&lab, worker);
        let (_, config) = calls.iter().find(|(a, _)| a[0] == "join").unwrap();
        assert!(config.contains(&format!("- {hash}")), "{config}");
        assert_eq!(
            lab.written_by_host(worker, "/etc/kubernetes/pki/ca.crt")
                .as_ref(),
            Some(&ca)
        );
    }

    // The fetched kubeconfig works from here, with the real kubectl.
    let kubeconfig = env.home().join("kubeadm/kit/kubeconfig");
    let nodes = cluster_nodes(&kubeconfig);
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    for (i, host) in lab.hosts.iter().enumerate() {
        let node = ready_node_at(&nodes, &host.address);
        assert_eq!(
            node["status"]["nodeInfo"]["kubeletVersion"],
            format!("v{K8S}")
        );
        let labels = &node["metadata"]["labels"];
        assert_eq!(
            labels["clouder.io/provenance"],
            if i == 2 { "laptop" } else { "ssh" },
            "{labels}"
        );
        let taints = node["spec"]["taints"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if i == 0 {
            assert_eq!(
                labels["node-role.kubernetes.io/control-plane"], "",
                "{labels}"
            );
        } else {
            for (k, v) in clouder_spec::DEFAULT_WORKER_LABELS {
                assert_eq!(labels[k], v, "{labels}");
            }
        }
        let non_production = taints
            .iter()
            .any(|t| t["key"] == "clouder.io/non-production" && t["effect"] == "NoSchedule");
        assert_eq!(non_production, i == 2, "{taints:?}");
        let kept_off = taints.iter().any(|t| {
            t["key"] == "node-role.kubernetes.io/control-plane" && t["effect"] == "NoSchedule"
        });
        assert_eq!(
            kept_off,
            i == 0,
            "workloads stay off the control plane: {taints:?}"
        );
    }
    let crd = kubectl(
        &kubeconfig,
        &[
            "get",
            "crd",
            "installations.operator.tigera.io",
            "-o",
            "name",
        ],
    );
    assert_eq!(
        crd.trim(),
        "customresourcedefinition.apiextensions.k8s.io/installations.operator.tigera.io"
    );
    let installation: Value = serde_json::from_str(&kubectl(
        &kubeconfig,
        &[
            "get",
            "installations.operator.tigera.io",
            "default",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(
        installation["spec"]["calicoNetwork"]["ipPools"][0]["cidr"],
        "10.244.0.0/16"
    );

    let info: Value =
        serde_json::from_str(&env.ok(&["kubeadm", "info", "kit", "-o", "json"])).unwrap();
    assert_eq!(info["cluster"]["status"], "ready");
    let live = info["live"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{info}"));
    assert_eq!(live.len(), 3, "{info}");
    assert!(live.iter().all(|n| n["ready"] == true), "{info}");

    for row in rerun_applies_nothing(&env, f) {
        assert_eq!(row["skipped"], serde_json::json!(PHASES), "{row}");
    }
    assert_eq!(
        inits_and_joins(&lab),
        [(1, 0), (0, 1), (0, 1)],
        "no init or join the second time"
    );
}

/// High availability: three control planes and a worker. The first control plane inits with
/// its certificates uploaded; the other two join as control planes with the certificate key
/// (their control-plane manifests written, the CA the same), the worker joins as a worker; all
/// four Nodes are Ready, the control planes labelled and tainted; a re-run changes nothing.
#[test]
fn three_control_planes_and_a_worker_form_one_cluster() {
    let kit = NodeKit::shared(K8S_PACKAGE);
    let (repo, guest) = kit.share();
    let lab = Lab::start_rooted_with(4, &[(repo, &guest)]);
    let env = Env::new();
    let mut body = kit_spec_text(&lab, 4, kit, "ha");
    for host in &lab.hosts[1..3] {
        let worker = format!("{{address: {}, role: worker}}", host.address);
        assert!(body.contains(&worker), "{body}");
        body = body.replace(
            &worker,
            &format!("{{address: {}, role: control-plane}}", host.address),
        );
    }
    let file = write(env.dir.path(), "ha.yaml", &body);
    let f = file.to_str().unwrap();

    applied_everywhere(&env, f);
    assert_eq!(
        inits_and_joins(&lab),
        [(1, 0), (0, 1), (0, 1), (0, 1)],
        "one init, then one join on every other host"
    );
    let init = kubeadm_calls(&lab, 0);
    let (init_args, _) = init.iter().find(|(a, _)| a[0] == "init").unwrap();
    assert!(
        init_args.iter().any(|a| a == "--upload-certs"),
        "{init_args:?}"
    );
    let ca = lab
        .written_by_host(0, "/etc/kubernetes/pki/ca.crt")
        .unwrap();
    for host in 1..4 {
        let calls = kubeadm_calls(&lab, host);
        let (_, config) = calls.iter().find(|(a, _)| a[0] == "join").unwrap();
        let control_plane = host < 3;
        assert_eq!(
            config.contains("certificateKey:"),
            control_plane,
            "host {host}: {config}"
        );
        assert_eq!(
            lab.written_by_host(host, "/etc/kubernetes/manifests/kube-apiserver.yaml")
                .is_some(),
            control_plane,
            "host {host}'s control-plane manifests"
        );
        assert_eq!(
            lab.written_by_host(host, "/etc/kubernetes/pki/ca.crt")
                .as_ref(),
            Some(&ca)
        );
    }

    let kubeconfig = env.home().join("kubeadm/ha/kubeconfig");
    let nodes = cluster_nodes(&kubeconfig);
    assert_eq!(nodes.len(), 4, "{nodes:?}");
    for (i, host) in lab.hosts.iter().enumerate() {
        let node = ready_node_at(&nodes, &host.address);
        let control_plane = i < 3;
        let labelled = node["metadata"]["labels"]
            .get("node-role.kubernetes.io/control-plane")
            .is_some();
        let tainted = node["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| {
                t["key"] == "node-role.kubernetes.io/control-plane" && t["effect"] == "NoSchedule"
            });
        assert_eq!(
            (labelled, tainted),
            (control_plane, control_plane),
            "{node}"
        );
    }

    rerun_applies_nothing(&env, f);
    assert_eq!(
        inits_and_joins(&lab),
        [(1, 0), (0, 1), (0, 1), (0, 1)],
        "no init or join the second time"
    );
}

#[test]
fn a_cluster_forms_from_a_kubernetes_archive_and_a_rerun_changes_nothing() {
    let kit = NodeKit::shared(K8S_PACKAGE);
    let archive = kit.archive();
    let (repo, guest) = kit.share();
    let lab = Lab::start_rooted_with(2, &[(repo, &guest)]);
    let env = Env::new();
    let apt = kit.sources().lines().next().unwrap().to_string();
    let body = kit_spec_text(&lab, 2, kit, "tarred").replace(
        &apt,
        &format!(
            "kubernetes: {{archive: {{url: '{}', sha256: {}}}}}",
            archive.guest_path, archive.sha256
        ),
    );
    assert!(body.contains("archive:"), "{body}");
    let file = write(env.dir.path(), "tarred.yaml", &body);
    let f = file.to_str().unwrap();

    applied_everywhere(&env, f);
    for host in 0..2 {
        assert_eq!(
            lab.written_by_host(host, "/etc/clouder/sources/kubernetes/kubelet.sha256")
                .map(|s| s.trim().to_string()),
            Some(archive.sha256.clone()),
            "host {host}'s kubelet comes from the archive"
        );
        assert!(
            lab.written_by_host(host, "/etc/systemd/system/kubelet.service")
                .is_some_and(|unit| unit.contains("/usr/local/bin/kubelet")),
            "host {host}'s kubelet unit"
        );
    }
    assert_eq!(inits_and_joins(&lab), [(1, 0), (0, 1)]);
    let nodes = cluster_nodes(&env.home().join("kubeadm/tarred/kubeconfig"));
    for host in &lab.hosts {
        ready_node_at(&nodes, &host.address);
    }

    rerun_applies_nothing(&env, f);
    assert_eq!(
        inits_and_joins(&lab),
        [(1, 0), (0, 1)],
        "no second init or join"
    );
}
