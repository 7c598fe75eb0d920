//! `clouder services` against clouder-testkube with its controllers and stand-in kubelet: plan,
//! deploy (and a no-op re-deploy), status, rollback, a failing gate, and bad input (exit 2,
//! nothing applied); the cluster's kubeconfig or `--kubeconfig FILE`.

use super::harness::{Env, text};
use clouder_testkube::{Kubelet, NodeConfig, TestKube};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::Api;

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

const APP: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, image: "api:${tag}"}]
"#;

const SERVICES: &str = "apiVersion: clouder.io/v1alpha1
kind: Services
releases:
- name: storage
  namespace: storage
  version: '1.0'
  values: {tag: '1'}
  source: {manifests: storage}
  gate: {timeout: 3s}
- name: iam
  namespace: iam
  version: '2.0'
  values: {tag: '1'}
  source: {manifests: iam}
  dependsOn: [storage]
  gate: {timeout: 3s}
";

struct Cluster {
    _kube: TestKube,
    client: kube::Client,
    kubelet: Kubelet,
}

/// A cluster `svc` in the env's CLOUDER_HOME (its kubeconfig where clouder keeps it), one Node.
async fn cluster(env: &Env) -> Cluster {
    let kube = TestKube::start_with_controllers().await.unwrap();
    let dir = env.home().join("kubeadm").join("svc");
    std::fs::create_dir_all(&dir).unwrap();
    kube.write_kubeconfig(dir.join("kubeconfig")).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube.client().await.unwrap();
    let kubelet = Kubelet::new(client.clone());
    kubelet.register(&NodeConfig::new("n1")).await.unwrap();
    Cluster {
        _kube: kube,
        client,
        kubelet,
    }
}

fn write_release(env: &Env, name: &str, extra: &str) {
    let dir = env.dir.path().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.yaml"), format!("{APP}{extra}")).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn services_plan_deploy_status_and_rollback_through_the_binary() {
    let env = Env::new();
    let cluster = cluster(&env).await;
    let file = env.dir.path().join("services.yaml");
    std::fs::write(&file, SERVICES).unwrap();
    let f = file.to_str().unwrap();
    write_release(&env, "storage", "");
    write_release(&env, "iam", "");

    let plan = json(&env.ok(&["services", "plan", "svc", "-f", f, "-o", "json"]));
    assert_eq!(plan[0]["name"], "storage");
    assert_eq!(plan[1]["wave"], 1);
    assert_eq!(plan[1]["changes"][0]["object"], "Deployment iam/api");
    assert_eq!(plan[1]["changes"][0]["action"], "create");

    let running = cluster.kubelet.start();
    let deployed = json(&env.ok(&["services", "deploy", "svc", "-f", f, "-o", "json"]));
    assert_eq!(deployed[0]["result"], "deployed");
    assert_eq!(deployed[1]["result"], "deployed");
    assert_eq!(deployed[1]["revision"], 1);
    let again = json(&env.ok(&["services", "deploy", "svc", "-f", f, "-o", "json"]));
    assert_eq!(again[1]["result"], "unchanged", "{again}");
    assert_eq!(again[1]["configured"], 0, "{again}");

    // --kubeconfig instead of the cluster's name.
    let kubeconfig = env.home().join("kubeadm/svc/kubeconfig");
    let table = env.ok(&[
        "services",
        "status",
        "-f",
        f,
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("WAVE  RELEASE"), "{table}");
    assert!(
        table
            .lines()
            .nth(2)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            == ["1", "iam", "iam", "1", "2.0", "deployed", "healthy"],
        "{table}"
    );

    // Revision 2 adds a ConfigMap; rolling back to 1 takes it away.
    let extra = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\ndata: {a: b}\n";
    write_release(&env, "iam", extra);
    let upgraded = json(&env.ok(&["services", "deploy", "svc", "-f", f, "-o", "json"]));
    assert_eq!(upgraded[1]["revision"], 2, "{upgraded}");
    let configmaps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "iam");
    assert!(configmaps.get_opt("extra").await.unwrap().is_some());
    let back = json(&env.ok(&["services", "rollback", "svc", "iam", "-o", "json"]));
    assert_eq!(
        (back["to"].as_u64(), back["revision"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(back["deleted"][0], "ConfigMap iam/extra");
    assert!(configmaps.get_opt("extra").await.unwrap().is_none());

    // Without a kubelet the next upgrade fails its gate: exit 1, the reason, back to revision 3.
    drop(running);
    std::fs::write(
        env.dir.path().join("iam/app.yaml"),
        APP.replace("replicas: 1", "replicas: 2"),
    )
    .unwrap();
    let failed = env.run(&["services", "deploy", "svc", "-f", f]);
    assert_eq!(failed.status.code(), Some(1));
    let stdout = text(&failed.stdout);
    let stderr = text(&failed.stderr);
    assert!(
        stdout
            .lines()
            .nth(2)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()[..6]
            == ["1", "iam", "iam", "2.0", "failed", "3"],
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "error: the rollout stopped: iam: timed out after 3s waiting for Deployment iam/api: "
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("iam: rolled back to revision 3"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_services_input_exits_2_naming_the_file_and_applies_nothing() {
    let env = Env::new();
    let cluster = cluster(&env).await;
    let file = env.dir.path().join("services.yaml");
    write_release(&env, "storage", "");
    write_release(&env, "iam", "");
    let cyclic = SERVICES
        .replace("namespace: storage\n", "namespace: storage\n  tier: core\n")
        .replace(
            "  gate: {timeout: 3s}\n- name: iam",
            "  dependsOn: [iam]\n  gate: {timeout: 3s}\n- name: iam",
        );
    std::fs::write(&file, &cyclic).unwrap();
    let f = file.to_str().unwrap();
    let out = env.run(&["services", "deploy", "svc", "-f", f]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {f}:10:3: releases[0].dependsOn: cyclic dependencies: storage → iam → storage\n"
        )
    );

    std::fs::write(
        &file,
        SERVICES.replace(
            "values: {tag: '1'}\n  source: {manifests: iam}",
            "source: {manifests: iam}",
        ),
    )
    .unwrap();
    let out = env.run(&["services", "deploy", "svc", "-f", f]);
    assert_eq!(out.status.code(), Some(2));
    let iam = env.dir.path().join("iam/app.yaml");
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {}:10:44: unknown variable ${{tag}} (values: none)\n",
            iam.display()
        )
    );

    let out = env.run(&["services", "status", "nowhere", "-f", f]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no kubeconfig for nowhere at "),
        "{}",
        text(&out.stderr)
    );

    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    for ns in ["storage", "iam"] {
        assert!(
            namespaces.get_opt(ns).await.unwrap().is_none(),
            "{ns} was created"
        );
    }
}
