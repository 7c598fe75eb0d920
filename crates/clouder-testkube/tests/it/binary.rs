//! The `clouder-testkube serve` binary: kubeconfig, readiness line, clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

/// Starts `serve --dir DIR` and waits for its readiness line, which it returns with the child.
fn serve(dir: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clouder-testkube"))
        .args(["serve", "--dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// SIGTERM, then a clean exit.
fn stop(mut child: std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success(), "exits cleanly on SIGTERM");
}

#[tokio::test]
async fn serve_writes_kubeconfig_prints_it_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (child, line) = serve(dir.path());
    let path = dir.path().join("kubeconfig");
    assert_eq!(line.trim_end(), format!("KUBECONFIG={}", path.display()));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    assert_eq!(client.apiserver_version().await.unwrap().minor, "36");
    stop(child);
}

#[tokio::test]
async fn many_servers_run_side_by_side() {
    let a = clouder_testkube::TestKube::start().await.unwrap();
    let b = clouder_testkube::TestKube::start().await.unwrap();
    assert_ne!(a.url(), b.url());
    let (ca, cb) = (a.client().await.unwrap(), b.client().await.unwrap());
    assert!(ca.apiserver_version().await.is_ok() && cb.apiserver_version().await.is_ok());
    drop(a);
    assert!(cb.apiserver_version().await.is_ok());
    assert!(
        ca.apiserver_version().await.is_err(),
        "a dropped server stops answering"
    );
}

#[test]
fn sigterm_right_after_the_readiness_line_is_a_clean_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (child, line) = serve(dir.path());
    assert!(line.starts_with("KUBECONFIG="));
    stop(child);
}

/// `serve --dir` twice on the same directory: the same credentials answer, the objects are back,
/// and resourceVersions go on from where they were.
#[tokio::test]
async fn a_restarted_server_resumes_from_its_directory() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams};
    let dir = tempfile::tempdir().unwrap();
    let (first, line) = serve(dir.path());
    assert!(line.starts_with("KUBECONFIG="), "{line}");
    let kubeconfig = std::fs::read_to_string(dir.path().join("kubeconfig")).unwrap();
    let client = |kc: String| async move {
        let kc = kube::config::Kubeconfig::from_yaml(&kc).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    };
    let cms: Api<ConfigMap> = Api::namespaced(client(kubeconfig.clone()).await, "default");
    let made: ConfigMap = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "kept"}, "data": {"a": "1"}}),
    )
    .unwrap();
    let made = cms.create(&PostParams::default(), &made).await.unwrap();
    stop(first);
    for file in ["identity.json", "objects.json"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    let (second, _) = serve(dir.path());
    let again = std::fs::read_to_string(dir.path().join("kubeconfig")).unwrap();
    let strip_server = |kc: &str| {
        kc.lines()
            .filter(|l| !l.trim_start().starts_with("server:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip_server(&again),
        strip_server(&kubeconfig),
        "same CA and tokens"
    );
    let cms: Api<ConfigMap> = Api::namespaced(client(again).await, "default");
    let kept = cms.get("kept").await.unwrap();
    assert_eq!(kept.metadata.uid, made.metadata.uid);
    assert_eq!(kept.data.unwrap()["a"], "1");
    let next: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "next"}})).unwrap();
    let next = cms.create(&PostParams::default(), &next).await.unwrap();
    let rv = |c: &ConfigMap| {
        c.metadata
            .resource_version
            .as_ref()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(rv(&next) > rv(&made), "resourceVersions go on increasing");
    stop(second);
}
