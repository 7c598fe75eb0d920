//! Bootstrap phases on rooted hosts: applied once, a no-op the second time; every generated
//! script passes shellcheck.

use clouder_node::fleet::MemoryPins;
use clouder_node::phases::{self, NodePlan, Outcome};
use clouder_node::ssh::load_key;
use clouder_node::{Fleet, Host};
use clouder_testenv::Lab;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

#[test]
fn every_generated_script_passes_shellcheck() {
    let node = NodePlan {
        kubernetes_version: "1.32".into(),
    };
    for phase in phases::all() {
        for (what, text) in [("probe", phase.probe(&node)), ("apply", phase.apply(&node))] {
            let mut child = Command::new("shellcheck")
                .args(["--shell=bash", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("shellcheck (apt-get install shellcheck; scripts/peers.sh does)");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{} {what}:\n{text}\n{}",
                phase.title(),
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn phases_apply_once_and_a_rerun_changes_nothing() {
    let lab = Lab::start_rooted(2);
    let fleet = Fleet::new(
        load_key(&lab.client_key()).unwrap(),
        Arc::new(MemoryPins::default()),
    );
    let hosts: Vec<Host> = lab
        .hosts
        .iter()
        .map(|h| Host::new(&h.address, "root"))
        .collect();
    let node = NodePlan {
        kubernetes_version: "1.32".into(),
    };
    let all = phases::all();
    let run = || {
        fleet.each(&hosts, |s| {
            let (node, all) = (&node, &all);
            async move { phases::run(&s, node, all).await.map_err(|e| e.to_string()) }
        })
    };

    for report in run().await {
        let phases = report.result.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            phases.iter().all(|p| p.outcome == Outcome::Applied),
            "{phases:?}"
        );
    }
    for i in 0..2 {
        let sysctl = lab
            .written_by_host(i, "/etc/sysctl.d/90-clouder-kubernetes.conf")
            .expect("written inside the host");
        assert!(sysctl.contains("net.ipv4.ip_forward = 1"));
        assert!(
            lab.written_by_host(i, "/etc/modules-load.d/clouder-kubernetes.conf")
                .unwrap()
                .contains("br_netfilter")
        );
    }
    assert!(
        !std::path::Path::new("/etc/sysctl.d/90-clouder-kubernetes.conf").exists(),
        "the test machine is untouched"
    );

    for report in run().await {
        let phases = report.result.unwrap();
        assert!(
            phases.iter().all(|p| p.outcome == Outcome::Skipped),
            "a re-run applies nothing: {phases:?}"
        );
    }
}
