//! Addons against clouder-testkube with its controllers and stand-in kubelet: they roll out, leave
//! exactly one default StorageClass, re-apply as no-ops, and are removed without leftovers.

use clouder_kube::addons::{self, Addon, Cloud, Context, Issuer};
use clouder_kube::manifest::ObjectRef;
use clouder_kube::{Applier, Outcome};
use clouder_testkube::{AutoKubelet, Kubelet, NodeConfig, TestKube};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

struct Cluster {
    _kube: TestKube,
    _kubelet: AutoKubelet,
    client: kube::Client,
}

async fn cluster() -> Cluster {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kube = TestKube::start_with_controllers().await.unwrap();
    let client = kube.client().await.unwrap();
    let kubelet = Kubelet::new(client.clone());
    kubelet
        .register(&NodeConfig::control_plane("cp"))
        .await
        .unwrap();
    for n in ["w1", "w2"] {
        kubelet
            .register(&NodeConfig::new(n).cpu("4"))
            .await
            .unwrap();
    }
    let running = kubelet.start();
    Cluster {
        _kube: kube,
        _kubelet: running,
        client,
    }
}

fn context(cloud: Cloud) -> Context {
    Context {
        cluster: "demo".into(),
        cloud,
        region: "eu-west-1".into(),
        // The newest minor every addon has a release for (ingress-nginx stops at 1.35).
        minor: 35,
        azure_cloud_config: (cloud == Cloud::Azure).then(|| {
            serde_json::json!({"cloud": "AzurePublicCloud", "useManagedIdentityExtension": true,
                "userAssignedIdentityID": "client-id-1", "resourceGroup": "demo-rg"})
        }),
        efs_file_system: Some("fs-0123456789abcdef0".into()),
    }
}

async fn defaults(client: &kube::Client) -> Vec<String> {
    Api::<StorageClass>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|c| {
            c.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.get(addons::DEFAULT_CLASS).is_some_and(|v| v == "true"))
        })
        .map(|c| c.metadata.name.unwrap())
        .collect()
}

async fn resource_versions(applier: &Applier, objects: &[DynamicObject]) -> Vec<String> {
    let mut out = Vec::new();
    for o in objects {
        let found = applier.find(&ObjectRef::of(o)).await.unwrap().unwrap();
        out.push(found.metadata.resource_version.unwrap());
    }
    out
}

#[test]
fn every_addon_renders_for_every_pinned_minor_and_cloud() {
    let all = [
        Addon::AwsEbsCsi,
        Addon::AwsEfsCsi,
        Addon::AwsLoadBalancerController,
        Addon::AzureCloudProvider,
        Addon::AzureDiskCsi,
        Addon::AzureFileCsi,
        Addon::IngressNginx,
        Addon::IngressTraefik,
        Addon::CertManager,
    ];
    for minor in addons::pins::MINORS {
        for cloud in [Cloud::Aws, Cloud::Azure, Cloud::Ssh] {
            let ctx = Context {
                minor,
                ..context(Cloud::Azure)
            };
            let ctx = Context { cloud, ..ctx };
            for addon in all {
                // An addon with no release for the minor is refused (tested below).
                let Ok(objects) = addons::render(addon, &ctx) else {
                    let pins = addons::Pins::for_minor(minor).unwrap();
                    assert!(addon.version(&pins, minor).is_err(), "{}", addon.name());
                    continue;
                };
                assert!(!objects.is_empty());
                for o in &objects {
                    let labels = o.metadata.labels.as_ref().unwrap();
                    assert_eq!(labels[addons::ADDON_LABEL], addon.name());
                    let text = serde_json::to_string(o).unwrap();
                    assert!(!text.contains("${"), "{text}");
                    assert!(!text.contains(":latest"), "{text}");
                }
            }
        }
    }
    let err = addons::render(
        Addon::AwsEbsCsi,
        &Context {
            minor: 29,
            ..context(Cloud::Aws)
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no addon versions pinned for Kubernetes 1.29 (clouder has 1.31–1.37)"
    );
}

#[tokio::test]
async fn aws_storage_rolls_out_with_gp3_the_only_default_and_reapplies_as_a_no_op() {
    let c = cluster().await;
    // A default class from before clouder (as a kubeadm user might have) loses its default mark.
    let classes = Api::<StorageClass>::all(c.client.clone());
    let standard: StorageClass = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "standard", "annotations": {addons::DEFAULT_CLASS: "true"}},
        "provisioner": "kubernetes.io/no-provisioner"
    }))
    .unwrap();
    classes
        .create(&PostParams::default(), &standard)
        .await
        .unwrap();

    let applier = Applier::new(c.client.clone());
    let ctx = context(Cloud::Aws);
    let installed = addons::install(&applier, addons::cloud_addons(Cloud::Aws), &ctx, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(installed.len(), 2);
    assert!(
        installed[0]
            .applied
            .iter()
            .all(|a| a.outcome == Outcome::Created)
    );
    assert_eq!(defaults(&c.client).await, ["gp3"]);
    let gp3 = classes.get("gp3").await.unwrap();
    assert_eq!(gp3.provisioner, "ebs.csi.aws.com");
    let params = gp3.parameters.unwrap();
    assert_eq!(params["type"], "gp3");
    assert_eq!(params["encrypted"], "true");
    assert_eq!(
        gp3.volume_binding_mode.as_deref(),
        Some("WaitForFirstConsumer")
    );
    assert_eq!(gp3.allow_volume_expansion, Some(true));

    // No credentials: the only Secret is the webhook's serving certificate, and the controller
    // reads the region only.
    let objects: Vec<DynamicObject> = [Addon::AwsEbsCsi, Addon::AwsLoadBalancerController]
        .into_iter()
        .flat_map(|a| addons::render(a, &ctx).unwrap())
        .collect();
    let secrets: Vec<&DynamicObject> = objects
        .iter()
        .filter(|o| ObjectRef::of(o).kind == "Secret")
        .collect();
    assert_eq!(secrets.len(), 1);
    assert!(
        secrets[0].metadata.annotations.as_ref().unwrap()[addons::webhook::TLS_FOR]
            .ends_with(".svc")
    );
    assert!(
        !serde_json::to_string(&objects)
            .unwrap()
            .contains("AWS_SECRET_ACCESS_KEY")
    );

    let before = resource_versions(&applier, &objects).await;
    let again = addons::install(&applier, addons::cloud_addons(Cloud::Aws), &ctx, TIMEOUT)
        .await
        .unwrap();
    assert!(
        again
            .iter()
            .flat_map(|i| &i.applied)
            .all(|a| a.outcome == Outcome::Unchanged),
        "the webhook certificate is kept, not made again: {again:?}"
    );
    assert_eq!(resource_versions(&applier, &objects).await, before);
    assert_eq!(defaults(&c.client).await, ["gp3"]);
}

