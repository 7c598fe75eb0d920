//! Shared state in Azure Blob (Azurite), through the binary: teammates share one state as on S3
//! (`state::teammates_share_one_state`: of two concurrent runs exactly one proceeds and the other
//! names it; a crashed run's lease is STALE and `state unlock --force ID` breaks it); a state moves local → Blob → S3 → Blob and back by
//! `migrate`, `pull` and `push`, which never overwrite another state without `--force`; the
//! config file's `clouder.state` is the default, under `CLOUDER_STATE` and `--state`.

use crate::harness::*;
use crate::state::{bucket, names, state_env, teammates_share_one_state};
use clouder_remote::azblob::BlobStore;
use clouder_remote::lock::{self, Holder, Locking};
use clouder_remote::shared_key::{AccountKey, BlobAccount};
use clouder_testenv::azurite;

/// A fresh container; its state's URL is `azblob://devstoreaccount1/CONTAINER/clouder.db`.
async fn container(name: &str) -> (BlobStore, String) {
    let account = BlobAccount::new(
        azurite::endpoint(),
        azurite::ACCOUNT,
        AccountKey::from_base64(azurite::KEY).unwrap(),
    );
    let store = BlobStore::new(account, name);
    store.create_container().await.unwrap();
    (
        store,
        format!("azblob://{}/{name}/clouder.db", azurite::ACCOUNT),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn teammates_share_one_azure_blob_state_whose_lease_names_its_holder() {
    cloud().await;
    let (store, url) = container("team-state").await;
    teammates_share_one_state(&store, &url, "blob", &state_env()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_moves_between_local_s3_and_azure_blob_and_pull_and_push_keep_what_differs() {
    let _bucket = bucket("moving-state").await;
    let (_store, blob) = container("moving-state").await;
    let blob = blob.as_str();
    let s3 = "s3://moving-state/clouder.db";
    let blob_again = format!("azblob://{}/moving-state/again.db", azurite::ACCOUNT);
    let azure = state_env();
    let ls = |env: &Env, url: &str| {
        names(&env.ok_with(&["kubeadm", "ls", "--state", url, "-o", "json"], &azure))
    };

    // Local → Blob → S3 → Blob, by migrate.
    let first = Env::new();
    first.create("moved", 1, &[]);
    first.ok_with(&["state", "migrate", "--to", blob], &azure);
    let other = Env::new();
    assert_eq!(ls(&other, blob), ["moved"]);
    other.ok_with(&["state", "migrate", "--to", s3, "--state", blob], &azure);
    assert_eq!(ls(&other, s3), ["moved"]);
    other.ok_with(
        &["state", "migrate", "--to", &blob_again, "--state", s3],
        &azure,
    );
    assert_eq!(ls(&other, &blob_again), ["moved"]);
    let again = first.run_with(&["state", "migrate", "--to", blob], &azure);
    assert!(text(&again.stderr).contains("already holds a state"));

    // Pull: into an empty local state; again is a no-op; over another state only with --force.
    let pulled = Env::new();
    let out: serde_json::Value = serde_json::from_str(
        &pulled.ok_with(&["state", "pull", "--state", blob, "-o", "json"], &azure),
    )
    .unwrap();
    assert_eq!(out["result"], "written", "{out}");
    assert_eq!(
        names(&pulled.ok(&["kubeadm", "ls", "-o", "json"])),
        ["moved"]
    );
    let out = pulled.ok_with(&["state", "pull", "--state", blob], &azure);
    assert!(out.contains("nothing copied"), "{out}");
    let mine = Env::new();
    mine.create("mine", 1, &[]);
    let refused = mine.run_with(&["state", "pull", "--state", blob], &azure);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("--force"),
        "{}",
        text(&refused.stderr)
    );
    let backup = mine.dir.path().join("mine.db");
    mine.ok_with(
        &["state", "migrate", "--to", "s3://moving-state/mine.db"],
        &azure,
    );
    mine.ok_with(
        &[
            "state",
            "pull",
            "--state",
            "s3://moving-state/mine.db",
            "--to",
            backup.to_str().unwrap(),
        ],
        &azure,
    );
    // (The refused pull left the local state as it was: the backup holds "mine".)
    assert_eq!(ls(&other, "s3://moving-state/mine.db"), ["mine"]);
    mine.ok_with(&["state", "pull", "--state", blob, "--force"], &azure);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Push: the backup over the shared state only with --force, and under its lock.
    let push = [
        "state",
        "push",
        "--state",
        blob,
        "--from",
        backup.to_str().unwrap(),
    ];
    let refused = mine.run_with(&push, &azure);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("--force"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(ls(&other, blob), ["moved"]);
    let holder = Holder::current("clouder kubeadm apply (teammate)");
    let (store, _) = container("moving-state").await;
    lock::acquire(
        &store,
        "clouder.db.lock",
        &holder,
        std::time::Duration::ZERO,
    )
    .await
    .unwrap();
    let mut forced = push.to_vec();
    forced.extend(["--force", "--lock-timeout", "0"]);
    let blocked = mine.run_with(&forced, &azure);
    assert!(
        text(&blocked.stderr).contains(&holder.id),
        "{}",
        text(&blocked.stderr)
    );
    store.release("clouder.db.lock", &holder).await.unwrap();
    let out: serde_json::Value =
        serde_json::from_str(&mine.ok_with(&[&forced[..], &["-o", "json"]].concat(), &azure))
            .unwrap();
    assert_eq!(out["result"], "replaced", "{out}");
    assert_eq!(ls(&other, blob), ["mine"]);
    // The local state (pulled with --force) to a key that holds nothing: written; the same
    // again: nothing to do. (`ls` in this home would also list "mine" by its kubeadm.json.)
    let fresh = format!("azblob://{}/moving-state/fresh.db", azurite::ACCOUNT);
    let out = mine.ok_with(&["state", "push", "--state", &fresh], &azure);
    assert!(out.contains("State copied"), "{out}");
    let out = mine.ok_with(&["state", "push", "--state", &fresh], &azure);
    assert!(out.contains("nothing copied"), "{out}");
    assert_eq!(ls(&other, &fresh), ["moved"]);
}

/// The context names a state holds (each `ctx add` is one change to it).
fn contexts(env: &Env, state: &str) -> Vec<String> {
    let out: serde_json::Value = serde_json::from_str(
        &env.ok_with(&["ctx", "ls", "--state", state, "-o", "json"], &state_env()),
    )
    .unwrap();
    let mut names: Vec<String> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn add_context(env: &Env, name: &str) {
    env.ok(&["ctx", "add", name, "--provider", "aws", "-r", "us-east-1"]);
}

fn result_of(out: &str) -> String {
    let out: serde_json::Value = serde_json::from_str(out).unwrap();
    out["result"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn push_and_pull_bring_copies_up_to_date_and_refuse_what_would_lose_a_change() {
    let (_store, url) = container("lineage-state").await;
    let azure = state_env();
    let push = ["state", "push", "--state", &url, "-o", "json"];
    let pull = ["state", "pull", "--state", &url, "-o", "json"];
    let (alice, bob) = (Env::new(), Env::new());
    add_context(&alice, "alice-1");
    assert_eq!(result_of(&alice.ok_with(&push, &azure)), "written");
    assert_eq!(result_of(&bob.ok_with(&pull, &azure)), "written");
    // Reading changes nothing: pulling again copies nothing.
    contexts(&bob, "local");
    assert_eq!(result_of(&bob.ok_with(&pull, &azure)), "unchanged");

    // Bob's change goes up: the shared state had not moved since he pulled it.
    add_context(&bob, "bob-1");
    assert_eq!(result_of(&bob.ok_with(&push, &azure)), "updated");
    assert_eq!(contexts(&bob, &url), ["alice-1", "bob-1"]);

    // Alice changed her copy meanwhile: her push would drop Bob's change, so it is refused.
    add_context(&alice, "alice-2");
    let refused = alice.run_with(&push, &azure);
    assert_eq!(refused.status.code(), Some(2));
    let err = text(&refused.stderr);
    assert!(
        err.contains("has changed since") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(contexts(&bob, &url), ["alice-1", "bob-1"]);
    // And pulling would drop hers: refused too, her copy kept.
    let refused = alice.run_with(&pull, &azure);
    assert_eq!(refused.status.code(), Some(2));
    let err = text(&refused.stderr);
    assert!(
        err.contains("not pushed") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(contexts(&alice, "local"), ["alice-1", "alice-2"]);

    // She takes the shared state, makes her change again, and it goes up; Bob, who changed
    // nothing since, is brought up to date by a plain pull.
    let forced = [&pull[..], &["--force"]].concat();
    assert_eq!(result_of(&alice.ok_with(&forced, &azure)), "replaced");
    add_context(&alice, "alice-2");
    assert_eq!(result_of(&alice.ok_with(&push, &azure)), "updated");
    assert_eq!(result_of(&bob.ok_with(&pull, &azure)), "updated");
    assert_eq!(contexts(&bob, "local"), ["alice-1", "alice-2", "bob-1"]);

    // A state of another lineage is never taken for this one.
    let carol = Env::new();
    add_context(&carol, "carol-1");
    let refused = carol.run_with(&push, &azure);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("another state"));
    let refused = carol.run_with(&pull, &azure);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("another state"));
    assert_eq!(contexts(&carol, "local"), ["carol-1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_config_files_state_is_the_default_under_the_env_and_the_flag() {
    cloud().await;
    let (_store, blob) = container("configured-state").await;
    let azure = state_env();
    let owner = Env::new();
    owner.create("configured", 1, &[]);
    owner.ok_with(&["state", "migrate", "--to", &blob], &azure);

    let env = Env::new();
    std::fs::create_dir_all(env.home()).unwrap();
    std::fs::write(
        env.home().join("clouder.yaml"),
        format!("clouder:\n  state: {blob}\n  default_kubeadm_cluster: configured\n"),
    )
    .unwrap();
    assert_eq!(
        names(&env.ok_with(&["kubeadm", "ls", "-o", "json"], &azure)),
        ["configured"]
    );
    assert!(
        !env.home().join("state.db").exists(),
        "the local state was not used"
    );
    // CLOUDER_STATE and --state come first.
    let _bucket = bucket("configured-other").await;
    let s3 = "s3://configured-other/clouder.db";
    let mut with_env = azure.to_vec();
    with_env.push(("CLOUDER_STATE", s3));
    assert!(names(&env.ok_with(&["kubeadm", "ls", "-o", "json"], &with_env)).is_empty());
    assert_eq!(
        names(&env.ok_with(
            &["kubeadm", "ls", "-o", "json", "--state", &blob],
            &with_env
        )),
        ["configured"]
    );
    // `--state local` is the local state, whatever the environment and the file say.
    let local = names(&env.ok_with(
        &["kubeadm", "ls", "-o", "json", "--state", "local"],
        &with_env,
    ));
    assert!(local.is_empty(), "{local:?}");
    assert!(
        env.home().join("state.db").exists(),
        "the local state was used"
    );

    // Writing a setting keeps the state URL.
    env.ok_with(&["kubeadm", "set-default", "configured"], &azure);
    let config = std::fs::read_to_string(env.home().join("clouder.yaml")).unwrap();
    assert!(config.contains(&blob), "{config}");

    // Bad input: a malformed URL (exit 2), no key, a wrong key (exit 1, the key never shown).
    let bad = env.run_with(&["kubeadm", "ls", "--state", "azblob://acct/only"], &azure);
    assert_eq!(bad.status.code(), Some(2));
    let no_key = env.run_with(&["kubeadm", "ls"], &[]);
    assert_eq!(no_key.status.code(), Some(1));
    assert!(
        text(&no_key.stderr).contains("AZURE_STORAGE_KEY"),
        "{}",
        text(&no_key.stderr)
    );
    let wrong = "d3Jvbmcta2V5LXRoYXQtbXVzdC1uZXZlci1iZS1zaG93bg==";
    let denied = env.run_with(
        &["kubeadm", "ls"],
        &[("AZURE_STORAGE_KEY", wrong), azure[2]],
    );
    assert_eq!(denied.status.code(), Some(1));
    let err = text(&denied.stderr);
    assert!(err.contains("403") && !err.contains(wrong), "{err}");
}
