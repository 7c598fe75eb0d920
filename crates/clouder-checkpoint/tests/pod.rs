//! What the catalogue keeps of a checkpointed pod, and the pod a restore makes of it (golden),
//! with literal env values never kept.

use clouder_checkpoint::pod::{self, PodRecord, Restore};
use k8s_openapi::api::core::v1::Pod;

const MARKER: &str = "MARKER-literal-env-value";

/// A pod as the API server returns it: every part a restore must keep, the parts tied to its
/// node and run, and literal env values that may be secrets.
fn running() -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "worker-0", "namespace": "jobs", "uid": "0b1c", "resourceVersion": "812",
            "creationTimestamp": "2026-11-26T05:00:00Z",
            "labels": {"app": "worker", "tier": "batch"},
            "annotations": {
                "team": "data",
                "kubectl.kubernetes.io/last-applied-configuration": format!("{{\"env\":\"{MARKER}\"}}"),
            },
            "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController", "name": "rc", "uid": "9", "controller": true}],
        },
        "spec": {
            "nodeName": "w-3",
            "serviceAccountName": "runner",
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
            "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}}, {"name": "scratch", "emptyDir": {}}],
            "initContainers": [{"name": "prepare", "image": "tools:2", "command": ["sh", "-c", "true"],
                "env": [{"name": "INIT_TOKEN", "value": format!("{MARKER}-init")}]}],
            "containers": [
                {"name": "main", "image": "worker:1.4", "imagePullPolicy": "Always",
                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                 "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "scratch", "mountPath": "/tmp"}],
                 "securityContext": {"allowPrivilegeEscalation": false},
                 "env": [
                    {"name": "API_KEY", "value": MARKER},
                    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                 ],
                 "envFrom": [{"configMapRef": {"name": "settings"}}]},
                {"name": "sidecar", "image": "proxy:3", "env": [{"name": "MODE", "value": "relay"}]},
            ],
            "ephemeralContainers": [{"name": "debugger", "image": "busybox"}],
        },
        "status": {"phase": "Running", "podIP": "10.0.3.7"},
    }))
    .unwrap()
}

/// `jobs/worker-0`'s container `main` restored as `worker-0-restored` from checkpoint `c1`.
fn worker_0_restored() -> Restore<'static> {
    Restore {
        name: "worker-0-restored",
        namespace: "jobs",
        pod: "worker-0",
        container: "main",
        checkpoint: "c1",
        image: "i",
        pull_policy: None,
        node: None,
    }
}

#[test]
fn the_record_keeps_the_spec_but_not_the_node_the_run_or_literal_env_values() {
    let record = pod::record(&running());
    let json = serde_json::to_string_pretty(&record).unwrap();
    assert!(
        !json.contains("MARKER"),
        "a literal env value was kept:\n{json}"
    );
    assert_eq!(
        record.dropped_env,
        ["prepare/INIT_TOKEN", "main/API_KEY", "sidecar/MODE"]
    );
    insta::assert_snapshot!(json);
    // It is what the catalogue stores, as JSON, and reads back unchanged.
    let back: PodRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, record);
}

#[test]
fn a_restore_recreates_the_recorded_pod_with_the_checkpoint_image() {
    let record = pod::record(&running());
    let restore = Restore {
        checkpoint: "jobs.worker-0.main.20261126t050000000z",
        image: "localhost/clouder-checkpoint:jobs.worker-0.main.20261126t050000000z",
        pull_policy: Some("Never"),
        node: Some("w-5"),
        ..worker_0_restored()
    };
    let restored = pod::restored(Some(&record), &restore);
    insta::assert_snapshot!(serde_json::to_string_pretty(&restored).unwrap());

    // From a registry and with no node asked: the scheduler places it, the default pull policy.
    let pulled = Restore {
        image: "localhost:5000/checkpoints@sha256:0123",
        pull_policy: None,
        node: None,
        ..restore.clone()
    };
    let restored = pod::restored(Some(&record), &pulled);
    let spec = restored.spec.unwrap();
    assert_eq!(spec.node_name, None);
    let main = &spec.containers[0];
    assert_eq!(
        (main.image.as_deref(), main.image_pull_policy.as_deref()),
        (Some("localhost:5000/checkpoints@sha256:0123"), None)
    );
    assert_eq!(
        spec.containers[1].image.as_deref(),
        Some("proxy:3"),
        "others keep theirs"
    );

    // A checkpoint recorded before pods were: just the container.
    let bare = pod::restored(None, &restore);
    assert_eq!(
        serde_json::to_value(&bare).unwrap(),
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "worker-0-restored", "namespace": "jobs",
                "labels": {"clouder.io/restored-from": "worker-0"},
                "annotations": {"clouder.io/checkpoint": "jobs.worker-0.main.20261126t050000000z"},
            },
            "spec": {"nodeName": "w-5", "containers": [{"name": "main",
                "image": "localhost/clouder-checkpoint:jobs.worker-0.main.20261126t050000000z",
                "imagePullPolicy": "Never"}]},
        })
    );
}

#[test]
fn a_restored_pod_checkpointed_again_is_recorded_as_the_original() {
    let record = pod::record(&running());
    let again = pod::record(&pod::restored(Some(&record), &worker_0_restored()));
    assert_eq!(
        again.labels, record.labels,
        "no restored-from label carried on"
    );
    assert_eq!(again.annotations, record.annotations);
}
