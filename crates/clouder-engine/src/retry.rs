//! The one retry policy: jittered exponential backoff for transient failures.

use crate::Error;
use rand::Rng;
use std::future::Future;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for Policy {
    /// About a minute of patience in total: enough for eventual consistency (IAM, new VPCs).
    fn default() -> Self {
        Policy {
            attempts: 10,
            base: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

impl Policy {
    /// "Full jitter": a uniform pause up to the exponential bound, so parallel retries spread.
    pub fn delay(&self, attempt: u32) -> Duration {
        let bound = self.base.saturating_mul(1 << attempt.min(16)).min(self.max);
        let millis = bound.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis.max(1)))
    }
}

/// Runs `op` until it succeeds, fails permanently, or the attempts are spent.
/// `on_retry` hears each transient failure before the pause.
pub async fn retry<T, F, Fut>(
    policy: Policy,
    mut on_retry: impl FnMut(u32, &Error),
    mut op: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(err) if err.transient && attempt + 1 < policy.attempts => {
                on_retry(attempt + 1, &err);
                tokio::time::sleep(policy.delay(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FAST: Policy = Policy {
        attempts: 4,
        base: Duration::from_millis(1),
        max: Duration::from_millis(2),
    };

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let out = retry(
            FAST,
            |_, _| {},
            || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(Error::transient("throttled"))
                } else {
                    Ok(7)
                }
            },
        )
        .await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_errors_and_spent_attempts_stop() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = retry(
            FAST,
            |_, _| {},
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::permanent("bad request"))
            },
        )
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        calls.store(0, Ordering::SeqCst);
        let out: Result<(), _> = retry(
            FAST,
            |_, _| {},
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::transient("throttled"))
            },
        )
        .await;
        assert!(out.unwrap_err().transient);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let p = Policy::default();
        assert!(p.delay(0) <= Duration::from_millis(200));
        assert!(p.delay(30) <= p.max);
        assert!(p.delay(30) >= p.max / 2);
    }
}
