//! The ARM client against the fake server: long-running PUT and DELETE are waited for,
//! throttling is retried after `Retry-After`, and failures keep ARM's code and message.

use clouder_azure::arm::Arm;
use clouder_azure::auth::Credential;
use clouder_engine::calls::CallStats;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

const RG: &str = "/subscriptions/00000000-0000-0000-0000-000000000002/resourceGroups/rg";
const NET: &str = "2024-05-01";

#[tokio::test(flavor = "multi_thread")]
async fn writes_wait_for_their_operations_and_retry_throttling() {
    let server = fake_arm::Server::start(
        0,
        fake_arm::Config {
            op_retry_after_s: 0,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let stats = Arc::new(CallStats::default());
    let arm = Arm::new(
        &server.endpoint(),
        Credential::Static("t".into()),
        stats.clone(),
    );

    assert_eq!(arm.get(RG, "2021-04-01").await.unwrap(), None);
    assert_eq!(
        arm.list(
            &format!("{RG}/providers/Microsoft.Network/virtualNetworks"),
            NET
        )
        .await
        .unwrap(),
        Vec::<serde_json::Value>::new()
    );
    arm.put(RG, "2021-04-01", &json!({ "location": "eastus" }))
        .await
        .unwrap();

    server.set_config(fake_arm::Config {
        throttle_every: 3,
        retry_after_s: 1,
        op_retry_after_s: 0,
        ..Default::default()
    });
    let vnet = format!("{RG}/providers/Microsoft.Network/virtualNetworks/v");
    let started = Instant::now();
    let body = arm
        .put(&vnet, NET, &json!({ "location": "eastus", "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] } } }))
        .await
        .unwrap();
    assert_eq!(
        body["properties"]["provisioningState"], "Succeeded",
        "the final GET after the operation"
    );
    assert!(server.stats().throttled >= 1);
    assert!(
        started.elapsed().as_secs_f64() >= 1.0,
        "Retry-After was honoured"
    );
    assert!(stats.snapshot().throttled >= 1);
    assert_eq!(
        stats.snapshot().mutating,
        2,
        "a write counts once however often it was retried"
    );

    server.set_config(fake_arm::Config {
        op_retry_after_s: 0,
        ..Default::default()
    });
    let subnet = format!("{vnet}/subnets/s");
    arm.put(
        &subnet,
        NET,
        &json!({ "properties": { "addressPrefix": "10.0.0.0/24" } }),
    )
    .await
    .unwrap();
    let nic = format!("{RG}/providers/Microsoft.Network/networkInterfaces/n");
    arm.put(&nic, NET, &json!({ "location": "eastus", "properties": { "ipConfigurations": [{ "name": "c", "properties": { "subnet": { "id": subnet } } }] } }))
        .await
        .unwrap();
    let refused = arm.delete(&subnet, NET).await.unwrap_err();
    assert!(!refused.transient);
    assert!(
        refused.message.starts_with(&format!(
            "deleting {subnet}: InUseSubnetCannotBeDeleted (400): "
        )),
        "{}",
        refused.message
    );
    arm.delete(&nic, NET).await.unwrap();
    arm.delete(&vnet, NET).await.unwrap();
    arm.delete(RG, "2021-04-01").await.unwrap();
    assert!(server.ids().is_empty());
}