#[tokio::test]
async fn azure_gets_its_cloud_config_from_the_managed_identity_and_two_classes() {
    let c = cluster().await;
    let applier = Applier::new(c.client.clone());
    let ctx = context(Cloud::Azure);
    addons::install(&applier, addons::cloud_addons(Cloud::Azure), &ctx, TIMEOUT)
        .await
        .unwrap();
    let secret = Api::<Secret>::namespaced(c.client.clone(), "kube-system")
        .get("azure-cloud-provider")
        .await
        .unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&secret.data.unwrap()["cloud-config"].0).unwrap();
    assert_eq!(config["userAssignedIdentityID"], "client-id-1");
    assert_eq!(config["useManagedIdentityExtension"], true);
    assert!(config.get("aadClientSecret").is_none());
    assert_eq!(defaults(&c.client).await, ["managed-csi"]);
    let classes = Api::<StorageClass>::all(c.client.clone());
    let managed = classes.get("managed-csi").await.unwrap();
    assert_eq!(managed.parameters.unwrap()["skuName"], "StandardSSD_LRS");
    assert_eq!(
        managed.volume_binding_mode.as_deref(),
        Some("WaitForFirstConsumer")
    );
    let nfs = classes.get("azure-nfs").await.unwrap();
    let params = nfs.parameters.unwrap();
    assert_eq!(
        (params["protocol"].as_str(), params["skuName"].as_str()),
        ("nfs", "Premium_LRS")
    );
}

