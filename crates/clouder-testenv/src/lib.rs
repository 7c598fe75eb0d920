//! Real peers for tests, started and stopped by the tests themselves: SSH hosts in network
//! namespaces and an OCI registry. Needs root and what `scripts/peers.sh` installs.

pub mod lab;
pub mod registry;

pub use lab::Lab;
pub use registry::RegistryPeer;
