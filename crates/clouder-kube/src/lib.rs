//! Everything clouder does through the Kubernetes API, on kube-rs: connecting from a kubeconfig,
//! server-side apply of manifests (field manager `clouder`), waits with clear timeouts, addons,
//! and node drains.

pub mod addons;
pub mod apply;
pub mod client;
pub mod drain;
pub mod manifest;
pub mod status;
pub mod teardown;
pub mod wait;

pub use apply::{Applied, Applier, FIELD_MANAGER, Outcome};
pub use client::connect;
pub use drain::{DrainOptions, DrainReport};
pub use manifest::ObjectRef;

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("{source_name}: document {document}: {message}")]
    Manifest {
        source_name: String,
        document: usize,
        message: String,
    },
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "timed out after {}s waiting for {object}: {state}{}",
        waited.as_secs(),
        last_event.as_ref().map(|e| format!("; last event: {e}")).unwrap_or_default()
    )]
    Timeout {
        object: Box<ObjectRef>,
        waited: Duration,
        state: String,
        last_event: Option<String>,
    },
    #[error("{0}")]
    Refused(String),
}

impl Error {
    pub(crate) fn api(what: impl std::fmt::Display) -> impl FnOnce(kube::Error) -> Error {
        move |source| Error::Api {
            what: what.to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
