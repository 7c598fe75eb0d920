//! Bring your own container (BYOC): capacity that lives outside the cluster's node pools.
//!
//! - [`validate`]: reads an image from its registry ([`oci`], never its layers) and checks it;
//! - [`enroll`]: registers a remote container endpoint: [`trust`], a token, and the Kubernetes
//!   [`objects`] that represent it (a `RemoteContainer`, a virtual Node, a Secret, a
//!   NetworkPolicy); cordon, rotate, update, remove;
//! - [`heartbeat`]: the controller that probes endpoints and marks them Stale/Unreachable;
//! - [`provenance`]: the labels and taints that say where any node comes from (BYON).

pub mod enroll;
pub mod heartbeat;
pub mod objects;
pub mod oci;
pub mod provenance;
pub mod reference;
pub mod trust;
pub mod validate;

pub use reference::Reference;
