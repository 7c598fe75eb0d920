//! Integration tests: kube-rs, raw HTTP and kubectl against a running clouder-testkube.

mod auth;
mod binary;
mod common;
mod contract;
mod controllers;
mod crd;
mod crud;
mod discovery;
mod eviction;
mod kubectl;
mod lifecycle;
mod samples;
mod ssa;
mod standin;
mod watch;
