//! Bearer tokens for Resource Manager, found the way Azure tools find them, in order:
//! `CLOUDER_AZURE_TOKEN` (a static token, for tests), a service principal in
//! `AZURE_TENANT_ID` / `AZURE_CLIENT_ID` / `AZURE_CLIENT_SECRET` (client-credentials flow), then
//! the Azure CLI's login (`az account get-access-token`). Tokens stay in memory only.

use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub const TOKEN_ENV: &str = "CLOUDER_AZURE_TOKEN";
const SCOPE: &str = "https://management.azure.com/.default";

pub enum Credential {
    Static(String),
    ClientSecret {
        authority: String,
        tenant: String,
        client_id: String,
        secret: String,
        cached: Mutex<Option<(String, Instant)>>,
    },
    AzureCli {
        cached: Mutex<Option<(String, Instant)>>,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Static(_) => "Credential::Static",
            Credential::ClientSecret { .. } => "Credential::ClientSecret",
            Credential::AzureCli { .. } => "Credential::AzureCli",
        })
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Credential {
    /// The first source that is configured; checked before any call to Resource Manager.
    pub async fn discover() -> Result<Credential, String> {
        if let Some(token) = env(TOKEN_ENV) {
            return Ok(Credential::Static(token));
        }
        if let (Some(tenant), Some(client_id), Some(secret)) = (
            env("AZURE_TENANT_ID"),
            env("AZURE_CLIENT_ID"),
            env("AZURE_CLIENT_SECRET"),
        ) {
            return Ok(Credential::ClientSecret {
                authority: env("AZURE_AUTHORITY_HOST")
                    .unwrap_or_else(|| "https://login.microsoftonline.com".into()),
                tenant,
                client_id,
                secret,
                cached: Mutex::new(None),
            });
        }
        let cli = Credential::AzureCli {
            cached: Mutex::new(None),
        };
        match cli.token(&reqwest::Client::new()).await {
            Ok(_) => Ok(cli),
            Err(why) => Err(why),
        }
    }

    pub async fn token(&self, http: &reqwest::Client) -> Result<String, String> {
        match self {
            Credential::Static(token) => Ok(token.clone()),
            Credential::ClientSecret {
                authority,
                tenant,
                client_id,
                secret,
                cached,
            } => {
                let mut cached = cached.lock().await;
                if let Some((token, until)) = cached.as_ref()
                    && *until > Instant::now()
                {
                    return Ok(token.clone());
                }
                let url = format!(
                    "{}/{tenant}/oauth2/v2.0/token",
                    authority.trim_end_matches('/')
                );
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", secret.as_str()),
                    ("scope", SCOPE),
                ];
                let body: Value = http
                    .post(&url)
                    .form(&form)
                    .send()
                    .await
                    .map_err(|e| format!("requesting a token from {url}: {e}"))?
                    .json()
                    .await
                    .map_err(|e| format!("reading the token from {url}: {e}"))?;
                let token = body["access_token"].as_str().ok_or_else(|| {
                    format!(
                        "the service principal could not sign in: {}",
                        body["error_description"]
                            .as_str()
                            .unwrap_or("no access_token")
                    )
                })?;
                let lifetime = body["expires_in"].as_u64().unwrap_or(3600);
                *cached = Some((token.to_string(), fresh_until(lifetime)));
                Ok(token.to_string())
            }
            Credential::AzureCli { cached } => {
                let mut cached = cached.lock().await;
                if let Some((token, until)) = cached.as_ref()
                    && *until > Instant::now()
                {
                    return Ok(token.clone());
                }
                let out = tokio::process::Command::new("az")
                    .args([
                        "account",
                        "get-access-token",
                        "--resource",
                        "https://management.azure.com/",
                        "-o",
                        "json",
                    ])
                    .output()
                    .await
                    .map_err(|_| "the Azure CLI (az) is not installed".to_string())?;
                if !out.status.success() {
                    return Err(format!(
                        "the Azure CLI has no login ({}); run `az login`",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                let body: Value = serde_json::from_slice(&out.stdout)
                    .map_err(|e| format!("reading az output: {e}"))?;
                let token = body["accessToken"]
                    .as_str()
                    .ok_or("az printed no accessToken")?;
                let lifetime = body["expires_on"]
                    .as_u64()
                    .and_then(|at| at.checked_sub(now_unix()))
                    .unwrap_or(1800);
                *cached = Some((token.to_string(), fresh_until(lifetime)));
                Ok(token.to_string())
            }
        }
    }
}

/// Refreshes five minutes before the token expires.
fn fresh_until(lifetime_s: u64) -> Instant {
    Instant::now() + Duration::from_secs(lifetime_s.saturating_sub(300).max(60))
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
