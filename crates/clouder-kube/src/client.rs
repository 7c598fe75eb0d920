//! A kube-rs client from a cluster's kubeconfig file.

use crate::{Error, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::Path;

/// A client for the current context of `kubeconfig`.
pub async fn connect(kubeconfig: &Path) -> Result<kube::Client> {
    // The AWS SDK brings a second TLS backend into the binary; kube's client needs one chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fail = |message: String| Error::Kubeconfig {
        path: kubeconfig.display().to_string(),
        message,
    };
    let file = Kubeconfig::read_from(kubeconfig).map_err(|e| fail(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(|e| fail(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| fail(e.to_string()))
}
