//! Peers for the BYOC tests: a real docker-registry (clouder-testenv), images pushed to it,
//! HTTPS endpoints with a CA made in the test, and the project's API server.

#![allow(dead_code)]

pub mod endpoint;
pub mod images;

/// kube's client needs a TLS provider chosen (the AWS SDK may bring a second one).
pub fn tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
