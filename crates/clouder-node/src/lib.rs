//! Nodes over SSH: one multiplexed session per host with a pinned host key, host facts, and
//! (next) the idempotent bootstrap phases that turn plain hosts into a kubeadm cluster.

pub mod bootstrap;
pub mod cluster;
pub mod encryption;
pub mod facts;
pub mod fleet;
pub mod host_keys;
pub mod kubeadm;
pub mod phases;
pub mod shell;
pub mod ssh;
pub mod upgrade;
pub mod watch;

pub use facts::Facts;
pub use fleet::{Fleet, HostReport};
pub use ssh::{Host, Output, Session, SshError};
