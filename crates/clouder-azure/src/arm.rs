//! A thin Azure Resource Manager client: GET / PUT / DELETE / LIST on resource ids with a pinned
//! `api-version`, long-running operations polled through `Azure-AsyncOperation` or `Location`
//! (honouring `Retry-After`), 429 / 5xx / in-progress conflicts retried, and ARM's error bodies
//! surfaced verbatim with the resource id.

use crate::auth::Credential;
use clouder_engine::Error;
use clouder_engine::calls::CallStats;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a long-running operation may take before clouder gives up on this run.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Attempts per request on throttling, server errors and conflicts, before the engine's retry.
const ATTEMPTS: u32 = 6;

/// ARM error codes that mean "try again soon": another operation or a dependency is still busy.
const RETRYABLE_CODES: [&str; 6] = [
    "AnotherOperationInProgress",
    "ReferencedResourceNotProvisioned",
    "RetryableError",
    "PrincipalNotFound",
    "OperationPreempted",
    "Conflict",
];

/// `{"error": {"code", "message"}}`, as every resource provider answers failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ArmError {
    pub fn from_body(status: u16, body: &str) -> Self {
        let v: Value = serde_json::from_str(body).unwrap_or_default();
        let e = v.get("error").unwrap_or(&v);
        let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
        ArmError {
            status,
            code: text("code").unwrap_or_else(|| format!("HTTP{status}")),
            message: text("message").unwrap_or_else(|| body.trim().chars().take(500).collect()),
        }
    }

    pub fn not_found(&self) -> bool {
        self.status == 404
    }

    /// Worth another attempt: throttling, server trouble, or a busy resource.
    pub fn retryable(&self) -> bool {
        self.status == 429 || self.status >= 500 || RETRYABLE_CODES.contains(&self.code.as_str())
    }

    /// The engine's error: what was done to which resource, and ARM's own words.
    pub fn into_error(self, what: &str, id: &str) -> Error {
        let message = format!(
            "{what} {id}: {} ({}): {}",
            self.code, self.status, self.message
        );
        if self.retryable() {
            Error::transient(message)
        } else {
            Error::permanent(message)
        }
    }
}

/// One subscription's Resource Manager.
pub struct Arm {
    http: reqwest::Client,
    base: String,
    credential: Credential,
    stats: Arc<CallStats>,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Arm {
    pub fn new(base: &str, credential: Credential, stats: Arc<CallStats>) -> Self {
        Arm {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("TLS backend available"),
            base: base.trim_end_matches('/').to_string(),
            credential,
            stats,
        }
    }

    fn url(&self, path: &str, api_version: &str) -> String {
        if path.starts_with("http") {
            return path.to_string();
        }
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}api-version={api_version}", self.base)
    }

