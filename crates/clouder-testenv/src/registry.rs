//! Debian's docker-registry (distribution 2.8) on a free port, as `scripts/peers.sh` installs it,
//! with its access log in a file: the proof of what a client asked for.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `dir` from `env` (or `default`) once it holds `probe`; tells how to install it otherwise.
pub fn installed(env: &str, default: &str, probe: &str) -> PathBuf {
    let dir = PathBuf::from(std::env::var(env).unwrap_or_else(|_| default.to_string()));
    assert!(
        dir.join(probe).exists(),
        "{} is missing: run scripts/peers.sh (or set {env})",
        dir.join(probe).display()
    );
    dir
}

pub fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} was not ready within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A docker-registry on a free port, its access log in a file; stopped when dropped.
pub struct RegistryPeer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl RegistryPeer {
    /// Starts a registry; with `htpasswd`, it requires basic authentication.
    pub fn start(htpasswd: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let auth = htpasswd.map(|htpasswd| {
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, htpasswd).unwrap();
            format!(
                "auth: {{htpasswd: {{realm: test, path: {}}}}}\n",
                file.display()
            )
        });
        Self::start_in(dir, auth.as_deref().unwrap_or(""))
    }

    /// Starts a registry whose configuration ends with `extra` (e.g. an `auth:` section).
    pub fn start_in(dir: tempfile::TempDir, extra: &str) -> Self {
        let bin = installed(
            "CLOUDER_TEST_REGISTRY_DIR",
            "/var/tmp/clouder-peers/docker-registry",
            "usr/bin/docker-registry",
        )
        .join("usr/bin/docker-registry");
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog: {{accesslog: {{disabled: false}}, level: info}}\n\
             storage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\n\
             http: {{addr: 127.0.0.1:{port}}}\n{extra}",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry");
        wait_for(
            &format!("docker-registry on port {port}"),
            Duration::from_secs(20),
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        RegistryPeer { child, port, dir }
    }

    pub fn host(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// The access log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap()
    }

    /// Access log lines for requests `METHOD` whose path contains `path`.
    pub fn requests(&self, method: &str, path: &str) -> usize {
        let needle = format!("\"{method} ");
        self.log()
            .lines()
            .filter(|l| {
                l.contains(&needle)
                    && l.split(&needle)
                        .nth(1)
                        .is_some_and(|rest| rest.split(' ').next().unwrap_or("").contains(path))
            })
            .count()
    }
}

impl Drop for RegistryPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
