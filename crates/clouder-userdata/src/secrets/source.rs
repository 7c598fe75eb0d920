//! Where a secret's value comes from, and the version each source reports, so `sync` can tell
//! a rotated value from an unchanged one. Errors name the source, never a value.

use super::SecretValue;
use crate::Error;
use std::io::Read;
use std::path::PathBuf;

/// A secret's source, as recorded on the Secret (`label`) and read back for `sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stdin,
    File(PathBuf),
    /// A Secrets Manager secret: its ARN or name.
    AwsSecret(String),
    /// An SSM parameter: its name or ARN (SecureString values are decrypted).
    Ssm(String),
    /// `https://VAULT.vault.azure.net/secrets/NAME[/VERSION]`.
    AzureKeyVault(String),
}

/// A value and the version its source gave it (`None`: the source has no versions).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub value: SecretValue,
    pub version: Option<String>,
}

const KEYVAULT_API_VERSION: &str = "7.4";
/// A static Key Vault token (tests, CI); otherwise the Azure CLI's login is asked for one.
pub const KEYVAULT_TOKEN_ENV: &str = "CLOUDER_AZURE_KEYVAULT_TOKEN";

impl Source {
    pub fn label(&self) -> String {
        match self {
            Source::Stdin => "stdin".into(),
            Source::File(p) => format!("file:{}", p.display()),
            Source::AwsSecret(id) => format!("aws-secret:{id}"),
            Source::Ssm(name) => format!("ssm:{name}"),
            Source::AzureKeyVault(uri) => format!("azure-keyvault:{uri}"),
        }
    }

    pub fn from_label(label: &str) -> Option<Source> {
        let (kind, rest) = label.split_once(':').unwrap_or((label, ""));
        Some(match kind {
            "stdin" => Source::Stdin,
            "file" => Source::File(rest.into()),
            "aws-secret" => Source::AwsSecret(rest.into()),
            "ssm" => Source::Ssm(rest.into()),
            "azure-keyvault" => Source::AzureKeyVault(rest.into()),
            _ => return None,
        })
    }

    /// Whether `sync` can read it again (stdin cannot).
    pub fn rereadable(&self) -> bool {
        !matches!(self, Source::Stdin)
    }

    /// Reads the value; `stdin` serves `Source::Stdin` (one trailing newline is dropped, as
    /// `echo VALUE |` adds it).
    pub async fn fetch(&self, stdin: &mut dyn Read) -> Result<Fetched, Error> {
        match self {
            Source::Stdin => {
                let mut bytes = Vec::new();
                stdin
                    .read_to_end(&mut bytes)
                    .map_err(|e| Error::Failed(format!("reading the value from stdin: {e}")))?;
                if bytes.ends_with(b"\n") {
                    bytes.pop();
                    if bytes.ends_with(b"\r") {
                        bytes.pop();
                    }
                }
                Ok(Fetched {
                    value: SecretValue::new(bytes),
                    version: None,
                })
            }
            Source::File(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    Error::Invalid(format!("reading the value from {}: {e}", path.display()))
                })?;
                Ok(Fetched {
                    value: SecretValue::new(bytes),
                    version: None,
                })
            }
            Source::AwsSecret(id) => aws_secret(id).await,
            Source::Ssm(name) => ssm_parameter(name).await,
            Source::AzureKeyVault(uri) => keyvault_secret(uri).await,
        }
    }
}

/// The region an ARN names, if it is one.
fn arn_region(id: &str) -> Option<String> {
    let mut parts = id.split(':');
    (parts.next() == Some("arn")).then_some(())?;
    parts.nth(2).filter(|r| !r.is_empty()).map(str::to_string)
}

async fn aws_config(id: &str) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = arn_region(id) {
        loader = loader.region(aws_config::Region::new(region));
    }
    loader.load().await
}

fn aws_error(what: &str, e: impl std::error::Error) -> Error {
    // The SDK's error chain names the operation and the service's code, never the value.
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        message = format!("{message}: {c}");
        cause = c.source();
    }
    Error::Failed(format!("{what}: {message}"))
}

async fn aws_secret(id: &str) -> Result<Fetched, Error> {
    let client = aws_sdk_secretsmanager::Client::new(&aws_config(id).await);
    let out = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| aws_error(&format!("reading AWS secret {id}"), e))?;
    let value = match (out.secret_string, out.secret_binary) {
        (Some(s), _) => s.into_bytes(),
        (None, Some(b)) => b.into_inner(),
        (None, None) => return Err(Error::Failed(format!("AWS secret {id} has no value"))),
    };
    Ok(Fetched {
        value: SecretValue::new(value),
        version: out.version_id,
    })
}

