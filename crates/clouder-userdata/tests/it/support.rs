//! Peers for the tests: the moto server (one per test binary), testkube (one per test).

use std::sync::OnceLock;

pub const REGION: &str = "us-east-1";

/// The moto server, with the AWS SDK pointed at it.
pub fn moto() -> &'static str {
    static POINTED: OnceLock<()> = OnceLock::new();
    let endpoint = clouder_testenv::moto::endpoint();
    POINTED.get_or_init(|| {
        // SAFETY: set once, before any SDK client reads them; every test wants the same values.
        unsafe {
            std::env::set_var("AWS_ENDPOINT_URL", endpoint);
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
            std::env::set_var("AWS_REGION", REGION);
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        }
    });
    endpoint
}

pub async fn aws() -> aws_config::SdkConfig {
    moto();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .load()
        .await
}

pub async fn testkube(controllers: bool) -> (clouder_testkube::TestKube, kube::Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kube = if controllers {
        clouder_testkube::TestKube::start_with_controllers().await
    } else {
        clouder_testkube::TestKube::start().await
    }
    .expect("testkube starts");
    let client = kube.client().await.expect("admin client");
    (kube, client)
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        uuid::Uuid::new_v4().simple().to_string().get(..8).unwrap()
    )
}
