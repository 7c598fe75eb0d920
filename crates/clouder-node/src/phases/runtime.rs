//! The container runtime: containerd 2.x (with runc) from its package source or a release
//! tarball, configured for kubeadm — systemd cgroups, the CRI socket crictl uses — and running
//! under systemd.

use super::apt::AptInstall;
use super::archive::{ArchiveInstall, BIN_DIR, Layout, Shipped};
use super::source::Install;
use super::{Node, Phase};
use crate::kubeadm::CRI_SOCKET;
use crate::shell::{file_is, script, write_file};
use clouder_spec::{AptSource, Source};

pub struct ContainerRuntime;

const CONFIG_FILE: &str = "/etc/containerd/config.toml";
/// containerd 2.x configuration (version 3). Checkpoint/restore needs nothing here: the CRI
/// plugin serves CheckpointContainer and hands it to runc, which drives CRIU.
const CONFIG: &str = r#"# Written by clouder.
version = 3

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
"#;
const CRICTL_FILE: &str = "/etc/crictl.yaml";
/// `systemctl show`'s lines, sorted, for a unit that runs and starts at boot.
const SERVICE_UP: &str = "ActiveState=active\\nUnitFileState=enabled";

fn crictl() -> String {
    format!("runtime-endpoint: {CRI_SOCKET}\nimage-endpoint: {CRI_SOCKET}\n")
}

/// Docker's repository: the one that ships containerd 2.x (with runc) for every supported system.
fn default_source(node: Node) -> AptSource {
    let base = format!("https://download.docker.com/linux/{}", node.facts.os_id);
    AptSource {
        key: Some(format!("{base}/gpg")),
        uri: base,
        suite: node.facts.os_codename.clone(),
        components: vec!["stable".into()],
        packages: Some(vec!["containerd.io".into()]),
    }
}

fn install(node: Node) -> Install {
    match node.plan.sources.containerd.as_ref() {
        Some(Source {
            archive: Some(archive),
            ..
        }) => Install::Archive(ArchiveInstall {
            layout: layout(),
            source: archive.clone(),
        }),
        configured => Install::Apt(
            AptInstall::resolve(
                "containerd",
                node,
                configured.and_then(|s| s.apt.as_ref()),
                default_source(node),
                &["containerd", "runc"],
                None,
            ),
            layout(),
        ),
    }
}

/// containerd's release tarball (`bin/containerd`, `bin/containerd-shim-runc-v2`, `bin/ctr`) with
/// runc added (upstream ships it as a binary of its own), and containerd's upstream unit.
fn layout() -> Layout {
    Layout {
        component: "containerd",
        binaries: vec!["containerd", "containerd-shim-runc-v2", "ctr", "runc"],
        files: vec![Shipped {
            binary: "containerd",
            path: "/etc/systemd/system/containerd.service",
            content: CONTAINERD_UNIT.replace("/usr/local/bin/", &format!("{BIN_DIR}/")),
        }],
        versions: Vec::new(),
    }
}

/// `containerd.service` from containerd's repository, as its release documents installing it.
const CONTAINERD_UNIT: &str = "[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target dbus.service

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd

Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5

# Having non-zero Limit*s causes performance problems due to accounting overhead
# in the kernel. We recommend using cgroups to do container-local accounting.
LimitNPROC=infinity
LimitCORE=infinity

# Comment TasksMax if your systemd version does not supports it.
# Only systemd 226 and above support this version.
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
";

impl Phase for ContainerRuntime {
    fn title(&self) -> &'static str {
        "container runtime"
    }

    fn probe(&self, node: Node) -> String {
        let mut lines = install(node).probe();
        lines.extend([
            file_is(CONFIG_FILE, CONFIG),
            file_is(CRICTL_FILE, &crictl()),
            format!("[ \"$(systemctl show --property=ActiveState,UnitFileState containerd | sort)\" = \"$(printf '{SERVICE_UP}')\" ]"),
            // The daemon answers, and it is 2.x (what runs, not only what is installed).
            "server=$(ctr version | awk '/^Server:/ {s = 1} s && $1 == \"Version:\" {print $2}')".into(),
            "[[ $server == v2.* || $server == 2.* ]]".into(),
        ]);
        script(lines)
    }

    fn apply(&self, node: Node) -> String {
        let mut lines = install(node).apply();
        lines.extend([
            "v=$(containerd --version | awk '{print $3}'); if [[ $v != v2.* && $v != 2.* ]]; then echo \"containerd $v is installed; 2.x is needed: check the containerd source\" >&2; exit 1; fi".into(),
            write_file(CONFIG_FILE, "0644", CONFIG),
            write_file(CRICTL_FILE, "0644", &crictl()),
            "systemctl daemon-reload".into(),
            "systemctl enable --quiet containerd".into(),
            "systemctl restart containerd".into(),
            // The socket answers a moment after the restart.
            "for _ in $(seq 50); do ctr version >/dev/null 2>&1 && break; sleep 0.2; done".into(),
        ]);
        script(lines)
    }
}
