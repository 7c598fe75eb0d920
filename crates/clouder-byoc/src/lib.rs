//! Bring your own container (BYOC): capacity that lives outside the cluster's node pools.
//!
//! - [`validate`]: reads an image from its registry (never its layers) and checks it;
//! - [`enroll`]: registers a remote container endpoint: trust, token, the Kubernetes objects
//!   that represent it (a `RemoteContainer`, a virtual Node, a Secret, a NetworkPolicy);
//! - [`heartbeat`]: the controller that probes endpoints and marks them Stale/Unreachable;
//! - [`provenance`]: the labels and taints that say where any node comes from.

pub mod oci;
pub mod reference;
pub mod validate;

pub use reference::Reference;
