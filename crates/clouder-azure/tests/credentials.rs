//! Token sources other than a static token, against local servers speaking the documented
//! protocols (no Azure endpoint is reachable from here): the instance metadata service of a VM
//! with a managed identity (learn.microsoft.com/entra/identity/managed-identities-azure-
//! resources/how-to-use-vm-token: `Metadata: true`, `expires_in` as a string, 400 with
//! `Identity not found` for an unknown user-assigned identity) and the Entra token endpoint
//! taking a workload identity's federated token as client assertion.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use clouder_azure::auth::Credential;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

/// IMDS for a VM with one user-assigned identity, `uai-client`; counts token requests.
async fn imds(requests: Arc<AtomicUsize>) -> String {
    let router = Router::new()
        .route(
            "/metadata/identity/oauth2/token",
            get(
                |State(requests): State<Arc<AtomicUsize>>,
                 headers: HeaderMap,
                 Query(q): Query<HashMap<String, String>>| async move {
                    requests.fetch_add(1, Ordering::SeqCst);
                    let bad = |error: &str, description: &str| {
                        (
                            StatusCode::BAD_REQUEST,
                            json!({"error": error, "error_description": description}).to_string(),
                        )
                    };
                    if headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
                        return bad("bad_request_102", "Required metadata header not specified");
                    }
                    if q.get("api-version").map(String::as_str) != Some("2018-02-01")
                        || q.get("resource").map(String::as_str)
                            != Some("https://management.azure.com/")
                    {
                        return bad("invalid_request", "Invalid api-version or resource");
                    }
                    let who = match q.get("client_id").map(String::as_str) {
                        None => "system",
                        Some("uai-client") => "uai",
                        Some(_) => return bad("invalid_request", "Identity not found"),
                    };
                    let body = json!({
                        "access_token": format!("mi-token-{who}"),
                        "expires_in": "86399", "expires_on": "1893456000",
                        "resource": "https://management.azure.com/", "token_type": "Bearer",
                    });
                    (StatusCode::OK, body.to_string())
                },
            ),
        )
        .with_state(requests);
    serve(router).await
}

fn vars(pairs: &[(&'static str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<&str, String> = pairs.iter().cloned().collect();
    move |name| map.get(name).cloned()
}

fn az_installed() -> bool {
    std::process::Command::new("az")
        .arg("version")
        .output()
        .is_ok()
}

#[tokio::test]
async fn a_vm_managed_identity_gives_tokens_cached_for_their_lifetime() {
    let requests = Arc::new(AtomicUsize::new(0));
    let endpoint = imds(requests.clone()).await;
    let http = reqwest::Client::new();

    let system = Credential::discover_from(vars(&[(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        endpoint.clone(),
    )]))
    .await
    .unwrap();
    assert!(
        matches!(system, Credential::ManagedIdentity { .. }),
        "{system:?}"
    );
    assert_eq!(system.token(&http).await.unwrap(), "mi-token-system");
    assert_eq!(system.token(&http).await.unwrap(), "mi-token-system");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "the probe's token is reused"
    );

    // AZURE_CLIENT_ID without a secret picks a user-assigned identity.
    let user = Credential::discover_from(vars(&[
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", endpoint.clone()),
        ("AZURE_CLIENT_ID", "uai-client".into()),
    ]))
    .await
    .unwrap();
    assert_eq!(user.token(&http).await.unwrap(), "mi-token-uai");
}

#[tokio::test]
async fn without_a_usable_identity_the_error_says_what_each_source_said() {
    if az_installed() {
        println!("SKIPPED: the Azure CLI is installed here and would answer instead");
        return;
    }
    let endpoint = imds(Arc::default()).await;
    let err = Credential::discover_from(vars(&[
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", endpoint),
        ("AZURE_CLIENT_ID", "someone-else".into()),
    ]))
    .await
    .unwrap_err();
    assert!(
        err.contains("Identity not found") && err.contains("az"),
        "{err}"
    );

    // No metadata service at all (not on Azure): said so, quickly.
    let closed = format!(
        "http://127.0.0.1:{}",
        clouder_testenv::registry::free_port()
    );
    let started = std::time::Instant::now();
    let err = Credential::discover_from(vars(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", closed)]))
        .await
        .unwrap_err();
    assert!(
        err.contains("managed identity: requesting a token"),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn a_workload_identity_exchanges_its_federated_token() {
    let router = Router::new().route(
        "/{tenant}/oauth2/v2.0/token",
        post(
            |Path(tenant): Path<String>, body: String| async move {
                // A form body, read as a URL's query.
                let form: HashMap<String, String> =
                    reqwest::Url::parse(&format!("http://form/?{body}"))
                        .unwrap()
                        .query_pairs()
                        .into_owned()
                        .collect();
                let ok = tenant == "tenant-1"
                    && form.get("client_assertion_type").map(String::as_str)
                        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                    && form.get("client_assertion").map(String::as_str) == Some("federated.jwt")
                    && form.get("scope").map(String::as_str)
                        == Some("https://management.azure.com/.default");
                let body = if ok {
                    json!({"access_token": "wi-token", "expires_in": 3599, "token_type": "Bearer"})
                } else {
                    json!({"error": "invalid_client", "error_description": "AADSTS700211: No matching federated identity record found"})
                };
                (if ok { StatusCode::OK } else { StatusCode::BAD_REQUEST }, body.to_string())
            },
        ),
    );
    let authority = serve(router).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "federated.jwt\n").unwrap();
    let env = |file: &std::path::Path| {
        vars(&[
            ("AZURE_AUTHORITY_HOST", authority.clone()),
            ("AZURE_TENANT_ID", "tenant-1".into()),
            ("AZURE_CLIENT_ID", "app-1".into()),
            ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
        ])
    };
    let http = reqwest::Client::new();
    let credential = Credential::discover_from(env(&file)).await.unwrap();
    assert!(
        matches!(credential, Credential::Federated { .. }),
        "{credential:?}"
    );
    assert_eq!(credential.token(&http).await.unwrap(), "wi-token");

    std::fs::write(&file, "someone-elses.jwt").unwrap();
    let refused = Credential::discover_from(env(&file)).await.unwrap();
    let err = refused.token(&http).await.unwrap_err();
    assert!(err.contains("AADSTS700211"), "{err}");
}
