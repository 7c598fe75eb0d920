//! `setup NAME` on a cloud cluster: the machines `create` recorded on moto are made real as lab
//! hosts at the very addresses moto gave them, then bootstrapped over SSH like `provider: ssh`.

use crate::harness::*;
use crate::ssh_provider::{plant_control_plane_files, sources};
use clouder_testenv::Lab;

/// An AWS cluster whose subnet is a free lab /24, reached at its private addresses.
fn create(env: &Env, name: &str) -> (Vec<String>, String) {
    let subnet = Lab::free_subnet();
    let (a, b) = {
        let mut it = subnet.split('.');
        (
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
        )
    };
    let file = write(
        env.dir.path(),
        "cluster.yaml",
        &format!(
            "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: {name}\nspec:\n  provider: aws\n  \
             region: {REGION}\n  image: {IMAGE}\n  adminCidrs: [203.0.113.7/32]\n  \
             ssh: {{publicKeyPath: {}, address: private}}\n  \
             network: {{vpcCidr: {a}.{b}.0.0/16, subnetCidr: {subnet}.0/24}}\n  \
             nodePools: [{{name: workers, count: 1}}]\n{}",
            env.key().display(),
            sources(false)
        ),
    );
    env.ok(&["kubeadm", "apply", "-f", file.to_str().unwrap()]);
    let info: serde_json::Value =
        serde_json::from_str(&env.ok(&["kubeadm", "info", name, "-o", "json"])).unwrap();
    let resources = info["resources"].as_array().unwrap();
    let ip_of = |pool: &str| -> String {
        resources
            .iter()
            .find(|r| r["attrs"]["pool"] == pool)
            .and_then(|r| r["attrs"]["private_ip"].as_str())
            .unwrap_or_else(|| panic!("no {pool} machine in {info}"))
            .to_string()
    };
    let dns = resources
        .iter()
        .find_map(|r| r["attrs"]["dns_name"].as_str().filter(|d| !d.is_empty()))
        .expect("the API load balancer has a DNS name")
        .to_string();
    (vec![ip_of("control-plane"), ip_of("workers")], dns)
}

fn rows(out: &std::process::Output) -> Vec<serde_json::Value> {
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)))
}

#[test]
fn setup_bootstraps_the_recorded_machines_and_pins_their_host_keys() {
    let env = Env::new();
    let (addresses, dns) = create(&env, "cloudy");
    let mut lab = Lab::start_rooted_at(&addresses, &[]);
    let key = lab.client_key();
    let ssh = ["-u", "root", "-i", key.to_str().unwrap()];
    let with = |args: &[&'static str]| -> Vec<String> {
        ["kubeadm", "setup", "cloudy"]
            .iter()
            .chain(&ssh)
            .chain(args)
            .map(|a| a.to_string())
            .collect()
    };
    let run = |args: &[&'static str]| {
        let all = with(args);
        env.run(&all.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let plan: serde_json::Value =
        serde_json::from_slice(&run(&["--dry-run", "-o", "json"]).stdout).unwrap();
    assert_eq!(
        plan["hosts"],
        serde_json::json!([
            format!("root@{}:22", addresses[0]),
            format!("root@{}:22", addresses[1])
        ]),
        "control plane first, at the addresses moto recorded: {plan}"
    );
    assert_eq!(
        plan["endpoint"],
        format!("{dns}:6443"),
        "the NLB fronts the API"
    );

    let first = run(&["-o", "json"]);
    assert_eq!(first.status.code(), Some(1), "{}", text(&first.stderr));
    let first_rows = rows(&first);
    assert_eq!(first_rows.len(), 2);
    assert_eq!(first_rows[0]["role"], "control-plane");
    assert_eq!(first_rows[1]["role"], "worker");
    for row in &first_rows {
        assert_eq!(
            row["applied"],
            serde_json::json!(["prerequisites"]),
            "{row}"
        );
        let error = row["error"].as_str().unwrap();
        assert!(
            error.contains("phase `container runtime` failed"),
            "{error}"
        );
    }
    // Each host's steps as plain lines (no terminal here), and its full log kept, 0600.
    let stderr = text(&first.stderr);
    for address in &addresses {
        assert!(
            stderr.contains(&format!("root@{address}:22: prerequisites: applied (")),
            "{stderr}"
        );
        let log = env
            .home()
            .join(format!("kubeadm/cloudy/logs/root@{address}_22.log"));
        let content = std::fs::read_to_string(&log).unwrap();
        assert!(
            content.contains("== container runtime: FAILED")
                && content.contains("clouder-no-mirror"),
            "the failed step and what apt said: {content}"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        !text(&first.stderr).contains("pinned from their console log"),
        "moto's console output announces no host key: trusted on first contact"
    );
    let info: serde_json::Value =
        serde_json::from_str(&env.ok(&["kubeadm", "info", "cloudy", "-o", "json"])).unwrap();
    assert_eq!(info["cluster"]["setup_complete"], false);
    assert_eq!(info["cluster"]["provider"], "aws");

    // The worker is rebuilt with a new host key: refused by the key pinned on first contact, while
    // the control plane resumes (prerequisites unchanged).
    lab.hosts[1].start_sshd(&key, false);
    let again = run(&["-o", "json"]);
    let again_rows = rows(&again);
    assert_eq!(
        again_rows[0]["applied"],
        serde_json::json!([]),
        "{again_rows:?}"
    );
    assert_eq!(
        again_rows[0]["skipped"],
        serde_json::json!(["prerequisites"])
    );
    let refused = again_rows[1]["error"].as_str().unwrap();
    assert!(
        refused.contains("HOST KEY MISMATCH") && refused.contains(&addresses[1]),
        "{refused}"
    );

    // get-config fetches from the recorded control plane, the server rewritten to the NLB.
    plant_control_plane_files(&lab);
    let fetched: serde_json::Value = serde_json::from_str(&env.ok(&[
        "kubeadm",
        "get-config",
        "cloudy",
        "-u",
        "root",
        "-i",
        key.to_str().unwrap(),
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(fetched["server"], format!("https://{dns}:6443"));
}

#[test]
fn setup_refuses_what_it_cannot_bootstrap_before_connecting() {
    let env = Env::new();
    let unknown = env.run(&["kubeadm", "setup", "nosuch"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("no cluster named `nosuch`"));

    env.create("public", 1, &[]);
    let bad_version = env.run(&["kubeadm", "setup", "public", "--k8s-version", "1.x"]);
    assert_eq!(bad_version.status.code(), Some(2));
    assert!(text(&bad_version.stderr).contains("--k8s-version `1.x`"));
}
