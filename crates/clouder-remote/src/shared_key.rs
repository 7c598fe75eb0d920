//! Azure Storage's Shared Key authorization (Blob service, version 2015-02-21 and later): one
//! place for the account, its key and the request signature, used by the state backend and by
//! the checkpoint images' Blob backend. Works against Azure and Azurite alike: the signed
//! resource is `/ACCOUNT` + the request path, whichever host style the endpoint uses.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderValue};
use sha2::Sha256;

/// The REST API version every request asks for.
pub const API_VERSION: &str = "2021-08-06";

/// An account key, never shown.
#[derive(Clone)]
pub struct AccountKey(Vec<u8>);

impl AccountKey {
    pub fn from_base64(key: &str) -> Result<Self, base64::DecodeError> {
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

/// A storage account: where its Blob service answers, its name and key.
#[derive(Clone, Debug)]
pub struct BlobAccount {
    /// `https://ACCOUNT.blob.core.windows.net` or `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: String,
    pub name: String,
    key: AccountKey,
}

impl BlobAccount {
    pub fn new(endpoint: &str, name: &str, key: AccountKey) -> Self {
        BlobAccount {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            name: name.to_string(),
            key,
        }
    }

    /// The account `name` with its key from `AZURE_STORAGE_KEY` and its endpoint from
    /// `AZURE_STORAGE_BLOB_ENDPOINT` (default `https://NAME.blob.core.windows.net`). The error
    /// says what is missing, never the key.
    pub fn from_env(name: &str) -> Result<Self, String> {
        let env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
        let key =
            env("AZURE_STORAGE_KEY").ok_or("set AZURE_STORAGE_KEY to the storage account's key")?;
        let key = AccountKey::from_base64(&key)
            .map_err(|e| format!("AZURE_STORAGE_KEY is not base64: {e}"))?;
        let endpoint = env("AZURE_STORAGE_BLOB_ENDPOINT")
            .unwrap_or_else(|| format!("https://{name}.blob.core.windows.net"));
        Ok(BlobAccount::new(&endpoint, name, key))
    }

    /// The URL of `path` (`CONTAINER` or `CONTAINER/BLOB`) in this account.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.endpoint)
    }

    /// Dates, versions and signs `request`: the last step before sending it.
    pub fn sign(&self, request: &mut reqwest::Request) {
        let date = jiff::Timestamp::now()
            .strftime("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let headers = request.headers_mut();
        headers.insert("x-ms-date", HeaderValue::from_str(&date).expect("ASCII"));
        headers.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
        let to_sign = string_to_sign(request, &self.name);
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key.0).expect("HMAC takes any key length");
        mac.update(to_sign.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let value =
            HeaderValue::from_str(&format!("SharedKey {}:{signature}", self.name)).expect("ASCII");
        request.headers_mut().insert(AUTHORIZATION, value);
    }
}

/// Azure's reason for refusing a request (`x-ms-error-code`, e.g. `LeaseAlreadyPresent`), or "".
pub fn error_code(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// What Shared Key signs: the verb, the standard headers in their fixed order, the `x-ms-`
/// headers sorted, and the resource with its query parameters sorted.
fn string_to_sign(request: &reqwest::Request, account: &str) -> String {
    let headers = request.headers();
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    // An empty body is signed as an empty length, not "0".
    let length = match headers.get(CONTENT_LENGTH) {
        Some(v) => v.to_str().unwrap_or("").to_string(),
        None => request
            .body()
            .and_then(|b| b.as_bytes())
            .map_or(0, <[u8]>::len)
            .to_string(),
    };
    let length = if length == "0" { String::new() } else { length };
    let standard = [
        get("content-encoding"),
        get("content-language"),
        length,
        get("content-md5"),
        get("content-type"),
        get("date"),
        get("if-modified-since"),
        get("if-match"),
        get("if-none-match"),
        get("if-unmodified-since"),
        get("range"),
    ];
    let mut ms: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-ms-"))
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or("").trim().to_string(),
            )
        })
        .collect();
    ms.sort();
    let canonical_headers: String = ms.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let mut query: Vec<(String, String)> = request
        .url()
        .query_pairs()
        .map(|(k, v)| (k.to_lowercase(), v.into_owned()))
        .collect();
    query.sort();
    let canonical_query: String = query.iter().map(|(k, v)| format!("\n{k}:{v}")).collect();
    format!(
        "{}\n{}\n{canonical_headers}/{account}{}{canonical_query}",
        request.method(),
        standard.join("\n"),
        request.url().path(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_to_sign_has_every_standard_header_in_order() {
        let client = reqwest::Client::new();
        let request = client
            .put("http://127.0.0.1:10000/devstoreaccount1/state/team/c.db?comp=lease&b=2")
            .header("x-ms-lease-action", "acquire")
            .header("x-ms-date", "Wed, 25 Nov 2026 00:00:00 GMT")
            .header("If-Match", "\"0x8D\"")
            .header("content-type", "application/octet-stream")
            .body(b"abc".to_vec())
            .build()
            .unwrap();
        assert_eq!(
            string_to_sign(&request, "devstoreaccount1"),
            "PUT\n\n\n3\n\napplication/octet-stream\n\n\n\"0x8D\"\n\n\n\n\
             x-ms-date:Wed, 25 Nov 2026 00:00:00 GMT\nx-ms-lease-action:acquire\n\
             /devstoreaccount1/devstoreaccount1/state/team/c.db\nb:2\ncomp:lease"
        );
    }

    #[test]
    fn the_key_is_never_shown() {
        let account = BlobAccount::new(
            "http://x",
            "acct",
            AccountKey::from_base64("c2VjcmV0LWtleQ==").unwrap(),
        );
        let shown = format!("{account:?}");
        assert!(
            shown.contains("****") && !shown.contains("secret"),
            "{shown}"
        );
    }
}
