//! Bootstrap of 1, 10 and 30 lab hosts — every phase (containerd and CRIU from the Debian mirror
//! through the lab's NAT, Kubernetes from the nodekit's repository), then `kubeadm init` and the
//! joins (the nodekit's stand-ins) — and a no-op re-run of the phases. Prints wall times, the ratio
//! 30/1 (target ≤ 1.5) and the no-op re-run of 30 per phase (target < 3 s in total). Lab hosts
//! share this machine's cores, so their package installs compete: the client CPU column is
//! clouder's own share (SSH and orchestration), which is what grows with the host count.
//!
//! Needs root and scripts/peers.sh. Run:
//!   cargo bench -p clouder-node --bench bootstrap --profile dev [-- 1 10 30]

use clouder_node::cluster::{self, Member};
use clouder_node::fleet::MemoryPins;
use clouder_node::kubeadm::{ClusterInputs, NodeInputs};
use clouder_node::phases::NodePlan;
use clouder_node::ssh::load_key;
use clouder_node::{Fleet, Host, bootstrap};
use clouder_spec::{AptSource, Source, Sources};
use clouder_testenv::lab::debian_mirror;
use clouder_testenv::{Lab, NodeKit, nodekit};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const VERSION: &str = "1.33.2";

fn sources(kit: &NodeKit) -> Sources {
    let sid = |packages: &[&str]| {
        Some(Source::apt(AptSource {
            uri: debian_mirror(),
            suite: "sid".into(),
            components: vec!["main".into()],
            key: None,
            packages: Some(packages.iter().map(|p| p.to_string()).collect()),
        }))
    };
    let mut sources: Sources = serde_yaml_ng::from_str(&kit.sources()).expect("nodekit sources");
    sources.containerd = sid(&["containerd", "runc"]);
    sources.criu = sid(&["criu", "iptables"]);
    sources
}

struct Figures {
    hosts: usize,
    /// CPU this process (clouder's side: SSH, orchestration) used for the bootstrap.
    client_cpu: Duration,
    prepare: Duration,
    form: Duration,
    rerun: Duration,
    /// Slowest host's time per phase in the no-op re-run.
    rerun_phases: BTreeMap<&'static str, Duration>,
}

async fn measure(n: usize, kit: &NodeKit) -> Figures {
    let lab = Lab::start_rooted_with(n, &[(kit.repo(), nodekit::GUEST_DIR)]);
    let fleet = Fleet::new(
        load_key(&lab.client_key()).unwrap(),
        Arc::new(MemoryPins::default()),
    );
    let hosts: Vec<Host> = lab
        .hosts
        .iter()
        .map(|h| Host::new(&h.address, "root"))
        .collect();
    let plan = NodePlan {
        kubernetes_version: VERSION.into(),
        sources: sources(kit),
    };
    let cpu_before = cpu_time();
    let start = Instant::now();
    let prepared = bootstrap::prepare(&fleet, &hosts, &plan).await;
    let prepare = start.elapsed();
    let facts: Vec<_> = prepared
        .iter()
        .map(|r| {
            let outcome = r.result.as_ref().unwrap_or_else(|e| panic!("{e}"));
            assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
            outcome.facts.clone()
        })
        .collect();
    let members: Vec<Member> = hosts
        .iter()
        .zip(&facts)
        .enumerate()
        .map(|(i, (host, f))| Member {
            host: host.clone(),
            node: NodeInputs {
                name: f.hostname.clone(),
                advertise_address: f.address.clone(),
                labels: BTreeMap::new(),
                taints: Vec::new(),
            },
            control_plane: i == 0,
        })
        .collect();
    let inputs = ClusterInputs {
        name: "bench".into(),
        version: format!("v{VERSION}"),
        endpoint: format!("{}:6443", hosts[0].address),
        pod_cidr: "10.244.0.0/16".into(),
        service_cidr: "10.96.0.0/12".into(),
        cert_sans: vec![hosts[0].address.clone()],
        cni_manifest: format!("{}/{}", nodekit::GUEST_DIR, nodekit::CNI_MANIFEST),
    };
    let start = Instant::now();
    for report in cluster::form(&fleet, &inputs, &members).await {
        report
            .result
            .unwrap_or_else(|e| panic!("{}: {e}", report.host));
    }
    let form = start.elapsed();
    let client_cpu = cpu_time() - cpu_before;
    let start = Instant::now();
    let again = bootstrap::prepare(&fleet, &hosts, &plan).await;
    let rerun = start.elapsed();
    let mut rerun_phases = BTreeMap::new();
    for report in &again {
        for phase in &report.result.as_ref().unwrap().phases {
            let slowest = rerun_phases.entry(phase.phase).or_insert(Duration::ZERO);
            *slowest = (*slowest).max(phase.elapsed);
        }
    }
    Figures {
        hosts: n,
        client_cpu,
        prepare,
        form,
        rerun,
        rerun_phases,
    }
}

/// User + system CPU time of this process so far (/proc/self/stat, in clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1, 10, 30]
    } else {
        sizes
    };
    let kit = NodeKit::shared(&format!("{VERSION}-1.1"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!(
        "{:>6} {:>12} {:>12} {:>12} {:>10} {:>14} {:>12}",
        "hosts", "phases", "init+joins", "total", "ratio/1", "no-op re-run", "client CPU"
    );
    let mut base = None;
    let mut last = None;
    for &n in &sizes {
        let f = runtime.block_on(measure(n, kit));
        let total = (f.prepare + f.form).as_secs_f64();
        let base = *base.get_or_insert(total);
        println!(
            "{:>6} {:>11.1}s {:>11.1}s {:>11.1}s {:>10.2} {:>13.2}s {:>11.2}s",
            f.hosts,
            f.prepare.as_secs_f64(),
            f.form.as_secs_f64(),
            total,
            total / base,
            f.rerun.as_secs_f64(),
            f.client_cpu.as_secs_f64()
        );
        last = Some(f);
    }
    let last = last.expect("at least one size");
    println!(
        "no-op re-run of {} hosts, slowest host per phase:",
        last.hosts
    );
    for (phase, elapsed) in &last.rerun_phases {
        println!("  {phase:<20} {:.2}s", elapsed.as_secs_f64());
    }
}
