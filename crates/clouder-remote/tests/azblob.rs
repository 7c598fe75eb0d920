//! Locking and compare-and-swap (the scenarios of `common`) on Azurite's Blob service, plus what
//! is Azure's own: the lock really is a lease (any other client's acquire is refused), a lease
//! whose taker died before recording itself is reported as such (never as the record's earlier
//! holder) and broken by that record's ID, and a wrong key is a clear error that never shows the
//! key.

#[macro_use]
mod common;

use clouder_remote::azblob::BlobStore;
use clouder_remote::lock::{self, Holder, Locking};
use clouder_remote::shared_key::{AccountKey, BlobAccount};
use clouder_testenv::azurite;
use std::time::Duration;

fn account() -> BlobAccount {
    BlobAccount::new(
        azurite::endpoint(),
        azurite::ACCOUNT,
        AccountKey::from_base64(azurite::KEY).unwrap(),
    )
}

/// A store on a fresh container of its own.
async fn store(container: &str) -> BlobStore {
    let s = BlobStore::new(account(), container);
    s.create_container().await.unwrap();
    s
}

scenarios!(store);

/// A lease action on `container/blob` by a client of its own (as `az storage blob lease` would).
async fn raw_lease(container: &str, blob: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let account = account();
    let mut request = reqwest::Client::new()
        .put(account.url(&format!("{container}/{blob}?comp=lease")))
        .body(Vec::new());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let mut request = request.build().unwrap();
    account.sign(&mut request);
    reqwest::Client::new().execute(request).await.unwrap()
}

#[tokio::test]
async fn the_lock_is_a_lease_that_no_other_client_can_take() {
    let s = store("lock-lease").await;
    let holder = Holder::current("clouder kubeadm apply");
    lock::acquire(&s, "l.lock", &holder, Duration::ZERO)
        .await
        .unwrap();
    let taken = take_lease("lock-lease", "l.lock").await;
    assert_eq!(taken.status(), 409, "a held lease refuses another taker");
    // The lease's ID is the holder's: with it, anyone can give the lease back.
    let given_back = raw_lease(
        "lock-lease",
        "l.lock",
        &[
            ("x-ms-lease-action", "release"),
            ("x-ms-lease-id", &holder.id),
        ],
    )
    .await;
    assert_eq!(given_back.status(), 200);
    assert_eq!(s.held_by("l.lock").await.unwrap(), None);
}

#[tokio::test]
async fn a_lease_whose_taker_died_before_recording_itself_is_broken_by_the_recorded_id() {
    let s = store("lock-unrecorded").await;
    let earlier = Holder::current("clouder kubeadm ls");
    lock::acquire(&s, "u.lock", &earlier, Duration::ZERO)
        .await
        .unwrap();
    s.release("u.lock", &earlier).await.unwrap();
    // Another run takes the lease and dies before naming itself: the record still says `earlier`.
    let taken = take_lease("lock-unrecorded", "u.lock").await;
    assert_eq!(taken.status(), 201);
    let me = Holder::current("clouder kubeadm apply");
    // Nobody is named: the record is checked against the lease, and `earlier` has let go.
    let err = lock::acquire(&s, "u.lock", &me, Duration::ZERO)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("never named itself") && err.contains(&format!("--force {}", earlier.id)),
        "{err}"
    );
    assert!(s.force_unlock("u.lock", &me.id).await.is_err());
    assert_eq!(
        s.force_unlock("u.lock", &earlier.id).await.unwrap(),
        earlier
    );
    lock::acquire(&s, "u.lock", &me, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(s.held_by("u.lock").await.unwrap(), Some(me));
}

#[tokio::test]
async fn a_wrong_key_is_a_clear_error_that_never_shows_the_key() {
    store("wrong-key").await;
    let wrong = "d3Jvbmcta2V5LXRoYXQtbXVzdC1uZXZlci1iZS1zaG93bg==";
    let s = BlobStore::new(
        BlobAccount::new(
            azurite::endpoint(),
            azurite::ACCOUNT,
            AccountKey::from_base64(wrong).unwrap(),
        ),
        "wrong-key",
    );
    let err = clouder_remote::ObjectStore::get(&s, "k")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("403") && err.contains("AZURE_STORAGE_KEY"),
        "{err}"
    );
    assert!(!err.contains(wrong) && !err.contains(azurite::KEY), "{err}");
}

/// Another client's infinite lease on `container/blob`, under an ID of its own.
async fn take_lease(container: &str, blob: &str) -> reqwest::Response {
    let id = Holder::current("").id;
    let acquire = [
        ("x-ms-lease-action", "acquire"),
        ("x-ms-lease-duration", "-1"),
        ("x-ms-proposed-lease-id", id.as_str()),
    ];
    raw_lease(container, blob, &acquire).await
}

#[tokio::test]
async fn a_missing_container_is_an_error_not_an_empty_state() {
    let s = BlobStore::new(account(), "no-such-container");
    let err = clouder_remote::ObjectStore::get(&s, "clouder.db")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("404 ContainerNotFound"), "{err}");
    let holder = Holder::current("clouder kubeadm ls");
    let err = lock::acquire(&s, "clouder.db.lock", &holder, Duration::ZERO)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ContainerNotFound"), "{err}");
}
