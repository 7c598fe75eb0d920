//! The kubelet checkpoint API client against a fake kubelet that checks client certificates.

use clouder_checkpoint::kubelet::{Auth, KubeletClient, KubeletError};
use clouder_testenv::kubelet::{Behaviour, Ca, FakeKubelet};
use std::time::{Duration, Instant};

fn client(kubelet: &FakeKubelet, ca: &Ca) -> KubeletClient {
    let (pem, _, _) = ca.sign("kube-apiserver-kubelet-client", &[]);
    KubeletClient::new(
        &kubelet.url,
        kubelet.ca.pem.as_bytes(),
        Auth::ClientCertificate {
            cert_pem: pem.cert,
            key_pem: pem.key,
        },
    )
    .unwrap()
    .with_grace(Duration::from_millis(300))
}

#[tokio::test]
async fn a_checkpoint_answers_the_archive_path_and_passes_the_timeout() {
    let kubelet = FakeKubelet::start(Behaviour::default()).await;
    let paths = client(&kubelet, &kubelet.ca)
        .checkpoint("default", "web", "app", Duration::from_secs(7))
        .await
        .unwrap();
    assert_eq!(
        paths,
        ["/var/lib/kubelet/checkpoints/checkpoint-web_default-app-2026-11-25T18:30:00Z.tar"]
    );
    assert_eq!(
        *kubelet.requests.lock().unwrap(),
        ["/checkpoint/default/web/app?timeout=7"]
    );
}

#[tokio::test]
async fn each_failure_of_the_api_has_its_own_clear_error() {
    let kubelet = FakeKubelet::start(Behaviour::default()).await;
    let client = client(&kubelet, &kubelet.ca);
    let url = &kubelet.url;
    let t = Duration::from_secs(1);

    let err = client
        .checkpoint("default", "nope", "app", t)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("kubelet {url}: pod does not exist")
    );
    let err = client
        .checkpoint("default", "web", "db", t)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("kubelet {url}: container db does not exist")
    );

    let err = client
        .checkpoint("default", "web", "broken", t)
        .await
        .unwrap_err();
    assert!(
        matches!(err, KubeletError::CheckpointFailed { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("criu failed: type NOTIFY errno 0"),
        "the runtime's reason is kept: {err}"
    );

    let started = Instant::now();
    let err = client
        .checkpoint("default", "web", "slow", t)
        .await
        .unwrap_err();
    assert!(matches!(err, KubeletError::Timeout { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("kubelet {url} did not answer within 1.3s")
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "gave up at the deadline: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_kubelet_without_the_feature_gate_is_told_apart_from_an_unknown_pod() {
    let kubelet = FakeKubelet::start(Behaviour {
        gate_off: true,
        ..Behaviour::default()
    })
    .await;
    let err = client(&kubelet, &kubelet.ca)
        .checkpoint("default", "web", "app", Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "kubelet {} does not serve the checkpoint API (404): enable the ContainerCheckpoint feature gate on the node",
            kubelet.url
        )
    );
    assert_eq!(
        *kubelet.requests.lock().unwrap(),
        ["/checkpoint/default/web/app"],
        "no timeout: the runtime's default"
    );
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let kubelet = FakeKubelet::start(Behaviour::default()).await;
    let stranger = Ca::new("someone-else");
    let err = client(&kubelet, &stranger)
        .checkpoint("default", "web", "app", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, KubeletError::Unreachable { .. }), "{err:?}");
    assert!(
        kubelet.requests.lock().unwrap().is_empty(),
        "no request got through"
    );

    let no_cert = KubeletClient::new(
        &kubelet.url,
        kubelet.ca.pem.as_bytes(),
        Auth::Bearer("t".into()),
    )
    .unwrap();
    let err = no_cert
        .checkpoint("default", "web", "app", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, KubeletError::Unreachable { .. }), "{err:?}");
    assert!(
        kubelet.requests.lock().unwrap().is_empty(),
        "no request got through"
    );
}

#[test]
fn bad_tls_material_is_reported() {
    let err = KubeletClient::new(
        "https://127.0.0.1:1",
        b"not a pem",
        Auth::Bearer("t".into()),
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "TLS material for the kubelet client is not valid: the CA bundle holds no PEM certificate"
    );
    let ca = Ca::new("kubelet-ca");
    let auth = Auth::ClientCertificate {
        cert_pem: b"garbage".to_vec(),
        key_pem: b"garbage".to_vec(),
    };
    let err = KubeletClient::new("https://127.0.0.1:1", ca.pem.as_bytes(), auth)
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .starts_with("TLS material for the kubelet client is not valid: "),
        "{err}"
    );
}
