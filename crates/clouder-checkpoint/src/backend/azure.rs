//! An Azure Blob container (or prefix in it) laid out like an OCI image layout, over the Blob
//! REST API with Shared Key authorization. Works against Azure and Azurite alike: the signed
//! resource is `/ACCOUNT` + the request path, whichever host style the endpoint uses.

use super::{Backend, BackendError, Result, body};
use crate::image::{Blob, Content};
use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode, header};
use sha2::Sha256;

const API_VERSION: &str = "2021-08-06";

/// An account key, never shown.
#[derive(Clone)]
pub struct AccountKey(Vec<u8>);

impl AccountKey {
    pub fn from_base64(key: &str) -> std::result::Result<Self, base64::DecodeError> {
        Ok(AccountKey(
            base64::engine::general_purpose::STANDARD.decode(key.trim())?,
        ))
    }
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountKey(****)")
    }
}

pub struct AzureBlob {
    http: reqwest::Client,
    /// `https://ACCOUNT.blob.core.windows.net` or `http://127.0.0.1:10000/devstoreaccount1`.
    endpoint: String,
    account: String,
    key: AccountKey,
    container: String,
    prefix: String,
}

impl AzureBlob {
    pub fn new(
        endpoint: &str,
        account: &str,
        key: AccountKey,
        container: &str,
        prefix: &str,
    ) -> Self {
        AzureBlob {
            http: reqwest::Client::new(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            account: account.to_string(),
            key,
            container: container.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    fn blob_url(&self, name: &str) -> String {
        let path = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        };
        format!("{}/{}/{path}", self.endpoint, self.container)
    }

    fn blob_name(digest: &str) -> String {
        format!("blobs/{}", digest.replacen(':', "/", 1))
    }

    /// The Shared Key signature of a request (Blob service, version 2009-09-19 and later).
    fn authorization(
        &self,
        method: &Method,
        url: &reqwest::Url,
        headers: &[(&str, String)],
        length: u64,
    ) -> String {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let mut ms: Vec<_> = headers
            .iter()
            .filter(|(k, _)| k.starts_with("x-ms-"))
            .collect();
        ms.sort_by(|a, b| a.0.cmp(b.0));
        let canonical_headers: String = ms.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let mut query: Vec<_> = url
            .query_pairs()
            .map(|(k, v)| (k.to_lowercase(), v.into_owned()))
            .collect();
        query.sort();
        let canonical_query: String = query.iter().map(|(k, v)| format!("\n{k}:{v}")).collect();
        let length = if length == 0 {
            String::new()
        } else {
            length.to_string()
        };
        let to_sign = format!(
            "{method}\n\n\n{length}\n\n{}\n\n\n\n\n\n\n{canonical_headers}/{}{}{canonical_query}",
            get("content-type"),
            self.account,
            url.path(),
        );
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key.0).expect("HMAC takes any key length");
        mac.update(to_sign.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        format!("SharedKey {}:{signature}", self.account)
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        extra: &[(&str, String)],
        content: Option<(&Content, u64)>,
        operation: &str,
    ) -> Result<reqwest::Response> {
        let location = self.location();
        let parsed = reqwest::Url::parse(url).map_err(|e| BackendError::Unreachable {
            location: location.clone(),
            reason: e.to_string(),
        })?;
        let date = jiff::Timestamp::now()
            .strftime("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let mut headers = vec![
            ("x-ms-date", date),
            ("x-ms-version", API_VERSION.to_string()),
        ];
        headers.extend(extra.iter().cloned());
        let length = content.map(|(_, n)| n).unwrap_or(0);
        let auth = self.authorization(&method, &parsed, &headers, length);
        let mut request = self
            .http
            .request(method, parsed)
            .header(header::AUTHORIZATION, auth);
        for (k, v) in &headers {
            request = request.header(*k, v);
        }
        if let Some((content, length)) = content {
            let data = body(content).await.map_err(|source| BackendError::Io {
                location: location.clone(),
                operation: operation.to_string(),
                source,
            })?;
            request = request.header(header::CONTENT_LENGTH, length).body(data);
        }
        let response = request
            .send()
            .await
            .map_err(|e| BackendError::Unreachable {
                location: location.clone(),
                reason: super::error_chain(&e),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let code = response
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
            return Err(BackendError::Auth {
                location,
                reason: format!("{operation}: {status} {code}"),
            });
        }
        Err(BackendError::Status {
            location,
            operation: operation.to_string(),
            status: status.as_u16(),
            body: code,
        })
    }

    /// Creates the container if it does not exist yet.
    pub async fn ensure_container(&self) -> Result<()> {
        let url = format!("{}/{}?restype=container", self.endpoint, self.container);
        match self
            .send(Method::PUT, &url, &[], None, "creating the container")
            .await
        {
            Ok(_) | Err(BackendError::Status { status: 409, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn put(&self, name: &str, media_type: &str, content: &Content, size: u64) -> Result<()> {
        let headers = [
            ("x-ms-blob-type", "BlockBlob".to_string()),
            ("content-type", media_type.to_string()),
        ];
        self.send(
            Method::PUT,
            &self.blob_url(name),
            &headers,
            Some((content, size)),
            &format!("writing {name}"),
        )
        .await
        .map(drop)
    }

    async fn exists(&self, name: &str, operation: &str) -> Result<bool> {
        match self
            .send(Method::HEAD, &self.blob_url(name), &[], None, operation)
            .await
        {
            Ok(_) => Ok(true),
            Err(BackendError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Backend for AzureBlob {
    fn location(&self) -> String {
        format!("{}/{}/{}", self.endpoint, self.container, self.prefix)
            .trim_end_matches('/')
            .to_string()
    }

    async fn has_blob(&self, digest: &str) -> Result<bool> {
        self.exists(&Self::blob_name(digest), "checking a blob")
            .await
    }

    async fn put_blob(&self, blob: &Blob, content: &Content) -> Result<()> {
        self.put(
            &Self::blob_name(&blob.digest),
            &blob.media_type,
            content,
            blob.size,
        )
        .await
    }

    async fn put_manifest(&self, tag: &str, manifest: &Blob, json: &bytes::Bytes) -> Result<()> {
        let content = Content::Bytes(json.clone());
        self.put(
            &Self::blob_name(&manifest.digest),
            &manifest.media_type,
            &content,
            manifest.size,
        )
        .await?;
        self.put(
            &format!("manifests/{tag}"),
            &manifest.media_type,
            &content,
            manifest.size,
        )
        .await
    }

    async fn delete(&self, tag: &str) -> Result<()> {
        let name = format!("manifests/{tag}");
        if !self.exists(&name, &format!("resolving {tag}")).await? {
            return Err(BackendError::NotFound {
                location: self.location(),
                reference: tag.to_string(),
            });
        }
        self.send(
            Method::DELETE,
            &self.blob_url(&name),
            &[],
            None,
            &format!("deleting {tag}"),
        )
        .await
        .map(drop)
    }

    fn reference(&self, tag: &str, _manifest_digest: &str) -> String {
        self.blob_url(&format!("manifests/{tag}"))
    }
}
