//! Enrollment against the project's API server (clouder-testkube) and real HTTPS endpoints:
//! the objects made, trust refused, duplicates refused, lifecycle, and nothing left behind.

mod support;

use clouder_byoc::enroll::{self, EnrollError, Registration};
use clouder_byoc::objects::{self, Capability, NAMESPACE};
use clouder_byoc::trust::{Endpoint as Url, TrustError};
use clouder_testenv::endpoint::{Ca, Endpoint};
use clouder_testkube::TestKube;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const IMAGE: &str =
    "reg.example/app@sha256:0000000000000000000000000000000000000000000000000000000000000001";

fn registration(name: &str, url: &str, ca: Option<&Ca>, insecure: bool) -> Registration {
    Registration {
        name: name.into(),
        endpoint: Url::parse(url, insecure).unwrap(),
        image: IMAGE.into(),
        os: "linux".into(),
        architecture: "amd64".into(),
        ca_pem: ca.map(|c| c.pem.clone()),
        capability: Capability {
            cpu: 8,
            memory: 32 << 30,
            gpu: 2,
            runtime: "containerd".into(),
            classes: vec!["gpu".into(), "batch".into()],
            labels: BTreeMap::from([("zone".into(), "lab".into())]),
        },
    }
}

async fn start() -> (TestKube, kube::Client) {
    support::tls_provider();
    let kube = TestKube::start().await.unwrap();
    let client = kube.client().await.unwrap();
    (kube, client)
}

/// Every object an endpoint may have: (secret, policy, node, lease, resource) exist?
async fn objects_of(client: &kube::Client, name: &str) -> [bool; 5] {
    let leases: Api<Lease> = Api::namespaced(client.clone(), objects::LEASE_NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), NAMESPACE);
    let nodes: Api<Node> = Api::all(client.clone());
    let rcs: Api<DynamicObject> = Api::all_with(client.clone(), &objects::api_resource());
    let rc = match rcs.get_opt(name).await {
        Ok(found) => found.is_some(),
        Err(kube::Error::Api(e)) if e.code == 404 => false,
        Err(e) => panic!("{e}"),
    };
    [
        secrets
            .get_opt(&objects::secret_name(name))
            .await
            .unwrap()
            .is_some(),
        policies
            .get_opt(&objects::policy_name(name))
            .await
            .unwrap()
            .is_some(),
        nodes
            .get_opt(&objects::node_name(name))
            .await
            .unwrap()
            .is_some(),
        leases
            .get_opt(&objects::node_name(name))
            .await
            .unwrap()
            .is_some(),
        rc,
    ]
}

fn token_in(secret: &Secret) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()["token"].0.clone()).unwrap()
}

