//! Drain figures on clouder-testkube (controllers, scheduler, stand-in kubelet): a worker carrying
//! 100 pods drained through the Eviction API, with and without a PodDisruptionBudget that lets one
//! pod go at a time, beside the addon apply (first apply and no-op re-apply of every cloud addon).
//! Run by hand: `cargo bench -p clouder-kube --bench drain`.

use clouder_kube::addons::{self, Cloud, Context};
use clouder_kube::manifest::{ObjectRef, parse};
use clouder_kube::{Applier, DrainOptions, drain, wait};
use clouder_testkube::{Kubelet, NodeConfig, TestKube};
use std::time::{Duration, Instant};

const PODS: usize = 100;

async fn drain_figure(budget: bool) -> (Duration, usize) {
    let kube = TestKube::start_with_controllers().await.unwrap();
    let client = kube.client().await.unwrap();
    let kubelet = Kubelet::new(client.clone());
    kubelet
        .register(&NodeConfig::new("full").pods(200).cpu("64"))
        .await
        .unwrap();
    let _running = kubelet.start();
    let applier = Applier::new(client.clone());
    let mut manifest = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: load, namespace: default}}\nspec:\n  replicas: {PODS}\n  selector: {{matchLabels: {{app: load}}}}\n  template:\n    metadata: {{labels: {{app: load}}}}\n    spec: {{containers: [{{name: c, image: busybox}}]}}\n"
    );
    if budget {
        manifest += "---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: load, namespace: default}\nspec: {maxUnavailable: 1, selector: {matchLabels: {app: load}}}\n";
    }
    let objects = parse("load", &manifest).unwrap();
    applier.apply(&objects).await.unwrap();
    wait::rollout(
        &applier,
        &ObjectRef::of(&objects[0]),
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    // Somewhere for the evicted pods to go.
    kubelet
        .register(&NodeConfig::new("empty").pods(200).cpu("64"))
        .await
        .unwrap();
    let options = DrainOptions {
        timeout: Duration::from_secs(600),
        retry: Duration::from_millis(50),
    };
    let start = Instant::now();
    let report = drain::drain(&client, "full", &options).await.unwrap();
    (start.elapsed(), report.evicted.len())
}

async fn addon_figures() -> (usize, Duration, Duration) {
    let kube = TestKube::start_with_controllers().await.unwrap();
    let client = kube.client().await.unwrap();
    let kubelet = Kubelet::new(client.clone());
    for n in ["a", "b", "c"] {
        kubelet.register(&NodeConfig::new(n)).await.unwrap();
    }
    let _running = kubelet.start();
    let applier = Applier::new(client);
    let ctx = Context {
        cluster: "bench".into(),
        cloud: Cloud::Aws,
        region: "eu-west-1".into(),
        minor: 35,
        azure_cloud_config: None,
        efs_file_system: None,
    };
    let set = [
        addons::Addon::AwsEbsCsi,
        addons::Addon::AwsLoadBalancerController,
        addons::Addon::IngressNginx,
        addons::Addon::CertManager,
    ];
    let objects: usize = set
        .iter()
        .map(|a| addons::render(*a, &ctx).unwrap().len())
        .sum();
    let timeout = Duration::from_secs(60);
    let start = Instant::now();
    addons::install(&applier, &set, &ctx, timeout)
        .await
        .unwrap();
    let first = start.elapsed();
    let start = Instant::now();
    addons::install(&applier, &set, &ctx, timeout)
        .await
        .unwrap();
    (objects, first, start.elapsed())
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (free, evicted) = drain_figure(false).await;
    let (held, evicted_held) = drain_figure(true).await;
    let (objects, first, again) = addon_figures().await;
    println!("drain of a node with {PODS} pods (testkube with controllers, this machine):");
    println!(
        "  no budget:                 {:>8.3} s  ({evicted} evicted)",
        free.as_secs_f64()
    );
    println!(
        "  budget maxUnavailable 1:   {:>8.3} s  ({evicted_held} evicted)",
        held.as_secs_f64()
    );
    println!(
        "addons (ebs-csi, aws-lbc, ingress-nginx, cert-manager: {objects} objects), rolled out:"
    );
    println!(
        "  first apply:               {:>8.3} s",
        first.as_secs_f64()
    );
    println!(
        "  no-op re-apply:            {:>8.3} s  (ratio {:.1}x)",
        again.as_secs_f64(),
        first.as_secs_f64() / again.as_secs_f64()
    );
}
