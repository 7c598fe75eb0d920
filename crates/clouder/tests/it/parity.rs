//! The reference Clouder's documented surface (../shared/CLI.md): every command and flag, the
//! default cluster, pass-through wrappers, and clusters from a reference CLOUDER_HOME.

use crate::harness::*;

/// (command, documented flags) from the table of ../shared/CLI.md.
fn documented() -> Vec<(String, Vec<String>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/CLI.md");
    let doc = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (shared/ must sit beside the repository)"));
    let section = doc
        .split("## clouder kubeadm — documented by the reference")
        .nth(1)
        .unwrap();
    let section = section.split("\n## ").next().unwrap();
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let flags: Vec<String> = cells[2]
            .split(['`', '(', ')', ',', ' '])
            .filter(|t| {
                t.starts_with('-')
                    && t.len() > 1
                    && t.chars()
                        .nth(1)
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '-')
            })
            .map(str::to_string)
            .collect();
        for command in cells[1].split(',') {
            let command = command
                .trim()
                .trim_matches('`')
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            rows.push((command, flags.clone()));
        }
    }
    rows
}

#[test]
fn every_documented_command_and_flag_is_accepted_under_kubeadm_and_k() {
    let env = Env::new();
    let rows = documented();
    assert!(rows.len() >= 16, "the table lists every command: {rows:?}");
    for (command, flags) in rows {
        for group in ["kubeadm", "k"] {
            let help = env.ok(&[group, &command, "--help"]);
            assert!(
                help.contains("Example"),
                "`{group} {command} --help` shows an example:\n{help}"
            );
            for flag in &flags {
                let shown = if flag.starts_with("--") {
                    flag.to_string()
                } else {
                    format!("{flag},")
                };
                assert!(
                    help.contains(&shown),
                    "`{group} {command} --help` lacks {flag}:\n{help}"
                );
            }
        }
    }
}

