//! Shared state in S3 (a moto server serving one request at a time, so that conditional writes
//! are atomic as on S3): two teammates' CLOUDER_HOMEs see one state, a crashed run leaves a lock
//! that says its holder is gone and a re-run that converges, of two concurrent runs exactly one
//! proceeds and the other names it, a held lock stops a second writer and names its holder,
//! `state unlock --force ID` breaks only that lock, and `state migrate` copies a local state to
//! S3 once. The teammates' scenario runs on Azure Blob too (`state_azblob`).

use crate::harness::*;
use clouder_remote::Backend;
use clouder_remote::lock::{self, Holder};
use clouder_remote::s3::S3Store;
use clouder_testenv::{azurite, moto};
use std::process::Stdio;

/// What points clouder at the stores of shared state: S3 on the serial moto server (atomic
/// conditional writes, as S3's), Azure Blob on Azurite's development account.
pub fn state_env() -> [(&'static str, &'static str); 3] {
    [
        ("AWS_ENDPOINT_URL_S3", moto::serial_endpoint()),
        ("AZURE_STORAGE_KEY", azurite::KEY),
        ("AZURE_STORAGE_BLOB_ENDPOINT", azurite::endpoint()),
    ]
}

/// A fresh bucket on the serial moto server.
pub async fn bucket(name: &str) -> S3Store {
    cloud().await; // sets the moto endpoint and test credentials for this process
    // SAFETY: every test sets the same values before any client reads them.
    unsafe {
        std::env::set_var("AWS_REGION", REGION);
        std::env::set_var("AWS_ENDPOINT_URL_S3", moto::serial_endpoint());
    }
    let store = S3Store::connect(name).await;
    store
        .client()
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap();
    store
}

