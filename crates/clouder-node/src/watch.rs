//! What hosts are doing, for whoever shows it: the runner reports each step as it starts and
//! ends, and every script's output (never the script itself: it may carry a join token).

use crate::ssh::Output;
use std::time::Duration;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its probe passed: nothing was changed.
    Unchanged,
    Applied,
    Failed,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Unchanged => "unchanged",
            Ended::Applied => "applied",
            Ended::Failed => "FAILED",
        }
    }
}

/// Told about every host's steps; all methods default to doing nothing.
pub trait Watch: Send + Sync {
    /// `host` started `step` (a phase title, or a cluster step such as `join`).
    fn started(&self, _host: &str, _step: &str) {}
    fn ended(&self, _host: &str, _step: &str, _ended: Ended, _elapsed: Duration) {}
    /// What a script run on `host` printed.
    fn output(&self, _host: &str, _output: &Output) {}
    /// The run is over: a live view gives the terminal back.
    fn finish(&self) {}
}

/// Nobody watching.
pub struct Unwatched;

impl Watch for Unwatched {}
