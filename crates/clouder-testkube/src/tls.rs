//! A per-server certificate authority and serving certificate, and the rustls server config.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// Generating or loading the server's certificates failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating a certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("building the TLS server config: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("reading a saved certificate: {0}")]
    Pem(String),
}

/// The CA clients trust (PEM) and the server config that presents a certificate it signed.
pub struct ServerTls {
    pub ca_pem: String,
    pub config: Arc<rustls::ServerConfig>,
    /// What a restarted server needs to present the same identity.
    pub pems: Pems,
}

/// The CA, the serving certificate and its key, as PEM.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Pems {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// A fresh CA and a serving certificate for the usual local names and `sans`.
pub fn generate(sans: &[String]) -> Result<ServerTls, TlsError> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "clouder-testkube-ca");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "kubernetes.default.svc".to_string(),
    ];
    for san in sans {
        if !names.contains(san) {
            names.push(san.clone());
        }
    }
    let mut leaf = CertificateParams::new(names)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = leaf.signed_by(&key, &issuer)?;
    load(Pems {
        ca: ca_cert.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A server config from saved PEMs.
pub fn load(pems: Pems) -> Result<ServerTls, TlsError> {
    let bad = |e: rustls::pki_types::pem::Error| TlsError::Pem(e.to_string());
    let cert = CertificateDer::from_pem_slice(pems.cert.as_bytes()).map_err(bad)?;
    let ca = CertificateDer::from_pem_slice(pems.ca.as_bytes()).map_err(bad)?;
    let key = PrivateKeyDer::from_pem_slice(pems.key.as_bytes()).map_err(bad)?;
    // Explicit provider: the workspace may also enable aws-lc-rs, and then rustls has no default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert, ca], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServerTls {
        ca_pem: pems.ca.clone(),
        config: Arc::new(config),
        pems,
    })
}
