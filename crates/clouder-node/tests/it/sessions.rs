//! Sessions, facts and fleets against the lab's real sshd hosts.

use clouder_node::fleet::{KeyPins, MemoryPins};
use clouder_node::ssh::load_key;
use clouder_node::{Facts, Fleet, Host, SshError};
use clouder_testenv::Lab;
use std::sync::Arc;
use std::time::Duration;

fn fleet(lab: &Lab) -> (Fleet, Arc<MemoryPins>) {
    let pins = Arc::new(MemoryPins::default());
    let mut fleet = Fleet::new(load_key(&lab.client_key()).unwrap(), pins.clone());
    fleet.connect_timeout = Duration::from_secs(3);
    fleet.attempts = 1;
    (fleet, pins)
}

fn hosts(lab: &Lab) -> Vec<Host> {
    lab.hosts
        .iter()
        .map(|h| Host::new(&h.address, "root"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn facts_are_read_from_every_host_in_parallel() {
    let lab = Lab::start(3);
    let (fleet, pins) = fleet(&lab);
    let reports = fleet
        .each(&hosts(&lab), |s| async move {
            Facts::gather(&s).await.map_err(|e| e.to_string())
        })
        .await;
    let os = std::fs::read_to_string("/etc/os-release").unwrap();
    let uname = std::process::Command::new("uname")
        .arg("-m")
        .output()
        .unwrap();
    for report in &reports {
        let facts = report
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", report.host));
        assert!(os.contains(&format!("ID={}", facts.os_id)), "{facts:?}");
        assert_eq!(facts.arch, String::from_utf8_lossy(&uname.stdout).trim());
        assert!(facts.memory_kib > 0 && facts.disk_free_kib > 0);
    }
    assert_eq!(reports.len(), 3);
    for h in &lab.hosts {
        assert!(
            pins.pinned(&h.address).unwrap().starts_with("SHA256:"),
            "first contact pins the key"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_report_output_and_exit_status_and_scripts_go_over_stdin() {
    let lab = Lab::start(1);
    let (fleet, _) = fleet(&lab);
    let session = fleet.connect(&hosts(&lab)[0]).await.unwrap();
    let out = session
        .run("sh -c 'echo out; echo err >&2; exit 3'", None)
        .await
        .unwrap();
    assert_eq!(
        (out.status, out.stdout.as_str(), out.stderr.as_str()),
        (3, "out\n", "err\n")
    );
    let out = session
        .script("set -eu\nname='it works'\necho \"$name\"\n")
        .await
        .unwrap();
    assert!(out.ok());
    assert_eq!(out.stdout, "it works\n");
    // One connection carries many channels.
    let commands: Vec<String> = (0..10).map(|i| format!("echo {i}")).collect();
    let many = futures::future::join_all(commands.iter().map(|c| session.run(c, None))).await;
    assert!(
        many.iter()
            .enumerate()
            .all(|(i, o)| o.as_ref().unwrap().stdout == format!("{i}\n"))
    );
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_host_key_is_refused_naming_both_fingerprints() {
    let mut lab = Lab::start(2);
    let (fleet, pins) = fleet(&lab);
    let all = hosts(&lab);
    fleet.connect(&all[0]).await.unwrap();
    fleet.connect(&all[1]).await.unwrap();
    let pinned = pins.pinned(&all[0].address).unwrap();

    let key = lab.client_key();
    lab.hosts[0].start_sshd(&key, false);
    let err = fleet
        .connect(&all[0])
        .await
        .err()
        .expect("a new host key must be refused");
    match &err {
        SshError::HostKeyMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, &pinned);
            assert_ne!(actual, &pinned);
            let msg = err.to_string();
            assert!(
                msg.contains(&all[0].address) && msg.contains(expected) && msg.contains(actual),
                "{msg}"
            );
        }
        other => panic!("expected a host key mismatch, got {other}"),
    }
    assert_eq!(
        pins.pinned(&all[0].address).unwrap(),
        pinned,
        "the pin is not replaced"
    );
    fleet
        .connect(&all[1])
        .await
        .expect("the other host is unaffected");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_host_fails_clearly_while_the_others_finish() {
    let lab = Lab::start(2);
    let (fleet, _) = fleet(&lab);
    let mut all = hosts(&lab);
    all.insert(1, Host::new(&lab.unreachable(), "root"));
    let reports = fleet
        .each(&all, |s| async move {
            s.run("hostname", None)
                .await
                .map(|o| o.status)
                .map_err(|e| e.to_string())
        })
        .await;
    assert_eq!(reports[0].result, Ok(0));
    assert_eq!(reports[2].result, Ok(0));
    let err = reports[1].result.as_ref().unwrap_err();
    assert!(
        err.contains(&lab.unreachable())
            && (err.contains("timed out") || err.contains("cannot connect")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_is_an_authentication_error() {
    let lab = Lab::start(1);
    let other = tempfile::tempdir().unwrap();
    let path = other.path().join("stranger");
    std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            path.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    let fleet = Fleet::new(load_key(&path).unwrap(), Arc::new(MemoryPins::default()));
    let err = fleet.connect(&hosts(&lab)[0]).await.err().unwrap();
    assert!(matches!(err, SshError::Auth { .. }), "{err}");
}
