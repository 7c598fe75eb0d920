//! Compare-and-swap updates on an object's ETag.

use crate::{Expect, ObjectStore, StoreError};

/// Reads `key`, applies `change` to its bytes (`None` when absent) and writes the result back
/// only if nobody wrote in between; on a conflict, reads again and re-applies. Returns the new
/// ETag and how many attempts it took.
pub async fn update<F>(
    store: &dyn ObjectStore,
    key: &str,
    mut change: F,
) -> Result<(String, u32), StoreError>
where
    F: FnMut(Option<&[u8]>) -> Result<Vec<u8>, StoreError>,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        let current = store.get(key).await?;
        let (body, expect) = match &current {
            Some(v) => (change(Some(&v.body))?, Expect::Etag(v.etag.clone())),
            None => (change(None)?, Expect::Absent),
        };
        match store.put(key, body, expect).await {
            Ok(etag) => return Ok((etag, attempts)),
            Err(StoreError::Conflict(_)) => {
                // Someone else won this round: back off, randomly, so the herd spreads out.
                let ceiling = 4u64 << attempts.min(6);
                tokio::time::sleep(std::time::Duration::from_millis(jitter() % ceiling)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn jitter() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}
