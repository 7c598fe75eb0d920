//! Golden files of the rendered kubeadm configuration (insta snapshots under snapshots/).

use clouder_node::kubeadm::{ClusterInputs, NodeInputs, init_config, join_config};

pub(crate) fn cluster() -> ClusterInputs {
    ClusterInputs {
        name: "demo".into(),
        version: "v1.32.3".into(),
        endpoint: "demo-api-123.elb.us-east-1.amazonaws.com:6443".into(),
        pod_cidr: "10.244.0.0/16".into(),
        service_cidr: "10.96.0.0/12".into(),
        cert_sans: vec![
            "demo-api-123.elb.us-east-1.amazonaws.com".into(),
            "203.0.113.10".into(),
        ],
        cni_manifest: clouder_node::cluster::calico_manifest(),
    }
}

pub(crate) fn node(name: &str, ip: &str, worker: bool) -> NodeInputs {
    let mut labels = std::collections::BTreeMap::new();
    if worker {
        for (k, v) in clouder_spec::DEFAULT_WORKER_LABELS {
            labels.insert(k.to_string(), v.to_string());
        }
    }
    NodeInputs {
        name: name.into(),
        advertise_address: ip.into(),
        labels,
        taints: Vec::new(),
    }
}

pub(crate) const TOKEN: &str = "abcdef.0123456789abcdef";

#[test]
fn init_configuration_of_the_first_control_plane() {
    insta::assert_snapshot!(init_config(
        &cluster(),
        &node("demo-cp-0", "10.0.0.10", false),
        TOKEN,
        "f".repeat(64).as_str()
    ));
}

#[test]
fn join_configuration_of_a_worker_pins_the_ca() {
    let mut worker = node("demo-workers-0", "10.0.0.20", true);
    worker.taints.push((
        "nvidia.com/gpu".into(),
        Some("true".into()),
        "NoSchedule".into(),
    ));
    insta::assert_snapshot!(join_config(
        &cluster(),
        &worker,
        TOKEN,
        "sha256:0123abcd",
        None
    ));
}

#[test]
fn join_configuration_of_a_second_control_plane_carries_the_certificate_key() {
    let text = join_config(
        &cluster(),
        &node("demo-cp-1", "10.0.0.11", false),
        TOKEN,
        "sha256:0123abcd",
        Some("key"),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn values_are_escaped_not_interpolated() {
    let mut worker = node("w", "10.0.0.20", true);
    worker.labels.insert("team".into(), "a: b # c".into());
    let text = join_config(&cluster(), &worker, TOKEN, "sha256:x", None);
    let docs: Vec<serde_yaml_ng::Value> = text
        .split("---\n")
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect();
    let args = &docs[0]["nodeRegistration"]["kubeletExtraArgs"];
    assert!(
        args[1]["value"].as_str().unwrap().contains("team=a: b # c"),
        "{text}"
    );
}

/// Every configuration clouder renders passes `kubeadm config validate`: the kubeadm stand-in's
/// (strict v1beta4 decoding, values checked with kubeadm's messages), and a real kubeadm's too
/// when one is on PATH. A configuration kubeadm would refuse is refused, naming the field.
#[test]
fn every_rendered_configuration_passes_kubeadm_config_validate() {
    let key = "f".repeat(64);
    let hash = format!("sha256:{}", "a".repeat(64));
    let (cluster, cp0) = (cluster(), node("demo-cp-0", "10.0.0.10", false));
    let configs = [
        ("init", init_config(&cluster, &cp0, TOKEN, &key)),
        (
            "join-worker",
            join_config(
                &cluster,
                &node("demo-w-0", "10.0.0.20", true),
                TOKEN,
                &hash,
                None,
            ),
        ),
        (
            "join-control-plane",
            join_config(
                &cluster,
                &node("demo-cp-1", "10.0.0.11", false),
                TOKEN,
                &hash,
                Some(&key),
            ),
        ),
        (
            "unknown-field",
            init_config(&cluster, &cp0, TOKEN, &key).replacen("clusterName:", "clusterNme:", 1),
        ),
    ];
    let standin = clouder_testenv::nodekit::testkube_binary();
    let mut kubeadms = vec![(standin.clone(), vec!["kubeadm"])];
    match std::process::Command::new("kubeadm")
        .arg("version")
        .output()
    {
        Ok(_) => kubeadms.push(("kubeadm".into(), vec![])),
        Err(_) => println!("SKIPPED the real kubeadm: none on PATH (the stand-in validated)"),
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in &configs {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, text).unwrap();
        for (bin, prefix) in &kubeadms {
            let out = std::process::Command::new(bin)
                .args(prefix)
                .args(["config", "validate", "--config"])
                .arg(&file)
                .output()
                .unwrap();
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            if *name == "unknown-field" {
                assert!(!out.status.success(), "{bin:?} accepted {name}");
                assert!(stderr.contains("unknown field \"clusterNme\""), "{stderr}");
            } else {
                assert!(out.status.success(), "{bin:?} {name}: {stderr}\n{text}");
                assert_eq!(stdout.trim(), "ok", "{bin:?} {name}");
            }
        }
    }
}
