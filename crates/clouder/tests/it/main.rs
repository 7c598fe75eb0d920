//! End-to-end tests of the `clouder` binary against real peers (the moto server for AWS).
//! One test binary, so the AWS SDK is linked once.

mod azure;
mod azure_resume;
mod bad_input;
mod byoc;
mod byon;
mod checkpoint;
mod checkpoint_policy;
mod cost;
mod harness;
mod kube;
mod lifecycle;
mod local;
mod parity;
mod resume;
mod services;
mod setup;
mod smoke;
mod ssh_provider;
mod state;
mod state_azblob;
mod terraform;
mod upgrade;
mod userdata;
mod workflows;
