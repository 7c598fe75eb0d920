//! The user's Secret on testkube: names, sizes, unchanged writes, rotation from moto's Secrets
//! Manager and SSM and from the fake Key Vault, and the rollout of consumers.

use crate::support::{aws, testkube, unique};
use clouder_userdata::Error;
use clouder_userdata::podspec::{RuntimeUser, runtime_pod_patch};
use clouder_userdata::secrets::source::{Fetched, KEYVAULT_TOKEN_ENV, Source};
use clouder_userdata::secrets::store::{Outcome, RESTART_LABEL, REVISION_ANNOTATION, SecretStore};
use clouder_userdata::secrets::{SECRET_NAME, SIZE_LIMIT, SecretValue};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, PostParams};

fn stdin_value(v: &str) -> Fetched {
    Fetched {
        value: SecretValue::new(v.as_bytes().to_vec()),
        version: None,
    }
}

async fn secret(client: &kube::Client, ns: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(SECRET_NAME)
        .await
        .unwrap()
}

/// A Deployment whose pod spec comes from `runtime_pod_patch` (so it consumes the Secret when
/// `secrets` is not empty).
async fn deployment(client: &kube::Client, ns: &str, name: &str, secrets: &[String]) {
    let patch = runtime_pod_patch(&RuntimeUser {
        container: "app",
        secrets,
        ..Default::default()
    });
    let mut spec = patch.spec;
    spec.containers[0].image = Some("busybox".into());
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
}

