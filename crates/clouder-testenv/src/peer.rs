//! A peer process on a free port, started once per test process; a watchdog shell stops it when
//! the test process exits.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `command` (which gets the port as `{port}`), waits until the port answers, returns it.
/// `name` says what is missing when it cannot start.
pub fn shared(name: &str, command: &str) -> u16 {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let script = format!(
        "{} >/dev/null 2>&1 & p=$!; while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $p",
        command.replace("{port}", &port.to_string()),
        parent = std::process::id()
    );
    // The watchdog lives as long as the test process; it is never waited on.
    #[allow(clippy::zombie_processes)]
    let _watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .spawn()
        .expect(name);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{name} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    port
}
