//! Counts the cloud API calls a run makes, and injects faults for resume tests.
//!
//! Providers call [`CallStats::record`] once per completed API call. With
//! `CLOUDER_FAULT_AFTER=N` in the environment, the process exits (code 86, no clean-up, as if
//! killed) right after its N-th mutating call returns: what the cloud did is done, what clouder
//! meant to write next is not — the hardest moment for a resume.

use serde::Serialize;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub const FAULT_ENV: &str = "CLOUDER_FAULT_AFTER";
pub const FAULT_EXIT_CODE: i32 = 86;

#[derive(Debug, Default)]
pub struct CallStats {
    total: AtomicU64,
    mutating: AtomicU64,
    throttled: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Calls {
    pub total: u64,
    pub mutating: u64,
    /// Responses that asked us to slow down (and were retried).
    pub throttled: u64,
}

impl CallStats {
    pub fn record(&self, operation: &str, mutating: bool) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if mutating {
            let n = self.mutating.fetch_add(1, Ordering::SeqCst) + 1;
            if fault_after() == Some(n) {
                eprintln!("clouder: fault injected after mutating call {n} ({operation}); exiting");
                std::process::exit(FAULT_EXIT_CODE);
            }
        }
    }

    pub fn record_throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Calls {
        Calls {
            total: self.total.load(Ordering::Relaxed),
            mutating: self.mutating.load(Ordering::SeqCst),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }
}

fn fault_after() -> Option<u64> {
    static AFTER: OnceLock<Option<u64>> = OnceLock::new();
    *AFTER.get_or_init(|| std::env::var(FAULT_ENV).ok().and_then(|v| v.parse().ok()))
}
