//! A node's upgrade: the exact scripts of each step (golden files), all passing shellcheck, and
//! the order kubeadm documents — kubeadm first, the control plane, then the kubelet.

use crate::phases::{hosts, shellcheck};
use clouder_node::Facts;
use clouder_node::phases::{Node, NodePlan};
use clouder_node::upgrade::{self, Part};
use clouder_spec::{ArchiveSource, Source, Sources};

/// An Ubuntu host upgrading to 1.33.2 from the default sources.
fn plan() -> (NodePlan, Facts) {
    let plan = NodePlan {
        kubernetes_version: "1.33.2".into(),
        sources: Sources::default(),
    };
    let [ubuntu, _] = hosts();
    (plan, ubuntu)
}

#[test]
fn every_step_of_every_part_is_golden_and_passes_shellcheck() {
    let (plan, ubuntu) = plan();
    let node = Node {
        plan: &plan,
        facts: &ubuntu,
    };
    for (part, name) in [
        (Part::FirstControlPlane, "first-control-plane"),
        (Part::ControlPlane, "control-plane"),
        (Part::Worker, "worker"),
    ] {
        let steps = upgrade::all(part);
        let titles: Vec<&str> = steps.iter().map(|s| s.title()).collect();
        assert_eq!(titles.first(), Some(&"kubeadm package"), "{name}");
        assert_eq!(titles.last(), Some(&"kubelet packages"), "{name}");
        let mut text = String::new();
        for step in &steps {
            let (probe, apply) = (step.probe(node), step.apply(node));
            shellcheck(&format!("{name}: {} probe", step.title()), &probe);
            shellcheck(&format!("{name}: {} apply", step.title()), &apply);
            text += &format!(
                "## {} — probe\n{probe}\n## {} — apply\n{apply}\n",
                step.title(),
                step.title()
            );
        }
        insta::assert_snapshot!(format!("upgrade_{name}"), text);
    }
}

#[test]
fn kubeadm_moves_alone_before_the_kubelet() {
    let (plan, ubuntu) = plan();
    let node = Node {
        plan: &plan,
        facts: &ubuntu,
    };
    let first = &upgrade::before_drain(Part::Worker)[0];
    let kubeadm = first.apply(node);
    assert!(kubeadm.contains("'kubeadm=1.33.2-*'"), "{kubeadm}");
    assert!(
        !kubeadm.contains("kubelet="),
        "the kubelet waits for the drain: {kubeadm}"
    );
    let kubelet = upgrade::while_drained()[0].apply(node);
    assert!(
        kubelet.contains("'kubelet=1.33.2-*' 'kubectl=1.33.2-*'")
            && kubelet.ends_with("systemctl restart kubelet\n"),
        "{kubelet}"
    );
}

#[test]
fn from_an_archive_kubeadm_moves_alone_before_the_kubelet() {
    let plan = NodePlan {
        kubernetes_version: "1.33.2".into(),
        sources: Sources {
            kubernetes: Some(Source::archive(ArchiveSource {
                url: "/srv/mirror/kubernetes-node-linux-amd64.tar.gz".into(),
                sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            })),
            ..Sources::default()
        },
    };
    let [ubuntu, _] = hosts();
    let node = Node {
        plan: &plan,
        facts: &ubuntu,
    };
    let steps = upgrade::all(Part::Worker);
    let (first, last) = (&steps[0], &steps[steps.len() - 1]);
    for step in [first, last] {
        shellcheck(&format!("{} probe", step.title()), &step.probe(node));
        shellcheck(&format!("{} apply", step.title()), &step.apply(node));
    }
    let kubeadm = first.apply(node);
    assert!(
        kubeadm.contains("/etc/clouder/sources/kubernetes/kubeadm.sha256")
            && kubeadm.contains("\"$tmp/bin/\"kubeadm /usr/local/bin/kubeadm.clouder-new"),
        "{kubeadm}"
    );
    assert!(!kubeadm.contains("kubelet"), "{kubeadm}");
    assert!(
        !kubeadm.contains("--set-selections"),
        "no packages: {kubeadm}"
    );
    let kubelet = last.apply(node);
    assert!(
        kubelet.contains("/etc/clouder/sources/kubernetes/kubelet.sha256")
            && kubelet.contains("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"),
        "{kubelet}"
    );
    assert!(
        !kubelet.contains("/usr/local/bin/kubeadm.clouder-new"),
        "{kubelet}"
    );
}
