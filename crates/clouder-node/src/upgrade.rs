//! Upgrading a node's Kubernetes in kubeadm's documented order: the kubeadm package first, then
//! the control plane (`kubeadm upgrade apply` on the first control plane, `kubeadm upgrade node`
//! everywhere else), then — while the node is drained — kubelet and kubectl, and the kubelet
//! restarted. Each step is a phase (probe, then apply), so a re-run resumes where a node stopped.

use crate::phases::kubernetes::packages;
use crate::phases::{Node, Phase};
use crate::shell::script;

/// What a node is to the upgrade: the first control plane upgrades the cluster's control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    FirstControlPlane,
    ControlPlane,
    Worker,
}

const APISERVER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
/// The kubeadm version whose `upgrade node` last ran on a worker: it changes nothing else that a
/// probe could see. Under the kubelet's directory, so a reset host has none.
const NODE_STAMP: &str = "/var/lib/kubelet/clouder-upgrade-node";

/// The kubeadm package at the target version (kubelet and kubectl stay where they are).
pub struct KubeadmPackage;

impl Phase for KubeadmPackage {
    fn title(&self) -> &'static str {
        "kubeadm package"
    }
    fn probe(&self, node: Node) -> String {
        script(packages(node, &["kubeadm"]).probe())
    }
    fn apply(&self, node: Node) -> String {
        script(packages(node, &["kubeadm"]).apply())
    }
}

/// `kubeadm upgrade apply` (first control plane) or `kubeadm upgrade node`.
pub struct KubeadmUpgrade(pub Part);

impl Phase for KubeadmUpgrade {
    fn title(&self) -> &'static str {
        match self.0 {
            Part::FirstControlPlane => "kubeadm upgrade apply",
            _ => "kubeadm upgrade node",
        }
    }

    /// A control plane is done when its API server runs the installed kubeadm's version; a worker
    /// when this kubeadm's `upgrade node` ran there (it only rewrites the kubelet's config), or
    /// its kubelet package is at the version already.
    fn probe(&self, node: Node) -> String {
        match self.0 {
            Part::Worker => {
                let mut lines = vec![format!(
                    "if grep -qsx \"$(kubeadm version -o short)\" {NODE_STAMP}; then exit 0; fi"
                )];
                lines.extend(packages(node, &["kubelet"]).probe());
                script(lines)
            }
            _ => script([
                "target=$(kubeadm version -o short)".to_string(),
                format!("grep -q \"/kube-apiserver:${{target}}\\$\" {APISERVER_MANIFEST}"),
            ]),
        }
    }

    fn apply(&self, _node: Node) -> String {
        match self.0 {
            Part::FirstControlPlane => script([
                "target=$(kubeadm version -o short)",
                "kubeadm upgrade apply --yes \"$target\"",
            ]),
            Part::ControlPlane => script(["kubeadm upgrade node"]),
            Part::Worker => script([
                "kubeadm upgrade node".to_string(),
                format!("kubeadm version -o short > {NODE_STAMP}"),
            ]),
        }
    }
}

/// kubelet and kubectl at the target version, the kubelet restarted on them.
pub struct KubeletPackages;

impl Phase for KubeletPackages {
    fn title(&self) -> &'static str {
        "kubelet packages"
    }
    fn probe(&self, node: Node) -> String {
        let mut lines = packages(node, &["kubelet", "kubectl"]).probe();
        lines.push("systemctl is-active --quiet kubelet".into());
        script(lines)
    }
    fn apply(&self, node: Node) -> String {
        let mut lines = packages(node, &["kubelet", "kubectl"]).apply();
        lines.push("systemctl daemon-reload".into());
        lines.push("systemctl restart kubelet".into());
        script(lines)
    }
}

/// The steps before the drain.
pub fn before_drain(part: Part) -> Vec<Box<dyn Phase>> {
    vec![Box::new(KubeadmPackage), Box::new(KubeadmUpgrade(part))]
}

/// The steps while the node is drained.
pub fn while_drained() -> Vec<Box<dyn Phase>> {
    vec![Box::new(KubeletPackages)]
}

/// Every step of a node's upgrade: when all their probes pass, the node is left alone (not even
/// drained).
pub fn all(part: Part) -> Vec<Box<dyn Phase>> {
    let mut steps = before_drain(part);
    steps.extend(while_drained());
    steps
}

/// Control planes one at a time (the first leads), then workers in batches of a tenth of them
/// (at least one): the order and grouping of a rolling upgrade.
pub fn waves<T: Clone>(control_planes: &[T], workers: &[T]) -> Vec<Vec<T>> {
    let mut waves: Vec<Vec<T>> = control_planes.iter().map(|c| vec![c.clone()]).collect();
    let batch = workers.len().div_ceil(10).max(1);
    waves.extend(workers.chunks(batch).map(<[T]>::to_vec));
    waves
}

/// Why going from `current` to `target` (`MAJOR.MINOR[.PATCH]`) is not an upgrade kubeadm
/// supports: a downgrade, or more than one minor version at once.
pub fn skew_problem(current: &str, target: &str) -> Option<String> {
    let parse = |v: &str| -> Option<Vec<u32>> {
        v.trim_start_matches('v')
            .split('.')
            .map(|p| p.parse().ok())
            .collect()
    };
    let (Some(c), Some(t)) = (parse(current), parse(target)) else {
        return Some(format!(
            "`{current}` → `{target}`: versions are MAJOR.MINOR[.PATCH]"
        ));
    };
    let minor = |v: &[u32]| (v[0], v.get(1).copied().unwrap_or(0));
    let (cm, tm) = (minor(&c), minor(&t));
    if tm < cm || (tm == cm && c.len() == 3 && t.len() == 3 && t[2] < c[2]) {
        return Some(format!(
            "{current} → {target} is a downgrade, which kubeadm does not do"
        ));
    }
    if tm.0 != cm.0 || tm.1 > cm.1 + 1 {
        return Some(format!(
            "{current} → {target} skips a minor version: kubeadm upgrades one minor at a time (to {}.{} first)",
            cm.0,
            cm.1 + 1
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_planes_go_alone_and_workers_by_tenths() {
        let cps = ["cp0", "cp1", "cp2"];
        let workers: Vec<String> = (0..25).map(|i| format!("w{i}")).collect();
        let cps: Vec<String> = cps.iter().map(|c| c.to_string()).collect();
        let all = waves(&cps, &workers);
        let sizes: Vec<usize> = all.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 1]);
        assert_eq!(all[0], ["cp0"]);
        assert_eq!(all[3], ["w0", "w1", "w2"]);
        assert_eq!(
            waves(&cps[..1], &workers[..4]).len(),
            5,
            "one by one under ten"
        );
        assert_eq!(waves::<String>(&cps[..1], &[]).len(), 1);
    }

    #[test]
    fn only_one_minor_forward_is_an_upgrade() {
        assert_eq!(skew_problem("1.32", "1.33"), None);
        assert_eq!(skew_problem("1.32.3", "1.32.5"), None);
        assert_eq!(skew_problem("1.32", "v1.33.1"), None);
        assert_eq!(skew_problem("1.32.3", "1.32.3"), None, "a re-run");
        assert!(
            skew_problem("1.32", "1.34")
                .unwrap()
                .contains("to 1.33 first")
        );
        assert!(skew_problem("1.33", "1.32").unwrap().contains("downgrade"));
        assert!(
            skew_problem("1.32.5", "1.32.3")
                .unwrap()
                .contains("downgrade")
        );
        assert!(skew_problem("1.32", "2.0").is_some());
        assert!(skew_problem("1.x", "1.33").is_some());
    }
}
