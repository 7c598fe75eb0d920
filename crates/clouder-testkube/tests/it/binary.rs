//! The `clouder-testkube serve` binary: kubeconfig, readiness line, clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

#[tokio::test]
async fn serve_writes_kubeconfig_prints_it_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_clouder-testkube"))
        .args(["serve", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
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

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success(), "exits cleanly on SIGTERM");
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_clouder-testkube"))
        .args(["serve", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("KUBECONFIG="));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
}
