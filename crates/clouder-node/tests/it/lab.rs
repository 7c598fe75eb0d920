//! A lab of real hosts: one network namespace per host on a private bridge, each running the
//! system's sshd with its own host key. Needs root, iproute2 and openssh-server (see
//! scripts/peers.sh). Everything is removed when the lab is dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Lab {
    pub dir: tempfile::TempDir,
    prefix: String,
    subnet: String,
    bridge: String,
    pub hosts: Vec<LabHost>,
}

pub struct LabHost {
    pub address: String,
    ns: String,
    dir: PathBuf,
    sshd: Option<Child>,
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn keygen(path: &Path) {
    sh(&[
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "clouder-lab",
        "-f",
        path.to_str().unwrap(),
    ]);
}

impl Lab {
    /// Starts `n` hosts. Subnets and names carry the process id, so labs never collide.
    pub fn start(n: usize) -> Lab {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = (std::process::id() % 10_000) * 10 + seq;
        let dir = tempfile::tempdir().unwrap();
        let prefix = format!("cl{id}");
        let subnet = format!("10.{}.{}", 200 + (id / 250) % 50, id % 250);
        let bridge = format!("{prefix}br");
        sh(&["ip", "link", "add", &bridge, "type", "bridge"]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{subnet}.1/24"),
            "dev",
            &bridge,
        ]);
        sh(&["ip", "link", "set", &bridge, "up"]);
        keygen(&dir.path().join("client"));
        let mut lab = Lab {
            dir,
            prefix,
            subnet,
            bridge,
            hosts: Vec::new(),
        };
        for i in 0..n {
            lab.add_host(i);
        }
        lab
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    /// An address on the lab's subnet with nothing behind it.
    pub fn unreachable(&self) -> String {
        format!("{}.250", self.subnet)
    }

    fn add_host(&mut self, i: usize) {
        let ns = format!("{}h{i}", self.prefix);
        let (outside, inside) = (
            format!("{}v{i}", self.prefix),
            format!("{}i{i}", self.prefix),
        );
        let address = format!("{}.{}", self.subnet, 10 + i);
        sh(&["ip", "netns", "add", &ns]);
        sh(&[
            "ip", "link", "add", &outside, "type", "veth", "peer", "name", &inside,
        ]);
        sh(&["ip", "link", "set", &outside, "master", &self.bridge, "up"]);
        sh(&["ip", "link", "set", &inside, "netns", &ns]);
        let exec = |args: &[&str]| {
            let mut full = vec!["ip", "netns", "exec", &ns];
            full.extend_from_slice(args);
            sh(&full);
        };
        exec(&["ip", "link", "set", &inside, "name", "eth0"]);
        exec(&["ip", "addr", "add", &format!("{address}/24"), "dev", "eth0"]);
        exec(&["ip", "link", "set", "eth0", "up"]);
        exec(&["ip", "link", "set", "lo", "up"]);
        let dir = self.dir.path().join(&ns);
        std::fs::create_dir_all(&dir).unwrap();
        let mut host = LabHost {
            address,
            ns,
            dir,
            sshd: None,
        };
        host.start_sshd(&self.client_key(), true);
        self.hosts.push(host);
    }
}

impl LabHost {
    /// (Re)starts sshd; `same_key: false` gives the host a new host key, like a rebuilt machine.
    pub fn start_sshd(&mut self, client_key: &Path, same_key: bool) {
        self.stop_sshd();
        let host_key = self.dir.join("host_key");
        if !same_key || !host_key.exists() {
            let _ = std::fs::remove_file(&host_key);
            let _ = std::fs::remove_file(host_key.with_extension("pub"));
            keygen(&host_key);
        }
        let config = self.dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress {}\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}.pub\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nMaxStartups 100\n",
                self.address,
                host_key.display(),
                self.dir.join("sshd.pid").display(),
                client_key.display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-f",
                config.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("sshd.log")).unwrap())
            .spawn()
            .expect("sshd (apt-get install openssh-server)");
        self.sshd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(
            &format!("{}:22", self.address).parse().unwrap(),
            Duration::from_millis(200),
        )
        .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "sshd on {} did not start: {}",
                self.address,
                std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop_sshd(&mut self) {
        if let Some(mut child) = self.sshd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for host in &mut self.hosts {
            host.stop_sshd();
            let _ = Command::new("ip").args(["netns", "del", &host.ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}
