//! Bootstrap-token authentication (held to kubectl) and the kubeadm stand-in's discovery, joins,
//! tokens and reset on a host rooted in a temporary directory.

use crate::common::{start, status_of};
use crate::kubectl::kubectl;
use clouder_testkube::TestKube;
use clouder_testkube::standin::{Host, cluster_of, kubeadm, kubeconfig, pki};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use serde_json::json;
use std::path::Path;

const TOKEN: &str = "abcdef.0123456789abcdef";

/// A host whose root is a temporary directory, named `name`, with the server's admin.conf.
fn host(name: &str) -> (tempfile::TempDir, Host) {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::at(dir.path().to_path_buf());
    host.write("/etc/hostname", &format!("{name}\n"), 0o644)
        .unwrap();
    (dir, host)
}

fn admin_conf(kube: &TestKube, host: &Host) {
    host.write("/etc/kubernetes/admin.conf", kube.kubeconfig_yaml(), 0o600)
        .unwrap();
}

async fn kubeadm(host: &Host, argv: &[&str]) -> Result<String, String> {
    let mut full = vec!["kubeadm"];
    full.extend_from_slice(argv);
    kubeadm::run(host, kubeadm::parse(full).map_err(|e| e.to_string())?).await
}

/// A token made with `kubeadm token create` and a published cluster-info; the server's CA.
async fn cluster(kube: &TestKube, token: &str, ttl: &str) -> String {
    let (_dir, cp) = host("cp");
    admin_conf(kube, &cp);
    let out = kubeadm(
        &cp,
        &[
            "token",
            "create",
            token,
            "--ttl",
            ttl,
            "--description",
            "test",
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.trim(), token);
    let (server, ca) = cluster_of(kube.kubeconfig_yaml()).unwrap();
    let admin = kube.client().await.unwrap();
    kubeadm::publish_cluster_info(&admin, "kubernetes", &server, &ca)
        .await
        .unwrap();
    ca
}

fn write_kubeconfig(dir: &Path, kube: &TestKube, token: &str) -> std::path::PathBuf {
    let (server, ca) = cluster_of(kube.kubeconfig_yaml()).unwrap();
    let path = dir.join(format!("{token}.kubeconfig"));
    std::fs::write(
        &path,
        kubeconfig("kubernetes", &server, &ca, "bootstrap", Some(token)),
    )
    .unwrap();
    path
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn kubectl_with_a_bootstrap_token_may_discover_and_register_a_node_only() {
    let (kube, admin) = start().await;
    cluster(&kube, TOKEN, "30m").await;
    let dir = tempfile::tempdir().unwrap();
    let kc = write_kubeconfig(dir.path(), &kube, TOKEN);

    let info = kubectl(
        &kc,
        &[
            "get",
            "configmap",
            "cluster-info",
            "-n",
            "kube-public",
            "-o",
            "jsonpath={.data.kubeconfig}",
        ],
    )
    .await;
    assert!(info.status.success(), "{}", stderr(&info));
    assert!(String::from_utf8_lossy(&info.stdout).contains("certificate-authority-data"));
    let node = dir.path().join("node.yaml");
    std::fs::write(
        &node,
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: joined\n",
    )
    .unwrap();
    let created = kubectl(&kc, &["create", "-f", node.to_str().unwrap()]).await;
    assert!(created.status.success(), "{}", stderr(&created));
    let label = kubectl(&kc, &["label", "node", "joined", "zone=a"]).await;
    assert!(label.status.success(), "{}", stderr(&label));

    for (args, says) in [
        (
            vec!["get", "secrets", "-n", "kube-system"],
            "secrets is forbidden: User \"system:bootstrap:abcdef\" cannot list resource \"secrets\" in API group \"\" in the namespace \"kube-system\"",
        ),
        (
            vec!["delete", "node", "joined"],
            "nodes \"joined\" is forbidden: User \"system:bootstrap:abcdef\" cannot delete resource \"nodes\" in API group \"\" at the cluster scope",
        ),
        (
            vec!["get", "configmap", "coredns", "-n", "kube-system"],
            "is forbidden: User \"system:bootstrap:abcdef\" cannot get resource \"configmaps\"",
        ),
    ] {
        let out = kubectl(&kc, &args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let node: k8s_openapi::api::core::v1::Node =
        Api::all(admin.clone()).get("joined").await.unwrap();
    assert_eq!(node.metadata.labels.unwrap()["zone"], "a");

    // A wrong secret, an expired token and one not meant for authentication are nobody.
    let expired: Secret = serde_json::from_value(json!({
        "metadata": {"name": "bootstrap-token-zzzzzz", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {"token-id": "zzzzzz", "token-secret": "0123456789abcdef", "usage-bootstrap-authentication": "true", "expiration": "2020-01-01T00:00:00Z"},
    }))
    .unwrap();
    let signing_only: Secret = serde_json::from_value(json!({
        "metadata": {"name": "bootstrap-token-yyyyyy", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {"token-id": "yyyyyy", "token-secret": "0123456789abcdef", "usage-bootstrap-signing": "true"},
    }))
    .unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin, "kube-system");
    for s in [expired, signing_only] {
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    for token in [
        "abcdef.0123456789abcdee",
        "zzzzzz.0123456789abcdef",
        "yyyyyy.0123456789abcdef",
    ] {
        let kc = write_kubeconfig(dir.path(), &kube, token);
        let out = kubectl(
            &kc,
            &["get", "configmap", "cluster-info", "-n", "kube-public"],
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "{token}");
        assert!(
            stderr(&out).contains("Unauthorized"),
            "{token}: {}",
            stderr(&out)
        );
    }
}

fn join_config(kube: &TestKube, hash: &str, certificate_key: Option<&str>) -> String {
    let endpoint = kube.url().trim_start_matches("https://");
    let mut text = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    apiServerEndpoint: {endpoint}\n    token: {TOKEN}\n    caCertHashes:\n    - {hash}\nnodeRegistration:\n  name: worker-1\n  taints:\n  - {{key: clouder.io/non-production, value: laptop, effect: NoSchedule}}\n  kubeletExtraArgs:\n  - {{name: node-ip, value: 10.1.2.3}}\n  - {{name: node-labels, value: 'pool=workers,role.datalayer.io/runtime=true'}}\n"
    );
    if let Some(key) = certificate_key {
        text += &format!("controlPlane:\n  certificateKey: {key}\n");
    }
    text
}

async fn join(host: &Host, config: &str) -> Result<String, String> {
    host.write("/tmp/join.yaml", config, 0o600).unwrap();
    let path = host.path("/tmp/join.yaml");
    kubeadm(host, &["join", "--config", path.to_str().unwrap()]).await
}

#[tokio::test]
async fn a_join_pins_the_ca_by_its_hash_and_never_runs_twice() {
    let (kube, _) = start().await;
    let ca = cluster(&kube, TOKEN, "30m").await;
    let real = pki::spki_hash(&ca).unwrap();
    let (_dir, node) = host("worker-1");

    let wrong = format!("sha256:{}", "0".repeat(64));
    let e = join(&node, &join_config(&kube, &wrong, None))
        .await
        .unwrap_err();
    assert!(
        e.contains(&format!("couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{real}\" are pinned")),
        "{e}"
    );
    assert!(
        !node.exists("/etc/kubernetes/kubelet.conf"),
        "nothing written"
    );

    let out = join(&node, &join_config(&kube, &real, None)).await.unwrap();
    assert!(out.contains("This node has joined the cluster"), "{out}");
    assert_eq!(node.read("/etc/kubernetes/pki/ca.crt").unwrap(), ca);
    let conf = node.read("/etc/kubernetes/kubelet.conf").unwrap();
    let (server, _) = cluster_of(&conf).unwrap();
    assert_eq!(server, kube.url());
    assert!(conf.contains(&format!("token: {TOKEN}")), "{conf}");
    assert_eq!(
        node.read("/var/lib/kubelet/kubeadm-flags.env").unwrap(),
        "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --node-ip=10.1.2.3 --node-labels=pool=workers,role.datalayer.io/runtime=true --register-with-taints=clouder.io/non-production=laptop:NoSchedule\"\n"
    );

    let again = join(&node, &join_config(&kube, &real, None))
        .await
        .unwrap_err();
    assert!(
        again.contains("[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists"),
        "{again}"
    );
    let reset = kubeadm(&node, &["reset"]).await.unwrap_err();
    assert!(reset.contains("--force"), "{reset}");
    kubeadm(&node, &["reset", "-f"]).await.unwrap();
    for gone in [
        "/etc/kubernetes/kubelet.conf",
        "/etc/kubernetes/pki",
        "/var/lib/kubelet/kubeadm-flags.env",
    ] {
        assert!(!node.exists(gone), "{gone}");
    }
}

#[tokio::test]
async fn cluster_info_is_public_and_signed_for_each_token_and_unknown_tokens_are_refused() {
    let (kube, admin) = start().await;
    cluster(&kube, TOKEN, "30m").await;
    let anonymous =
        clouder_testkube::standin::insecure_client(kube.url().trim_start_matches("https://"))
            .unwrap();
    let public: Api<ConfigMap> = Api::namespaced(anonymous.clone(), "kube-public");
    // The signer runs after the change: give it a moment.
    let mut data = Default::default();
    for _ in 0..50 {
        data = public.get("cluster-info").await.unwrap().data.unwrap();
        if data.contains_key("jws-kubeconfig-abcdef") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (id, secret) = TOKEN.split_once('.').unwrap();
    assert_eq!(
        data["jws-kubeconfig-abcdef"],
        clouder_testkube::standin::kubeadm::detached_signature(&data["kubeconfig"], id, secret),
    );
    let header = data["jws-kubeconfig-abcdef"].split("..").next().unwrap();
    assert_eq!(
        header, "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9",
        "{{\"alg\":\"HS256\",\"kid\":\"abcdef\"}}"
    );
    // Anonymous users get that object and nothing else.
    let s = status_of(
        Api::<ConfigMap>::namespaced(anonymous, "kube-system")
            .get("kubeadm-config")
            .await,
    );
    assert_eq!(s.code, 401);
    // A token the cluster does not know has no signature: discovery says so.
    let (_dir, node) = host("worker-9");
    let ca = cluster_of(kube.kubeconfig_yaml()).unwrap().1;
    let config = join_config(&kube, &pki::spki_hash(&ca).unwrap(), None)
        .replace(TOKEN, "zzzzzz.0123456789abcdef");
    let e = join(&node, &config).await.unwrap_err();
    assert!(
        e.contains("token id \"zzzzzz\" is invalid for this cluster or it has expired. Use \"kubeadm token create\" on the control-plane node to create a new valid token"),
        "{e}"
    );
    // Deleting the token takes its signature away.
    Api::<Secret>::namespaced(admin, "kube-system")
        .delete("bootstrap-token-abcdef", &Default::default())
        .await
        .unwrap();
    let mut gone = false;
    for _ in 0..50 {
        if !public
            .get("cluster-info")
            .await
            .unwrap()
            .data
            .unwrap()
            .contains_key("jws-kubeconfig-abcdef")
        {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "the signature of a deleted token goes");
}

#[tokio::test]
async fn a_control_plane_join_proves_the_certificate_key() {
    let (kube, _) = start().await;
    let ca = cluster(&kube, TOKEN, "30m").await;
    recorded_cluster(&kube, "v1.33.2").await;
    let hash = pki::spki_hash(&ca).unwrap();
    let (_dir, cp) = host("cp");
    admin_conf(&kube, &cp);
    cp.write("/etc/kubernetes/pki/ca.crt", &ca, 0o644).unwrap();
    let key = "a".repeat(64);
    let out = kubeadm(
        &cp,
        &[
            "init",
            "phase",
            "upload-certs",
            "--upload-certs",
            "--certificate-key",
            &key,
        ],
    )
    .await
    .unwrap();
    assert!(out.contains(&key), "{out}");

    let (_dir, other) = host("cp-2");
    let e = join(&other, &join_config(&kube, &hash, Some(&"b".repeat(64))))
        .await
        .unwrap_err();
    assert!(
        e.contains(
            "error downloading certs: error decoding certs: cipher: message authentication failed"
        ),
        "{e}"
    );
    assert!(!other.exists("/etc/kubernetes/kubelet.conf"));
    join(&other, &join_config(&kube, &hash, Some(&key)))
        .await
        .unwrap();
    assert!(other.exists("/etc/kubernetes/kubelet.conf"));
    let manifest = other
        .read("/etc/kubernetes/manifests/kube-apiserver.yaml")
        .unwrap();
    assert!(
        manifest.contains("image: registry.k8s.io/kube-apiserver:v1.33.2\n"),
        "at the cluster's version, for `upgrade node` to move: {manifest}"
    );
}

#[tokio::test]
async fn tokens_are_created_and_listed_as_kubeadm_does_it() {
    let (kube, _) = start().await;
    let (_dir, cp) = host("cp");
    admin_conf(&kube, &cp);
    let empty = kubeadm(&cp, &["token", "list"]).await.unwrap();
    assert_eq!(empty.lines().count(), 1, "{empty}");
    kubeadm(
        &cp,
        &[
            "token",
            "create",
            TOKEN,
            "--ttl",
            "30m",
            "--description",
            "clouder run",
        ],
    )
    .await
    .unwrap();
    let dup = kubeadm(&cp, &["token", "create", TOKEN, "--ttl", "30m"])
        .await
        .unwrap_err();
    assert!(
        dup.contains("a token with id \"abcdef\" already exists"),
        "{dup}"
    );
    let bad = kubeadm(&cp, &["token", "create", "ABCDEF.0123456789abcdef"])
        .await
        .unwrap_err();
    assert!(bad.contains("was not of the form"), "{bad}");
    let list = kubeadm(&cp, &["token", "list"]).await.unwrap();
    let row: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[0], TOKEN, "{list}");
    assert!(["29m", "30m"].contains(&row[1]), "{list}");
    assert!(
        list.contains(
            "authentication,signing   clouder run   system:bootstrappers:kubeadm:default-node-token"
        ),
        "{list}"
    );
    let version = kubeadm(&cp, &["version", "-o", "short"]).await.unwrap();
    assert!(version.trim().starts_with('v'), "{version}");
}

#[tokio::test]
async fn serve_binds_where_told_and_its_certificate_names_the_extra_sans() {
    let kube = TestKube::start_with(clouder_testkube::Options {
        sans: vec!["api.cluster.test".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let client = |name: &'static str| {
        let kc = kube::config::Kubeconfig::from_yaml(kube.kubeconfig_yaml()).unwrap();
        async move {
            let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .unwrap();
            config.tls_server_name = Some(name.into());
            kube::Client::try_from(config).unwrap()
        }
    };
    assert!(
        client("api.cluster.test")
            .await
            .apiserver_version()
            .await
            .is_ok()
    );
    assert!(
        client("other.cluster.test")
            .await
            .apiserver_version()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn init_refuses_bad_configs_newer_versions_and_an_initialised_host_before_changing_anything()
{
    let (_dir, cp) = host("cp");
    let good = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint: {advertiseAddress: 10.0.0.10, bindPort: 6443}\nnodeRegistration: {name: cp, taints: []}\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.33.2\ncontrolPlaneEndpoint: 10.0.0.10:6443\nnetworking: {podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12}\n";
    let init = |config: String| {
        let cp = cp.clone();
        async move {
            cp.write("/tmp/init.yaml", &config, 0o600).unwrap();
            let path = cp.path("/tmp/init.yaml");
            kubeadm(
                &cp,
                &["init", "--config", path.to_str().unwrap(), "--upload-certs"],
            )
            .await
        }
    };
    let cases = [
        (
            good.replace("bindPort", "bindport"),
            "InitConfiguration: strict decoding error: unknown field \"bindport\"",
        ),
        (
            good.replace("10.244.0.0/16", "10.244.0.0"),
            "networking.podSubnet: Invalid value: \"10.244.0.0\": couldn't parse subnet",
        ),
        (
            good.replace("v1.33.2", "v9.99.0"),
            "is at least one minor release higher than the kubeadm minor release",
        ),
    ];
    for (config, says) in cases {
        let e = init(config).await.unwrap_err();
        assert!(e.contains(says), "{says}: {e}");
    }
    cp.write("/etc/kubernetes/manifests/kube-apiserver.yaml", "", 0o600)
        .unwrap();
    let e = init(good.to_string()).await.unwrap_err();
    assert!(
        e.contains("[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: /etc/kubernetes/manifests/kube-apiserver.yaml already exists"),
        "{e}"
    );
    assert!(!cp.exists("/etc/kubernetes/pki"), "nothing was written");
}

/// A cluster at `version` as init records it: kubeadm-config and kubelet-config.
async fn recorded_cluster(kube: &TestKube, version: &str) {
    let cms: Api<ConfigMap> = Api::namespaced(kube.client().await.unwrap(), "kube-system");
    for (name, key, value) in [
        (
            "kubeadm-config",
            "ClusterConfiguration",
            format!("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: {version}\n"),
        ),
        (
            "kubelet-config",
            "kubelet",
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n".into(),
        ),
    ] {
        let cm = json!({"metadata": {"name": name}, "data": {key: value}});
        cms.create(&PostParams::default(), &serde_json::from_value(cm).unwrap())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn upgrade_apply_follows_kubeadms_skew_policy_and_moves_the_control_plane_once() {
    let (kube, _) = start().await;
    recorded_cluster(&kube, "v1.33.2").await;
    let (_dir, mut cp) = host("cp");
    admin_conf(&kube, &cp);
    let manifest = "/etc/kubernetes/manifests/kube-apiserver.yaml";
    cp.write(
        manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: kube-apiserver, namespace: kube-system}\nspec:\n  containers:\n  - name: kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.33.2\n",
        0o600,
    )
    .unwrap();
    let refusals = [
        (
            "v1.35.0",
            "v1.35.0",
            "Specified version to upgrade to \"v1.35.0\" is too high; kubeadm can upgrade only 1 minor version at a time",
        ),
        (
            "v1.33.2",
            "v1.34.1",
            "Specified version to upgrade to \"v1.34.1\" is at least one minor release higher than the kubeadm minor release (34 > 33)",
        ),
        (
            "v1.34.1",
            "v1.34.2",
            "Can be bypassed if you pass the --force flag",
        ),
    ];
    for (ours, wanted, says) in refusals {
        cp.version = ours.into();
        let e = kubeadm(&cp, &["upgrade", "apply", "--yes", wanted])
            .await
            .unwrap_err();
        assert!(e.contains(says), "{says}: {e}");
    }
    assert!(
        cp.read(manifest).unwrap().ends_with(":v1.33.2\n"),
        "nothing moved"
    );

    cp.version = "v1.34.1".into();
    for _ in 0..2 {
        let out = kubeadm(&cp, &["upgrade", "apply", "--yes", "v1.34.1"])
            .await
            .unwrap();
        assert!(
            out.contains("SUCCESS! Your cluster was upgraded to \"v1.34.1\""),
            "{out}"
        );
        assert!(
            cp.read(manifest)
                .unwrap()
                .contains("image: registry.k8s.io/kube-apiserver:v1.34.1\n")
        );
    }
    let cms: Api<ConfigMap> = Api::namespaced(kube.client().await.unwrap(), "kube-system");
    let config = cms.get("kubeadm-config").await.unwrap().data.unwrap();
    assert!(
        config["ClusterConfiguration"].contains("kubernetesVersion: v1.34.1"),
        "{config:?}"
    );
    assert!(
        cp.read("/var/lib/kubelet/config.yaml")
            .unwrap()
            .contains("cgroupDriver: systemd")
    );
}

#[tokio::test]
async fn on_a_worker_upgrade_apply_is_refused_and_upgrade_node_refreshes_the_kubelet_config() {
    let (kube, _) = start().await;
    recorded_cluster(&kube, "v1.34.1").await;
    let (_dir, worker) = host("w1");
    let e = kubeadm(&worker, &["upgrade", "node"]).await.unwrap_err();
    assert!(e.contains("/etc/kubernetes/kubelet.conf"), "{e}");
    worker
        .write(
            "/etc/kubernetes/kubelet.conf",
            kube.kubeconfig_yaml(),
            0o600,
        )
        .unwrap();
    let e = kubeadm(&worker, &["upgrade", "apply", "--yes", "v1.34.1"])
        .await
        .unwrap_err();
    assert!(
        e.contains("failed to load admin kubeconfig: open /etc/kubernetes/admin.conf"),
        "{e}"
    );
    let out = kubeadm(&worker, &["upgrade", "node"]).await.unwrap();
    assert!(
        out.contains("Skipping phase. Not a control plane node"),
        "{out}"
    );
    assert!(
        worker
            .read("/var/lib/kubelet/config.yaml")
            .unwrap()
            .contains("cgroupDriver: systemd")
    );
    assert!(!worker.exists("/etc/kubernetes/manifests"));
}
