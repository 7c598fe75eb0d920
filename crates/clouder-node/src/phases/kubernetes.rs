//! kubeadm, kubelet and kubectl at exactly the cluster's version, from the repository of its minor
//! version, held; the kubelet enabled so that kubeadm can start it.

use super::apt::AptInstall;
use super::{Node, Phase};
use crate::shell::script;
use clouder_spec::AptSource;

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

fn install(node: Node) -> AptInstall {
    let configured = node.plan.sources.kubernetes.as_ref();
    AptInstall::resolve(
        "kubernetes",
        node,
        configured,
        default_source(node),
        &PACKAGES,
        Some(version_pattern(node)),
    )
}

/// Only `which` of the Kubernetes packages, at the plan's version: an upgrade moves kubeadm
/// before the kubelet.
pub fn packages(node: Node, which: &[&str]) -> AptInstall {
    let mut install = install(node);
    install.packages.retain(|p| which.contains(&p.as_str()));
    install
}

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
