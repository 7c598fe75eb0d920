//! Shared by the BYOC tests; their peers (registry and its token service, images, HTTPS
//! endpoints) are in clouder-testenv.

#![allow(dead_code)]

#[allow(unused_imports)]
pub use clouder_testenv::token;

/// kube's client needs a TLS provider chosen (the AWS SDK may bring a second one).
pub fn tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