    /// One request, retried on throttling (after `Retry-After`), 5xx, conflicts and network
    /// errors. Counted once; a write counts as mutating (fault injection hooks there).
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, (ArmError, bool)> {
        let mutating = method == Method::PUT || method == Method::DELETE;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.credential.token(&self.http).await.map_err(|e| {
                (
                    ArmError {
                        status: 401,
                        code: "AuthenticationFailed".into(),
                        message: e,
                    },
                    false,
                )
            })?;
            let mut request = self.http.request(method.clone(), url).bearer_auth(token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let outcome = request.send().await;
            let (pause, failure) = match outcome {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let body = response.text().await.unwrap_or_default();
                    if status.is_success() {
                        self.stats.record(&format!("{method} {url}"), mutating);
                        return Ok(Answer {
                            status,
                            headers,
                            body,
                        });
                    }
                    let error = ArmError::from_body(status.as_u16(), &body);
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        self.stats.record_throttled();
                    }
                    if !error.retryable() || attempt >= ATTEMPTS {
                        self.stats.record(&format!("{method} {url}"), false);
                        return Err((error, true));
                    }
                    (
                        retry_after(&headers).unwrap_or_else(|| backoff(attempt)),
                        error,
                    )
                }
                Err(e) => {
                    let error = ArmError {
                        status: 0,
                        code: "NetworkError".into(),
                        message: e.to_string(),
                    };
                    if attempt >= ATTEMPTS {
                        return Err((error, true));
                    }
                    (backoff(attempt), error)
                }
            };
            tracing::debug!(%url, code = %failure.code, ?pause, "retrying ARM request");
            tokio::time::sleep(pause).await;
        }
    }

    /// The resource, or `None` when ARM says it (or its group) does not exist.
    pub async fn get(&self, id: &str, api_version: &str) -> Result<Option<Value>, Error> {
        match self
            .send(Method::GET, &self.url(id, api_version), None)
            .await
        {
            Ok(a) => Ok(Some(serde_json::from_str(&a.body).unwrap_or_default())),
            Err((e, _)) if e.not_found() => Ok(None),
            Err((e, _)) => Err(e.into_error("reading", id)),
        }
    }

    /// Every item of a collection (following `nextLink`); empty when its group or parent is missing.
    pub async fn list(&self, path: &str, api_version: &str) -> Result<Vec<Value>, Error> {
        let mut items = Vec::new();
        let mut next = Some(self.url(path, api_version));
        while let Some(url) = next.take() {
            let page: Value = match self.send(Method::GET, &url, None).await {
                Ok(a) => serde_json::from_str(&a.body).unwrap_or_default(),
                Err((e, _)) if e.not_found() => return Ok(items),
                Err((e, _)) => return Err(e.into_error("listing", path)),
            };
            if let Some(Value::Array(values)) = page.get("value") {
                items.extend(values.iter().cloned());
            }
            next = page
                .get("nextLink")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        Ok(items)
    }

    /// Creates or updates `id` and waits for its long-running operation; returns the final body.
    pub async fn put(&self, id: &str, api_version: &str, body: &Value) -> Result<Value, Error> {
        let answer = self
            .send(Method::PUT, &self.url(id, api_version), Some(body))
            .await
            .map_err(|(e, _)| e.into_error("writing", id))?;
        if self.wait(&answer, id).await? {
            return self.get(id, api_version).await?.ok_or_else(|| {
                Error::transient(format!("{id} is not visible yet after its creation"))
            });
        }
        Ok(serde_json::from_str(&answer.body).unwrap_or_default())
    }

    /// Deletes `id` and waits until it is gone; absent already is fine.
    pub async fn delete(&self, id: &str, api_version: &str) -> Result<(), Error> {
        match self
            .send(Method::DELETE, &self.url(id, api_version), None)
            .await
        {
            Ok(answer) => {
                self.wait(&answer, id).await?;
                Ok(())
            }
            Err((e, _)) if e.not_found() => Ok(()),
            Err((e, _)) => Err(e.into_error("deleting", id)),
        }
    }

    /// Polls a long-running operation to its end; says whether there was one.
    async fn wait(&self, answer: &Answer, id: &str) -> Result<bool, Error> {
        let header = |name: &str| {
            answer
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (url, async_operation) = match (header("azure-asyncoperation"), header("location")) {
            (Some(url), _) => (url, true),
            (None, Some(url)) if answer.status == StatusCode::ACCEPTED => (url, false),
            _ => return Ok(false),
        };
        let deadline = Instant::now() + OPERATION_TIMEOUT;
        let mut pause = retry_after(&answer.headers).unwrap_or(Duration::from_secs(1));
        loop {
            if Instant::now() > deadline {
                return Err(Error::transient(format!(
                    "{id}: the operation did not finish in {OPERATION_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(pause).await;
            let polled = self
                .send(Method::GET, &url, None)
                .await
                .map_err(|(e, _)| e.into_error("waiting for", id))?;
            pause = retry_after(&polled.headers).unwrap_or(Duration::from_secs(2));
            if !async_operation {
                // `Location` polling: 202 while running, 200/204 when done.
                if polled.status != StatusCode::ACCEPTED {
                    return Ok(true);
                }
                continue;
            }
            let status: Value = serde_json::from_str(&polled.body).unwrap_or_default();
            match status
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("InProgress")
            {
                "Succeeded" => return Ok(true),
                "Failed" | "Canceled" => {
                    let body = status.to_string();
                    return Err(ArmError::from_body(200, &body).into_error("operation on", id));
                }
                _ => {}
            }
        }
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Jittered exponential pause when the server gave no `Retry-After`.
fn backoff(attempt: u32) -> Duration {
    let bound = 200u64.saturating_mul(1 << attempt.min(6)).min(10_000);
    Duration::from_millis(rand::random_range(bound / 2..=bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies as the services answer them (shapes from azure-rest-api-specs examples and ARM's
    /// common error definition, specification/common-types/resource-management/v5/types.json).
    #[test]
    fn arm_error_bodies_are_read_verbatim_and_classified() {
        let in_use = r#"{"error":{"code":"InUseSubnetCannotBeDeleted","message":"Subnet s is in use by /subscriptions/x/.../ipConfigurations/ipconfig1 and cannot be deleted.","details":[]}}"#;
        let e = ArmError::from_body(400, in_use);
        assert_eq!(e.code, "InUseSubnetCannotBeDeleted");
        assert!(e.message.starts_with("Subnet s is in use"));
        assert!(!e.retryable());
        let err = e.into_error("deleting", "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/s");
        assert!(err.message.contains("deleting /subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/s: InUseSubnetCannotBeDeleted (400): Subnet s is in use"), "{}", err.message);
        assert!(!err.transient);

        let throttled = r#"{"error":{"code":"SubscriptionRequestsThrottled","message":"Number of 'write' requests for subscription exceeded."}}"#;
        assert!(ArmError::from_body(429, throttled).retryable());
        let busy = r#"{"error":{"code":"AnotherOperationInProgress","message":"Another operation on this or dependent resource is in progress."}}"#;
        assert!(ArmError::from_body(409, busy).retryable());
        assert!(!ArmError::from_body(409, r#"{"error":{"code":"RoleAssignmentExists","message":"The role assignment already exists."}}"#).retryable());
        assert!(ArmError::from_body(503, "<html>gateway</html>").retryable());
        let not_found = ArmError::from_body(
            404,
            r#"{"error":{"code":"ResourceGroupNotFound","message":"Resource group 'rg' could not be found."}}"#,
        );
        assert!(not_found.not_found());
        assert_eq!(not_found.message, "Resource group 'rg' could not be found.");
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        assert!(backoff(3) <= Duration::from_millis(1600));
    }
}
