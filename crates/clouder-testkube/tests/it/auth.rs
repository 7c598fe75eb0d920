//! Bearer tokens: none or unknown is 401, the read-only token may only read.

use crate::common::{start, status_of};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn missing_or_unknown_token_is_unauthorized() {
    let (kube, _) = start().await;
    let kc = kube::config::Kubeconfig::from_yaml(kube.kubeconfig_yaml()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.auth_info = Default::default();
    let anonymous = kube::Client::try_from(config.clone()).unwrap();
    let s = status_of(
        Api::<ConfigMap>::all(anonymous)
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(
        (s.code, s.reason.as_str(), s.message.as_str()),
        (401, "Unauthorized", "Unauthorized")
    );

    config.auth_info.token = Some("not-a-token".to_string().into());
    let stranger = kube::Client::try_from(config).unwrap();
    assert_eq!(
        status_of(
            Api::<ConfigMap>::all(stranger)
                .list(&ListParams::default())
                .await
        )
        .code,
        401
    );
}

#[tokio::test]
async fn read_only_token_reads_but_cannot_write() {
    let (kube, _) = start().await;
    let reader = kube.read_only_client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(reader, "default");
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    let s = status_of(api.create(&PostParams::default(), &cm).await);
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        "configmaps is forbidden: User \"reader\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
}
