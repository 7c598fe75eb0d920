//! The container runtime: containerd 2.x (with runc) from its package source, configured for
//! kubeadm — systemd cgroups, the CRI socket crictl uses — and running under systemd.

use super::apt::AptInstall;
use super::{Node, Phase};
use crate::kubeadm::CRI_SOCKET;
use crate::shell::{file_is, script, write_file};
use clouder_spec::AptSource;

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

fn install(node: Node) -> AptInstall {
    let configured = node
        .plan
        .sources
        .containerd
        .as_ref()
        .and_then(|s| s.apt.as_ref());
    let default = default_source(node);
    AptInstall::resolve(
        "containerd",
        node,
        configured,
        default,
        &["containerd", "runc"],
        None,
    )
}

impl Phase for ContainerRuntime {
    fn title(&self) -> &'static str {
        "container runtime"
    }

    fn probe(&self, node: Node) -> String {
        let mut lines = install(node).probe();
        lines.extend([
            "[[ \"$(containerd --version | awk '{print $3}')\" == v2.* || \"$(containerd --version | awk '{print $3}')\" == 2.* ]]"
                .into(),
            file_is(CONFIG_FILE, CONFIG),
            file_is(CRICTL_FILE, &crictl()),
            "systemctl is-enabled --quiet containerd".into(),
            "systemctl is-active --quiet containerd".into(),
            "ctr version >/dev/null".into(),
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
