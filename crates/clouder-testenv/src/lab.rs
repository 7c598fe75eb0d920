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
    /// The root filesystem this host sees (an overlay on a shared base), if it has its own.
    rootfs: Option<PathBuf>,
}

/// The base root filesystem that scripts/peers.sh builds.
pub fn base_rootfs() -> PathBuf {
    let path = PathBuf::from(
        std::env::var("CLOUDER_TEST_ROOTFS")
            .unwrap_or_else(|_| "/var/tmp/clouder-rootfs/trixie".into()),
    );
    assert!(
        path.join("usr/sbin/sshd").exists(),
        "no test root filesystem at {}: run scripts/peers.sh",
        path.display()
    );
    path
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
        Self::build(n, None)
    }

    /// Hosts with their own root filesystem: what a phase installs or writes stays in the host.
    pub fn start_rooted(n: usize) -> Lab {
        Self::build(n, Some(base_rootfs()))
    }

    fn build(n: usize, base: Option<PathBuf>) -> Lab {
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
            lab.add_host(i, base.as_deref());
        }
        lab
    }

    /// A file that rooted host `i` wrote (its overlay's upper layer): proof a change stayed there.
    pub fn written_by_host(&self, i: usize, path: &str) -> Option<String> {
        assert!(
            self.hosts[i].rootfs.is_some(),
            "only rooted hosts keep their own files"
        );
        std::fs::read_to_string(
            self.hosts[i]
                .dir
                .join("up")
                .join(path.trim_start_matches('/')),
        )
        .ok()
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    /// An address on the lab's subnet with nothing behind it.
    pub fn unreachable(&self) -> String {
        format!("{}.250", self.subnet)
    }

    fn add_host(&mut self, i: usize, base: Option<&Path>) {
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
        let rootfs = base.map(|b| {
            for d in ["up", "work", "root"] {
                std::fs::create_dir_all(dir.join(d)).unwrap();
            }
            b.to_path_buf()
        });
        let mut host = LabHost {
            address,
            ns,
            dir,
            sshd: None,
            rootfs,
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
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns]);
        match &self.rootfs {
            None => command.args(["/usr/sbin/sshd", "-D", "-e", "-f", config.to_str().unwrap()]),
            Some(base) => command.args([
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &self.rooted_sshd(base, client_key),
            ]),
        };
        let child = command
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

    /// Mounts an overlay of `base` as this host's root, with proc, sys and a small /dev, and
    /// runs sshd chrooted into it. The mounts live in a private mount namespace and vanish with it.
    fn rooted_sshd(&self, base: &Path, client_key: &Path) -> String {
        let d = self.dir.display();
        format!(
            r#"set -e
R={d}/root
mount -t overlay overlay -o lowerdir={base},upperdir={d}/up,workdir={d}/work "$R"
mount -t proc proc "$R/proc"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t tmpfs -o size=16m tmpfs "$R/dev"
for n in null zero random urandom tty; do touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"; done
mkdir -p "$R/dev/pts" "$R/run/sshd" "$R/root/.ssh"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"
ln -sf pts/ptmx "$R/dev/ptmx"
# The kernel is shared: keep the host's global settings out of reach, as on a real VM's own kernel.
mount --bind -o ro /proc/sys/kernel "$R/proc/sys/kernel"
mount --bind -o ro /proc/sys/vm "$R/proc/sys/vm"
cp {client}.pub "$R/root/.ssh/authorized_keys"
chmod 700 "$R/root/.ssh"; chmod 600 "$R/root/.ssh/authorized_keys"
cp {d}/host_key "$R/etc/ssh/ssh_host_ed25519_key"; chmod 600 "$R/etc/ssh/ssh_host_ed25519_key"
exec chroot "$R" /usr/sbin/sshd -D -e -o ListenAddress={addr} -o HostKey=/etc/ssh/ssh_host_ed25519_key   -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no -o UsePAM=no"#,
            base = base.display(),
            client = client_key.display(),
            addr = self.address,
        )
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
