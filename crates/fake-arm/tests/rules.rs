//! The fake holds ARM's rules: api-versions, missing groups, references, in-use deletes,
//! long-running operations, and the fault knobs.

use fake_arm::{Config, Server};
use serde_json::{Value, json};

const SUB: &str = "/subscriptions/00000000-0000-0000-0000-000000000001";
const NET: &str = "api-version=2024-05-01";

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth("t");
        if let Some(b) = body {
            r = r.json(&b);
        }
        let response = r.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        )
    }
    async fn put(&self, path: &str, body: Value) -> (u16, Value, reqwest::header::HeaderMap) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        let (s, b, _) = self.call(reqwest::Method::GET, path, None).await;
        (s, b)
    }
    async fn delete(&self, path: &str) -> (u16, Value) {
        let (s, b, _) = self.call(reqwest::Method::DELETE, path, None).await;
        (s, b)
    }
}

async fn start() -> (Server, Client) {
    let server = Server::start(
        0,
        Config {
            op_retry_after_s: 0,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let client = Client {
        http: reqwest::Client::new(),
        base: server.endpoint(),
    };
    (server, client)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn api_versions_and_groups_are_checked() {
    let (_server, c) = start().await;
    let vnet = format!("{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v");
    let (s, b) = c.get(&vnet).await;
    assert_eq!((s, code(&b)), (400, "MissingApiVersionParameter"));
    let (s, b) = c.get(&format!("{vnet}?api-version=2019-01-01")).await;
    assert_eq!((s, code(&b)), (400, "NoRegisteredProviderFound"));
    let (s, b) = c.get(&format!("{vnet}?{NET}")).await;
    assert_eq!((s, code(&b)), (404, "ResourceGroupNotFound"));
    assert_eq!(
        b["error"]["message"],
        "Resource group 'rg' could not be found."
    );
    let (s, ..) = c
        .put(
            &format!("{SUB}/resourceGroups/rg?api-version=2021-04-01"),
            json!({"location": "eastus"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, b) = c.get(&format!("{vnet}?{NET}")).await;
    assert_eq!((s, code(&b)), (404, "ResourceNotFound"));
    let (s, b) = c
        .get(&format!(
            "{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks?{NET}"
        ))
        .await;
    assert_eq!((s, b), (200, json!({ "value": [] })));
    let (s, _) = c.delete(&format!("{vnet}?{NET}")).await;
    assert_eq!(s, 204, "deleting what is not there is fine");
}

#[tokio::test]
async fn references_must_exist_and_in_use_objects_cannot_be_deleted() {
    let (server, c) = start().await;
    let rg = format!("{SUB}/resourceGroups/rg");
    c.put(
        &format!("{rg}?api-version=2021-04-01"),
        json!({"location": "eastus"}),
    )
    .await;
    let net = format!("{rg}/providers/Microsoft.Network");
    let subnet = format!("{net}/virtualNetworks/v/subnets/s");
    let nic = |ip: &str| {
        json!({ "location": "eastus", "properties": { "ipConfigurations": [
        { "name": "ipconfig1", "properties": { "subnet": { "id": subnet }, "publicIPAddress": { "id": ip } } } ] } })
    };
    let ip = format!("{net}/publicIPAddresses/ip");

    let (s, b, _) = c
        .put(&format!("{net}/networkInterfaces/n?{NET}"), nic(&ip))
        .await;
    assert_eq!((s, code(&b)), (400, "InvalidResourceReference"), "{b}");

    let (s, b, _) = c
        .put(
            &format!("{subnet}?{NET}"),
            json!({"properties": {"addressPrefix": "10.0.0.0/24"}}),
        )
        .await;
    assert_eq!((s, code(&b)), (404, "ParentResourceNotFound"));
    let (s, b, h) = c.put(&format!("{net}/virtualNetworks/v?{NET}"), json!({"location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}})).await;
    assert_eq!(s, 201);
    assert_eq!(b["properties"]["provisioningState"], "Updating");
    let operation = h["azure-asyncoperation"].to_str().unwrap().to_string();
    // A long-running operation: in progress at the first poll, done at the second.
    let path = operation.trim_start_matches(&c.base);
    assert_eq!(c.get(path).await.1["status"], "InProgress");
    assert_eq!(c.get(path).await.1["status"], "Succeeded");
    assert_eq!(
        c.get(&format!("{net}/virtualNetworks/v?{NET}")).await.1["properties"]["provisioningState"],
        "Succeeded"
    );

    c.put(
        &format!("{subnet}?{NET}"),
        json!({"properties": {"addressPrefix": "10.0.0.0/24"}}),
    )
    .await;
    c.put(&format!("{ip}?{NET}"), json!({"location": "eastus", "sku": {"name": "Standard"}, "properties": {"publicIPAllocationMethod": "Static"}})).await;
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let (s, b, _) = c
        .put(&format!("{net}/networkInterfaces/n?{NET}"), nic(&ip))
        .await;
    assert_eq!(s, 201, "{b}");
    assert!(b["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"].is_string());
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let (s, b, _) = c
        .put(&format!("{net}/networkInterfaces/other?{NET}"), nic(&ip))
        .await;
    assert_eq!(
        (s, code(&b)),
        (400, "PublicIPAddressInUse"),
        "one owner per public IP"
    );

    for (path, expected) in [
        (format!("{ip}?{NET}"), "PublicIPAddressCannotBeDeleted"),
        (format!("{subnet}?{NET}"), "InUseSubnetCannotBeDeleted"),
        (
            format!("{net}/virtualNetworks/v?{NET}"),
            "InUseSubnetCannotBeDeleted",
        ),
    ] {
        let (s, b) = c.delete(&path).await;
        assert_eq!((s, code(&b)), (400, expected), "{path}: {b}");
    }
    let subnet_body = c.get(&format!("{subnet}?{NET}")).await.1;
    assert!(
        subnet_body["properties"]["ipConfigurations"][0]["id"]
            .as_str()
            .unwrap()
            .ends_with("networkInterfaces/n")
    );

    let (s, _) = c.delete(&format!("{net}/networkInterfaces/n?{NET}")).await;
    assert_eq!(s, 202);
    assert_eq!(c.delete(&format!("{ip}?{NET}")).await.0, 202);
    assert_eq!(
        c.delete(&format!("{net}/virtualNetworks/v?{NET}")).await.0,
        202
    );
    assert_eq!(
        server.ids(),
        vec![rg.to_ascii_lowercase()],
        "the VNet took its subnet along"
    );
    let (s, _) = c.delete(&format!("{rg}?api-version=2021-04-01")).await;
    assert_eq!(s, 202);
    assert!(server.ids().is_empty());
}

#[tokio::test]
async fn faults_are_injected_in_arm_shape() {
    let (server, c) = start().await;
    server.set_config(Config {
        throttle_every: 2,
        retry_after_s: 3,
        ..Default::default()
    });
    let rgs = format!("{SUB}/resourcegroups?api-version=2021-04-01");
    assert_eq!(c.get(&rgs).await.0, 200);
    let (s, b, h) = c.call(reqwest::Method::GET, &rgs, None).await;
    assert_eq!((s, code(&b)), (429, "SubscriptionRequestsThrottled"));
    assert_eq!(h["retry-after"], "3");
    server.set_config(Config {
        fail_every: 1,
        ..Default::default()
    });
    let (s, b) = c.get(&rgs).await;
    assert_eq!((s, code(&b)), (500, "InternalServerError"));
    assert_eq!(server.stats().throttled, 1);
}

#[tokio::test]
async fn keyvault_secrets_keep_versions() {
    let server = Server::start(0, Config::default()).await.unwrap();
    let base = server.endpoint();
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{base}/secrets/{p}?api-version=7.4");
    let put = |value: &str| {
        http.put(url("db"))
            .bearer_auth("t")
            .json(&json!({ "value": value }))
            .send()
    };
    let first: Value = put("one").await.unwrap().json().await.unwrap();
    let second: Value = put("two").await.unwrap().json().await.unwrap();
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    assert!(id(&first).starts_with(&format!("{base}/secrets/db/")));
    assert_ne!(id(&first), id(&second));
    let get = |u: String, token: bool| {
        let r = http.get(u);
        if token { r.bearer_auth("t") } else { r }.send()
    };
    let latest = get(url("db"), true).await.unwrap();
    assert_eq!(latest.status(), 200);
    let latest: Value = latest.json().await.unwrap();
    assert_eq!(
        (latest["value"].as_str(), id(&latest)),
        (Some("two"), id(&second))
    );
    let version = id(&first).rsplit('/').next().unwrap().to_string();
    let old: Value = get(url(&format!("db/{version}")), true)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(old["value"], "one");
    assert_eq!(old["attributes"]["enabled"], true);
    let missing = get(url("nope"), true).await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "SecretNotFound");
    assert_eq!(get(url("db"), false).await.unwrap().status(), 401);
    let old_api = get(format!("{base}/secrets/db?api-version=2016-10-01"), true)
        .await
        .unwrap();
    assert_eq!(old_api.status(), 400);
}
