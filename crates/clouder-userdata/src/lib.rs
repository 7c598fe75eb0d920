//! User data for runtime pods: per-user folders on a shared filesystem, the node agent that
//! binds a folder into a running container, the user's secrets and the environment, and the
//! one function that builds a runtime pod's share of all that (`podspec`).

pub mod agent;
pub mod attacher;
pub mod podspec;
pub mod secret_files;
pub mod secrets;
pub mod storage;
pub mod testing;

/// What went wrong; `Invalid` is the user's input (exit 2, nothing changed), `Refused` a
/// request the agent or the storage rules do not allow (nothing changed either).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}
