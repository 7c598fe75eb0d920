//! Load figures for testkube, and for a real cluster beside it when `CLOUDER_TEST_REAL_KUBECONFIG`
//! names one: server start-up, 10,000 ConfigMaps and 1,000 Pods created, lists with a selector,
//! 100 concurrent watches. Run by hand: `cargo bench -p clouder-testkube --bench load`.

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::Client;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;
use std::time::{Duration, Instant};

const CONFIGMAPS: usize = 10_000;
const PODS: usize = 1_000;
const WATCHES: usize = 100;
const CONCURRENCY: usize = 32;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn rss_mib() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok())
        .map_or("?".into(), |kb| format!("{:.0} MiB", kb / 1024.0))
}

/// Runs `n` requests `CONCURRENCY` at a time; prints req/s and p50/p99 latency.
async fn burst<F, Fut>(what: &str, n: usize, f: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let t0 = Instant::now();
    let mut lat: Vec<Duration> = stream::iter(0..n)
        .map(|i| {
            let fut = f(i);
            async move {
                let t = Instant::now();
                fut.await;
                t.elapsed()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let total = t0.elapsed();
    lat.sort();
    println!(
        "  {what:<34} {n:>6} req  {:>8.0} req/s  p50 {:>9}  p99 {:>9}",
        n as f64 / total.as_secs_f64(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );
}

async fn workload(client: Client, ns: &str) {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    burst("create ConfigMap", CONFIGMAPS, |i| {
        let cms = cms.clone();
        async move {
            let cm: ConfigMap = serde_json::from_value(json!({
                "metadata": {"name": format!("cm-{i}"), "labels": {"bench": "x", "slot": (i % 10).to_string()}},
                "data": {"value": i.to_string()}
            }))
            .unwrap();
            cms.create(&PostParams::default(), &cm).await.unwrap();
        }
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    burst("create Pod", PODS, |i| {
        let pods = pods.clone();
        async move {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("pod-{i}"), "labels": {"bench": "x", "slot": (i % 10).to_string()}},
                "spec": {"containers": [{"name": "c", "image": "registry.invalid/none"}], "nodeName": "bench-node-that-does-not-exist"}
            }))
            .unwrap();
            pods.create(&PostParams::default(), &pod).await.unwrap();
        }
    })
    .await;
    let lp = ListParams::default().labels("bench=x,slot=3");
    let found = cms.list(&lp).await.unwrap().items.len();
    assert_eq!(found, CONFIGMAPS / 10);
    burst("list ConfigMaps slot=3 (1,000)", 50, |_| {
        let (cms, lp) = (cms.clone(), lp.clone());
        async move {
            cms.list(&lp).await.unwrap();
        }
    })
    .await;
    burst("list Pods slot=3 (100)", 50, |_| {
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default().labels("bench=x,slot=3"))
                .await
                .unwrap();
        }
    })
    .await;

    // 100 watches, each on one slot's ConfigMaps; 1,000 updates (100 per slot) go to all of them.
    let rv = cms
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut streams = Vec::new();
    for w in 0..WATCHES {
        let wp = WatchParams::default()
            .labels(&format!("bench=x,slot={}", w % 10))
            .timeout(290);
        streams.push(cms.watch(&wp, &rv).await.unwrap().boxed());
    }
    let t0 = Instant::now();
    let watchers: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut seen = 0;
                while seen < 100 {
                    match s.try_next().await.unwrap() {
                        Some(WatchEvent::Modified(_)) => seen += 1,
                        Some(_) => {}
                        None => panic!("a watch ended early"),
                    }
                }
                t0.elapsed()
            })
        })
        .collect();
    burst("update ConfigMap (100 watches)", 1000, |i| {
        let cms = cms.clone();
        async move {
            let patch = json!({"data": {"value": format!("u{i}")}});
            cms.patch(
                &format!("cm-{i}"),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .unwrap();
        }
    })
    .await;
    let mut done: Vec<Duration> = Vec::new();
    for w in watchers {
        done.push(w.await.unwrap());
    }
    done.sort();
    println!(
        "  {:<34} {:>6} ev   all delivered after {} (p50 watcher {}, last {})",
        "watch events (100 watchers x 100)",
        WATCHES * 100,
        ms(done[done.len() - 1]),
        ms(percentile(&done, 0.5)),
        ms(done[done.len() - 1])
    );
}

async fn fresh_namespace(client: &Client) -> String {
    let name = format!(
        "bench-{}",
        uuid::Uuid::new_v4().simple().to_string().split_at(8).0
    );
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    name
}

#[tokio::main]
async fn main() {
    let mut startups: Vec<Duration> = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let kube = clouder_testkube::TestKube::start().await.unwrap();
        let client = kube.client().await.unwrap();
        client.apiserver_version().await.unwrap();
        startups.push(t.elapsed());
    }
    startups.sort();
    println!("testkube");
    println!(
        "  start-up to first answer            p50 {}  max {}",
        ms(percentile(&startups, 0.5)),
        ms(startups[startups.len() - 1])
    );
    let before = rss_mib();
    let kube = clouder_testkube::TestKube::start().await.unwrap();
    let client = kube.client().await.unwrap();
    let ns = fresh_namespace(&client).await;
    workload(client, &ns).await;
    println!(
        "  process RSS (server and client)     {before} before, {} after",
        rss_mib()
    );
    drop(kube);

    match std::env::var_os("CLOUDER_TEST_REAL_KUBECONFIG") {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .unwrap();
            let client = Client::try_from(config).unwrap();
            println!("real cluster ({})", path.to_string_lossy());
            let ns = fresh_namespace(&client).await;
            workload(client.clone(), &ns).await;
            Api::<Namespace>::all(client)
                .delete(&ns, &DeleteParams::background())
                .await
                .unwrap();
        }
        None => println!("real cluster: CLOUDER_TEST_REAL_KUBECONFIG is not set"),
    }
}
