//! The resource graph: every cloud object, node and addon is a [`Resource`] with an id,
//! dependencies and four operations. The engine knows nothing about AWS or Azure; providers
//! only contribute resources and an [`Inventory`] of what carries the cluster's tags.
//!
//! - [`plan`] observes everything (`find`), diffs against desired, and lists per resource
//!   create / update / delete / no-op.
//! - [`apply`] executes a plan as a DAG with bounded concurrency, persisting each step, so a
//!   killed run resumes: the next plan finds what was made.
//! - [`terraform::render`] renders the same graph as Terraform JSON.
//! - [`destroy`] deletes in reverse dependency order, then sweeps everything still tagged.

mod apply;
pub mod calls;
mod deletion;
mod destroy;
mod graph;
mod plan;
mod report;
mod resource;
pub mod retry;
pub mod terraform;

pub use apply::{ApplyOptions, ApplySummary, apply};
pub use destroy::{DestroySummary, destroy};
pub use graph::{Graph, GraphError};
pub use plan::{Action, Plan, PlanItem, plan};
pub use report::{Event, Reporter, Silent};
pub use resource::{Billable, Error, Inventory, Observed, Outputs, Resource, Tagged};