#[tokio::test]
async fn registration_makes_the_objects_and_remove_leaves_nothing() {
    let (_kube, client) = start().await;
    let ca = Ca::new("byoc-ca");
    let endpoint = Endpoint::start(Some(ca.server()), "not-yet").await;
    let reg = registration("gpu-a", &endpoint.url, Some(&ca), false);
    let enrolled = enroll::register(&client, &reg).await.unwrap();
    assert_eq!(enrolled.token_sha256, enroll::token_sha256(&enrolled.token));
    assert!(enrolled.token.len() >= 43);

    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let secret = secrets.get("byoc-gpu-a-token").await.unwrap();
    assert_eq!(token_in(&secret), enrolled.token);

    let policy: Api<NetworkPolicy> = Api::namespaced(client.clone(), NAMESPACE);
    let policy = serde_json::to_value(policy.get("byoc-gpu-a-egress").await.unwrap()).unwrap();
    assert_eq!(
        policy["spec"]["egress"][0],
        json!({"to": [{"ipBlock": {"cidr": "127.0.0.1/32"}}],
                "ports": [{"protocol": "TCP", "port": endpoint.port}]})
    );
    assert_eq!(
        policy["spec"]["egress"][1]["ports"],
        json!([{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]),
        "DNS stays reachable"
    );
    // Only the pods that opt in to this endpoint are selected.
    assert_eq!(
        policy["spec"]["podSelector"],
        json!({"matchLabels": {"clouder.io/byoc": "gpu-a"}})
    );

    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.get("byoc-gpu-a").await.unwrap();
    let status = node.status.as_ref().unwrap();
    let capacity = status.capacity.as_ref().unwrap();
    assert_eq!(capacity["cpu"].0, "8");
    assert_eq!(capacity["memory"].0, (32u64 << 30).to_string());
    assert_eq!(capacity["nvidia.com/gpu"].0, "2");
    let labels = node.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["zone"], "lab");
    assert_eq!(labels["clouder.io/class.gpu"], "true");
    assert_eq!(labels["clouder.io/runtime"], "containerd");
    assert_eq!(
        (
            labels["kubernetes.io/arch"].as_str(),
            labels["kubernetes.io/os"].as_str()
        ),
        ("amd64", "linux")
    );
    let taints = node.spec.as_ref().unwrap().taints.as_ref().unwrap();
    assert_eq!(
        (
            taints[0].key.as_str(),
            taints[0].value.as_deref(),
            taints[0].effect.as_str()
        ),
        ("clouder.io/byoc", Some("gpu-a"), "NoSchedule")
    );

    // Its Lease, held by the Node and owned by it, as a kubelet's.
    assert_eq!(objects_of(&client, "gpu-a").await, [true; 5]);
    let lease: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = lease.get("byoc-gpu-a").await.unwrap();
    let spec = lease.spec.as_ref().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("byoc-gpu-a"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    assert!(spec.renew_time.is_some());
    let owner = &lease.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), Some(&owner.uid)),
        ("Node", "byoc-gpu-a", node.metadata.uid.as_ref())
    );

    let listed = enroll::list(&client).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].spec.endpoint, endpoint.url);
    assert_eq!(listed[0].spec.ca_bundle.as_deref(), Some(ca.pem.as_str()));
    assert_eq!(listed[0].status.state(), "Unknown");

    // A second registration under the same name is refused and changes nothing.
    let err = enroll::register(&client, &reg).await.err().unwrap();
    assert!(matches!(err, EnrollError::Duplicate(_)), "{err}");
    assert_eq!(
        token_in(&secrets.get("byoc-gpu-a-token").await.unwrap()),
        enrolled.token
    );

    enroll::set_cordoned(&client, "gpu-a", true).await.unwrap();
    let got = enroll::get(&client, "gpu-a").await.unwrap().unwrap();
    assert!(got.cordoned && got.spec.cordoned);
    enroll::set_cordoned(&client, "gpu-a", false).await.unwrap();
    let got = enroll::get(&client, "gpu-a").await.unwrap().unwrap();
    assert!(!got.cordoned && !got.spec.cordoned);

    let rotated = enroll::rotate_token(&client, "gpu-a").await.unwrap();
    assert_ne!(rotated, enrolled.token);
    assert_eq!(
        token_in(&secrets.get("byoc-gpu-a-token").await.unwrap()),
        rotated
    );

    let newer = IMAGE.replace("01", "02");
    enroll::update_image(&client, "gpu-a", &newer, "linux", "arm64")
        .await
        .unwrap();
    let got = enroll::get(&client, "gpu-a").await.unwrap().unwrap();
    assert_eq!(
        (got.spec.image.as_str(), got.spec.architecture.as_str()),
        (newer.as_str(), "arm64")
    );
    let node = nodes.get("byoc-gpu-a").await.unwrap();
    assert_eq!(node.metadata.labels.unwrap()["kubernetes.io/arch"], "arm64");
    let info = node.status.unwrap().node_info.unwrap();
    assert_eq!(
        (info.architecture, info.operating_system),
        ("arm64".into(), "linux".into())
    );

    // Work bound to its node holds the removal until it finishes.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "job-1"},
        "spec": {"nodeName": "byoc-gpu-a", "containers": [{"name": "c", "image": "x"}],
                 "tolerations": [{"key": "clouder.io/byoc", "operator": "Exists"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let err = enroll::remove(&client, "gpu-a", Some(Duration::from_millis(600)))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "1 pod(s) still run on byoc-gpu-a (default/job-1): wait for them or remove with --force"
    );
    assert!(
        enroll::get(&client, "gpu-a")
            .await
            .unwrap()
            .unwrap()
            .cordoned
    );
    pods.patch_status(
        "job-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
    )
    .await
    .unwrap();
    enroll::remove(&client, "gpu-a", Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(objects_of(&client, "gpu-a").await, [false; 5]);
    assert!(enroll::list(&client).await.unwrap().is_empty());
    let err = enroll::rotate_token(&client, "gpu-a").await.err().unwrap();
    assert!(matches!(err, EnrollError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn remove_with_force_does_not_wait_for_work() {
    let (_kube, client) = start().await;
    let ca = Ca::new("byoc-ca");
    let endpoint = Endpoint::start(Some(ca.server()), "t").await;
    enroll::register(
        &client,
        &registration("busy", &endpoint.url, Some(&ca), false),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "long"},
        "spec": {"nodeName": "byoc-busy", "containers": [{"name": "c", "image": "x"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(
        enroll::work_on(&client, "busy").await.unwrap(),
        ["default/long"]
    );
    enroll::remove(&client, "busy", None).await.unwrap();
    assert_eq!(objects_of(&client, "busy").await, [false; 5]);
}

#[tokio::test]
async fn an_untrusted_endpoint_is_refused_and_nothing_is_recorded() {
    let (_kube, client) = start().await;
    let (ca, other) = (Ca::new("right-ca"), Ca::new("wrong-ca"));
    let endpoint = Endpoint::start(Some(ca.server()), "t").await;

    // Signed by a CA it was not told to trust.
    let err = enroll::register(
        &client,
        &registration("x", &endpoint.url, Some(&other), false),
    )
    .await
    .err()
    .unwrap();
    assert!(
        matches!(err, EnrollError::Trust(TrustError::Untrusted { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("certificate"), "{err}");
    // Nor by the system's roots.
    let err = enroll::register(&client, &registration("x", &endpoint.url, None, false))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("is not trusted"), "{err}");
    // Nothing reached the cluster.
    assert_eq!(objects_of(&client, "x").await, [false; 5]);

    // Nobody listening.
    let closed = format!(
        "https://127.0.0.1:{}",
        clouder_testenv::registry::free_port()
    );
    let err = enroll::register(&client, &registration("x", &closed, Some(&ca), false))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("is not trusted"), "{err}");

    // Plain HTTP needs --insecure, and is then marked so.
    let plain = Endpoint::start(None, "t").await;
    let err = Url::parse(&plain.url, false).unwrap_err();
    assert!(err.to_string().contains("--insecure"), "{err}");
    enroll::register(&client, &registration("plain", &plain.url, None, true))
        .await
        .unwrap();
    let got = enroll::get(&client, "plain").await.unwrap().unwrap();
    assert!(got.spec.insecure);
    let node = Api::<Node>::all(client.clone())
        .get("byoc-plain")
        .await
        .unwrap();
    assert_eq!(node.metadata.labels.unwrap()["clouder.io/insecure"], "true");

    let err = enroll::register(&client, &registration("Bad_Name", &plain.url, None, true))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, EnrollError::Name(_)), "{err}");
}
