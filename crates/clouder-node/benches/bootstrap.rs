//! Bootstrap of 1, 10 and 30 lab hosts — every phase (containerd and CRIU from the Debian mirror
//! through the lab's NAT, Kubernetes from the nodekit's repository), then `kubeadm init` and the
//! joins (the nodekit's stand-ins) — and a no-op re-run of the phases. Prints wall times, the ratio
//! 30/1 (target ≤ 1.5) and the no-op re-run of 30 per phase (target < 3 s in total).
//!
//! Lab hosts share this machine's cores, so their package installs compete. Beside each figure
//! is how busy the machine was (its CPU over its cores' time): near 100 %, the figure measures the
//! cores, not clouder's parallelism. The clouder column is clouder's own CPU (SSH, orchestration).
//!
//! Two tables: "shared", the hosts as they come, all on this machine's cores; and "capped", each
//! host held to an equal share of a CPU whether it runs alone or beside the others, as VMs with
//! their own vCPUs would be — there the ratio shows how clouder scales, not how many cores this
//! machine has.
//!
//! Needs root, scripts/peers.sh and a release clouder-testkube. Run:
//!   bash scripts/bench-bootstrap.sh [1 10 30] [--shared | --capped]

use clouder_node::cluster::{self, Member};
use clouder_node::fleet::MemoryPins;
use clouder_node::kubeadm::{ClusterInputs, NodeInputs};
use clouder_node::phases::{NodePlan, Outcome};
use clouder_node::ssh::load_key;
use clouder_node::{Fleet, Host, bootstrap};
use clouder_spec::Sources;
use clouder_testenv::lab::sid_sources;
use clouder_testenv::{Lab, NodeKit, nodekit};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const VERSION: &str = "1.33.2";

fn sources(kit: &NodeKit) -> Sources {
    serde_yaml_ng::from_str(&format!("{}{}", kit.sources(), sid_sources()))
        .expect("the lab's sources")
}

struct Figures {
    hosts: usize,
    /// Phases, then init and the joins.
    prepare: Span,
    form: Span,
    rerun: Span,
    /// Slowest host's time per phase in the no-op re-run.
    rerun_phases: BTreeMap<&'static str, Duration>,
}

/// A stretch of the run: its wall time, and the CPU this machine — lab hosts and clouder alike —
/// and clouder's own process spent in it.
#[derive(Clone, Copy)]
struct Span {
    wall: Duration,
    machine_cpu: Duration,
    client_cpu: Duration,
}

impl Span {
    async fn of<T>(work: impl std::future::Future<Output = T>) -> (T, Span) {
        let (machine, client, start) = (machine_cpu(), process_cpu(), Instant::now());
        let out = work.await;
        let span = Span {
            wall: start.elapsed(),
            machine_cpu: machine_cpu() - machine,
            client_cpu: process_cpu() - client,
        };
        (out, span)
    }

    fn plus(self, other: Span) -> Span {
        Span {
            wall: self.wall + other.wall,
            machine_cpu: self.machine_cpu + other.machine_cpu,
            client_cpu: self.client_cpu + other.client_cpu,
        }
    }

    /// How much of the machine's cores the span kept busy (100 %: CPU-bound).
    fn busy(&self) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        100.0 * self.machine_cpu.as_secs_f64() / (cores * self.wall.as_secs_f64())
    }
}

async fn measure(n: usize, kit: &NodeKit, cpu: Option<f64>) -> Figures {
    let shares = [kit.share()];
    let shares: Vec<_> = shares
        .iter()
        .map(|(here, there)| (here.clone(), there.as_str()))
        .collect();
    let lab = match cpu {
        Some(cores) => Lab::start_rooted_limited(n, &shares, cores),
        None => Lab::start_rooted_with(n, &shares),
    };
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
    let (prepared, prepare) = Span::of(bootstrap::prepare(&fleet, &hosts, &plan)).await;
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
        cni_manifest: format!("{}/{}", kit.guest_dir(), nodekit::CNI_MANIFEST),
    };
    let (formed, form) = Span::of(cluster::form(&fleet, &inputs, &members)).await;
    for report in formed {
        report
            .result
            .unwrap_or_else(|e| panic!("{}: {e}", report.host));
    }
    let (again, rerun) = Span::of(bootstrap::prepare(&fleet, &hosts, &plan)).await;
    let mut rerun_phases = BTreeMap::new();
    for report in &again {
        let outcome = report.result.as_ref().unwrap();
        for phase in &outcome.phases {
            assert_eq!(
                phase.outcome,
                Outcome::Skipped,
                "{}: {}",
                report.host,
                phase.phase
            );
            let slowest = rerun_phases.entry(phase.phase).or_insert(Duration::ZERO);
            *slowest = (*slowest).max(phase.elapsed);
        }
    }
    Figures {
        hosts: n,
        prepare,
        form,
        rerun,
        rerun_phases,
    }
}

