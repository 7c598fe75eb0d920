//! Ordered service rollout. A services file lists releases (system tier, then core); each is
//! rendered from local manifests, an OCI artifact or a Helm chart, checked whole before anything
//! is applied, then deployed wave by wave — a wave's releases in parallel, each behind its health
//! gate. A release that fails its gate goes back to its previous revision (or away, if it had
//! none) and the waves after it do not start. Revisions are kept in the cluster, as Secrets.

pub mod file;
mod gate;
pub mod helm;
pub mod history;
mod oci;
pub mod rollout;
pub mod source;

pub use file::{Release, Services, Tier};
pub use rollout::{
    Change, DeployOutcome, Event, Options, ReleasePlan, ReleaseReport, ReleaseStatus,
    RollbackReport, deploy, plan, prepare, rollback, status,
};
pub use source::Rendered;

use clouder_spec::SpecErrors;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: the services file, a source, a manifest or a value (nothing was applied).
    #[error(transparent)]
    Invalid(#[from] SpecErrors),
    #[error(transparent)]
    Kube(#[from] crate::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
