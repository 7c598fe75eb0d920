//! clouder-node against real sshd hosts, each in its own network namespace on a bridge.

mod lab;
mod sessions;