pub fn names(out: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn teammates_share_one_s3_state_a_failed_run_resumes_and_locks_name_their_holder() {
    let store = bucket("team-state").await;
    let url = "s3://team-state/clouder.db";
    teammates_share_one_state(&store, url, "shared", &state_env()).await;
}

/// Teammates Alice and Bob share the state at `url` (in `store`), on clusters named `name…`,
/// with `vars` pointing clouder at the store: run on S3 here and on Azure Blob in `state_azblob`.
pub async fn teammates_share_one_state(
    store: &dyn Backend,
    url: &str,
    name: &str,
    vars: &[(&str, &str)],
) {
    let alice = Env::new();
    let bob = Env::new();
    let lock_key = "clouder.db.lock";
    let with = |extra: (&'static str, &'static str)| [vars, &[extra]].concat();
    let create = |env: &Env, name: &str| {
        let mut args = env.create_args(name, 1);
        args.extend(["--state".to_string(), url.to_string()]);
        args
    };

    // Alice's create is killed after 3 mutating calls (as by a crash: no clean-up at all). Its
    // lock stays behind, and says that its holder is gone.
    let crashed = alice.run_with(
        &strs(&create(&alice, name)),
        &with(("CLOUDER_FAULT_AFTER", "3")),
    );
    assert_eq!(crashed.status.code(), Some(86), "{}", text(&crashed.stderr));
    assert!(
        !alice.home().join("state.db").exists(),
        "nothing in Alice's local state"
    );
    let stale = bob.run_with(
        &["kubeadm", "ls", "--state", url, "--lock-timeout", "1"],
        vars,
    );
    assert_eq!(stale.status.code(), Some(1));
    let err = text(&stale.stderr);
    assert!(
        err.contains("STALE") && err.contains("state unlock --force"),
        "{err}"
    );
    let left = store.held_by(lock_key).await.unwrap().unwrap();
    assert!(
        err.contains(&left.id) && left.command.contains(&format!("kubeadm create {name}")),
        "{err}"
    );
    let wrong = bob.run_with(
        &[
            "state",
            "unlock",
            &Holder::current("").id,
            "--force",
            "--state",
            url,
        ],
        vars,
    );
    assert_eq!(
        wrong.status.code(),
        Some(1),
        "only the named lock is broken"
    );
    bob.ok_with(
        &["state", "unlock", &left.id, "--force", "--state", url],
        vars,
    );

    // Bob's re-run finds what the crashed run made by its tags and finishes: no duplicates.
    let resumed: serde_json::Value =
        serde_json::from_str(&bob.ok_with(&strs(&create(&bob, name)), vars)).unwrap();
    assert_eq!(
        resumed["result"]["failed"]
            .as_object()
            .map_or(0, |f| f.len()),
        0,
        "{resumed}"
    );
    let vpcs = cloud()
        .await
        .ec2
        .describe_vpcs()
        .filters(cluster_filter(name))
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1);
    assert_eq!(
        store.held_by(lock_key).await.unwrap(),
        None,
        "the lock was released"
    );
    let ls = |env: &Env| {
        let mut listed =
            names(&env.ok_with(&["kubeadm", "ls", "--state", url, "-o", "json"], vars));
        listed.sort();
        listed
    };
    assert_eq!(ls(&alice), [name]);
    let info: serde_json::Value = serde_json::from_str(&alice.ok_with(
        &["kubeadm", "info", name, "--state", url, "-o", "json"],
        vars,
    ))
    .unwrap();
    assert_eq!(info["cluster"]["status"], "ready", "{info}");

    // Both create at once: exactly one proceeds, the other names it and changes nothing.
    let start = |env: &Env, name: &str| {
        let mut cmd = env.command(&strs(&create(env, name)));
        cmd.args(["--lock-timeout", "0"]).envs(vars.iter().copied());
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a_name, b_name) = (format!("{name}-a"), format!("{name}-b"));
    let (a, b) = (start(&alice, &a_name), start(&bob, &b_name));
    let (pid_a, pid_b) = (a.id(), b.id());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (winner, loser, winner_pid) = match (a.status.success(), b.status.success()) {
        (true, false) => (&a_name, b, pid_a),
        (false, true) => (&b_name, a, pid_b),
        _ => panic!(
            "exactly one must proceed:\n{}\n{}",
            text(&a.stderr),
            text(&b.stderr)
        ),
    };
    assert_eq!(loser.status.code(), Some(1));
    let err = text(&loser.stderr);
    assert!(
        err.contains("state is locked")
            && err.contains(&format!("pid {winner_pid}"))
            && err.contains(&format!("kubeadm create {winner}"))
            && !err.contains("STALE"),
        "{err}"
    );
    assert_eq!(ls(&bob), [name.to_string(), winner.clone()]);

    // A run elsewhere holds the lock: a second writer waits, then fails naming the holder.
    let holder = Holder::current("clouder kubeadm apply (teammate)");
    lock::acquire(store, lock_key, &holder, std::time::Duration::ZERO)
        .await
        .unwrap();
    let blocked = bob.run_with(
        &["kubeadm", "ls", "--state", url, "--lock-timeout", "1"],
        vars,
    );
    assert_eq!(blocked.status.code(), Some(1));
    let err = text(&blocked.stderr);
    assert!(
        err.contains("state is locked") && err.contains(&holder.id) && !err.contains("STALE"),
        "{err}"
    );
    bob.ok_with(
        &["state", "unlock", &holder.id, "--force", "--state", url],
        vars,
    );
    assert_eq!(ls(&bob), [name.to_string(), winner.clone()]);

    for cluster in [name, winner] {
        bob.ok_with(
            &["kubeadm", "terminate", cluster, "--force", "--state", url],
            vars,
        );
    }
    // (A newcomer: a teammate's own CLOUDER_HOME keeps the reference files of what it created.)
    assert!(ls(&Env::new()).is_empty());
}

pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_state_migrates_to_s3_once() {
    let _store = bucket("migrated-state").await;
    let env = Env::new();
    env.create("local-one", 1, &[]);
    let vars = state_env();
    let url = "s3://migrated-state/clouder.db";
    env.ok_with(&["state", "migrate", "--to", url], &vars);
    let other = Env::new();
    assert_eq!(
        names(&other.ok_with(&["kubeadm", "ls", "--state", url, "-o", "json"], &vars)),
        ["local-one"]
    );
    // A backend that holds a state already is never overwritten.
    let again = env.run_with(&["state", "migrate", "--to", url], &vars);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already holds a state"),
        "{}",
        text(&again.stderr)
    );
    // From one shared state to another: the copy comes from --state.
    let moved = "s3://migrated-state/moved.db";
    other.ok_with(&["state", "migrate", "--to", moved, "--state", url], &vars);
    assert_eq!(
        names(&other.ok_with(&["kubeadm", "ls", "--state", moved, "-o", "json"], &vars)),
        ["local-one"]
    );
    let bad = env.run_with(&["kubeadm", "ls", "--state", "azblob://acct/k"], &vars);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("azblob://ACCOUNT/CONTAINER/KEY"),
        "{}",
        text(&bad.stderr)
    );
}
