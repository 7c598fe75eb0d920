//! Ordered service rollout against clouder-testkube (controllers, scheduler and the stand-in
//! kubelet; without a running kubelet pods stay Pending, which fails a gate), and OCI sources
//! against a real docker-registry.

mod support;

use clouder_kube::Applier;
use clouder_kube::manifest::ObjectRef;
use clouder_kube::services::history::{self, Status};
use clouder_kube::services::{self, DeployOutcome, Error, Event, Options, Rendered, Services};
use clouder_testkube::{Kubelet, NodeConfig, TestKube};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::watcher;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::RegistryPeer;

struct Lab {
    _kube: TestKube,
    client: kube::Client,
    applier: Applier,
    kubelet: Kubelet,
    dir: tempfile::TempDir,
}

impl Lab {
    async fn start() -> Lab {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kube = TestKube::start_with_controllers().await.unwrap();
        let client = kube.client().await.unwrap();
        let kubelet = Kubelet::new(client.clone());
        kubelet
            .register(&NodeConfig::new("n1").cpu("16").pods(200))
            .await
            .unwrap();
        Lab {
            _kube: kube,
            applier: Applier::new(client.clone()),
            client,
            kubelet,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes `files` into the directory `name` (replacing what it held).
    fn manifests(&self, name: &str, files: &[(&str, &str)]) {
        let dir = self.dir.path().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in files {
            std::fs::write(dir.join(file), text).unwrap();
        }
    }

    fn services(&self, releases: &str) -> Services {
        let file = self.dir.path().join("services.yaml");
        std::fs::write(
            &file,
            format!("apiVersion: clouder.io/v1alpha1\nkind: Services\nreleases:\n{releases}"),
        )
        .unwrap();
        services::file::load(&file).unwrap()
    }

    async fn prepare(&self, services: &Services) -> Result<Vec<Rendered>, Error> {
        services::prepare(
            &self.applier,
            services,
            &services::helm::HelmBinary::default(),
        )
        .await
    }

    async fn deploy(&self, releases: &str) -> (Vec<services::ReleaseReport>, Vec<Event>) {
        let rendered = self.prepare(&self.services(releases)).await.unwrap();
        let events = Mutex::new(Vec::new());
        let reports = services::deploy(&self.applier, &rendered, &Options::default(), &|e| {
            events.lock().unwrap().push(e.clone())
        })
        .await
        .unwrap();
        (reports, events.into_inner().unwrap())
    }

    async fn find(&self, kind: &str, ns: &str, name: &str) -> Option<serde_json::Value> {
        let api_version = if kind == "Deployment" {
            "apps/v1"
        } else {
            "v1"
        };
        self.applier
            .find(&ObjectRef::new(api_version, kind, Some(ns), name))
            .await
            .unwrap()
            .map(|o| serde_json::to_value(o).unwrap())
    }
}

impl Lab {
    /// The resourceVersions of the `app` objects of `releases`.
    async fn versions(&self, releases: &[&str]) -> Vec<serde_json::Value> {
        let mut versions = Vec::new();
        for name in releases {
            for (kind, object) in [
                ("Deployment", name.to_string()),
                ("ConfigMap", format!("{name}-settings")),
            ] {
                let found = self.find(kind, name, &object).await.unwrap();
                versions.push(found["metadata"]["resourceVersion"].clone());
            }
        }
        versions
    }
}

/// A Deployment of one small replica and a ConfigMap, in the release's namespace (not written:
/// the release supplies it).
fn app(name: &str, image: &str, setting: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - {{name: app, image: "{image}", resources: {{requests: {{cpu: 10m}}}}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-settings}}
data: {{setting: "{setting}"}}
"#
    )
}

fn release(name: &str, extra: &str) -> String {
    format!(
        "- name: {name}\n  namespace: {name}\n  version: '1'\n  source: {{manifests: {name}}}\n  gate: {{timeout: 20s}}\n{extra}"
    )
}

fn outcome<'a>(reports: &'a [services::ReleaseReport], name: &str) -> &'a DeployOutcome {
    &reports.iter().find(|r| r.name == name).unwrap().outcome
}