/// User + system CPU of this process so far (/proc/self/stat, in ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    ticks([11, 12].iter().filter_map(|&i| fields.get(i).copied()))
}

/// CPU the whole machine has spent so far: every state of /proc/stat's `cpu` line but idle and
/// iowait.
fn machine_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let fields: Vec<&str> = line.split_whitespace().skip(1).collect();
    ticks(
        fields
            .iter()
            .enumerate()
            .filter(|(i, _)| ![3, 4].contains(i))
            .map(|(_, f)| *f),
    )
}

fn ticks<'a>(fields: impl Iterator<Item = &'a str>) -> Duration {
    Duration::from_millis(fields.filter_map(|f| f.parse::<u64>().ok()).sum::<u64>() * 10)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![1, 10, 30];
    }
    // `cargo bench` adds `--bench`; only these two choose a table.
    let modes: Vec<&str> = ["--shared", "--capped"]
        .into_iter()
        .filter(|m| args.iter().any(|a| a == m))
        .collect();
    let only = |mode: &str| modes.is_empty() || modes.contains(&mode);
    let kit = NodeKit::shared(&format!("{VERSION}-1.1"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // A tenth of the machine stays outside the hosts' quotas, for clouder and the kernel's NAT.
    let each = 0.9 * cores / *sizes.iter().max().unwrap() as f64;
    if only("--shared") {
        println!("shared: the lab hosts share this machine's {cores} cores");
        table(&runtime, kit, &sizes, None);
    }
    if only("--capped") {
        println!(
            "capped: each host has {each:.3} of a CPU, alone or beside others (as a VM has its vCPUs), \
             so that {} hosts fit the machine",
            sizes.iter().max().unwrap()
        );
        table(&runtime, kit, &sizes, Some(each));
    }
    println!(
        "busy: the machine's CPU over its cores' time (100 %: CPU-bound); \
         clouder: CPU of clouder's own process"
    );
}

fn table(runtime: &tokio::runtime::Runtime, kit: &NodeKit, sizes: &[usize], cpu: Option<f64>) {
    println!(
        "{:>6} {:>9} {:>11} {:>9} {:>8} {:>6} {:>9} {:>13} {:>6}",
        "hosts",
        "phases",
        "init+joins",
        "total",
        "ratio/1",
        "busy",
        "clouder",
        "no-op re-run",
        "busy"
    );
    let mut base = None;
    let mut last = None;
    for &n in sizes {
        let f = runtime.block_on(measure(n, kit, cpu));
        let total = f.prepare.plus(f.form);
        let base = *base.get_or_insert(total.wall.as_secs_f64());
        println!(
            "{:>6} {:>8.1}s {:>10.1}s {:>8.1}s {:>8.2} {:>5.0}% {:>8.2}s {:>12.2}s {:>5.0}%",
            f.hosts,
            f.prepare.wall.as_secs_f64(),
            f.form.wall.as_secs_f64(),
            total.wall.as_secs_f64(),
            total.wall.as_secs_f64() / base,
            total.busy(),
            total.client_cpu.as_secs_f64(),
            f.rerun.wall.as_secs_f64(),
            f.rerun.busy(),
        );
        last = Some(f);
    }
    let last = last.expect("at least one size");
    let phases: Vec<String> = last
        .rerun_phases
        .iter()
        .map(|(phase, elapsed)| format!("{phase} {:.2}s", elapsed.as_secs_f64()))
        .collect();
    println!(
        "  no-op re-run of {} hosts, slowest host per phase: {}",
        last.hosts,
        phases.join(", ")
    );
}
