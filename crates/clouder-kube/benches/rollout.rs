//! Wall time of applying 40 addon/service objects to clouder-testkube (with its controllers):
//! the first server-side apply and a no-op re-apply, then the same objects as four releases of a
//! services file: first deploy (gates included) and a no-op re-deploy. Each round on a fresh
//! server. Run by hand: `cargo bench -p clouder-kube --bench rollout` (figures are printed).

use clouder_kube::services::{self, Options};
use clouder_kube::{Applier, Outcome, manifest, wait};
use clouder_testkube::{Kubelet, NodeConfig, TestKube};
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;
const RELEASES: [&str; 4] = ["ingress", "cert-manager", "observability", "iam"];

/// Ten objects of one addon in namespace `ns`: what a typical controller ships.
fn addon(ns: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {ns}, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {ns}, namespace: {ns}}}
rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get, list, watch]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {ns}, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {ns}}}
subjects: [{{kind: ServiceAccount, name: {ns}, namespace: {ns}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {ns}-reader}}
rules: [{{apiGroups: [""], resources: [nodes], verbs: [get, list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {ns}-reader}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {ns}-reader}}
subjects: [{{kind: ServiceAccount, name: {ns}, namespace: {ns}}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {ns}-config, namespace: {ns}}}
data: {{level: info, replicas: "2"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: {ns}-token, namespace: {ns}}}
stringData: {{token: not-a-real-one}}
---
apiVersion: v1
kind: Service
metadata: {{name: {ns}, namespace: {ns}}}
spec:
  selector: {{app: {ns}}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {ns}, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {ns}}}}}
  template:
    metadata: {{labels: {{app: {ns}}}}}
    spec:
      serviceAccountName: {ns}
      containers: [{{name: app, image: "example/{ns}:1", resources: {{requests: {{cpu: 10m}}}}}}]
"#
    )
}

async fn cluster() -> (TestKube, kube::Client, clouder_testkube::AutoKubelet) {
    let kube = TestKube::start_with_controllers().await.unwrap();
    let client = kube.client().await.unwrap();
    let kubelet = Kubelet::new(client.clone());
    kubelet
        .register(&NodeConfig::new("n1").cpu("32").pods(200))
        .await
        .unwrap();
    let running = kubelet.start();
    (kube, client, running)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn summary(what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "  {what:<42} median {:>9}  min {:>9}  max {:>9}",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let text: String = RELEASES
        .iter()
        .map(|r| addon(r))
        .collect::<Vec<_>>()
        .join("---\n");
    let objects = manifest::parse("bench", &text).unwrap();
    assert_eq!(objects.len(), 40);
    println!("40 objects (4 addons × 10 kinds), {ROUNDS} rounds, each on a fresh testkube:");

    let (mut first, mut again) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (_kube, client, _running) = cluster().await;
        let applier = Applier::new(client);
        let t = Instant::now();
        let applied = applier.apply(&objects).await.unwrap();
        first.push(t.elapsed());
        assert!(applied.iter().all(|a| a.outcome == Outcome::Created));
        // Controllers write the workloads' status until they have rolled out; a re-apply meanwhile
        // would race them. Addons are re-applied to settled clusters.
        for a in applied.iter().filter(|a| a.object.kind == "Deployment") {
            wait::rollout(&applier, &a.object, Duration::from_secs(60))
                .await
                .unwrap();
        }
        let t = Instant::now();
        let applied = applier.apply(&objects).await.unwrap();
        again.push(t.elapsed());
        assert!(
            applied.iter().all(|a| a.outcome == Outcome::Unchanged),
            "{applied:?}"
        );
    }
    summary("server-side apply, first", first);
    summary("server-side apply, no-op re-apply", again);

    let dir = tempfile::tempdir().unwrap();
    let mut file = "apiVersion: clouder.io/v1alpha1\nkind: Services\nreleases:\n".to_string();
    for r in RELEASES {
        std::fs::create_dir(dir.path().join(r)).unwrap();
        std::fs::write(dir.path().join(r).join("all.yaml"), addon(r)).unwrap();
        file += &format!(
            "- name: {r}\n  namespace: {r}\n  version: '1'\n  source: {{manifests: {r}}}\n"
        );
    }
    std::fs::write(dir.path().join("services.yaml"), file).unwrap();
    let services = services::file::load(&dir.path().join("services.yaml")).unwrap();
    let (mut first, mut again) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (_kube, client, _running) = cluster().await;
        let applier = Applier::new(client);
        let helm = services::helm::HelmBinary::default();
        let deploy = || async {
            let rendered = services::prepare(&applier, &services, &helm).await.unwrap();
            services::deploy(&applier, &rendered, &Options::default(), &|_| {})
                .await
                .unwrap()
        };
        for (times, expected) in [(&mut first, "deployed"), (&mut again, "unchanged")] {
            let t = Instant::now();
            let reports = deploy().await;
            times.push(t.elapsed());
            let results = serde_json::to_value(&reports).unwrap();
            assert!(
                results
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|r| r["result"] == expected && r.get("configured").is_none_or(|c| c == 0)),
                "{results}"
            );
        }
    }
    summary("services deploy (2 waves, gates), first", first);
    summary("services deploy, no-op re-deploy", again);
}