#[tokio::test(flavor = "multi_thread")]
async fn waves_deploy_in_dependency_order_in_parallel_and_a_redeploy_changes_nothing() {
    let lab = Lab::start().await;
    for name in ["cert-manager", "observability", "ingress", "iam", "manager"] {
        lab.manifests(name, &[("app.yaml", &app(name, "${image}", "a"))]);
    }
    let values = "  values: {image: 'registry.example/app:1'}\n";
    let releases = [
        release("manager", &format!("{values}  dependsOn: [iam]\n")),
        release("iam", values),
        release("ingress", &format!("{values}  dependsOn: [cert-manager]\n")),
        release("cert-manager", values),
        release("observability", values),
    ]
    .concat();

    // Deployments in the order the API server first sees them.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorder = {
        let seen = seen.clone();
        let deployments = Api::<Deployment>::all(lab.client.clone());
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(watcher(deployments, watcher::Config::default()));
            while let Some(Ok(e)) = stream.next().await {
                if let watcher::Event::Apply(d) = e {
                    let name = d.metadata.name.unwrap();
                    let mut seen = seen.lock().unwrap();
                    if !seen.contains(&name) {
                        seen.push(name);
                    }
                }
            }
        })
    };
    // No kubelet runs until both releases of the first wave are waiting on their gates: were
    // they deployed one after the other, the first would time out alone.
    let rendered = lab.prepare(&lab.services(&releases)).await.unwrap();
    let events = Mutex::new(Vec::new());
    let (first_wave_applied, mut both_applying) = tokio::sync::watch::channel(0);
    let observe = |e: &Event| {
        if let Event::Applying(n) = e
            && (n == "cert-manager" || n == "observability")
        {
            first_wave_applied.send_modify(|n| *n += 1);
        }
        events.lock().unwrap().push(e.clone());
    };
    let kubelet = lab.kubelet.clone();
    let running = tokio::spawn(async move {
        both_applying.wait_for(|n| *n == 2).await.unwrap();
        kubelet.start()
    });
    let reports = services::deploy(&lab.applier, &rendered, &Options::default(), &observe)
        .await
        .unwrap();
    let _running = running.await.unwrap();
    let events = events.into_inner().unwrap();

    let order: Vec<(&str, usize)> = reports.iter().map(|r| (r.name.as_str(), r.wave)).collect();
    assert_eq!(
        order,
        [
            ("cert-manager", 0),
            ("observability", 0),
            ("ingress", 1),
            ("iam", 2),
            ("manager", 3)
        ]
    );
    for r in &reports {
        assert_eq!(r.outcome, DeployOutcome::Deployed { revision: 1 }, "{r:?}");
    }
    let position = |e: Event| events.iter().position(|x| *x == e).unwrap();
    let applying = |n: &str| position(Event::Applying(n.into()));
    let healthy = |n: &str| position(Event::Healthy(n.into()));
    assert!(
        applying("observability").max(applying("cert-manager"))
            < healthy("cert-manager").min(healthy("observability")),
        "the first wave ran in parallel: {events:?}"
    );
    assert!(healthy("cert-manager") < applying("ingress"), "{events:?}");
    assert!(healthy("ingress") < applying("iam"), "{events:?}");
    assert!(healthy("iam") < applying("manager"), "{events:?}");
    let seen = seen.lock().unwrap().clone();
    let at = |n: &str| seen.iter().position(|s| s == n).unwrap();
    assert!(
        at("ingress") > at("cert-manager").max(at("observability")),
        "{seen:?}"
    );
    assert!(
        at("iam") > at("ingress") && at("manager") > at("iam"),
        "{seen:?}"
    );
    recorder.abort();

    // Values were substituted and objects landed in the release's namespace.
    let d = lab.find("Deployment", "iam", "iam").await.unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/app:1"
    );
    let revisions = history::list(&lab.client, "iam", "iam").await.unwrap();
    assert_eq!(revisions.len(), 1);
    assert_eq!(
        (revisions[0].status, revisions[0].description.as_str()),
        (Status::Deployed, "install")
    );

    // Deploying again: no new revision, nothing written.
    let versions = lab.versions(&["cert-manager", "ingress", "manager"]).await;
    let (again, _) = lab.deploy(&releases).await;
    for r in &again {
        assert_eq!(
            r.outcome,
            DeployOutcome::Unchanged {
                revision: 1,
                configured: 0
            },
            "{r:?}"
        );
    }
    assert_eq!(
        lab.versions(&["cert-manager", "ingress", "manager"]).await,
        versions,
        "a no-op deploy wrote objects"
    );
    assert_eq!(
        history::list(&lab.client, "iam", "iam")
            .await
            .unwrap()
            .len(),
        1
    );

    let status = services::status(&lab.applier, &lab.services(&releases))
        .await
        .unwrap();
    assert!(
        status
            .iter()
            .all(|s| s.status == "deployed" && s.health == "healthy" && s.revision == Some(1)),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_gate_rolls_its_release_back_and_stops_the_later_waves() {
    let lab = Lab::start().await;
    lab.manifests("storage", &[("app.yaml", &app("storage", "s:1", "a"))]);
    lab.manifests("iam", &[("app.yaml", &app("iam", "iam:1", "a"))]);
    let first = [release("storage", ""), release("iam", "")].concat();
    {
        let _running = lab.kubelet.start();
        let (reports, _) = lab.deploy(&first).await;
        assert!(
            reports
                .iter()
                .all(|r| r.outcome == DeployOutcome::Deployed { revision: 1 })
        );
    }
    // The kubelet is gone: new pods stay Pending. iam's upgrade and the new operator fail their
    // gates; manager, a wave later, never starts. storage is unchanged and still healthy.
    let extra = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: iam-extra}\ndata: {a: b}\n";
    lab.manifests(
        "iam",
        &[
            ("app.yaml", &app("iam", "iam:2", "b")),
            ("extra.yaml", extra),
        ],
    );
    lab.manifests("operator", &[("app.yaml", &app("operator", "op:1", "a"))]);
    lab.manifests("manager", &[("app.yaml", &app("manager", "m:1", "a"))]);
    let fast = "  gate: {timeout: 2s}\n";
    let second = [
        release("storage", ""),
        release("iam", "").replace("  gate: {timeout: 20s}\n", fast),
        release("operator", "").replace("  gate: {timeout: 20s}\n", fast),
        release("manager", "  dependsOn: [iam]\n"),
    ]
    .concat();
    let (reports, events) = lab.deploy(&second).await;

    assert_eq!(
        *outcome(&reports, "storage"),
        DeployOutcome::Unchanged {
            revision: 1,
            configured: 0
        }
    );
    let DeployOutcome::Failed {
        reason,
        rolled_back_to,
    } = outcome(&reports, "iam")
    else {
        panic!("{reports:?}")
    };
    assert_eq!(*rolled_back_to, Some(1));
    assert!(
        reason.starts_with("timed out after 2s waiting for Deployment iam/iam: "),
        "{reason}"
    );
    assert!(
        matches!(
            outcome(&reports, "operator"),
            DeployOutcome::Failed {
                rolled_back_to: None,
                ..
            }
        ),
        "{reports:?}"
    );
    assert_eq!(
        *outcome(&reports, "manager"),
        DeployOutcome::Skipped {
            reason: "wave 1 failed: iam did not pass its gate".into()
        }
    );
    assert!(events.contains(&Event::RolledBack {
        release: "iam".into(),
        to: Some(1)
    }));
    assert!(
        !events.contains(&Event::Applying("manager".into())),
        "{events:?}"
    );

    // iam runs revision 1 again: its image and setting, without the object revision 2 added.
    let d = lab.find("Deployment", "iam", "iam").await.unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "iam:1"
    );
    let cm = lab.find("ConfigMap", "iam", "iam-settings").await.unwrap();
    assert_eq!(cm["data"]["setting"], "a");
    assert!(lab.find("ConfigMap", "iam", "iam-extra").await.is_none());
    // operator had nothing before: it is gone. manager was never applied.
    assert!(
        lab.find("Deployment", "operator", "operator")
            .await
            .is_none()
    );
    assert!(lab.find("Deployment", "manager", "manager").await.is_none());

    let revisions = history::list(&lab.client, "iam", "iam").await.unwrap();
    let states: Vec<(u32, Status)> = revisions.iter().map(|r| (r.revision, r.status)).collect();
    assert_eq!(states, [(1, Status::Deployed), (2, Status::Failed)]);
    assert_eq!(&revisions[1].description, reason);

    let status = services::status(&lab.applier, &lab.services(&second))
        .await
        .unwrap();
    let iam = status.iter().find(|s| s.name == "iam").unwrap();
    assert_eq!((iam.revision, iam.status.as_str()), (Some(1), "deployed"));
    assert_eq!(&iam.description, reason);
    let operator = status.iter().find(|s| s.name == "operator").unwrap();
    assert_eq!(
        (operator.revision, operator.status.as_str()),
        (None, "failed")
    );
    let manager = status.iter().find(|s| s.name == "manager").unwrap();
    assert_eq!(manager.status, "not deployed");
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_reapplies_an_earlier_revision_and_deletes_what_it_did_not_have() {
    let lab = Lab::start().await;
    let _running = lab.kubelet.start();
    let one = release("iam", "");
    lab.manifests("iam", &[("app.yaml", &app("iam", "iam:1", "a"))]);
    lab.deploy(&one).await;
    let extra = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: iam-extra}\ndata: {a: b}\n";
    lab.manifests(
        "iam",
        &[
            ("app.yaml", &app("iam", "iam:2", "b")),
            ("extra.yaml", extra),
        ],
    );

    // plan: what revision 2 would change against revision 1.
    let rendered = lab.prepare(&lab.services(&one)).await.unwrap();
    let plan = services::plan(&lab.applier, &rendered).await.unwrap();
    let changes: Vec<(&str, &str)> = plan[0]
        .changes
        .iter()
        .map(|c| (c.object.as_str(), c.action))
        .collect();
    assert_eq!(
        changes,
        [
            ("Deployment iam/iam", "configure"),
            ("ConfigMap iam/iam-settings", "configure"),
            ("ConfigMap iam/iam-extra", "create")
        ]
    );
    assert_eq!(plan[0].revision, Some(1));
    assert!(
        lab.find("ConfigMap", "iam", "iam-extra").await.is_none(),
        "plan applied"
    );

    let (reports, _) = lab.deploy(&one).await;
    assert_eq!(reports[0].outcome, DeployOutcome::Deployed { revision: 2 });
    assert_eq!(
        lab.find("ConfigMap", "iam", "iam-settings").await.unwrap()["data"]["setting"],
        "b"
    );

    let back = services::rollback(&lab.applier, "iam", None, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!((back.to, back.revision), (1, 3));
    assert_eq!(back.deleted, ["ConfigMap iam/iam-extra"]);
    let d = lab.find("Deployment", "iam", "iam").await.unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "iam:1"
    );
    assert!(lab.find("ConfigMap", "iam", "iam-extra").await.is_none());
    let states: Vec<(u32, Status, String)> = history::list(&lab.client, "iam", "iam")
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.revision, r.status, r.description))
        .collect();
    assert_eq!(
        states,
        [
            (1, Status::Superseded, "install".to_string()),
            (2, Status::Superseded, "upgrade from revision 1".to_string()),
            (3, Status::Deployed, "rollback to revision 1".to_string())
        ]
    );

    // Forward again to revision 2's objects, by number.
    let forward = services::rollback(&lab.applier, "iam", Some(2), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!((forward.to, forward.revision), (2, 4));
    assert!(lab.find("ConfigMap", "iam", "iam-extra").await.is_some());

    let err = services::rollback(&lab.applier, "iam", Some(9), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)));
    assert_eq!(
        err.to_string(),
        "release: iam: has no revision 9 (revisions: 1 (superseded), 2 (superseded), 3 (superseded), 4 (deployed))"
    );
    let err = services::rollback(&lab.applier, "ghost", None, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "release: ghost: no such release in the cluster"
    );
}

