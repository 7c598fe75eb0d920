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
    /// Directories of this machine the host sees read-only: (here, path in the host).
    shares: Vec<(PathBuf, String)>,
    /// The CPUs the host may use, if capped (see [`Lab::start_rooted_limited`]).
    cpu: Option<f64>,
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
        Self::build(n, None, &[], None)
    }

    /// Hosts with their own root filesystem: what a phase installs or writes stays in the host.
    pub fn start_rooted(n: usize) -> Lab {
        Self::build(n, Some(base_rootfs()), &[], None)
    }

    /// Rooted hosts that also see `shares` — (directory here, path in the host) — read-only, as
    /// a mirror mounted over NFS would be (e.g. a [`NodeKit`](crate::NodeKit) repository).
    pub fn start_rooted_with(n: usize, shares: &[(PathBuf, &str)]) -> Lab {
        Self::build(n, Some(base_rootfs()), shares, None)
    }

    /// Rooted hosts with `cores` of a CPU each, however many run at once — as VMs have their own
    /// vCPUs — so that a benchmark of 1 host and of 30 gives each host the same CPU. Needs the
    /// cgroup v1 `cpu` controller (this machine's kind).
    pub fn start_rooted_limited(n: usize, shares: &[(PathBuf, &str)], cores: f64) -> Lab {
        Self::build(n, Some(base_rootfs()), shares, Some(cores))
    }

    /// Rooted hosts at the given addresses, all in one /24 and none ending in `.1` (the bridge):
    /// machines a cloud API says exist, made real at the addresses it recorded.
    pub fn start_rooted_at(addresses: &[String], shares: &[(PathBuf, &str)]) -> Lab {
        let subnet = addresses[0]
            .rsplit_once('.')
            .expect("an IPv4 address")
            .0
            .to_string();
        for a in addresses {
            assert!(
                a.rsplit_once('.')
                    .is_some_and(|(s, h)| s == subnet && h != "1"),
                "{a}: lab hosts share one /24 ({subnet}.0/24) without its .1"
            );
        }
        Self::build_at(
            subnet,
            addresses.to_vec(),
            Some(base_rootfs()),
            shares,
            None,
        )
    }

    /// A number no other lab of this machine has (process id and a sequence).
    fn unique_id() -> u32 {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (std::process::id() % 10_000) * 10 + seq
    }

    /// A /24 for a test to give a cloud API as its network, apart from the labs' own
    /// (10.250.0.0/16 – 10.254.0.0/16 here, 10.200 – 10.249 for labs).
    pub fn free_subnet() -> String {
        let id = Self::unique_id();
        format!("10.{}.{}", 250 + (id / 250) % 5, id % 250)
    }

    fn build(n: usize, base: Option<PathBuf>, shares: &[(PathBuf, &str)], cpu: Option<f64>) -> Lab {
        let id = Self::unique_id();
        let subnet = format!("10.{}.{}", 200 + (id / 250) % 50, id % 250);
        let addresses = (0..n).map(|i| format!("{subnet}.{}", 10 + i)).collect();
        Self::build_at(subnet, addresses, base, shares, cpu)
    }

    fn build_at(
        subnet: String,
        addresses: Vec<String>,
        base: Option<PathBuf>,
        shares: &[(PathBuf, &str)],
        cpu: Option<f64>,
    ) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let prefix = format!("cl{}", Self::unique_id());
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
        if base.is_some() {
            // Booted hosts reach the package registry through this machine, as VMs through a NAT.
            sh(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
            // Every booted systemd holds inotify instances of its own (all as root): the default
            // 128 per user stops the ~22nd host from starting sshd.
            raise_sysctl("fs.inotify.max_user_instances", 8192);
            let rule = masquerade("-A", &subnet, &bridge);
            sh(&rule.iter().map(String::as_str).collect::<Vec<_>>());
        }
        keygen(&dir.path().join("client"));
        let mut lab = Lab {
            dir,
            prefix,
            subnet,
            bridge,
            hosts: Vec::new(),
        };
        let shares: Vec<(PathBuf, String)> = shares
            .iter()
            .map(|(here, there)| (here.clone(), there.to_string()))
            .collect();
        for (i, address) in addresses.into_iter().enumerate() {
            lab.add_host(i, address, base.as_deref(), shares.clone(), cpu);
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

    /// This machine's address on the lab's bridge: what the hosts reach it at.
    pub fn gateway(&self) -> String {
        format!("{}.1", self.subnet)
    }

    /// An address on the lab's subnet with nothing behind it.
    pub fn unreachable(&self) -> String {
        format!("{}.250", self.subnet)
    }

    fn add_host(
        &mut self,
        i: usize,
        address: String,
        base: Option<&Path>,
        shares: Vec<(PathBuf, String)>,
        cpu: Option<f64>,
    ) {
        let ns = format!("{}h{i}", self.prefix);
        let (outside, inside) = (
            format!("{}v{i}", self.prefix),
            format!("{}i{i}", self.prefix),
        );
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
        if base.is_some() {
            exec(&[
                "ip",
                "route",
                "add",
                "default",
                "via",
                &format!("{}.1", self.subnet),
            ]);
        }
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
            shares,
            cpu,
        };
        host.start_sshd(&self.client_key(), true);
        self.hosts.push(host);
    }
}

