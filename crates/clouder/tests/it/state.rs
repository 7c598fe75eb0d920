//! Shared state in S3 (the moto server): two teammates' CLOUDER_HOMEs see one state, a crashed
//! run leaves a lock that says its holder is gone and a re-run that converges, a held lock stops
//! a second writer and names its holder, `state unlock --force ID` breaks only that lock, and
//! `state migrate` copies a local state to S3 once.

use crate::harness::*;
use clouder_remote::ObjectStore;
use clouder_remote::lock::{self, Holder, Locking};
use clouder_remote::s3::S3Store;

pub async fn bucket(name: &str) -> S3Store {
    cloud().await; // sets the moto endpoint and test credentials for this process
    unsafe { std::env::set_var("AWS_REGION", REGION) };
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
async fn teammates_share_one_state_a_failed_run_resumes_and_locks_name_their_holder() {
    let store = bucket("team-state").await;
    let url = "s3://team-state/clouder.db";
    let alice = Env::new();
    let bob = Env::new();

    // Alice's create is killed after 3 mutating calls (as by a crash: no clean-up at all). Its
    // lock stays behind, and says that its holder is gone.
    let create = |env: &Env| {
        vec![
            "kubeadm".to_string(),
            "create".into(),
            "shared".into(),
            "-w".into(),
            "1".into(),
            "--admin-cidr".into(),
            "203.0.113.7/32".into(),
            "--image".into(),
            IMAGE.into(),
            "--ssh-public-key".into(),
            env.key().display().to_string(),
            "--state".into(),
            url.into(),
            "-o".into(),
            "json".into(),
        ]
    };
    let args = create(&alice);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let crashed = alice.run_with(&args, &[("CLOUDER_FAULT_AFTER", "3")]);
    assert_eq!(crashed.status.code(), Some(86), "{}", text(&crashed.stderr));
    assert!(
        !alice.home().join("state.db").exists(),
        "nothing in Alice's local state"
    );
    let stale = bob.run(&["kubeadm", "ls", "--state", url, "--lock-timeout", "1"]);
    assert_eq!(stale.status.code(), Some(1));
    let err = text(&stale.stderr);
    assert!(
        err.contains("STALE") && err.contains("state unlock --force"),
        "{err}"
    );
    let left = store.held_by("clouder.db.lock").await.unwrap().unwrap();
    bob.ok(&["state", "unlock", &left.id, "--force", "--state", url]);

    // Bob's re-run finds what the crashed run made by its tags and finishes: no duplicates.
    let args = create(&bob);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let resumed: serde_json::Value = serde_json::from_str(&bob.ok(&args)).unwrap();
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
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:clouder.io/cluster")
                .values("shared")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1);
    assert!(
        store.get("clouder.db.lock").await.unwrap().is_none(),
        "the lock was released"
    );
    assert_eq!(
        names(&alice.ok(&["kubeadm", "ls", "--state", url, "-o", "json"])),
        ["shared"]
    );
    let info: serde_json::Value = serde_json::from_str(
        &alice.ok(&["kubeadm", "info", "shared", "--state", url, "-o", "json"]),
    )
    .unwrap();
    assert_eq!(info["cluster"]["status"], "ready", "{info}");

    // A run elsewhere holds the lock: a second writer waits, then fails naming the holder.
    let holder = Holder::current("clouder kubeadm apply (teammate)");
    lock::acquire(
        &store,
        "clouder.db.lock",
        &holder,
        std::time::Duration::from_secs(1),
    )
    .await
    .unwrap();
    let blocked = bob.run(&["kubeadm", "ls", "--state", url, "--lock-timeout", "1"]);
    assert_eq!(blocked.status.code(), Some(1));
    let err = text(&blocked.stderr);
    assert!(
        err.contains("state is locked") && err.contains(&holder.id),
        "{err}"
    );
    let wrong = bob.run(&["state", "unlock", "not-this-one", "--force", "--state", url]);
    assert!(!wrong.status.success(), "only the named lock is broken");
    bob.ok(&["state", "unlock", &holder.id, "--force", "--state", url]);
    assert_eq!(
        names(&bob.ok(&["kubeadm", "ls", "--state", url, "-o", "json"])),
        ["shared"]
    );

    bob.ok(&["kubeadm", "terminate", "shared", "--force", "--state", url]);
    assert!(names(&alice.ok(&["kubeadm", "ls", "--state", url, "-o", "json"])).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_state_migrates_to_s3_once() {
    let _store = bucket("migrated-state").await;
    let env = Env::new();
    env.create("local-one", 1, &[]);
    let url = "s3://migrated-state/clouder.db";
    env.ok(&["state", "migrate", "--to", url]);
    let other = Env::new();
    assert_eq!(
        names(&other.ok(&["kubeadm", "ls", "--state", url, "-o", "json"])),
        ["local-one"]
    );
    // A backend that holds a state already is never overwritten.
    let again = env.run(&["state", "migrate", "--to", url]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already holds a state"),
        "{}",
        text(&again.stderr)
    );
    // From one shared state to another: the copy comes from --state.
    let moved = "s3://migrated-state/moved.db";
    other.ok(&["state", "migrate", "--to", moved, "--state", url]);
    assert_eq!(
        names(&other.ok(&["kubeadm", "ls", "--state", moved, "-o", "json"])),
        ["local-one"]
    );
    let bad = env.run(&["kubeadm", "ls", "--state", "azblob://acct/k"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("azblob://ACCOUNT/CONTAINER/KEY"),
        "{}",
        text(&bad.stderr)
    );
}
