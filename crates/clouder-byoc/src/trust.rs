//! Trust in an endpoint: HTTPS verified against the system's roots or the CA given, plain HTTP
//! only when asked for. One client per CA bundle, shared by every endpoint it signs.

use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("endpoint `{endpoint}`: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("CA file: {0}")]
    Ca(String),
    #[error("endpoint {endpoint} is not trusted: {reason}")]
    Untrusted { endpoint: String, reason: String },
}

/// A parsed endpoint: `https://HOST:PORT` (or `http://` with `insecure`).
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// Normalised, without a trailing slash.
    pub url: String,
    pub host: String,
    pub port: u16,
    pub insecure: bool,
}

impl Endpoint {
    pub fn parse(url: &str, insecure: bool) -> Result<Self, TrustError> {
        let bad = |reason: &str| TrustError::Endpoint {
            endpoint: url.to_string(),
            reason: reason.to_string(),
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(&format!("not a URL: {e}")))?;
        match (parsed.scheme(), insecure) {
            ("https", _) => {}
            ("http", true) => {}
            ("http", false) => {
                return Err(bad(
                    "plain HTTP is refused: use https:// or pass --insecure (the endpoint is then marked insecure)",
                ));
            }
            (other, _) => return Err(bad(&format!("scheme `{other}` is not https"))),
        }
        if parsed.path() != "/" || parsed.query().is_some() || !parsed.username().is_empty() {
            return Err(bad("give only SCHEME://HOST:PORT (no path, query or user)"));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| bad("no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| bad("no port"))?;
        Ok(Endpoint {
            url: url.trim_end_matches('/').to_string(),
            host,
            port,
            insecure: parsed.scheme() == "http",
        })
    }

    /// Where heartbeats go.
    pub fn health_url(&self) -> String {
        format!("{}/healthz", self.url)
    }

    /// The addresses the host resolves to now: what the egress policy allows.
    pub async fn addresses(&self) -> Result<Vec<IpAddr>, TrustError> {
        resolve(self.host.clone(), self.port)
            .await
            .map_err(|e| TrustError::Endpoint {
                endpoint: self.url.clone(),
                reason: format!("cannot resolve {}: {e}", self.host),
            })
    }

    /// Given by name (not an address literal): its addresses may change.
    pub fn by_name(&self) -> bool {
        self.host.parse::<IpAddr>().is_err()
    }
}

/// The system resolver's addresses for `host`, sorted and without repeats (an address literal
/// is itself).
pub async fn resolve(host: String, port: u16) -> std::io::Result<Vec<IpAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let mut found: Vec<IpAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await?
        .map(|a| a.ip())
        .collect();
    found.sort();
    found.dedup();
    Ok(found)
}

/// An HTTP client that trusts `ca_pem` only (when given) or the system's and Mozilla's roots.
pub fn client(ca_pem: Option<&str>, timeout: Duration) -> Result<reqwest::Client, TrustError> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .https_only(false)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| TrustError::Ca(format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(TrustError::Ca("no certificate in it".into()));
        }
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| TrustError::Ca(crate::oci::chain(&e)))
}

/// Proves the endpoint is who it claims: a TLS handshake verified by `client` (any HTTP answer
/// after it will do; the endpoint has no token yet).
pub async fn verify(client: &reqwest::Client, endpoint: &Endpoint) -> Result<(), TrustError> {
    client
        .get(endpoint.health_url())
        .send()
        .await
        .map(drop)
        .map_err(|e| TrustError::Untrusted {
            endpoint: endpoint.url.clone(),
            reason: crate::oci::chain(&e),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_unless_insecure() {
        let e = Endpoint::parse("https://10.0.0.5:8443", false).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.insecure),
            ("10.0.0.5", 8443, false)
        );
        assert_eq!(e.health_url(), "https://10.0.0.5:8443/healthz");
        let e = Endpoint::parse("https://[::1]:9/", false).unwrap();
        assert_eq!(
            (e.host.as_str(), e.url.as_str()),
            ("::1", "https://[::1]:9")
        );
        let err = Endpoint::parse("http://10.0.0.5:8080", false).unwrap_err();
        assert!(err.to_string().contains("pass --insecure"), "{err}");
        assert!(
            Endpoint::parse("http://10.0.0.5:8080", true)
                .unwrap()
                .insecure
        );
        for bad in [
            "ftp://h:1",
            "https://h:1/path",
            "10.0.0.5:8443",
            "https://u@h:1",
        ] {
            assert!(Endpoint::parse(bad, true).is_err(), "{bad}");
        }
    }
}