impl LabHost {
    /// `program` run in this host's network namespace (with this machine's files): a daemon
    /// that listens on the host's address.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]).arg(program);
        cmd
    }

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
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns]);
        match &self.rootfs {
            None => {
                std::fs::create_dir_all("/run/sshd").unwrap();
                command.args(["/usr/sbin/sshd", "-D", "-e", "-f", config.to_str().unwrap()])
            }
            Some(base) => {
                let boot = self.dir.join("boot.sh");
                std::fs::write(&boot, self.boot_script(base, client_key)).unwrap();
                command.args(["sh", boot.to_str().unwrap()])
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("sshd.log")).unwrap())
            .spawn()
            .expect("sshd (apt-get install openssh-server)");
        self.sshd = Some(child);
        // A booted host starts systemd first: on a loaded machine that takes a while.
        let deadline =
            Instant::now() + Duration::from_secs(if self.rootfs.is_some() { 90 } else { 30 });
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

    /// Boots the host like a small VM: an overlay of `base` as its root, in its own pid, mount and
    /// cgroup namespaces, with the root filesystem's systemd as PID 1 — so phases install packages
    /// and start services for real. sshd is the image's `ssh.service` with this host's key.
    fn boot_script(&self, base: &Path, client_key: &Path) -> String {
        let d = self.dir.display();
        let cgroup = lab_cgroup(&self.ns);
        let capped = self
            .cpu
            .map(|cores| {
                format!(
                    "echo $$ > {}/cgroup.procs\n",
                    cpu_group(&self.ns, cores).display()
                )
            })
            .unwrap_or_default();
        format!(
            r#"set -e
echo $$ > {cgroup}/cgroup.procs
{capped}exec unshare -m -p -u -i -f -C --kill-child --propagation private sh -es <<'BOOT'
R={d}/root
for i in 1 2 3 4 5 6 7 8 9 10; do
  mount -t overlay overlay -o lowerdir={base},upperdir={d}/up,workdir={d}/work "$R" && break
  sleep 0.2
done
mount -t proc proc "$R/proc"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
mount -t tmpfs -o size=16m,mode=755 tmpfs "$R/dev"
for n in null zero full random urandom tty; do touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"; done
mkdir -p "$R/dev/pts" "$R/dev/net" "$R/dev/shm"
touch "$R/dev/net/tun"; mount --bind /dev/net/tun "$R/dev/net/tun"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"
ln -sf pts/ptmx "$R/dev/ptmx"
mount -t tmpfs tmpfs "$R/run"
mount -t tmpfs tmpfs "$R/tmp"
# The kernel is shared: keep its global settings out of reach (a VM would have its own kernel);
# the host's own namespaces' counters stay writable, as CRIU restores pids and IPC ids through them.
mount --bind -o ro "$R/proc/sys/kernel" "$R/proc/sys/kernel"
for k in ns_last_pid sem_next_id msg_next_id shm_next_id; do
  mount --bind "$R/proc/sys/kernel/$k" "$R/proc/sys/kernel/$k"
  mount -o remount,bind,rw "$R/proc/sys/kernel/$k"
done
mount --bind -o ro "$R/proc/sys/vm" "$R/proc/sys/vm"
{shares}mkdir -p "$R/root/.ssh"
cp {client}.pub "$R/root/.ssh/authorized_keys"
chmod 700 "$R/root/.ssh"; chmod 600 "$R/root/.ssh/authorized_keys"
cp {d}/host_key "$R/etc/ssh/ssh_host_ed25519_key"; chmod 600 "$R/etc/ssh/ssh_host_ed25519_key"
cat > "$R/etc/ssh/sshd_config.d/clouder-lab.conf" <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 100
CONF
cp /etc/resolv.conf "$R/etc/resolv.conf"
echo {ns} > "$R/etc/hostname"
exec chroot "$R" /usr/bin/env container=clouder-lab /usr/lib/systemd/systemd
BOOT
"#,
            base = base.display(),
            client = client_key.display(),
            ns = self.ns,
            shares = self
                .shares
                .iter()
                .map(|(here, there)| format!(
                    "mkdir -p \"$R{there}\"\nmount --bind -o ro {} \"$R{there}\"\n",
                    here.display()
                ))
                .collect::<String>(),
        )
    }

    fn stop_sshd(&mut self) {
        if let Some(mut child) = self.sshd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.rootfs.is_some() {
            remove_cgroup(Path::new(&lab_cgroup(&self.ns)));
        }
        if self.cpu.is_some() {
            remove_cgroup(&cpu_group_path(&self.ns));
        }
    }
}

