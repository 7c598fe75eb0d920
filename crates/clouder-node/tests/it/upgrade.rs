//! A node's upgrade: the exact scripts of each step (golden files), all passing shellcheck, and
//! the order kubeadm documents — kubeadm first, the control plane, then the kubelet.

use crate::phases::{hosts, shellcheck};
use clouder_node::Facts;
use clouder_node::phases::{Node, NodePlan};
use clouder_node::upgrade::{self, Part};
use clouder_spec::Sources;

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