#[tokio::test]
async fn ingress_gets_a_cloud_load_balancer_and_is_removed_without_leftovers() {
    let c = cluster().await;
    let applier = Applier::new(c.client.clone());
    let ctx = context(Cloud::Aws);
    addons::install(
        &applier,
        &[Addon::IngressNginx, Addon::CertManager],
        &ctx,
        TIMEOUT,
    )
    .await
    .unwrap();
    let service = Api::<Service>::namespaced(c.client.clone(), "ingress-nginx")
        .get("ingress-nginx-controller")
        .await
        .unwrap();
    assert_eq!(service.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
    let annotations = service.metadata.annotations.unwrap();
    assert_eq!(
        annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"],
        "internet-facing"
    );

    // cert-manager's kinds are served once its CRDs are established: a ClusterIssuer applies.
    let issuer = addons::issuer(
        "letsencrypt",
        &Issuer::Acme {
            server: "https://acme-staging-v02.api.letsencrypt.org/directory".into(),
            email: "ops@example.com".into(),
        },
        "nginx",
    )
    .unwrap();
    let applied = applier.apply(&issuer).await.unwrap();
    assert_eq!(applied[0].object.to_string(), "ClusterIssuer letsencrypt");
    let found = applier.find(&applied[0].object).await.unwrap().unwrap();
    assert_eq!(
        found.data["spec"]["acme"]["solvers"][0]["http01"]["ingress"]["ingressClassName"],
        "nginx"
    );

    let removed = addons::remove(&applier, Addon::IngressNginx, &ctx)
        .await
        .unwrap();
    assert_eq!(
        removed.len(),
        addons::render(Addon::IngressNginx, &ctx).unwrap().len()
    );
    let selector = format!("{}=ingress-nginx", addons::ADDON_LABEL);
    for kind in [
        ("v1", "Service"),
        ("apps/v1", "Deployment"),
        ("networking.k8s.io/v1", "IngressClass"),
    ] {
        let api = applier
            .api(&ObjectRef::new(kind.0, kind.1, Some("ingress-nginx"), "x"))
            .await
            .unwrap();
        let left = api
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap();
        assert!(
            left.items.is_empty(),
            "{kind:?} left: {:?}",
            left.items.len()
        );
    }
    // Removing again finds nothing to delete.
    assert!(
        addons::remove(&applier, Addon::IngressNginx, &ctx)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn efs_needs_its_file_system_and_gets_an_aws_efs_class() {
    let c = cluster().await;
    let applier = Applier::new(c.client.clone());
    let missing = Context {
        efs_file_system: None,
        ..context(Cloud::Aws)
    };
    let err = addons::render(Addon::AwsEfsCsi, &missing).unwrap_err();
    assert!(err.to_string().contains("file system id"), "{err}");
    addons::install(&applier, &[Addon::AwsEfsCsi], &context(Cloud::Aws), TIMEOUT)
        .await
        .unwrap();
    let efs = Api::<StorageClass>::all(c.client.clone())
        .get("aws-efs")
        .await
        .unwrap();
    let params = efs.parameters.unwrap();
    assert_eq!(params["fileSystemId"], "fs-0123456789abcdef0");
    assert_eq!(params["provisioningMode"], "efs-ap");
    assert!(
        defaults(&c.client).await.is_empty(),
        "EFS is never the default class"
    );
}

#[tokio::test]
async fn status_reports_nodes_and_addon_health() {
    let c = cluster().await;
    let applier = Applier::new(c.client.clone());
    addons::install(
        &applier,
        &[Addon::IngressNginx],
        &context(Cloud::Aws),
        TIMEOUT,
    )
    .await
    .unwrap();
    let status = clouder_kube::status::read(&c.client).await.unwrap();
    let roles: Vec<(&str, &str, bool)> = status
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.role, n.ready))
        .collect();
    assert_eq!(
        roles,
        [
            ("cp", "control-plane", true),
            ("w1", "worker", true),
            ("w2", "worker", true)
        ]
    );
    assert_eq!(status.addons.len(), 1);
    let nginx = &status.addons[0];
    assert_eq!(
        (nginx.name.as_str(), nginx.healthy),
        ("ingress-nginx", true),
        "{nginx:?}"
    );
    assert_eq!(
        nginx.version,
        addons::Pins::for_minor(35).unwrap().ingress_nginx.unwrap()
    );

    // A worker going NotReady takes its pods' readiness with it: the addon is reported unhealthy.
    Kubelet::new(c.client.clone())
        .set_node_ready("w1", false)
        .await
        .unwrap();
    Kubelet::new(c.client.clone())
        .set_node_ready("w2", false)
        .await
        .unwrap();
    let mut unhealthy = None;
    for _ in 0..50 {
        let s = clouder_kube::status::read(&c.client).await.unwrap();
        if !s.addons[0].healthy {
            unhealthy = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = unhealthy.expect("the addon never turned unhealthy");
    assert!(
        s.addons[0]
            .detail
            .as_ref()
            .unwrap()
            .starts_with("Deployment ingress-nginx/ingress-nginx-controller: "),
        "{s:?}"
    );
    assert_eq!(s.nodes.iter().filter(|n| !n.ready).count(), 2);
}

/// Roles every Kubernetes API server has (bootstrap policy); anything else must come with the addon.
const BUILT_IN_ROLES: [(&str, &str); 1] = [("Role", "extension-apiserver-authentication-reader")];

#[test]
fn every_workload_runs_as_its_own_service_account_bound_to_roles_that_exist() {
    for cloud in [Cloud::Aws, Cloud::Azure] {
        let ctx = Context {
            minor: 35,
            ..context(cloud)
        };
        let mut all = addons::cloud_addons(cloud).to_vec();
        all.extend([
            Addon::AwsEfsCsi,
            Addon::IngressNginx,
            Addon::IngressTraefik,
            Addon::CertManager,
        ]);
        for addon in all {
            let objects = addons::render(addon, &ctx).unwrap();
            let has = |kind: &str, name: &str| {
                objects.iter().any(|o| {
                    ObjectRef::of(o).kind == kind && o.metadata.name.as_deref() == Some(name)
                })
            };
            for o in &objects {
                let kind = ObjectRef::of(o).kind;
                if kind.ends_with("Binding") {
                    let role = &o.data["roleRef"];
                    let (role_kind, role_name) = (
                        role["kind"].as_str().unwrap(),
                        role["name"].as_str().unwrap(),
                    );
                    assert!(
                        has(role_kind, role_name)
                            || BUILT_IN_ROLES.contains(&(role_kind, role_name)),
                        "{}: {kind} {:?} refers to {role_kind} {role_name}, which nothing creates",
                        addon.name(),
                        o.metadata.name
                    );
                }
                if ["Deployment", "DaemonSet", "StatefulSet"].contains(&kind.as_str()) {
                    let account = o.data["spec"]["template"]["spec"]["serviceAccountName"].as_str();
                    assert!(
                        account.is_some_and(|a| has("ServiceAccount", a)),
                        "{}: {kind} {:?} runs as {account:?}, not an account of its own",
                        addon.name(),
                        o.metadata.name
                    );
                }
            }
        }
    }
}

#[test]
fn versions_follow_upstream_support_per_minor() {
    let pins = |minor| addons::Pins::for_minor(minor).unwrap();
    // cloud-provider-azure's minor matches Kubernetes', from oss/v2 since 1.32.
    for minor in 31..=36 {
        let ccm = pins(minor).azure_ccm.unwrap();
        assert!(ccm.starts_with(&format!("v1.{minor}.")), "{minor}: {ccm}");
    }
    assert_eq!(pins(31).azure_ccm_repository, "oss/kubernetes");
    assert_eq!(pins(32).azure_ccm_repository, "oss/v2/kubernetes");
    let refused = |addon: Addon, minor: u32| {
        let ctx = Context {
            minor,
            ..context(Cloud::Azure)
        };
        addons::render(addon, &ctx).unwrap_err().to_string()
    };
    assert_eq!(
        refused(Addon::AzureCloudProvider, 37),
        "azure-cloud-provider: cloud-provider-azure has no release for Kubernetes 1.37"
    );
    assert!(
        refused(Addon::IngressNginx, 36).contains("retired upstream"),
        "{}",
        refused(Addon::IngressNginx, 36)
    );
    assert_eq!(pins(35).ingress_nginx, Some("v1.15.1"));
    assert_eq!(pins(32).cert_manager, Some("v1.17.4"));
    assert_eq!(pins(36).cert_manager, Some("v1.21.1"));
}

#[tokio::test]
async fn the_load_balancer_controller_webhooks_trust_the_certificate_it_serves() {
    use base64::Engine as _;
    use rustls::client::danger::ServerCertVerifier as _;
    use rustls::pki_types::pem::PemObject as _;
    let c = cluster().await;
    let applier = Applier::new(c.client.clone());
    addons::install(
        &applier,
        &[Addon::AwsLoadBalancerController],
        &context(Cloud::Aws),
        TIMEOUT,
    )
    .await
    .unwrap();
    let secret = Api::<Secret>::namespaced(c.client.clone(), "kube-system")
        .get("aws-load-balancer-tls")
        .await
        .unwrap();
    let data = secret.data.unwrap();
    let pem = |k: &str| data[k].0.clone();
    let configs = Api::<DynamicObject>::all_with(
        c.client.clone(),
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
        )),
    );
    let hooks = configs.get("aws-load-balancer-webhook").await.unwrap();
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(
            hooks.data["webhooks"][1]["clientConfig"]["caBundle"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(bundle, pem("ca.crt"));

    // The API server's check: the served certificate chains to the bundle, for the Service's name.
    let der = |pem: &[u8]| {
        rustls::pki_types::CertificateDer::from_pem_slice(pem)
            .unwrap()
            .into_owned()
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der(&bundle)).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .unwrap();
    let name = rustls::pki_types::ServerName::try_from(
        "aws-load-balancer-webhook-service.kube-system.svc",
    )
    .unwrap();
    verifier
        .verify_server_cert(
            &der(&pem("tls.crt")),
            &[],
            &name,
            &[],
            rustls::pki_types::UnixTime::now(),
        )
        .unwrap();
    let other = rustls::pki_types::ServerName::try_from("elsewhere.kube-system.svc").unwrap();
    assert!(
        verifier
            .verify_server_cert(
                &der(&pem("tls.crt")),
                &[],
                &other,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .is_err()
    );
}