async fn namespaces(lab: &Lab) -> Vec<String> {
    let api = Api::<k8s_openapi::api::core::v1::Namespace>::all(lab.client.clone());
    let mut names: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_before_anything_is_applied() {
    let lab = Lab::start().await;
    let before = namespaces(&lab).await;
    lab.manifests("iam", &[("app.yaml", &app("iam", "${imgae}", "a"))]);
    lab.manifests(
        "storage",
        &[
            ("a.yaml", &app("storage", "s:1", "a")),
            ("b.yaml", "apiVersion: v1\nmetadata: {name: x}\n"),
        ],
    );
    lab.manifests(
        "manager",
        &[(
            "a.yaml",
            "apiVersion: nope.example/v1\nkind: Gadget\nmetadata: {name: g}\n",
        )],
    );
    let closed = support::free_port();
    let releases = [
        release("iam", "  values: {image: 'x:1'}\n"),
        release("storage", ""),
        release("manager", ""),
        format!("- name: ingress\n  namespace: ingress\n  source: {{oci: 'localhost:{closed}/charts/ingress:1.0'}}\n"),
        "- name: observability\n  namespace: obs\n  source:\n    helm: {repo: 'https://charts.example', chart: kube-prometheus, version: 1.2.3}\n".to_string(),
    ]
    .concat();
    let services = lab.services(&releases);
    let dir = lab.dir.path().display();
    // The helm binary is looked for where it cannot be.
    let helm = services::helm::HelmBinary {
        program: "/nonexistent/helm".into(),
    };
    let err = services::prepare(&lab.applier, &services, &helm)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)));
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    // Releases come in rollout order: system (ingress, observability, storage), then core.
    assert!(
        lines[0].starts_with(&format!("{dir}/services.yaml:22:3: releases[3].source: localhost:{closed}/charts/ingress:1.0 is unreachable: ")),
        "{text}"
    );
    assert_eq!(
        lines[1],
        format!(
            "{dir}/services.yaml:25:3: releases[4].source: the helm binary (/nonexistent/helm) was not found: install Helm 3 or later, set CLOUDER_HELM, or use a manifests or oci source"
        )
    );
    assert_eq!(
        lines[2],
        format!("{dir}/storage/b.yaml: document 1: kind: required")
    );
    assert_eq!(
        lines[3],
        format!("{dir}/iam/app.yaml:11:29: unknown variable ${{imgae}} (values: image)")
    );

    // Once the rest is fixed, a kind nobody serves is named with its release.
    let unknown = [release("manager", "")].concat();
    let err = lab.prepare(&lab.services(&unknown)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{dir}/services.yaml:7:3: releases[0].source: Gadget g: unknown kind Gadget in nope.example/v1 (neither served by the cluster nor defined by a CRD of the releases)"
        )
    );

    // One object in two releases.
    let shared = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared, namespace: common}\n";
    lab.manifests("iam", &[("shared.yaml", shared)]);
    lab.manifests("storage", &[("shared.yaml", shared)]);
    let twice = [release("storage", ""), release("iam", "")].concat();
    let err = lab.prepare(&lab.services(&twice)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{dir}/services.yaml:12:3: releases[1].source: ConfigMap common/shared is also in release storage: an object belongs to one release"
        )
    );
    assert_eq!(namespaces(&lab).await, before, "something was applied");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oci_artifact_of_yaml_and_tgz_layers_deploys() {
    let lab = Lab::start().await;
    let _running = lab.kubelet.start();
    let registry = RegistryPeer::start();
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: messaging}\n";
    let tgz = support::tgz(&[("deploy/app.yaml", &app("broker", "broker:${tag}", "a"))]);
    registry
        .push(
            "charts/messaging",
            "3.1.0",
            &[
                (
                    "application/yaml",
                    "namespace.yaml",
                    namespace.as_bytes().to_vec(),
                ),
                (
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                    "app.tgz",
                    tgz,
                ),
            ],
        )
        .await;
    let host = registry.host();
    let releases = format!(
        "- name: messaging\n  namespace: messaging\n  values: {{tag: '7'}}\n  source: {{oci: '{host}/charts/messaging:3.1.0'}}\n  gate: {{timeout: 20s}}\n"
    );
    let (reports, _) = lab.deploy(&releases).await;
    assert_eq!(reports[0].outcome, DeployOutcome::Deployed { revision: 1 });
    assert_eq!(reports[0].version, "3.1.0");
    let d = lab.find("Deployment", "messaging", "broker").await.unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "broker:7"
    );
    assert_eq!(registry.requests("GET", "/v2/charts/messaging/blobs/"), 2);

    // A tag the registry does not have is bad input too.
    let missing = releases.replace("3.1.0", "3.2.0");
    let err = lab.prepare(&lab.services(&missing)).await.unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "releases[0].source: {host}/charts/messaging:3.2.0: not found in the registry"
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_condition_gate_waits_for_the_named_object() {
    let lab = Lab::start().await;
    let _running = lab.kubelet.start();
    lab.manifests("iam", &[("app.yaml", &app("iam", "iam:1", "a"))]);
    let gated = |kind: &str, name: &str, type_: &str, timeout: &str| {
        format!(
            "- name: iam\n  namespace: iam\n  version: '1'\n  source: {{manifests: iam}}\n  gate:\n    timeout: {timeout}\n    condition: {{apiVersion: {}, kind: {kind}, name: {name}, type: {type_}}}\n",
            if kind == "Deployment" {
                "apps/v1"
            } else {
                "v1"
            }
        )
    };
    let (reports, _) = lab
        .deploy(&gated("Deployment", "iam", "Available", "20s"))
        .await;
    assert_eq!(reports[0].outcome, DeployOutcome::Deployed { revision: 1 });

    // A condition nothing reports fails the gate, naming the object and what it lacks.
    lab.manifests("iam", &[("app.yaml", &app("iam", "iam:1", "b"))]);
    let (reports, _) = lab
        .deploy(&gated("ConfigMap", "iam-settings", "Ready", "1s"))
        .await;
    let DeployOutcome::Failed {
        reason,
        rolled_back_to,
    } = &reports[0].outcome
    else {
        panic!("{reports:?}")
    };
    assert_eq!(*rolled_back_to, Some(1));
    assert!(
        reason.starts_with(
            "timed out after 1s waiting for ConfigMap iam/iam-settings: condition Ready not reported yet"
        ),
        "{reason}"
    );
    let cm = lab.find("ConfigMap", "iam", "iam-settings").await.unwrap();
    assert_eq!(cm["data"]["setting"], "a", "rolled back");
}
