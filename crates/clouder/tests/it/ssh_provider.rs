//! `provider: ssh`: a cluster on hosts the user already has, bootstrapped over SSH — here real
//! sshd hosts with their own root filesystems.

use crate::harness::*;
use clouder_testenv::Lab;

fn spec(env: &Env, lab: &Lab, name: &str) -> std::path::PathBuf {
    let hosts: Vec<String> = lab
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            format!(
                "    - {{address: {}, role: {}}}\n",
                h.address,
                if i == 0 { "control-plane" } else { "worker" }
            )
        })
        .collect();
    let body = format!(
        "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: {name}\nspec:\n  provider: ssh\n  adminUser: root\n  \
         ssh: {{privateKeyPath: {}}}\n  hosts:\n{}",
        lab.client_key().display(),
        hosts.concat()
    );
    write(env.dir.path(), &format!("{name}.yaml"), &body)
}

fn rows(out: &std::process::Output) -> Vec<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn hosts_are_bootstrapped_once_and_a_rerun_changes_nothing() {
    let lab = Lab::start_rooted(2);
    let env = Env::new();
    let file = spec(&env, &lab, "onprem");
    let f = file.to_str().unwrap();

    let first = env.run(&["kubeadm", "apply", "-f", f, "-o", "json"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    for row in rows(&first) {
        assert_eq!(row["ok"], true, "{row}");
        assert_eq!(
            row["applied"],
            serde_json::json!(["prerequisites"]),
            "{row}"
        );
    }
    let again = env.run(&["kubeadm", "apply", "-f", f, "-o", "json"]);
    for row in rows(&again) {
        assert_eq!(
            row["applied"],
            serde_json::json!([]),
            "nothing changes: {row}"
        );
        assert_eq!(row["skipped"], serde_json::json!(["prerequisites"]));
    }
    let info: serde_json::Value =
        serde_json::from_str(&env.ok(&["kubeadm", "info", "onprem", "-o", "json"])).unwrap();
    assert_eq!(info["cluster"]["provider"], "ssh");
    assert_eq!(info["cluster"]["status"], "ready");
}

#[test]
fn a_rebuilt_host_is_refused_by_its_pinned_key_while_the_others_finish() {
    let mut lab = Lab::start_rooted(2);
    let env = Env::new();
    let file = spec(&env, &lab, "pinned");
    let f = file.to_str().unwrap();
    env.ok(&["kubeadm", "apply", "-f", f]);

    let key = lab.client_key();
    lab.hosts[1].start_sshd(&key, false);
    let out = env.run(&["kubeadm", "apply", "-f", f, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let rows = rows(&out);
    assert_eq!(rows[0]["ok"], true, "the other host is fine");
    let error = rows[1]["error"].as_str().unwrap();
    assert!(
        error.contains("HOST KEY MISMATCH") && error.contains(&lab.hosts[1].address),
        "{error}"
    );
    assert!(
        text(&out.stderr).contains("1 of 2 host(s) failed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_host_lists_are_refused_before_connecting() {
    let env = Env::new();
    let wire = Tripwire::new();
    let port = wire.endpoint().rsplit(':').next().unwrap().to_string();
    let head = "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: badhosts\nspec:\n  provider: ssh\n  hosts:\n";
    let cases = [
        (
            format!("    - {{address: 127.0.0.1, port: {port}, role: worker}}\n"),
            "spec.hosts: at least one host needs `role: control-plane`",
        ),
        (
            format!(
                "    - {{address: 127.0.0.1, port: {port}, role: control-plane}}\n    - {{address: 127.0.0.1, port: {port}, role: worker}}\n"
            ),
            "is listed twice",
        ),
        (
            format!("    - {{address: 127.0.0.1, port: {port}, role: master}}\n"),
            "unknown variant `master`",
        ),
    ];
    for (hosts, says) in cases {
        let file = write(env.dir.path(), "hosts.yaml", &format!("{head}{hosts}"));
        let out = env.run(&["kubeadm", "apply", "-f", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{hosts}");
        assert!(
            text(&out.stderr).contains(says),
            "{says}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("hosts.yaml:"),
            "located: {}",
            text(&out.stderr)
        );
    }
    assert!(!wire.touched(), "no host was contacted");
}
