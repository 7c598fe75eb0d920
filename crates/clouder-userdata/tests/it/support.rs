//! Peers for the tests: the moto server (one per test binary), testkube (one per test).

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The moto server, started on first use and stopped when the test process exits (a watchdog
/// shell kills it once its parent is gone). Points the AWS SDK at it.
pub fn moto() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let port = free_port();
        let script = format!(
            "moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
             while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $m",
            parent = std::process::id()
        );
        // The watchdog lives as long as the test process; it is never waited on.
        #[allow(clippy::zombie_processes)]
        let _watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .spawn()
            .expect("moto_server (pip install 'moto[server]')");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let endpoint = format!("http://127.0.0.1:{port}");
        // SAFETY: set once, before any SDK client reads them; every test wants the same values.
        unsafe {
            std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
            std::env::set_var("AWS_REGION", REGION);
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        }
        endpoint
    })
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
