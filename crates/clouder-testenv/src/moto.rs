//! The moto server (AWS), one per test process: started on first use, stopped when the test
//! process exits.

use std::sync::OnceLock;

/// The endpoint (`http://127.0.0.1:PORT`) of this process's moto server.
pub fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let port = crate::peer::shared(
            "moto_server (pip install 'moto[server]')",
            "moto_server -H 127.0.0.1 -p {port}",
        );
        format!("http://127.0.0.1:{port}")
    })
}