/// Where booted hosts get their cgroup (v2) subtree: this machine keeps its controllers on v1, so a
/// v2 hierarchy of our own gives each host's systemd a tree of its own without touching them.
const CGROUP_ROOT: &str = "/run/clouder-lab/cgroup";

fn lab_cgroup(ns: &str) -> String {
    static MOUNT: std::sync::Once = std::sync::Once::new();
    MOUNT.call_once(|| mount_once(CGROUP_ROOT, &["-t", "cgroup2", "cgroup2"]));
    let path = format!("{CGROUP_ROOT}/{ns}");
    std::fs::create_dir_all(&path).unwrap();
    path
}

/// Mounts a filesystem at `target` unless something is mounted there already.
fn mount_once(target: &str, how: &[&str]) {
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(target));
    if !mounted {
        std::fs::create_dir_all(target).unwrap();
        sh(&[&["mount"], how, &[target]].concat());
    }
}

/// The v1 `cpu` hierarchy, mounted again where `ip netns exec` leaves it visible (it mounts a
/// fresh /sys, which hides /sys/fs/cgroup).
const CPU_CONTROLLER: &str = "/run/clouder-lab/cpu";

/// A v1 `cpu` cgroup with a quota of `cores` CPUs: every process the host's boot script starts
/// stays in it, since the host's systemd sees only its own cgroup v2 tree.
fn cpu_group(ns: &str, cores: f64) -> PathBuf {
    static MOUNT: std::sync::Once = std::sync::Once::new();
    MOUNT.call_once(|| {
        // /proc/cgroups: name, hierarchy (0: none of v1), cgroups, enabled.
        let v1_cpu = std::fs::read_to_string("/proc/cgroups")
            .unwrap_or_default()
            .lines()
            .any(|l| matches!(l.split('\t').collect::<Vec<_>>()[..], ["cpu", hierarchy, ..] if hierarchy != "0"));
        assert!(
            v1_cpu,
            "capping a lab host's CPU needs the cgroup v1 cpu controller (this machine has none)"
        );
        mount_once(CPU_CONTROLLER, &["-t", "cgroup", "-o", "cpu", "cgroup"]);
    });
    let group = cpu_group_path(ns);
    std::fs::create_dir_all(&group).unwrap();
    let period = 100_000;
    std::fs::write(group.join("cpu.cfs_period_us"), period.to_string()).unwrap();
    let quota = ((cores * period as f64) as u64).max(1_000);
    std::fs::write(group.join("cpu.cfs_quota_us"), quota.to_string()).unwrap();
    group
}

fn cpu_group_path(ns: &str) -> PathBuf {
    Path::new(CPU_CONTROLLER).join(ns)
}

/// Removes a cgroup once its processes are gone (children first: only empty cgroups go).
fn remove_cgroup(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut dirs: Vec<PathBuf> = walk_dirs(path);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        if dirs
            .iter()
            .all(|d| std::fs::remove_dir(d).is_ok() || !d.exists())
            || Instant::now() > deadline
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn walk_dirs(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk_dirs(&entry.path()));
            }
        }
    }
    out
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
        if self.hosts.iter().any(|h| h.rootfs.is_some()) {
            let rule = masquerade("-D", &self.subnet, &self.bridge);
            let _ = Command::new(&rule[0]).args(&rule[1..]).status();
        }
    }
}

/// Sets `key` to at least `value` (a larger setting of the machine is kept).
fn raise_sysctl(key: &str, value: u64) {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let now: u64 = std::fs::read_to_string(&path)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if now < value {
        sh(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
    }
}

fn masquerade(op: &str, subnet: &str, bridge: &str) -> Vec<String> {
    let source = format!("{subnet}.0/24");
    [
        "iptables",
        "-t",
        "nat",
        op,
        "POSTROUTING",
        "-s",
        &source,
        "!",
        "-o",
        bridge,
        "-j",
        "MASQUERADE",
    ]
    .map(String::from)
    .to_vec()
}

/// The `sources:` entries (spec YAML) that install containerd 2.x and CRIU 4.x on lab hosts:
/// Debian sid from [`debian_mirror`], as an air-gapped site would point clouder at its own mirror.
pub fn sid_sources() -> String {
    let sid = |packages: &str| {
        format!(
            "{{apt: {{uri: '{}', suite: sid, components: [main], packages: [{packages}]}}}}",
            debian_mirror()
        )
    };
    format!(
        "containerd: {}\ncriu: {}\n",
        sid("containerd, runc"),
        sid("criu, iptables")
    )
}

/// The Debian mirror this machine installs from (the registry lab hosts reach through the NAT).
pub fn debian_mirror() -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "sources"))
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.strip_prefix("URIs:").map(|u| u.trim().to_string()))
                .collect::<Vec<_>>()
        })
        .next()
        .unwrap_or_else(|| "http://deb.debian.org/debian".into())
}
