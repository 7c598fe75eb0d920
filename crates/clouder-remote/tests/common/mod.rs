//! What every backend must do, run against each real peer by `s3.rs` (moto) and `azblob.rs`
//! (Azurite): no lost update among 50 concurrent compare-and-swap writers, a stale ETag refused,
//! exactly one of two lockers proceeding while the other names it, a waiting writer served on
//! release, a killed holder reported stale and broken by its ID only.

#![allow(dead_code)]

use clouder_remote::lock::{self, Holder, LockError};
use clouder_remote::{Backend, Expect, StoreError, cas};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// Every scenario as a test, each on a store of its own: `$store(NAME).await` makes one on a
/// fresh bucket or container.
macro_rules! scenarios {
    ($store:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
        async fn fifty_concurrent_cas_writers_lose_no_update() {
            let s = std::sync::Arc::new($store("cas-fifty").await);
            common::fifty_concurrent_cas_writers_lose_no_update(s).await;
        }

        #[tokio::test]
        async fn a_stale_etag_write_is_refused() {
            common::a_stale_etag_write_is_refused(&$store("cas-stale").await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn of_two_concurrent_lockers_one_proceeds_the_other_names_the_holder() {
            let s = $store("lock-two").await;
            common::of_two_concurrent_lockers_one_proceeds_the_other_names_the_holder(&s).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_waiting_writer_gets_the_lock_when_the_holder_releases_within_the_timeout() {
            let s = std::sync::Arc::new($store("lock-wait").await);
            common::a_waiting_writer_gets_the_lock_when_the_holder_releases_within_the_timeout(s)
                .await;
        }

        #[tokio::test]
        async fn a_killed_holder_is_reported_stale_and_force_unlock_recovers() {
            let s = $store("lock-stale").await;
            common::a_killed_holder_is_reported_stale_and_force_unlock_recovers(&s).await;
        }
    };
}

pub async fn fifty_concurrent_cas_writers_lose_no_update(s: Arc<dyn Backend>) {
    let writers = (0..50).map(|i| {
        let s = s.clone();
        tokio::spawn(async move {
            cas::update(s.as_ref(), "state.json", |current| {
                let mut list: Vec<u32> = match current {
                    Some(bytes) => serde_json::from_slice(bytes).unwrap(),
                    None => Vec::new(),
                };
                list.push(i);
                Ok(serde_json::to_vec(&list).unwrap())
            })
            .await
            .unwrap()
        })
    });
    let attempts: Vec<u32> = futures::future::join_all(writers)
        .await
        .into_iter()
        .map(|r| r.unwrap().1)
        .collect();
    let last = s.get("state.json").await.unwrap().unwrap();
    let mut list: Vec<u32> = serde_json::from_slice(&last.body).unwrap();
    list.sort();
    assert_eq!(list, (0..50).collect::<Vec<_>>());
    // The writers really raced: some had to retry.
    let retried = attempts.iter().filter(|a| **a > 1).count();
    println!(
        "cas: {retried} of 50 writers retried, at most {} attempts",
        attempts.iter().max().unwrap()
    );
    assert!(
        retried > 0,
        "no writer ever conflicted: the race was not exercised"
    );
}

pub async fn a_stale_etag_write_is_refused(s: &dyn Backend) {
    let first = s.put("k", b"1".to_vec(), Expect::Absent).await.unwrap();
    assert!(matches!(
        s.put("k", b"x".to_vec(), Expect::Absent).await,
        Err(StoreError::Conflict(_))
    ));
    s.put("k", b"2".to_vec(), Expect::Etag(first.clone()))
        .await
        .unwrap();
    assert!(matches!(
        s.put("k", b"3".to_vec(), Expect::Etag(first)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get("k").await.unwrap().unwrap().body, b"2");
    assert!(s.get("absent").await.unwrap().is_none());
}

pub async fn of_two_concurrent_lockers_one_proceeds_the_other_names_the_holder(s: &dyn Backend) {
    let a = Holder::current("clouder kubeadm apply -f a.yaml");
    let b = Holder::current("clouder kubeadm apply -f b.yaml");
    let timeout = Duration::from_millis(600);
    let (ra, rb) = tokio::join!(
        lock::acquire(s, "c.lock", &a, timeout),
        lock::acquire(s, "c.lock", &b, timeout)
    );
    let (winner, loser) = match (ra, rb) {
        (Ok(()), Err(e)) => (&a, e),
        (Err(e), Ok(())) => (&b, e),
        other => panic!("exactly one must win: {other:?}"),
    };
    match loser {
        LockError::Held { holder, stale } => {
            assert_eq!(&holder, winner);
            assert!(!stale, "the holder (this process) is alive");
            let text = LockError::Held { holder, stale }.to_string();
            assert!(
                text.contains(&winner.command) && text.contains(&winner.host),
                "{text}"
            );
            assert!(
                text.contains(&format!("pid {}", std::process::id())),
                "{text}"
            );
        }
        other => panic!("{other}"),
    }
    // Released, the lock is free for the other.
    s.release("c.lock", winner).await.unwrap();
    assert_eq!(s.held_by("c.lock").await.unwrap(), None);
    lock::acquire(s, "c.lock", &a, timeout).await.unwrap();
    assert_eq!(s.held_by("c.lock").await.unwrap(), Some(a));
}

pub async fn a_waiting_writer_gets_the_lock_when_the_holder_releases_within_the_timeout(
    s: Arc<dyn Backend>,
) {
    let a = Holder::current("first");
    let b = Holder::current("second");
    lock::acquire(s.as_ref(), "w.lock", &a, Duration::ZERO)
        .await
        .unwrap();
    let releaser = {
        let (s, a) = (s.clone(), a.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            s.release("w.lock", &a).await.unwrap();
        })
    };
    lock::acquire(s.as_ref(), "w.lock", &b, Duration::from_secs(5))
        .await
        .unwrap();
    releaser.await.unwrap();
    assert_eq!(s.held_by("w.lock").await.unwrap(), Some(b));
}

pub async fn a_killed_holder_is_reported_stale_and_force_unlock_recovers(s: &dyn Backend) {
    // A real process takes the lock's pid, then is killed.
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    let mut dead = Holder::current("clouder kubeadm apply -f c.yaml");
    dead.pid = child.id();
    lock::acquire(s, "s.lock", &dead, Duration::ZERO)
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    let me = Holder::current("clouder kubeadm apply -f c.yaml");
    match lock::acquire(s, "s.lock", &me, Duration::from_millis(300)).await {
        Err(LockError::Held { holder, stale }) => {
            assert_eq!(holder, dead);
            assert!(stale);
            let text = LockError::Held { holder, stale }.to_string();
            assert!(
                text.contains("STALE") && text.contains("unlock --force"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Only the named lock is broken.
    let other = Holder::current("").id;
    let refused = s.force_unlock("s.lock", &other).await.unwrap_err();
    assert!(refused.to_string().contains("not broken"), "{refused}");
    assert_eq!(s.held_by("s.lock").await.unwrap(), Some(dead.clone()));
    assert_eq!(s.force_unlock("s.lock", &dead.id).await.unwrap(), dead);
    lock::acquire(s, "s.lock", &me, Duration::ZERO)
        .await
        .unwrap();
    // Breaking it again names the new holder and leaves it be.
    assert!(s.force_unlock("s.lock", &dead.id).await.is_err());
    assert_eq!(s.held_by("s.lock").await.unwrap(), Some(me));
}
