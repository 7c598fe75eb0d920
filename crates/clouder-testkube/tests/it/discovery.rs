//! Discovery and OpenAPI as clients read them.

use crate::common::{raw, start};
use kube::discovery::{Discovery, Scope};

#[tokio::test]
async fn kube_discovery_finds_the_builtin_resources() {
    let (_kube, client) = start().await;
    let discovery = Discovery::new(client).run().await.unwrap();
    let find = |group: &str, plural: &str| {
        discovery
            .get(group)
            .and_then(|g| {
                g.recommended_resources()
                    .into_iter()
                    .find(|(r, _)| r.plural == plural)
            })
            .unwrap_or_else(|| panic!("{group}/{plural} not discovered"))
    };
    let (pods, caps) = find("", "pods");
    assert_eq!(
        (pods.kind.as_str(), caps.scope.clone()),
        ("Pod", Scope::Namespaced)
    );
    assert!(
        caps.subresources
            .iter()
            .any(|(r, _)| r.plural == "eviction")
    );
    let (_, nodes) = find("", "nodes");
    assert_eq!(nodes.scope, Scope::Cluster);
    for (g, p) in [
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("batch", "jobs"),
        ("policy", "poddisruptionbudgets"),
        ("networking.k8s.io", "ingresses"),
        ("storage.k8s.io", "storageclasses"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("coordination.k8s.io", "leases"),
        ("events.k8s.io", "events"),
        ("discovery.k8s.io", "endpointslices"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    ] {
        find(g, p);
    }
}

#[tokio::test]
async fn version_and_openapi_v3() {
    let (_kube, client) = start().await;
    let v = client.apiserver_version().await.unwrap();
    assert_eq!(
        (v.major.as_str(), v.minor.as_str(), v.git_version.as_str()),
        ("1", "36", "v1.36.0")
    );
    let (code, index) = raw(&client, "GET", "/openapi/v3", None, None).await;
    assert_eq!(code, 200);
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, doc) = raw(&client, "GET", &url, None, None).await;
    assert_eq!(code, 200);
    assert!(doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object());
    let (code, body) = raw(
        &client,
        "GET",
        "/apis/nothing.example.com/v1/things",
        None,
        None,
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (404, Some("NotFound")));
}
