//! What a host is, read in one round trip before anything is changed on it.

use crate::ssh::{Session, SshError};
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// `ubuntu`, `debian`, …
    pub os_id: String,
    pub os_version: String,
    /// `noble`, `bookworm`, …
    pub os_codename: String,
    /// The name the node registers with.
    pub hostname: String,
    /// The address other nodes reach it at (the source address of its default route).
    pub address: String,
    pub arch: String,
    pub kernel: String,
    pub cgroup_version: u8,
    pub swap_kib: u64,
    pub memory_kib: u64,
    pub disk_free_kib: u64,
    /// Versions already installed, empty when absent.
    pub containerd: String,
    pub kubelet: String,
    /// `/etc/kubernetes/admin.conf` exists: `kubeadm init` must never run again here.
    pub kubeadm_initialised: bool,
}

/// The probe, one `key=value` per line; every command tolerates absence.
pub const SCRIPT: &str = r#"set -u
. /etc/os-release
echo "os_id=${ID:-}"
echo "os_version=${VERSION_ID:-}"
echo "os_codename=${VERSION_CODENAME:-}"
echo "hostname=$(hostname)"
echo "address=$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") print $(i + 1)}')"
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo "cgroup=2"; else echo "cgroup=1"; fi
echo "swap_kib=$(awk '/^SwapTotal/ {print $2}' /proc/meminfo)"
echo "memory_kib=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
echo "disk_free_kib=$(df -Pk / | awk 'NR==2 {print $4}')"
echo "containerd=$(containerd --version 2>/dev/null | awk '{print $3}')"
echo "kubelet=$(kubelet --version 2>/dev/null | awk '{print $2}')"
if [ -f /etc/kubernetes/admin.conf ]; then echo "kubeadm_initialised=yes"; else echo "kubeadm_initialised=no"; fi
"#;

/// Supported systems: (os id, versions).
const SUPPORTED: [(&str, &[&str]); 2] =
    [("ubuntu", &["22.04", "24.04"]), ("debian", &["12", "13"])];
const MIN_MEMORY_KIB: u64 = 1_700_000;
const MIN_DISK_KIB: u64 = 10 * 1024 * 1024;

impl Facts {
    pub fn parse(text: &str) -> Facts {
        let mut f = Facts::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().to_string();
            let number = || value.parse().unwrap_or(0);
            match key {
                "os_id" => f.os_id = value,
                "os_version" => f.os_version = value,
                "os_codename" => f.os_codename = value,
                "hostname" => f.hostname = value,
                "address" => f.address = value,
                "arch" => f.arch = value,
                "kernel" => f.kernel = value,
                "cgroup" => f.cgroup_version = value.parse().unwrap_or(0),
                "swap_kib" => f.swap_kib = number(),
                "memory_kib" => f.memory_kib = number(),
                "disk_free_kib" => f.disk_free_kib = number(),
                "containerd" => f.containerd = value,
                "kubelet" => f.kubelet = value,
                "kubeadm_initialised" => f.kubeadm_initialised = value == "yes",
                _ => {}
            }
        }
        f
    }

    /// Reads the facts of the host behind `session`.
    pub async fn gather(session: &Session) -> Result<Facts, SshError> {
        let out = session.script(SCRIPT).await?;
        if !out.ok() {
            return Err(SshError::Protocol {
                host: session.host().label(),
                reason: format!("reading host facts: {}", out.stderr.trim()),
            });
        }
        Ok(Facts::parse(&out.stdout))
    }

    /// Why clouder will not bootstrap this host for Kubernetes `1.minor`; empty when it will.
    pub fn problems(&self, minor: u32) -> Vec<String> {
        let mut problems = Vec::new();
        let supported = SUPPORTED.iter().any(|(id, versions)| {
            *id == self.os_id && versions.contains(&self.os_version.as_str())
        });
        if !supported {
            problems.push(format!(
                "{} {} is not supported (Ubuntu 22.04/24.04, Debian 12/13)",
                if self.os_id.is_empty() {
                    "unknown OS"
                } else {
                    &self.os_id
                },
                self.os_version
            ));
        }
        if !matches!(self.arch.as_str(), "x86_64" | "aarch64") {
            problems.push(format!(
                "architecture {} is not supported (x86_64, aarch64)",
                self.arch
            ));
        }
        // kubelet refuses cgroup v1 from 1.35 on (failCgroupV1); before, it only warns.
        if self.cgroup_version != 2 && minor >= 35 {
            problems.push(format!(
                "cgroup v1: kubelet 1.{minor} needs the unified cgroup v2 hierarchy"
            ));
        }
        if self.memory_kib < MIN_MEMORY_KIB {
            problems.push(format!(
                "{} MiB of memory; kubeadm needs at least 1700 MiB",
                self.memory_kib / 1024
            ));
        }
        if self.disk_free_kib < MIN_DISK_KIB {
            problems.push(format!(
                "{} GiB free on /; at least 10 GiB are needed",
                self.disk_free_kib / 1024 / 1024
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UBUNTU: &str = "os_id=ubuntu\nos_version=24.04\narch=x86_64\nkernel=6.8.0-45-generic\ncgroup=2\n\
        swap_kib=0\nmemory_kib=8000000\ndisk_free_kib=90000000\ncontainerd=\nkubelet=v1.32.3\nkubeadm_initialised=yes\n";

    #[test]
    fn a_supported_host_parses_and_passes() {
        let f = Facts::parse(UBUNTU);
        assert_eq!(
            (f.os_id.as_str(), f.os_version.as_str(), f.cgroup_version),
            ("ubuntu", "24.04", 2)
        );
        assert_eq!(f.kubelet, "v1.32.3");
        assert!(f.containerd.is_empty());
        assert!(f.kubeadm_initialised);
        assert_eq!(f.problems(36), Vec::<String>::new());
    }

    #[test]
    fn unsupported_hosts_say_why() {
        let f = Facts::parse(
            &UBUNTU
                .replace("24.04", "18.04")
                .replace("cgroup=2", "cgroup=1")
                .replace("memory_kib=8000000", "memory_kib=1000000"),
        );
        let problems = f.problems(35).join("\n");
        assert!(
            problems.contains("ubuntu 18.04 is not supported"),
            "{problems}"
        );
        assert!(problems.contains("cgroup v1"));
        assert!(problems.contains("976 MiB of memory"));
        assert!(
            !f.problems(32).join("").contains("cgroup"),
            "cgroup v1 is fine before 1.35"
        );
    }
}
