//! Image validation against a real docker-registry holding images built here: every rule
//! passes and fails, and the access log proves that no layer was ever fetched.

mod support;

use clouder_byoc::oci::{Credentials, OciError};
use clouder_byoc::validate::{Access, Rules, ValidateError, validate};
use clouder_testenv::RegistryPeer;
use clouder_testenv::images::Pusher;
use serde_json::json;

const INSECURE: Access = Access {
    credentials: None,
    insecure: true,
};

/// Plain HTTP, as `user:password`.
fn as_user(username: &str, password: &str) -> Access {
    Access {
        credentials: Some(Credentials {
            username: username.into(),
            password: password.into(),
        }),
        insecure: true,
    }
}

fn rules(platform: &str) -> Rules {
    Rules {
        platform: platform.parse().unwrap(),
        ..Rules::default()
    }
}

fn failed(report: &clouder_byoc::validate::Report) -> Vec<&str> {
    report.failures.iter().map(|f| f.rule).collect()
}

/// No request for any of `layers` reached the registry, and only config blobs were read.
fn assert_no_layer_fetched(registry: &RegistryPeer, layers: &[String]) {
    for layer in layers {
        let fetched = registry.requests("GET", layer) + registry.requests("HEAD", layer);
        assert_eq!(fetched, 0, "layer {layer} was fetched:\n{}", registry.log());
    }
}

#[tokio::test]
async fn a_multi_platform_index_is_resolved_to_the_asked_platform() {
    let registry = RegistryPeer::start(None);
    let push = Pusher::new(&registry.host(), "team/app", None);
    let run = json!({"Entrypoint": ["/app"], "User": "1000"});
    let (amd, mut layers) = push
        .image("amd64", ("linux", "amd64", None), run.clone(), &[2048])
        .await;
    let (arm, arm_layers) = push
        .image("arm64", ("linux", "arm64", Some("v8")), run, &[4096, 1024])
        .await;
    layers.extend(arm_layers);
    let index = push
        .index(
            "1.0",
            &[
                (amd.clone(), "linux", "amd64", None),
                (arm.clone(), "linux", "arm64", Some("v8")),
            ],
        )
        .await;
    let image = format!("{}/team/app:1.0", registry.host());

    let report = validate(&image, &rules("linux/amd64"), &INSECURE)
        .await
        .unwrap();
    assert!(report.fits(), "{:?}", report.failures);
    assert_eq!(report.image.digest, index);
    assert_eq!(report.image.manifest_digest, amd);
    assert_eq!(
        report.image.pinned,
        format!("{}/team/app@{index}", registry.host())
    );
    assert_eq!(report.image.platforms, ["linux/amd64", "linux/arm64/v8"]);
    assert_eq!(report.image.compressed_size, 2048);

    let report = validate(&image, &rules("linux/arm64"), &INSECURE)
        .await
        .unwrap();
    assert!(report.fits(), "{:?}", report.failures);
    assert_eq!(report.image.manifest_digest, arm);
    assert_eq!(
        (
            report.image.architecture.as_str(),
            report.image.variant.as_deref()
        ),
        ("arm64", Some("v8"))
    );
    assert_eq!(report.image.compressed_size, 5120);
    assert_eq!(report.image.layers, 2);

    // A platform the index does not offer: named, with what it offers.
    let err = validate(&image, &rules("linux/s390x"), &INSECURE)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no linux/s390x image") && text.contains("linux/amd64, linux/arm64/v8"),
        "{text}"
    );
    // Pinned by digest works too.
    let pinned = format!("{}/team/app@{index}", registry.host());
    let report = validate(&pinned, &rules("linux/amd64"), &INSECURE)
        .await
        .unwrap();
    assert_eq!(report.image.digest, index);

    assert_no_layer_fetched(&registry, &layers);
}

