//! Real peers for tests, started and stopped by the tests themselves: SSH hosts in network
//! namespaces, a kubelet's checkpoint API, an OCI registry (and images pushed to it), HTTPS endpoints with a test CA, the moto
//! server, Azurite, a registry token service.
//! Needs root and what `scripts/peers.sh` installs.

pub mod azurite;
pub mod cri;
pub mod endpoint;
pub mod images;
pub mod kubelet;
pub mod lab;
pub mod moto;
pub mod nodekit;
pub mod peer;
pub mod registry;
pub mod shellcheck;
pub mod terraform;
pub mod token;

pub use lab::Lab;

/// Asserts that the bash script `text` (`what`, for the message) passes shellcheck.
pub fn shellcheck(what: &str, text: &str) {
    shellcheck::assert_clean("bash", what, text);
}
pub use nodekit::NodeKit;
pub use registry::RegistryPeer;