/// A runtime pod using API_TOKEN; `restart`: it asks to be restarted on a change.
async fn runtime_pod(client: &kube::Client, ns: &str, name: &str, restart: bool) {
    let secrets = ["API_TOKEN".to_string()];
    let patch = runtime_pod_patch(&RuntimeUser {
        container: "app",
        secrets: &secrets,
        ..Default::default()
    });
    let mut spec = patch.spec;
    spec.containers[0].image = Some("busybox".into());
    let labels = if restart {
        serde_json::json!({RESTART_LABEL: "restart"})
    } else {
        serde_json::json!({})
    };
    let pod: Pod = serde_json::from_value(
        serde_json::json!({"metadata": {"name": name, "labels": labels}, "spec": spec}),
    )
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

async fn revision(client: &kube::Client, ns: &str, name: &str) -> Option<String> {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap();
    d.spec
        .template
        .metadata?
        .annotations?
        .get(REVISION_ANNOTATION)
        .cloned()
}

#[tokio::test]
async fn set_creates_updates_and_leaves_unchanged_values_alone() {
    let (_kube, client) = testkube(false).await;
    let ns = unique("user-a");
    let store = SecretStore::new(client.clone(), &ns);

    let (outcome, _) = store
        .set("API_TOKEN", &Source::Stdin, stdin_value("one"))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Created);
    deployment(&client, &ns, "consumer", &["API_TOKEN".into()]).await;
    deployment(&client, &ns, "bystander", &[]).await;
    let first = secret(&client, &ns).await.unwrap();
    assert_eq!(first.data.as_ref().unwrap()["API_TOKEN"].0, b"one");

    let (outcome, rolled) = store
        .set("API_TOKEN", &Source::Stdin, stdin_value("one"))
        .await
        .unwrap();
    assert_eq!((outcome, rolled.len()), (Outcome::Unchanged, 0));
    let again = secret(&client, &ns).await.unwrap();
    assert_eq!(
        again.metadata.resource_version, first.metadata.resource_version,
        "no write"
    );

    runtime_pod(&client, &ns, "warm-1", true).await;
    runtime_pod(&client, &ns, "warm-2", false).await;
    let (outcome, rolled) = store
        .set("API_TOKEN", &Source::Stdin, stdin_value("two"))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Updated);
    assert_eq!(rolled, ["deployment/consumer", "pod/warm-1"]);
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    assert!(
        pods.get_opt("warm-1").await.unwrap().is_none(),
        "restarted: its owner makes it again"
    );
    assert!(
        pods.get_opt("warm-2").await.unwrap().is_some(),
        "without the label: values refresh as files"
    );
    assert!(revision(&client, &ns, "consumer").await.is_some());
    assert_eq!(revision(&client, &ns, "bystander").await, None);

    let ls = store.ls().await.unwrap();
    assert_eq!(ls.len(), 1);
    assert_eq!(
        (
            ls[0].name.as_str(),
            ls[0].source.as_str(),
            ls[0].version.as_str()
        ),
        ("API_TOKEN", "stdin", "2")
    );
    let listed = serde_json::to_string(&ls).unwrap();
    assert!(
        !listed.contains("two") && !listed.contains("one"),
        "ls shows no values: {listed}"
    );

    assert!(store.rm("API_TOKEN").await.unwrap());
    assert!(!store.rm("API_TOKEN").await.unwrap());
    assert!(store.ls().await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_names_and_sizes_change_nothing() {
    let (_kube, client) = testkube(false).await;
    let ns = unique("user-b");
    let store = SecretStore::new(client.clone(), &ns);
    for bad in [
        "1ABC",
        "A-B",
        "",
        "PATH",
        "HOME",
        "KUBERNETES_SERVICE_HOST",
        "CLOUDER_X",
        "é",
    ] {
        let r = store.set(bad, &Source::Stdin, stdin_value("v")).await;
        assert!(
            matches!(&r, Err(Error::Invalid(m)) if m.contains(&format!("`{bad}`"))),
            "{bad}: {r:?}"
        );
    }
    assert!(secret(&client, &ns).await.is_none(), "nothing written");

    store
        .set("SMALL", &Source::Stdin, stdin_value("v"))
        .await
        .unwrap();
    let before = secret(&client, &ns)
        .await
        .unwrap()
        .metadata
        .resource_version;
    let big = Fetched {
        value: SecretValue::new(vec![b'x'; SIZE_LIMIT]),
        version: None,
    };
    let r = store.set("BIG", &Source::Stdin, big).await;
    assert!(
        matches!(&r, Err(Error::Invalid(m)) if m.contains("BIG") && m.contains("size limit")),
        "{r:?}"
    );
    let after = secret(&client, &ns).await.unwrap();
    assert_eq!(after.metadata.resource_version, before);
    assert!(!after.data.unwrap().contains_key("BIG"));
}

#[tokio::test]
async fn aws_secrets_manager_and_ssm_rotate_through_sync() {
    let config = aws().await;
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let ssm = aws_sdk_ssm::Client::new(&config);
    let sm_name = unique("db-password");
    let arn = sm
        .create_secret()
        .name(&sm_name)
        .secret_string("sm-one")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let param = format!("/{}", unique("team/api-key"));
    ssm.put_parameter()
        .name(&param)
        .value("ssm-one")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();

    let (_kube, client) = testkube(true).await;
    let ns = unique("user-c");
    let store = SecretStore::new(client.clone(), &ns);
    for (name, source) in [
        ("DB_PASSWORD", Source::AwsSecret(arn.clone())),
        ("API_KEY", Source::Ssm(param.clone())),
    ] {
        let fetched = source.fetch(&mut std::io::empty()).await.unwrap();
        assert_eq!(
            store.set(name, &source, fetched).await.unwrap().0,
            Outcome::Created
        );
    }
    deployment(
        &client,
        &ns,
        "app",
        &["API_KEY".into(), "DB_PASSWORD".into()],
    )
    .await;
    let versions = |ls: &[clouder_userdata::secrets::store::Entry]| {
        ls.iter()
            .map(|e| (e.name.clone(), e.version.clone()))
            .collect::<Vec<_>>()
    };
    let before = versions(&store.ls().await.unwrap());
    assert_eq!(before[0], ("API_KEY".into(), "1".into()));

    // Nothing changed at the sources: no write, no rollout.
    let rv = secret(&client, &ns)
        .await
        .unwrap()
        .metadata
        .resource_version;
    let report = store.sync().await.unwrap();
    assert!(
        report.updated.is_empty() && report.rolled_out.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        secret(&client, &ns)
            .await
            .unwrap()
            .metadata
            .resource_version,
        rv
    );

    sm.put_secret_value()
        .secret_id(&arn)
        .secret_string("sm-two")
        .send()
        .await
        .unwrap();
    ssm.put_parameter()
        .name(&param)
        .value("ssm-two")
        .overwrite(true)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let revision_before = revision(&client, &ns, "app").await;
    let report = store.sync().await.unwrap();
    assert_eq!(
        report.updated,
        vec!["API_KEY".to_string(), "DB_PASSWORD".to_string()]
    );
    assert_eq!(report.rolled_out, vec!["deployment/app".to_string()]);
    assert_ne!(revision(&client, &ns, "app").await, revision_before);
    let data = secret(&client, &ns).await.unwrap().data.unwrap();
    assert_eq!(
        (
            data["DB_PASSWORD"].0.as_slice(),
            data["API_KEY"].0.as_slice()
        ),
        (&b"sm-two"[..], &b"ssm-two"[..])
    );
    let after = versions(&store.ls().await.unwrap());
    assert_eq!(after[0], ("API_KEY".into(), "2".into()));
    assert_ne!(after[1].1, before[1].1, "Secrets Manager's VersionId moved");

    let missing = Source::Ssm("/no/such/parameter".into())
        .fetch(&mut std::io::empty())
        .await;
    assert!(
        matches!(&missing, Err(Error::Failed(m)) if m.contains("/no/such/parameter")),
        "{missing:?}"
    );
}

#[tokio::test]
async fn azure_key_vault_rotates_through_sync() {
    let vault = fake_arm::Server::start(0, fake_arm::Config::default())
        .await
        .unwrap();
    // SAFETY: every test that reads it wants this value.
    unsafe { std::env::set_var(KEYVAULT_TOKEN_ENV, "test-token") };
    let http = reqwest::Client::new();
    let name = unique("storage-key");
    let put = |value: &str| {
        http.put(format!(
            "{}/secrets/{name}?api-version=7.4",
            vault.endpoint()
        ))
        .bearer_auth("t")
        .json(&serde_json::json!({"value": value}))
        .send()
    };
    put("kv-one").await.unwrap().error_for_status().unwrap();

    let (_kube, client) = testkube(false).await;
    let ns = unique("user-d");
    let store = SecretStore::new(client.clone(), &ns);
    let source = Source::AzureKeyVault(format!("{}/secrets/{name}", vault.endpoint()));
    let fetched = source.fetch(&mut std::io::empty()).await.unwrap();
    let first_version = fetched.version.clone().unwrap();
    store.set("STORAGE_KEY", &source, fetched).await.unwrap();
    assert!(store.sync().await.unwrap().updated.is_empty());

    put("kv-two").await.unwrap().error_for_status().unwrap();
    assert_eq!(
        store.sync().await.unwrap().updated,
        vec!["STORAGE_KEY".to_string()]
    );
    let entry = &store.ls().await.unwrap()[0];
    assert_ne!(entry.version, first_version);
    assert_eq!(
        secret(&client, &ns).await.unwrap().data.unwrap()["STORAGE_KEY"].0,
        b"kv-two"
    );

    let missing = Source::AzureKeyVault(format!("{}/secrets/absent", vault.endpoint()))
        .fetch(&mut std::io::empty())
        .await;
    assert!(
        matches!(&missing, Err(Error::Failed(m)) if m.contains("SecretNotFound")),
        "{missing:?}"
    );
}
