//! `byon add|remove|ls`: what is refused before any host is contacted.

use crate::harness::*;

#[test]
fn byon_refuses_bad_input_and_clusters_without_a_control_plane_before_connecting() {
    let env = Env::new();
    let wire = Tripwire::new();
    let (address, port) = wire
        .endpoint()
        .rsplit_once(':')
        .map(|(a, p)| (a.to_string(), p.to_string()))
        .unwrap();
    let host = format!("root@{address}:{port}");
    let unknown = env.run(&["byon", "add", "nosuch", "--host", &host]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown.stderr).contains("no cluster named `nosuch`"),
        "{}",
        text(&unknown.stderr)
    );

    for (flag, value, says) in [
        (
            "--taint",
            "dedicated=ml:Never",
            "--taint `dedicated=ml:Never`: expected KEY[=VALUE]:EFFECT",
        ),
        (
            "--label",
            "novalue",
            "--label `novalue`: expected KEY=VALUE",
        ),
        ("--provenance", "moon", "`moon` is not a provenance"),
    ] {
        let out = env.run(&["byon", "add", "nosuch", "--host", &host, flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag}");
        assert!(
            text(&out.stderr).contains(says),
            "{says}: {}",
            text(&out.stderr)
        );
    }

    // A provider: ssh cluster whose bootstrap never got anywhere (its only host refuses
    // connections) has no control plane to join through.
    let key = env.dir.path().join("id_byon");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    let file = write(
        env.dir.path(),
        "onprem.yaml",
        &format!(
            "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: onprem\nspec:\n  provider: ssh\n  \
             ssh: {{privateKeyPath: {}}}\n  hosts:\n    - {{address: 127.0.0.1, port: 1, role: control-plane}}\n",
            key.display()
        ),
    );
    let failed = env.run(&["kubeadm", "apply", "-f", file.to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed.stderr));
    for args in [
        vec!["byon", "add", "onprem", "--host", &host],
        vec!["byon", "remove", "onprem", "box-1"],
    ] {
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains("`clouder kubeadm setup onprem` first"),
            "{}",
            text(&out.stderr)
        );
    }
    assert_eq!(env.ok(&["byon", "ls", "onprem", "-o", "json"]).trim(), "[]");
    assert!(!wire.touched(), "no host was contacted");
}