async fn ssm_parameter(name: &str) -> Result<Fetched, Error> {
    let client = aws_sdk_ssm::Client::new(&aws_config(name).await);
    let out = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| aws_error(&format!("reading SSM parameter {name}"), e))?;
    let parameter = out
        .parameter
        .ok_or_else(|| Error::Failed(format!("SSM parameter {name} has no value")))?;
    Ok(Fetched {
        value: SecretValue::new(parameter.value.unwrap_or_default().into_bytes()),
        version: Some(parameter.version.to_string()),
    })
}

/// A Key Vault secret's URI: everything before `/secrets/` is the vault.
fn keyvault_parts(uri: &str) -> Result<(&str, &str), Error> {
    let (vault, rest) = uri.split_once("/secrets/").ok_or_else(|| {
        Error::Invalid(format!(
            "`{uri}` is not a Key Vault secret URI (https://VAULT.vault.azure.net/secrets/NAME[/VERSION])"
        ))
    })?;
    if !(vault.starts_with("https://") || vault.starts_with("http://127.0.0.1")) || rest.is_empty()
    {
        return Err(Error::Invalid(format!(
            "`{uri}` is not a Key Vault secret URI (https://VAULT.vault.azure.net/secrets/NAME[/VERSION])"
        )));
    }
    Ok((vault, rest))
}

async fn keyvault_token() -> Result<String, Error> {
    if let Ok(token) = std::env::var(KEYVAULT_TOKEN_ENV)
        && !token.trim().is_empty()
    {
        return Ok(token);
    }
    let out = tokio::process::Command::new("az")
        .args([
            "account",
            "get-access-token",
            "--resource",
            "https://vault.azure.net",
            "--query",
            "accessToken",
            "-o",
            "tsv",
        ])
        .output()
        .await
        .map_err(|e| {
            Error::Failed(format!(
                "no Key Vault token: set {KEYVAULT_TOKEN_ENV} or log in with the Azure CLI ({e})"
            ))
        })?;
    if !out.status.success() {
        return Err(Error::Failed(format!(
            "no Key Vault token: `az account get-access-token` failed; log in with `az login` or set {KEYVAULT_TOKEN_ENV}"
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn keyvault_secret(uri: &str) -> Result<Fetched, Error> {
    let (vault, rest) = keyvault_parts(uri)?;
    let url = format!("{vault}/secrets/{rest}?api-version={KEYVAULT_API_VERSION}");
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(keyvault_token().await?)
        .send()
        .await
        .map_err(|e| Error::Failed(format!("reading Key Vault secret {uri}: {e}")))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.map_err(|e| {
        Error::Failed(format!(
            "reading Key Vault secret {uri}: {status}, unreadable answer: {e}"
        ))
    })?;
    if !status.is_success() {
        return Err(Error::Failed(format!(
            "reading Key Vault secret {uri}: {status} {}: {}",
            body["error"]["code"].as_str().unwrap_or("error"),
            body["error"]["message"].as_str().unwrap_or("")
        )));
    }
    let value = body["value"]
        .as_str()
        .ok_or_else(|| Error::Failed(format!("Key Vault secret {uri} has no value")))?;
    // The id ends in the version: {vault}/secrets/{name}/{version}.
    let version = body["id"]
        .as_str()
        .and_then(|id| id.rsplit('/').next())
        .map(str::to_string);
    Ok(Fetched {
        value: SecretValue::new(value.as_bytes().to_vec()),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        for s in [
            Source::Stdin,
            Source::File("/tmp/a:b".into()),
            Source::AwsSecret(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf".into(),
            ),
            Source::Ssm("/team/db/password".into()),
            Source::AzureKeyVault("https://kv.vault.azure.net/secrets/db".into()),
        ] {
            assert_eq!(Source::from_label(&s.label()), Some(s));
        }
        assert_eq!(Source::from_label("ftp:x"), None);
    }

    #[test]
    fn region_comes_from_the_arn() {
        assert_eq!(
            arn_region("arn:aws:secretsmanager:eu-west-1:123456789012:secret:db").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(arn_region("db-password"), None);
    }

    #[test]
    fn keyvault_uris() {
        assert_eq!(
            keyvault_parts("https://kv.vault.azure.net/secrets/db/abc").unwrap(),
            ("https://kv.vault.azure.net", "db/abc")
        );
        assert!(keyvault_parts("https://kv.vault.azure.net/keys/db").is_err());
        assert!(keyvault_parts("http://evil.example/secrets/db").is_err());
    }
}