#[test]
fn commands_resolve_the_default_cluster() {
    let env = Env::new();
    std::fs::create_dir_all(env.home().join("kubeadm/alpha")).unwrap();
    env.ok(&["kubeadm", "set-default", "alpha"]);
    for command in ["setup", "upgrade-kubelet"] {
        let out = env.run(&["kubeadm", command]);
        assert_eq!(out.status.code(), Some(2), "{command} resolves the default");
        assert!(text(&out.stderr).contains("no cluster named `alpha`"));
    }
    let out = env.run(&[
        "kubeadm",
        "smoke-test",
        "--to",
        "localhost:5000/checkpoints",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("alpha"), "{}", text(&out.stderr));
    // Without --to, for a cluster whose nodes clouder cannot log in to (none here), there is no
    // default place for the checkpoint image: it says what to give, before any call.
    let out = env.run(&["kubeadm", "smoke-test"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot log in to this cluster's nodes")
            && err.contains("--to HOST[:PORT]/REPO")
            && err.contains("CLOUDER_CHECKPOINT_TO"),
        "{err}"
    );
}

fn reference_home(env: &Env) {
    let legacy = env.home().join("kubeadm/legacy");
    std::fs::create_dir_all(&legacy).unwrap();
    write(
        &legacy,
        "kubeadm.json",
        r#"{"cloud": "azure", "region": "westeurope", "resource_group": "rg-legacy", "setup_complete": true,
            "subscription_id": "sub-1", "requested_workers": 2, "master_size": "Standard_D4s_v5",
            "admin_user": "azureuser", "future_field": {"kept": true}}"#,
    );
    write(
        &legacy,
        "kubeconfig",
        "apiVersion: v1\nkind: Config\nclusters: []\n",
    );
    let broken = env.home().join("kubeadm/broken");
    std::fs::create_dir_all(&broken).unwrap();
    write(&broken, "kubeadm.json", r#"{"region": "eastus"}"#);
}

#[test]
fn clusters_of_a_reference_home_are_listed_inspected_and_imported_untouched() {
    let env = Env::new();
    reference_home(&env);
    let before = std::fs::read(env.home().join("kubeadm/legacy/kubeadm.json")).unwrap();

    let out = env.run(&["kubeadm", "ls", "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a malformed kubeadm.json is an error"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("kubeadm/broken/kubeadm.json") && err.contains("cloud"),
        "names file and field: {err}"
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rows[0]["name"], "legacy",
        "the others are still listed: {rows}"
    );
    assert_eq!(rows[0]["resource_group"], "rg-legacy");
    assert_eq!(rows[0]["setup"], true);
    assert_eq!(rows[0]["kubeconfig"], true);

    let info = env.ok(&["kubeadm", "info", "legacy"]);
    assert!(info.contains("azure westeurope"), "{info}");
    let export = env.ok(&["k", "use", "legacy", "--print-export"]);
    assert!(export.trim().ends_with("kubeadm/legacy/kubeconfig"));

    env.ok(&["kubeadm", "import", "legacy"]);
    let info: serde_json::Value =
        serde_json::from_str(&env.ok(&["kubeadm", "info", "legacy", "-o", "json"])).unwrap();
    assert_eq!(info["cluster"]["status"], "imported");
    assert_eq!(info["cluster"]["setup_complete"], true);
    assert_eq!(
        std::fs::read(env.home().join("kubeadm/legacy/kubeadm.json")).unwrap(),
        before,
        "reference files unchanged"
    );
    assert_eq!(
        env.run(&["kubeadm", "import", "broken"]).status.code(),
        Some(1)
    );
}

#[test]
fn clouders_clusters_are_visible_to_the_reference() {
    let env = Env::new();
    env.create("visible", 2, &[]);
    let file = std::fs::read_to_string(env.home().join("kubeadm/visible/kubeadm.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(json["cloud"], "aws");
    assert_eq!(json["region"], REGION);
    assert_eq!(json["requested_workers"], 2);
    assert_eq!(json["setup_complete"], false);
    assert_eq!(json["workers"].as_array().unwrap().len(), 2);
    assert!(
        json["master_private_ip"]
            .as_str()
            .unwrap()
            .starts_with("10.0.0."),
        "{json}"
    );
    env.ok(&["kubeadm", "terminate", "visible", "--force"]);
    assert!(!env.home().join("kubeadm/visible").exists());
}

#[test]
fn scaling_down_asks_first_and_deletes_nothing_without_an_answer() {
    let env = Env::new();
    env.create("scaly", 2, &[]);
    let refused = env.run(&["kubeadm", "scale", "scaly", "-w", "1"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("--force"));
    let info: serde_json::Value =
        serde_json::from_str(&env.ok(&["kubeadm", "info", "scaly", "-o", "json"])).unwrap();
    assert_eq!(
        info["resources"].as_array().unwrap().len(),
        14,
        "nothing deleted"
    );
    let up = env.ok(&["kubeadm", "scale", "scaly", "-w", "3", "-o", "json"]);
    assert!(up.contains("\"created\": 1"), "{up}");
    let down = env.ok(&[
        "kubeadm", "scale", "scaly", "-w", "1", "--force", "-o", "json",
    ]);
    assert!(down.contains("\"deleted\": 2"), "{down}");
    env.ok(&["kubeadm", "terminate", "scaly", "--force"]);
}

#[test]
fn kubectl_passes_its_exit_code_through_and_a_missing_tool_says_how_to_install_it() {
    let env = Env::new();
    let dir = env.home().join("kubeadm/unreach");
    std::fs::create_dir_all(&dir).unwrap();
    // A kubeconfig whose server refuses connections: the real kubectl fails with its own code.
    write(
        &dir,
        "kubeconfig",
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         users: [{name: u, user: {token: secret-token}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
    );
    let out = env.run(&["kubectl", "unreach", "get", "ns", "--request-timeout=2s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("secret-token") && !text(&out.stderr).contains("secret-token")
    );

    let out = env.run_with(
        &["kubectl", "unreach", "get", "ns"],
        &[("PATH", "/nonexistent")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("kubectl not found on PATH: install it"),
        "{}",
        text(&out.stderr)
    );
    let out = env.run_with(&["helm", "unreach", "list"], &[("PATH", "/nonexistent")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("helm not found on PATH"),
        "{}",
        text(&out.stderr)
    );
}

/// A reference-layout cluster whose kubeconfig points at a running clouder-testkube.
pub async fn adopted(env: &Env, name: &str) -> clouder_testkube::TestKube {
    let kube = clouder_testkube::TestKube::start().await.unwrap();
    let dir = env.home().join("kubeadm").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    write(
        &dir,
        "kubeadm.json",
        r#"{"cloud": "aws", "region": "us-east-1", "setup_complete": true}"#,
    );
    kube.write_kubeconfig(dir.join("kubeconfig")).unwrap();
    kube
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_runs_against_the_cluster_and_passes_its_exit_code() {
    let env = Env::new();
    let _kube = adopted(&env, "adopted").await;
    let out = env.ok(&["kubectl", "adopted", "get", "ns"]);
    assert!(
        out.contains("kube-system") && out.contains("default"),
        "{out}"
    );

    let missing = env.run(&["kubectl", "adopted", "get", "pod", "nope"]);
    assert_eq!(missing.status.code(), Some(1), "kubectl's own exit code");
    assert!(
        text(&missing.stderr).contains("\"nope\" not found"),
        "{}",
        text(&missing.stderr)
    );

    env.ok(&["kubeadm", "set-default", "adopted"]);
    let out = env.ok(&["kubectl", "get", "ns", "kube-system", "-o", "name"]);
    assert_eq!(
        out.trim(),
        "namespace/kube-system",
        "the default cluster without NAME"
    );

    let export = env.ok(&["k", "use", "--print-export"]);
    let info = env.ok(&["kubeadm", "info"]);
    assert!(
        export.contains("kubeadm/adopted/kubeconfig") && info.contains("adopted"),
        "{export}{info}"
    );
}

async fn node(kube: &clouder_testkube::TestKube, name: &str, master: bool, ready: bool) {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, Patch, PatchParams, PostParams};
    let nodes: Api<Node> = Api::all(kube.client().await.unwrap());
    let mut labels = serde_json::json!({});
    if master {
        labels["node-role.kubernetes.io/control-plane"] = "".into();
    }
    let body: Node =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": labels}}))
            .unwrap();
    nodes.create(&PostParams::default(), &body).await.unwrap();
    // The test plays the kubelet: it reports the node's condition.
    let status = serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn ls_details_reads_node_readiness_from_the_api_server() {
    let env = Env::new();
    let kube = adopted(&env, "live").await;
    node(&kube, "cp-0", true, true).await;
    node(&kube, "w-0", false, true).await;
    node(&kube, "w-1", false, false).await;
    let dead = env.home().join("kubeadm/dead");
    std::fs::create_dir_all(&dead).unwrap();
    write(&dead, "kubeadm.json", r#"{"cloud": "aws"}"#);
    write(
        &dead,
        "kubeconfig",
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
    );
    let cold = env.home().join("kubeadm/cold");
    std::fs::create_dir_all(&cold).unwrap();
    write(&cold, "kubeadm.json", r#"{"cloud": "azure"}"#);

    let rows: serde_json::Value =
        serde_json::from_str(&env.ok(&["kubeadm", "ls", "--details", "-o", "json"])).unwrap();
    let row = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(row("live")["api"], "ready");
    assert_eq!(
        row("live")["nodes"],
        serde_json::json!({"masters_ready": 1, "masters": 1, "workers_ready": 1, "workers": 2})
    );
    assert_eq!(row("dead")["api"], "unreachable");
    assert_eq!(row("cold")["api"], "no-kubeconfig");

    let table = env.ok(&["kubeadm", "ls", "--details"]);
    assert!(
        table.contains("MASTERS STATE")
            && table.contains("1/1 Ready")
            && table.contains("1/2 Ready"),
        "{table}"
    );
}
