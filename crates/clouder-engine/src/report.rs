//! Progress events: the engine says what happens; the binary draws bars or prints lines.

use crate::Action;

#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A phase begins with `total` steps (`plan`, `apply`, `destroy`, `sweep`).
    Phase {
        name: &'a str,
        total: usize,
    },
    Started {
        id: &'a str,
        kind: &'a str,
        action: &'a Action,
    },
    Done {
        id: &'a str,
        action: &'a Action,
        cloud_id: &'a str,
    },
    Retrying {
        id: &'a str,
        attempt: u32,
        error: &'a str,
    },
    Failed {
        id: &'a str,
        error: &'a str,
    },
}

pub trait Reporter: Send + Sync {
    fn event(&self, event: Event<'_>);
}

/// Says nothing: for tests and `-q`.
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _: Event<'_>) {}
}
