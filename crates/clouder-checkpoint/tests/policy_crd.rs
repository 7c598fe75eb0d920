//! The CheckpointPolicy CRD manifest, generated from the Rust types, held to a golden file: a
//! change to the resource's schema shows up in review.

use clouder_checkpoint::policy::CheckpointPolicy;
use kube::CustomResourceExt as _;

#[test]
fn the_crd_manifest_is_the_golden_one() {
    let crd = CheckpointPolicy::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("checkpointpolicies.clouder.io")
    );
    insta::assert_snapshot!(serde_yaml_ng::to_string(&crd).unwrap());
}

#[test]
fn a_policy_reads_as_written() {
    let policy: CheckpointPolicy = serde_yaml_ng::from_str(
        "apiVersion: clouder.io/v1alpha1\nkind: CheckpointPolicy\nmetadata: {name: agents, namespace: ml}\n\
         spec:\n  selector: {matchLabels: {app: agent}}\n  schedule: '*/15 * * * *'\n  \
         retention: {keepLast: 3, maxAgeHours: 48}\n  triggers: {beforeDrain: true, idleFor: 30m}\n  \
         destination: registry.local:5000/checkpoints\n",
    )
    .unwrap();
    assert_eq!(policy.spec.retention.keep_last, Some(3));
    assert!(policy.spec.triggers.before_drain);
    assert_eq!(policy.spec.triggers.idle_for.as_deref(), Some("30m"));
    assert!(policy.spec.rules().is_ok());
}
