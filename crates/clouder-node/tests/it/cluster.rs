//! Forming the cluster: the exact scripts of init, credentials, joins and the CNI (golden files),
//! the CA pin against openssl, and the guards that keep init and join from ever running twice.

use crate::kubeadm_config::{TOKEN, cluster, node};
use crate::phases::shellcheck;
use clouder_node::cluster::{
    RunSecrets, ca_cert_hash, cni_script, credentials_script, init_script, join_script,
};
use clouder_node::fleet::MemoryPins;
use clouder_node::ssh::load_key;
use clouder_node::{Fleet, Host};
use clouder_testenv::Lab;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// What the first control plane's encryption configuration holds (a fixed key for the golden file).
const ENCRYPTION: &str =
    "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: []\n";
const HASH: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn secrets() -> RunSecrets {
    RunSecrets {
        token: TOKEN.into(),
        certificate_key: "f".repeat(64),
    }
}

fn scripts() -> Vec<(&'static str, String)> {
    let (c, s) = (cluster(), secrets());
    vec![
        (
            "init",
            init_script(&c, &node("demo-cp-0", "10.0.0.10", false), &s),
        ),
        ("credentials", credentials_script(&s, true)),
        ("credentials-workers-only", credentials_script(&s, false)),
        (
            "join-control-plane",
            join_script(
                &c,
                &node("demo-cp-1", "10.0.0.11", false),
                &s,
                HASH,
                Some(ENCRYPTION),
            ),
        ),
        (
            "join-worker",
            join_script(&c, &node("demo-w-0", "10.0.0.20", true), &s, HASH, None),
        ),
        ("cni", cni_script(&c)),
    ]
}

#[test]
fn the_command_sequence_of_every_step_is_golden_and_passes_shellcheck() {
    for (step, text) in scripts() {
        shellcheck(step, &text);
        insta::assert_snapshot!(format!("form_{step}"), text);
    }
}

#[test]
fn the_cni_manifest_comes_from_the_configured_source() {
    let mut c = cluster();
    c.cni_manifest = "/srv/mirror dir/tigera-operator.yaml".into();
    let text = cni_script(&c);
    shellcheck("cni from a path", &text);
    assert!(
        text.contains("--field-manager=clouder -f '/srv/mirror dir/tigera-operator.yaml'"),
        "{text}"
    );
    assert!(!text.contains("githubusercontent"), "{text}");
}

#[test]
fn secrets_are_fresh_and_shaped_as_kubeadm_wants() {
    let (a, b) = (RunSecrets::generate(), RunSecrets::generate());
    assert_ne!(a.token, b.token);
    let (id, secret) = a.token.split_once('.').unwrap();
    let lower = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    assert!(
        id.len() == 6 && secret.len() == 16 && lower(id) && lower(secret),
        "{}",
        a.token
    );
    assert!(
        a.certificate_key.len() == 64 && a.certificate_key.chars().all(|c| c.is_ascii_hexdigit())
    );
}

#[test]
fn the_ca_pin_matches_openssl() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let pem = params.self_signed(&key).unwrap().pem();
    // kubeadm's documented recipe for the discovery hash.
    let mut child = Command::new("sh")
        .args(["-c", "openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let expected = format!("sha256:{}", String::from_utf8(out.stdout).unwrap().trim());
    assert_eq!(ca_cert_hash(&pem).unwrap(), expected);
    assert!(
        ca_cert_hash("not a certificate")
            .unwrap_err()
            .contains("not a PEM certificate")
    );
}

/// kubeadm is not installed on the lab hosts: had a guard let it through, the script would fail.
#[tokio::test(flavor = "multi_thread")]
async fn init_and_join_never_run_again_on_a_member() {
    let lab = Lab::start(1);
    let fleet = Fleet::new(
        load_key(&lab.client_key()).unwrap(),
        Arc::new(MemoryPins::default()),
    );
    let host = Host::new(&lab.hosts[0].address, "root");
    let (c, s) = (cluster(), secrets());
    let init = init_script(&c, &node("demo-cp-0", "10.0.0.10", false), &s);
    let join = join_script(&c, &node("demo-w-0", "10.0.0.20", true), &s, HASH, None);
    let root = lab.dir.path().join("etc-kubernetes");
    let reports = fleet
        .each(std::slice::from_ref(&host), |session| {
            let (init, join, root) = (init.clone(), join.clone(), root.clone());
            async move {
                // The unrooted lab host shares this machine's files: point the guards at a tempdir.
                let relocate = |t: &str| t.replace("/etc/kubernetes", root.to_str().unwrap());
                let fresh = session
                    .script(&relocate(&init))
                    .await
                    .map_err(|e| e.to_string())?;
                std::fs::create_dir_all(&root).unwrap();
                std::fs::write(root.join("admin.conf"), "").unwrap();
                std::fs::write(root.join("kubelet.conf"), "").unwrap();
                let again = session
                    .script(&relocate(&init))
                    .await
                    .map_err(|e| e.to_string())?;
                let joined = session
                    .script(&relocate(&join))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((fresh, again, joined))
            }
        })
        .await;
    let (fresh, again, joined) = reports.into_iter().next().unwrap().result.unwrap();
    assert!(
        !fresh.ok() && fresh.stderr.contains("kubeadm"),
        "a fresh host runs kubeadm: {fresh:?}"
    );
    assert!(
        again.ok() && again.stdout.contains("already initialised"),
        "{again:?}"
    );
    assert!(
        joined.ok() && joined.stdout.contains("already joined"),
        "{joined:?}"
    );
    assert!(
        !root.join("clouder/init.yaml").exists(),
        "the secret config is removed even on failure"
    );
}
