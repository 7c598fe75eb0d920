//! Azurite's Blob service, one per test process: started on first use, stopped when the test
//! process exits. Installed by `scripts/peers.sh`.

use std::sync::OnceLock;

/// Azurite's well-known development account and its (public) key.
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The endpoint of this process's Azurite for [`ACCOUNT`]:
/// `http://127.0.0.1:PORT/devstoreaccount1`.
pub fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let dir = crate::registry::installed(
            "CLOUDER_TEST_AZURITE_DIR",
            "/var/tmp/clouder-peers/azurite",
            "node_modules/.bin/azurite-blob",
        );
        let data = tempfile::tempdir().expect("a scratch folder").keep();
        let port = crate::peer::shared(
            "azurite-blob",
            &format!(
                "{} --blobHost 127.0.0.1 --blobPort {{port}} --location {} --skipApiVersionCheck --silent",
                dir.join("node_modules/.bin/azurite-blob").display(),
                data.display()
            ),
        );
        format!("http://127.0.0.1:{port}/{ACCOUNT}")
    })
}
