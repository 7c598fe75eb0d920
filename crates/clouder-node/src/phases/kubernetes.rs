//! kubeadm, kubelet and kubectl at exactly the cluster's version, from the repository of its minor
//! version, held — or from a release tarball; the kubelet enabled so that kubeadm can start it.

use super::apt::AptInstall;
use super::archive::{ArchiveInstall, BIN_DIR, Layout, Shipped, VersionCheck};
use super::source::Install;
use super::{Node, Phase};
use crate::shell::script;
use clouder_spec::{AptSource, Source};

pub struct KubernetesPackages;

const PACKAGES: [&str; 3] = ["kubeadm", "kubelet", "kubectl"];

/// The community repository, one per minor version.
fn default_source(node: Node) -> AptSource {
    let base = format!(
        "https://pkgs.k8s.io/core:/stable:/v1.{}/deb/",
        node.plan.minor()
    );
    AptSource {
        key: Some(format!("{base}Release.key")),
        uri: base,
        suite: "/".into(),
        components: Vec::new(),
        packages: None,
    }
}

/// `1.32.3` → `1.32.3-*` (that patch, any package revision); `1.32` → `1.32.*`.
fn version_pattern(node: Node) -> String {
    let v = node.plan.bare_version();
    if v.split('.').count() >= 3 {
        format!("{v}-*")
    } else {
        format!("{v}.*")
    }
}

fn install(node: Node) -> Install {
    match node.plan.sources.kubernetes.as_ref() {
        Some(Source {
            archive: Some(archive),
            ..
        }) => Install::Archive(ArchiveInstall {
            layout: layout(node),
            source: archive.clone(),
        }),
        configured => Install::Apt(
            AptInstall::resolve(
                "kubernetes",
                node,
                configured.and_then(|s| s.apt.as_ref()),
                default_source(node),
                &PACKAGES,
                Some(version_pattern(node)),
            ),
            layout(node),
        ),
    }
}

/// The binaries as the release ships them (`kubernetes-node-linux-*.tar.gz` has them under
/// `kubernetes/node/bin/`), with the units the kubelet package would have installed; kubeadm and
/// the kubelet must be the cluster's version.
fn layout(node: Node) -> Layout {
    let v = node.plan.bare_version();
    let exact = v.split('.').count() >= 3;
    let wanted = |prefix: &str| {
        if exact {
            format!("{prefix}v{v}")
        } else {
            format!("{prefix}v{v}.")
        }
    };
    Layout {
        component: "kubernetes",
        binaries: PACKAGES.to_vec(),
        files: vec![
            Shipped {
                binary: "kubelet",
                path: KUBELET_UNIT_FILE,
                content: KUBELET_UNIT.replace("/usr/bin/", &format!("{BIN_DIR}/")),
            },
            Shipped {
                binary: "kubelet",
                path: KUBEADM_DROP_IN_FILE,
                content: KUBEADM_DROP_IN.replace("/usr/bin/", &format!("{BIN_DIR}/")),
            },
        ],
        versions: vec![
            VersionCheck {
                binary: "kubeadm",
                args: "version -o short",
                wanted: wanted(""),
                exact,
            },
            VersionCheck {
                binary: "kubelet",
                args: "--version",
                wanted: wanted("Kubernetes "),
                exact,
            },
        ],
    }
}

/// Only `which` of the Kubernetes packages (or binaries), at the plan's version: an upgrade
/// moves kubeadm before the kubelet.
pub fn packages(node: Node, which: &[&str]) -> Install {
    let mut install = install(node);
    install.retain(which);
    install
}

/// The kubelet's unit and kubeadm's drop-in as the upstream packages ship them (kubernetes/release,
/// `cmd/krel/templates/latest/`); an archive's go beside the packages' place, which they override.
const KUBELET_UNIT_FILE: &str = "/etc/systemd/system/kubelet.service";
const KUBEADM_DROP_IN_FILE: &str = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf";
const KUBELET_UNIT: &str = "[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
";
const KUBEADM_DROP_IN: &str = "# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
# This is a file that \"kubeadm init\" and \"kubeadm join\" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
";

impl Phase for KubernetesPackages {
    fn title(&self) -> &'static str {
        "kubernetes packages"
    }

    fn probe(&self, node: Node) -> String {
        let mut lines = install(node).probe();
        lines.push("systemctl is-enabled --quiet kubelet".into());
        script(lines)
    }

    fn apply(&self, node: Node) -> String {
        let mut lines = install(node).apply();
        lines.push("systemctl enable --quiet kubelet".into());
        script(lines)
    }
}
