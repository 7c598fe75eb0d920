//! Attach latency: a user's folder bound into a running process's mount namespace, 100 times
//! (each followed by a detach), against the cold start a new pod would need. Needs root.
//! `cargo bench -p clouder-userdata --bench attach --profile dev` (the dev profile spares a
//! release build of the AWS SDK; the syscalls dominate either way).

use clouder_userdata::agent::{Policy, attach, detach};
use clouder_userdata::testing::Contained;
use std::time::{Duration, Instant};

const ROUNDS: usize = 100;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    let storage = tempfile::tempdir().unwrap();
    let mounts = tempfile::tempdir_in("/run").unwrap();
    let source = storage.path().join("users/alice");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("notebook.ipynb"), vec![b'x'; 1 << 20]).unwrap();
    let policy = Policy {
        // The quota check scans the folder, as an attach of a watched user does.
        quota_bytes: Some(10 << 30),
        ..Policy::new(storage.path(), mounts.path())
    };
    let target = mounts.path().join("home/user");
    let process = Contained::start().expect("a process in its own mount namespace (run as root)");
    let mut attaches = Vec::with_capacity(ROUNDS);
    let mut detaches = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        attach(&policy, process.pid(), &source, &target).unwrap();
        attaches.push(t.elapsed());
        assert!(process.sees(&target).join("notebook.ipynb").exists());
        let t = Instant::now();
        detach(&policy, process.pid(), &target).unwrap();
        detaches.push(t.elapsed());
    }
    attaches.sort();
    detaches.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "attach x{ROUNDS}: p50 {:.2} ms  p95 {:.2} ms  max {:.2} ms  (target: p95 < 100 ms)",
        ms(percentile(&attaches, 0.50)),
        ms(percentile(&attaches, 0.95)),
        ms(*attaches.last().unwrap())
    );
    println!(
        "detach x{ROUNDS}: p50 {:.2} ms  p95 {:.2} ms",
        ms(percentile(&detaches, 0.50)),
        ms(percentile(&detaches, 0.95))
    );
    println!(
        "new pod with the folder: not measured here (no kubelet or container runtime on this machine; \
         run against a cluster to compare pod start-up)"
    );
}