#[tokio::test]
async fn every_failed_rule_is_listed_and_each_passes_when_met() {
    let registry = RegistryPeer::start(None);
    let push = Pusher::new(&registry.host(), "bare", None);
    // No entrypoint, no cmd, no user, arm64, three 1 MiB layers, one label.
    let (_, layers) = push
        .image(
            "v1",
            ("linux", "arm64", None),
            json!({"Labels": {"org.opencontainers.image.source": "https://example.com/bare"}}),
            &[1 << 20, 1 << 20, 1 << 20],
        )
        .await;
    let image = format!("{}/bare:v1", registry.host());
    let strict = Rules {
        platform: "linux/amd64".parse().unwrap(),
        max_size: Some(2 << 20),
        required_labels: vec![
            "org.opencontainers.image.source".into(),
            "com.example.team".into(),
        ],
        non_root: true,
    };
    let report = validate(&image, &strict, &INSECURE).await.unwrap();
    assert_eq!(
        failed(&report),
        ["platform", "entrypoint", "non-root", "max-size", "label"]
    );
    let messages: Vec<&str> = report.failures.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(messages[0], "the image is linux/arm64, not linux/amd64");
    assert_eq!(messages[2], "the image runs as no user (root)");
    assert_eq!(
        messages[3],
        "compressed size 3.0 MiB is over the limit 2.0 MiB"
    );
    assert_eq!(messages[4], "required label `com.example.team` is missing");
    assert_eq!(report.image.compressed_size, 3 << 20);

    // The same image meets rules it does satisfy.
    let lenient = Rules {
        platform: "linux/arm64".parse().unwrap(),
        max_size: Some(4 << 20),
        required_labels: vec!["org.opencontainers.image.source".into()],
        non_root: false,
    };
    let report = validate(&image, &lenient, &INSECURE).await.unwrap();
    assert_eq!(failed(&report), ["entrypoint"]);

    // An image that runs something, as a user, passes the strict rules but the size.
    let (_, more) = push
        .image(
            "v2",
            ("linux", "amd64", None),
            json!({"Cmd": ["serve"], "User": "app", "ExposedPorts": {"8443/tcp": {}, "80/tcp": {}},
                   "Labels": {"org.opencontainers.image.source": "x", "com.example.team": "y"}}),
            &[3 << 20],
        )
        .await;
    let report = validate(&format!("{}/bare:v2", registry.host()), &strict, &INSECURE)
        .await
        .unwrap();
    assert_eq!(failed(&report), ["max-size"]);
    assert_eq!(report.image.cmd, ["serve"]);
    assert_eq!(report.image.user, "app");
    assert_eq!(report.image.exposed_ports, ["80/tcp", "8443/tcp"]);
    let report = validate(
        &format!("{}/bare:v2", registry.host()),
        &Rules {
            max_size: Some(3 << 20),
            ..strict
        },
        &INSECURE,
    )
    .await
    .unwrap();
    assert!(report.fits(), "{:?}", report.failures);

    assert_no_layer_fetched(&registry, &[layers, more].concat());
    // Only the configs were read as blobs: one per validation.
    assert_eq!(registry.requests("GET", "/blobs/"), 4, "{}", registry.log());
}

#[tokio::test]
async fn bad_input_is_named_clearly() {
    let registry = RegistryPeer::start(None);
    let push = Pusher::new(&registry.host(), "app", None);
    push.image("v1", ("linux", "amd64", None), json!({"Cmd": ["x"]}), &[16])
        .await;

    let err = validate("Not/A Reference", &Rules::default(), &INSECURE)
        .await
        .unwrap_err();
    assert!(matches!(err, ValidateError::Reference(_)), "{err}");

    let missing = format!("{}/app:v9", registry.host());
    let err = validate(&missing, &Rules::default(), &INSECURE)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ValidateError::Registry(OciError::NotFound { .. })),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("{missing}: not found in the registry")
    );

    let port = clouder_testenv::registry::free_port();
    let err = validate(
        &format!("localhost:{port}/app:v1"),
        &Rules::default(),
        &INSECURE,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("registry localhost:{port} is unreachable")),
        "{err}"
    );

    // A plain-HTTP registry is refused unless --insecure-registry is asked for.
    let err = validate(
        &format!("{}/app:v1", registry.host()),
        &Rules::default(),
        &Access::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ValidateError::Registry(OciError::Unreachable { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn a_registry_that_requires_auth_is_refused_without_credentials() {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let registry = RegistryPeer::start(Some(&format!("ci:{hash}\n")));
    let push = Pusher::new(&registry.host(), "private/app", Some(("ci", "s3cret")));
    push.image("v1", ("linux", "amd64", None), json!({"Cmd": ["x"]}), &[16])
        .await;
    let image = format!("{}/private/app:v1", registry.host());

    let err = validate(&image, &Rules::default(), &INSECURE)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ValidateError::Registry(OciError::Auth { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains("CLOUDER_REGISTRY_USERNAME"),
        "{err}"
    );

    let wrong = as_user("ci", "nope");
    let err = validate(&image, &Rules::default(), &wrong)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");

    let right = as_user("ci", "s3cret");
    let report = validate(&image, &Rules::default(), &right).await.unwrap();
    assert!(report.fits());
}

#[tokio::test]
async fn bearer_tokens_are_fetched_from_the_realm_docker_hub_style() {
    let peer = support::token::TokenRegistry::start().await;
    let host = peer.registry.host();
    for repo in ["public/app", "private/app"] {
        Pusher::with_authorization(&host, repo, Some(peer.push_token(repo)))
            .image("v1", ("linux", "amd64", None), json!({"Cmd": ["x"]}), &[64])
            .await;
    }
    // Anonymous: the realm grants a pull token for a public repository.
    let report = validate(
        &format!("{host}/public/app:v1"),
        &Rules::default(),
        &INSECURE,
    )
    .await
    .unwrap();
    assert!(report.fits());
    let asked = peer.asked.lock().unwrap().clone();
    assert_eq!(
        asked.len(),
        1,
        "one token for the manifest and the config: {asked:?}"
    );
    assert_eq!(asked[0].0["scope"], "repository:public/app:pull");
    assert_eq!(asked[0].0["service"], support::token::SERVICE);
    assert!(!asked[0].1, "asked anonymously");

    // A private repository: refused anonymously, granted with the user's credentials.
    let image = format!("{host}/private/app:v1");
    let err = validate(&image, &Rules::default(), &INSECURE)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ValidateError::Registry(OciError::Auth { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("token service"), "{err}");
    let (user, password) = support::token::USER;
    let access = as_user(user, password);
    let report = validate(&image, &Rules::default(), &access).await.unwrap();
    assert_eq!(report.image.cmd, ["x"]);
    assert!(
        peer.asked.lock().unwrap().last().unwrap().1,
        "with credentials"
    );
}
