//! clouder-node against real sshd hosts, each in its own network namespace on a bridge.

mod cluster;
mod kubeadm_config;
mod phases;
mod sessions;
mod upgrade;
