//! `clouder secrets`, `storage` and `node-agent` end to end, and the marker test: a secret
//! value never shows in the state store, logs (-vvv), `-o json`, error messages or process
//! arguments.

use super::harness::{Env, REGION, moto, text};
use super::parity::adopted;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use std::io::Write;
use std::process::{Output, Stdio};

/// The fake Key Vault takes any bearer token.
const KEYVAULT_TOKEN: (&str, &str) = ("CLOUDER_AZURE_KEYVAULT_TOKEN", "test-token");

/// `clouder ARGS` with `input` on stdin.
fn run_stdin(env: &Env, args: &[&str], input: &[u8]) -> Output {
    let mut child = env
        .command(args)
        .env(KEYVAULT_TOKEN.0, KEYVAULT_TOKEN.1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // A refusal may exit before reading everything.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all.extend(files_under(&path));
        } else {
            all.push(path);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_values_appear_nowhere_but_the_secret() {
    let env = Env::new();
    let kube = adopted(&env, "ud").await;
    let marker = format!("MARKER-{}", std::process::id());
    let mut seen: Vec<(String, Vec<u8>)> = Vec::new();
    let mut keep = |what: &str, out: &Output| {
        seen.push((format!("{what} stdout"), out.stdout.clone()));
        seen.push((format!("{what} stderr"), out.stderr.clone()));
    };

    let set = |name: &str, extra: &[&str], input: &[u8]| {
        let mut args = vec![
            "secrets", "set", "ud", "--user", "alice", name, "-vvv", "-o", "json",
        ];
        args.extend_from_slice(extra);
        run_stdin(&env, &args, input)
    };
    let out = set("API_TOKEN", &[], format!("{marker}-stdin\n").as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["outcome"], "created");
    keep("set stdin", &out);
    let again = set("API_TOKEN", &[], format!("{marker}-stdin\n").as_bytes());
    let json: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(json["outcome"], "unchanged");
    keep("set unchanged", &again);

    let file = env.dir.path().join("value");
    std::fs::write(&file, format!("{marker}-file")).unwrap();
    let out = set("FROM_FILE", &["--from-file", file.to_str().unwrap()], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    keep("set file", &out);

    // SSM on moto, then a rotation picked up by sync.
    moto();
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(moto())
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await;
    let ssm = aws_sdk_ssm::Client::new(&aws);
    let param = format!("/ud/{}/token", std::process::id());
    let put = |value: String, overwrite: bool| {
        ssm.put_parameter()
            .name(&param)
            .value(value)
            .overwrite(overwrite)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
    };
    put(format!("{marker}-ssm1"), false).await.unwrap();
    let out = set("SSM_TOKEN", &["--from-ssm", &param], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    keep("set ssm", &out);
    // Azure Key Vault on the fake's data plane.
    let vault = fake_arm::Server::start(0, fake_arm::Config::default())
        .await
        .unwrap();
    let kv_put = |value: String| {
        reqwest::Client::new()
            .put(format!(
                "{}/secrets/token?api-version=7.4",
                vault.endpoint()
            ))
            .bearer_auth("t")
            .json(&serde_json::json!({ "value": value }))
            .send()
    };
    kv_put(format!("{marker}-kv1"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let uri = format!("{}/secrets/token", vault.endpoint());
    let out = set("KV_TOKEN", &["--from-azure-keyvault", &uri], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    keep("set keyvault", &out);

    put(format!("{marker}-ssm2"), true).await.unwrap();
    kv_put(format!("{marker}-kv2"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let out = env.run_with(
        &["secrets", "sync", "ud", "-vvv", "-o", "json"],
        &[KEYVAULT_TOKEN],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json[0]["updated"],
        serde_json::json!(["KV_TOKEN", "SSM_TOKEN"]),
        "{json}"
    );
    keep("sync", &out);

    let out = env.run(&[
        "secrets", "ls", "ud", "--user", "alice", "-vvv", "-o", "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["API_TOKEN", "FROM_FILE", "KV_TOKEN", "SSM_TOKEN"]);
    keep("ls", &out);
    let out = env.run(&["secrets", "ls", "ud", "--user", "alice", "-vvv"]);
    assert!(
        text(&out.stdout).contains("ssm:/ud/"),
        "{}",
        text(&out.stdout)
    );
    keep("ls table", &out);

    // Refusals: exit 2, nothing written, the value not repeated.
    let mut big = marker.clone().into_bytes();
    big.resize(1 << 20, b'x');
    let out = set("BIG", &[], &big);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("size limit"),
        "{}",
        text(&out.stderr)
    );
    keep("set too big", &out);
    let out = set("1BAD", &[], marker.as_bytes());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("`1BAD`"),
        "{}",
        text(&out.stderr)
    );
    keep("set bad name", &out);

    // A long-running sync: its arguments and its children's.
    let mut child = env
        .command(&["secrets", "sync", "ud", "--interval", "1", "-vvv"])
        .env(KEYVAULT_TOKEN.0, KEYVAULT_TOKEN.1)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "sync --interval keeps running"
    );
    let pid = child.id();
    let mut cmdlines = vec![std::fs::read(format!("/proc/{pid}/cmdline")).unwrap()];
    assert!(
        contains(&cmdlines[0], "--interval"),
        "the running sync's own arguments were read"
    );
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for c in children.split_whitespace() {
            cmdlines.push(std::fs::read(format!("/proc/{c}/cmdline")).unwrap_or_default());
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for (i, c) in cmdlines.into_iter().enumerate() {
        seen.push((format!("process arguments {i}"), c));
    }
    // Commands that keep state (here: the cluster list) open the store the secrets would leak to.
    env.ok(&["kubeadm", "ls", "-vvv"]);
    for file in files_under(&env.home()) {
        seen.push((
            format!("state file {}", file.display()),
            std::fs::read(&file).unwrap(),
        ));
    }
    assert!(
        seen.iter().any(|(w, _)| w.contains("state.db")),
        "the state store was checked"
    );

    for (what, bytes) in &seen {
        assert!(
            !contains(bytes, &marker),
            "the secret value leaked into {what}"
        );
    }
    // The values did reach the Secret, so the marker was there to find.
    let secret = Api::<Secret>::namespaced(kube.client().await.unwrap(), "user-alice")
        .get("clouder-user-secrets")
        .await
        .unwrap();
    let data = secret.data.unwrap();
    assert_eq!(data["API_TOKEN"].0, format!("{marker}-stdin").into_bytes());
    assert_eq!(data["FROM_FILE"].0, format!("{marker}-file").into_bytes());
    assert_eq!(data["SSM_TOKEN"].0, format!("{marker}-ssm2").into_bytes());
    assert_eq!(data["KV_TOKEN"].0, format!("{marker}-kv2").into_bytes());
    assert!(!data.contains_key("BIG"));
}

#[test]
fn storage_folders_and_mount_spec_from_the_cli() {
    let env = Env::new();
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    let gid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::gid(&m))
        .unwrap()
        .to_string();
    let created: serde_json::Value = serde_json::from_str(&env.ok(&[
        "storage",
        "user",
        "create",
        "ud",
        "alice",
        "--quota",
        "1Mi",
        "--root",
        r,
        "--fs-group",
        &gid,
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(created[0]["quota_bytes"], 1 << 20);
    std::fs::write(root.path().join("users/alice/big"), vec![0u8; 2 << 20]).unwrap();
    let usage = env.ok(&["storage", "usage", "ud", "--root", r]);
    assert!(
        usage
            .lines()
            .any(|l| l.starts_with("alice") && l.contains("OVER")),
        "{usage}"
    );
    let bad = env.run(&["storage", "user", "create", "ud", "../etc", "--root", r]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    // Without --root the folders are worked on through the cluster, which must be known.
    let unknown = env.run(&["storage", "user", "ls", "nowhere"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown.stderr));
    assert!(
        text(&unknown.stderr).contains("no cluster `nowhere`"),
        "{}",
        text(&unknown.stderr)
    );
    let refused = env.run(&[
        "storage", "user", "rm", "ud", "alice", "--purge", "--root", r,
    ]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "no confirmation without a terminal"
    );
    assert!(root.path().join("users/alice/big").exists());
    env.ok(&["storage", "user", "rm", "ud", "alice", "--root", r]);
    assert!(!root.path().join("users/alice").exists());
    assert!(
        std::fs::read_dir(root.path().join("trash"))
            .unwrap()
            .count()
            == 1,
        "kept for the grace period"
    );

    let spec: serde_json::Value =
        serde_json::from_str(&env.ok(&["storage", "mount-spec", "ud", "alice", "-o", "json"]))
            .unwrap();
    assert_eq!(
        spec["spec"]["containers"][0]["volumeMounts"][0]["subPath"],
        "users/alice"
    );
    assert_eq!(spec["spec"]["securityContext"]["fsGroup"], 100);
    let yaml = env.ok(&["storage", "mount-spec", "ud", "alice"]);
    assert!(yaml.contains("claimName: clouder-userdata"), "{yaml}");
}

#[test]
fn node_agent_refuses_a_process_outside_a_pod() {
    let env = Env::new();
    let storage = tempfile::tempdir().unwrap();
    std::fs::create_dir(storage.path().join("alice")).unwrap();
    let pid = std::process::id().to_string();
    let out = env.run(&[
        "node-agent",
        "attach",
        "--pid",
        &pid,
        "--source",
        storage.path().join("alice").to_str().unwrap(),
        "--target",
        "/home/user",
        "--storage-root",
        storage.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a container process"),
        "{}",
        text(&out.stderr)
    );
}
