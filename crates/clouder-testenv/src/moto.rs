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

/// A second moto server that serves one request at a time, for S3 holding shared state: moto's
/// threaded server checks a conditional write (`If-None-Match: *`, `If-Match`) and writes in two
/// steps, so two racing writes are sometimes both accepted, which S3 never does. Served from one
/// thread, each conditional write is atomic, as on S3. Point the SDK's S3 at it with
/// `AWS_ENDPOINT_URL_S3`.
pub fn serial_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        // A deep listen backlog: many writers connect at once to the one serving thread.
        let serve = "from werkzeug.serving import make_server; \
             from moto.server import DomainDispatcherApplication, create_backend_app; \
             s = make_server('127.0.0.1', {port}, DomainDispatcherApplication(create_backend_app), \
             threaded=False); s.socket.listen(256); s.serve_forever()";
        let port = crate::peer::shared(
            "moto (pip install 'moto[server]')",
            &format!("python3 -c \"{serve}\""),
        );
        format!("http://127.0.0.1:{port}")
    })
}
