//! The Kubernetes objects an endpoint is represented by, as golden files: any change to what
//! clouder writes into a cluster shows up in review.

use clouder_byoc::objects::{self, Capability, RemoteContainerSpec};
use std::collections::BTreeMap;

fn spec() -> RemoteContainerSpec {
    RemoteContainerSpec {
        endpoint: "https://gpu-a.example.net:8443".into(),
        insecure: false,
        image: "reg.example/runtime@sha256:0000000000000000000000000000000000000000000000000000000000000001".into(),
        ca_bundle: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
        token_secret: objects::secret_name("gpu-a"),
        os: "linux".into(),
        architecture: "arm64".into(),
        capability: Capability {
            cpu: 16,
            memory: 64 << 30,
            gpu: 4,
            runtime: "containerd".into(),
            classes: vec!["gpu".into(), "batch".into()],
            labels: BTreeMap::from([("topology.kubernetes.io/zone".into(), "lab-1".into())]),
        },
        cordoned: false,
    }
}

#[test]
fn crd() {
    insta::assert_json_snapshot!(objects::crd());
}

#[test]
fn remote_container() {
    insta::assert_json_snapshot!(objects::remote_container("gpu-a", &spec()));
}

#[test]
fn virtual_node() {
    insta::assert_json_snapshot!(objects::virtual_node(
        "gpu-a",
        &spec(),
        "2026-11-25T20:39:01Z"
    ));
}

#[test]
fn token_secret() {
    insta::assert_json_snapshot!(objects::token_secret("gpu-a", "TOKEN"));
}

#[test]
fn network_policy() {
    let addresses = [
        "192.0.2.10".parse().unwrap(),
        "2001:db8::10".parse().unwrap(),
    ];
    insta::assert_json_snapshot!(objects::network_policy("gpu-a", &addresses, 8443));
}

#[test]
fn node_lease() {
    insta::assert_json_snapshot!(objects::node_lease(
        "gpu-a",
        "5f0c1e7a-0000-4000-8000-000000000001",
        "2026-11-25T20:39:01.123456Z"
    ));
}
