//! Shared by the BYOC tests; their peers (registry, images, HTTPS endpoints) are in
//! clouder-testenv, except the registry token service, which only these tests need.

#![allow(dead_code)]

pub mod token;

/// kube's client needs a TLS provider chosen (the AWS SDK may bring a second one).
pub fn tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
