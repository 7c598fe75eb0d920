//! The kubelet's checkpoint API, `POST /checkpoint/{namespace}/{pod}/{container}?timeout=S`,
//! called on the node (port 10250, with the `apiserver-kubelet-client` certificate) or through
//! the API server's node proxy (`/api/v1/nodes/{node}/proxy`, which needs `nodes/proxy`).
//! The kubelet writes the archive on the node and answers with its path.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("TLS material for the kubelet client is not valid: {0}")]
    Tls(String),
    #[error("kubelet {endpoint} is unreachable: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error(
        "kubelet {endpoint} does not serve the checkpoint API (404): enable the ContainerCheckpoint feature gate on the node"
    )]
    FeatureGateOff { endpoint: String },
    #[error("kubelet {endpoint}: {message}")]
    NotFound { endpoint: String, message: String },
    #[error("kubelet {endpoint} refused the client certificate or token ({status}): {message}")]
    Forbidden {
        endpoint: String,
        status: u16,
        message: String,
    },
    /// The runtime failed (CRIU's reason is in the message) or hit the `timeout`.
    #[error("kubelet {endpoint}: {message}")]
    CheckpointFailed { endpoint: String, message: String },
    #[error("kubelet {endpoint} did not answer within {after:?}")]
    Timeout { endpoint: String, after: Duration },
    #[error("kubelet {endpoint} answered {status}: {body}")]
    Unexpected {
        endpoint: String,
        status: u16,
        body: String,
    },
}

pub type Result<T> = std::result::Result<T, KubeletError>;

/// How the client proves who it is.
pub enum Auth {
    /// A client certificate and key (PEM), e.g. `apiserver-kubelet-client.crt`/`.key`.
    ClientCertificate { cert_pem: Vec<u8>, key_pem: Vec<u8> },
    /// A bearer token, for the API server's node proxy.
    Bearer(String),
}

pub struct KubeletClient {
    http: reqwest::Client,
    endpoint: String,
    bearer: Option<String>,
    /// How long past the requested timeout to wait for the kubelet's own answer.
    grace: Duration,
}

impl KubeletClient {
    /// `endpoint` is `https://NODE:10250` or `https://APISERVER/api/v1/nodes/NODE/proxy`;
    /// `ca_pem` is the CA that signed its serving certificate.
    pub fn new(endpoint: &str, ca_pem: &[u8], auth: Auth) -> Result<Self> {
        let tls = |e: reqwest::Error| KubeletError::Tls(super::backend::error_chain(&e));
        let cas = reqwest::Certificate::from_pem_bundle(ca_pem).map_err(tls)?;
        if cas.is_empty() {
            return Err(KubeletError::Tls(
                "the CA bundle holds no PEM certificate".to_string(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false);
        for ca in cas {
            builder = builder.add_root_certificate(ca);
        }
        let mut bearer = None;
        match auth {
            Auth::ClientCertificate { cert_pem, key_pem } => {
                let pem = [cert_pem, b"\n".to_vec(), key_pem].concat();
                builder = builder.identity(reqwest::Identity::from_pem(&pem).map_err(tls)?);
            }
            Auth::Bearer(token) => bearer = Some(token),
        }
        Ok(KubeletClient {
            http: builder.build().map_err(tls)?,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            bearer,
            grace: Duration::from_secs(30),
        })
    }

    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Asks the kubelet to checkpoint a container; returns the archive paths on the node.
    /// `timeout` is passed to the runtime (zero: the runtime's default).
    pub async fn checkpoint(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        timeout: Duration,
    ) -> Result<Vec<String>> {
        let url = format!("{}/checkpoint/{namespace}/{pod}/{container}", self.endpoint);
        let mut request = self.http.post(url);
        if !timeout.is_zero() {
            request = request
                .query(&[("timeout", timeout.as_secs())])
                .timeout(timeout + self.grace);
        }
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        let endpoint = self.endpoint.clone();
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                KubeletError::Timeout {
                    endpoint: endpoint.clone(),
                    after: timeout + self.grace,
                }
            } else {
                KubeletError::Unreachable {
                    endpoint: endpoint.clone(),
                    reason: super::backend::error_chain(&e),
                }
            }
        };
        let response = request.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(failed)?;
        classify(&endpoint, status, body.trim())
    }
}

/// Pure: the kubelet's answer as archive paths or the error it means. An unknown route (the
/// feature gate is off) answers go-restful's plain "404 page not found"; an unknown pod or
/// container answers 404 with the kubelet's own message; a runtime failure answers 500.
pub fn classify(endpoint: &str, status: u16, body: &str) -> Result<Vec<String>> {
    let endpoint = endpoint.to_string();
    match status {
        200 => {
            #[derive(serde::Deserialize)]
            struct Items {
                items: Vec<String>,
            }
            serde_json::from_str::<Items>(body)
                .map(|i| i.items)
                .map_err(|e| KubeletError::Unexpected {
                    endpoint,
                    status,
                    body: format!("{e}: {body}"),
                })
        }
        404 if body == "404 page not found" || body.is_empty() => {
            Err(KubeletError::FeatureGateOff { endpoint })
        }
        404 => Err(KubeletError::NotFound {
            endpoint,
            message: body.to_string(),
        }),
        401 | 403 => Err(KubeletError::Forbidden {
            endpoint,
            status,
            message: body.to_string(),
        }),
        500 => Err(KubeletError::CheckpointFailed {
            endpoint,
            message: body.to_string(),
        }),
        _ => Err(KubeletError::Unexpected {
            endpoint,
            status,
            body: body.to_string(),
        }),
    }
}
