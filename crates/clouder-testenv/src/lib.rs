//! Real peers for tests, started and stopped by the tests themselves. Needs root and what
//! `scripts/peers.sh` installs.

pub mod lab;
pub mod moto;

pub use lab::Lab;
