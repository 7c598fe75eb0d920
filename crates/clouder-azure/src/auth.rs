//! Bearer tokens for Resource Manager, found the way Azure tools (`DefaultAzureCredential`)
//! find them, in order: `CLOUDER_AZURE_TOKEN` (a static token, for tests), a service principal
//! in `AZURE_TENANT_ID` / `AZURE_CLIENT_ID` / `AZURE_CLIENT_SECRET` (client-credentials flow),
//! workload identity (`AZURE_FEDERATED_TOKEN_FILE`: a federated token as client assertion), the
//! machine's managed identity (the instance metadata service, IMDS; `AZURE_CLIENT_ID` picks a
//! user-assigned one), then the Azure CLI's login (`az account get-access-token`). No secret
//! is ever stored: tokens stay in memory only.

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
    /// Workload identity: the federated token in `file` (re-read at each exchange, since it
    /// rotates) exchanged for an Entra token.
    Federated {
        authority: String,
        tenant: String,
        client_id: String,
        file: String,
        cached: Mutex<Option<(String, Instant)>>,
    },
    /// The managed identity of the machine clouder runs on, from the instance metadata service.
    ManagedIdentity {
        endpoint: String,
        client_id: Option<String>,
        cached: Mutex<Option<(String, Instant)>>,
    },
    AzureCli {
        cached: Mutex<Option<(String, Instant)>>,
    },
}

/// The instance metadata service, as every Azure VM reaches it.
pub const IMDS: &str = "http://169.254.169.254";
/// IMDS's token API version (documented at
/// learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token).
const IMDS_API_VERSION: &str = "2018-02-01";
const RESOURCE: &str = "https://management.azure.com/";

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Static(_) => "Credential::Static",
            Credential::ClientSecret { .. } => "Credential::ClientSecret",
            Credential::Federated { .. } => "Credential::Federated",
            Credential::ManagedIdentity { .. } => "Credential::ManagedIdentity",
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
        Self::discover_from(env).await
    }

    /// [`Credential::discover`] with the environment read through `var`.
    pub async fn discover_from(var: impl Fn(&str) -> Option<String>) -> Result<Credential, String> {
        if let Some(token) = var(TOKEN_ENV) {
            return Ok(Credential::Static(token));
        }
        let authority = var("AZURE_AUTHORITY_HOST")
            .unwrap_or_else(|| "https://login.microsoftonline.com".into());
        let (tenant, client_id) = (var("AZURE_TENANT_ID"), var("AZURE_CLIENT_ID"));
        if let (Some(tenant), Some(client_id), Some(secret)) =
            (&tenant, &client_id, var("AZURE_CLIENT_SECRET"))
        {
            return Ok(Credential::ClientSecret {
                authority,
                tenant: tenant.clone(),
                client_id: client_id.clone(),
                secret,
                cached: Mutex::new(None),
            });
        }
        if let (Some(tenant), Some(client_id), Some(file)) =
            (&tenant, &client_id, var("AZURE_FEDERATED_TOKEN_FILE"))
        {
            return Ok(Credential::Federated {
                authority,
                tenant: tenant.clone(),
                client_id: client_id.clone(),
                file,
                cached: Mutex::new(None),
            });
        }
        // A managed identity answers only on Azure; elsewhere IMDS is not there at all.
        let managed = Credential::ManagedIdentity {
            endpoint: var("AZURE_POD_IDENTITY_AUTHORITY_HOST").unwrap_or_else(|| IMDS.into()),
            client_id,
            cached: Mutex::new(None),
        };
        let probe = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        let managed_failed = match managed.token(&probe).await {
            Ok(_) => return Ok(managed),
            Err(why) => why,
        };
        let cli = Credential::AzureCli {
            cached: Mutex::new(None),
        };
        match cli.token(&reqwest::Client::new()).await {
            Ok(_) => Ok(cli),
            Err(why) => Err(format!("{why}; managed identity: {managed_failed}")),
        }
    }

    pub async fn token(&self, http: &reqwest::Client) -> Result<String, String> {
        let cache = match self {
            Credential::Static(token) => return Ok(token.clone()),
            Credential::ClientSecret { cached, .. }
            | Credential::Federated { cached, .. }
            | Credential::ManagedIdentity { cached, .. }
            | Credential::AzureCli { cached } => cached,
        };
        let mut cached = cache.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && *until > Instant::now()
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.fetch(http).await?;
        *cached = Some((token.clone(), fresh_until(lifetime)));
        Ok(token)
    }

    /// A new token from the source, with its lifetime in seconds.
    async fn fetch(&self, http: &reqwest::Client) -> Result<(String, u64), String> {
        let entra = |authority: &str, tenant: &str| {
            format!(
                "{}/{tenant}/oauth2/v2.0/token",
                authority.trim_end_matches('/')
            )
        };
        match self {
            Credential::Static(token) => Ok((token.clone(), u64::MAX)),
            Credential::ClientSecret {
                authority,
                tenant,
                client_id,
                secret,
                ..
            } => {
                let url = entra(authority, tenant);
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", secret.as_str()),
                    ("scope", SCOPE),
                ];
                let body = token_response(http.post(&url).form(&form), &url).await?;
                issued(&body, "the service principal could not sign in")
            }
            Credential::Federated {
                authority,
                tenant,
                client_id,
                file,
                ..
            } => {
                let assertion = std::fs::read_to_string(file)
                    .map_err(|e| format!("reading the federated token {file}: {e}"))?;
                let url = entra(authority, tenant);
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.trim()),
                    ("scope", SCOPE),
                ];
                let body = token_response(http.post(&url).form(&form), &url).await?;
                issued(&body, "the workload identity could not sign in")
            }
            Credential::ManagedIdentity {
                endpoint,
                client_id,
                ..
            } => {
                let url = format!(
                    "{}/metadata/identity/oauth2/token",
                    endpoint.trim_end_matches('/')
                );
                let mut query = vec![("api-version", IMDS_API_VERSION), ("resource", RESOURCE)];
                if let Some(id) = client_id {
                    query.push(("client_id", id));
                }
                let request = http.get(&url).query(&query).header("Metadata", "true");
                let body = token_response(request, &url).await?;
                issued(&body, "the managed identity gave no token")
            }
            Credential::AzureCli { .. } => {
                let out = tokio::process::Command::new("az")
                    .args([
                        "account",
                        "get-access-token",
                        "--resource",
                        RESOURCE,
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
                Ok((token.to_string(), lifetime))
            }
        }
    }
}

/// The JSON body of a token endpoint's answer (errors included: they carry the reason).
async fn token_response(request: reqwest::RequestBuilder, url: &str) -> Result<Value, String> {
    request
        .send()
        .await
        .map_err(|e| format!("requesting a token from {url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("reading the token from {url}: {e}"))
}

/// The token of an OAuth answer and its lifetime (`expires_in`, a number or, from IMDS, a
/// string of one); else the endpoint's reason.
fn issued(body: &Value, failed: &str) -> Result<(String, u64), String> {
    let token = body["access_token"].as_str().ok_or_else(|| {
        let reason = body["error_description"]
            .as_str()
            .or(body["error"].as_str())
            .unwrap_or("no access_token");
        format!("{failed}: {reason}")
    })?;
    let lifetime = match &body["expires_in"] {
        Value::String(s) => s.parse().ok(),
        other => other.as_u64(),
    }
    .unwrap_or(3600);
    Ok((token.to_string(), lifetime))
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
