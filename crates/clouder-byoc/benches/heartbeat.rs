//! One heartbeat round over 1,000 HTTPS endpoints (local fixtures, 5% slow or down): the
//! controller's bounded concurrent round against a naive sequential loop, in the same run.
//! Prints wall time and the CPU time of the probing thread (getrusage), cold (TLS handshakes)
//! and warm (pooled connections).
//!
//!     cargo bench -p clouder-byoc --bench heartbeat [-- ENDPOINTS]
//!
//! The endpoints are served by their own runtime on other threads; the prober runs on a
//! current-thread runtime on the main thread, so RUSAGE_THREAD is the client's CPU alone.

use clouder_byoc::heartbeat::{Beat, Target, probe, round};
use clouder_byoc::trust;
use clouder_testenv::endpoint::{Ca, Endpoint};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token";
const TIMEOUT: Duration = Duration::from_secs(1);
const CONCURRENCY: usize = 32;

fn cpu_of(who: i32) -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

struct Figures {
    wall: Duration,
    cpu: Duration,
    alive: usize,
}

/// Runs `f` and measures it: wall time, CPU of this thread, beats that were alive.
fn measure(
    rt: &tokio::runtime::Runtime,
    f: impl std::future::Future<Output = Vec<Beat>>,
) -> Figures {
    let (cpu0, t0) = (cpu_of(libc::RUSAGE_THREAD), Instant::now());
    let beats = rt.block_on(f);
    Figures {
        wall: t0.elapsed(),
        cpu: cpu_of(libc::RUSAGE_THREAD) - cpu0,
        alive: beats.iter().filter(|b| **b == Beat::Alive).count(),
    }
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ca = Ca::new("bench-ca");
    let config = ca.server();
    // 5%: every 40th is slow (answers after 10 s), every 40th from 20 on is down.
    let endpoints: Vec<Endpoint> = servers.block_on(async {
        let mut all = Vec::with_capacity(n);
        for _ in 0..n {
            all.push(Endpoint::start(Some(config.clone()), TOKEN).await);
        }
        // Stopped only once all are up, so that no other endpoint gets a stopped one's port.
        for (i, e) in all.iter_mut().enumerate() {
            match i % 40 {
                0 => e.set_delay(Duration::from_secs(10)),
                20 => e.stop(),
                _ => {}
            }
        }
        all
    });
    let prober = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let targets = |client: &reqwest::Client| -> Vec<Target> {
        endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| Target {
                name: format!("e{i}"),
                url: format!("{}/healthz", e.url),
                token: TOKEN.into(),
                client: client.clone(),
            })
            .collect()
    };
    let fresh = || {
        let client = trust::client(Some(&ca.pem), TIMEOUT).unwrap();
        targets(&client)
    };
    println!(
        "heartbeat round over {n} HTTPS endpoints ({} slow, {} down), timeout {TIMEOUT:?}",
        n.div_ceil(40),
        (n + 19) / 40
    );
    println!("{:<34} {:>10} {:>10} {:>7}", "", "wall", "cpu", "alive");
    let print = |what: &str, f: &Figures| {
        println!(
            "{what:<34} {:>8.3} s {:>8.3} s {:>7}",
            f.wall.as_secs_f64(),
            f.cpu.as_secs_f64(),
            f.alive
        )
    };
    let bounded = fresh();
    print(
        &format!("controller, {CONCURRENCY} in flight, cold"),
        &measure(&prober, round(&bounded, CONCURRENCY, TIMEOUT)),
    );
    print(
        &format!("controller, {CONCURRENCY} in flight, warm"),
        &measure(&prober, round(&bounded, CONCURRENCY, TIMEOUT)),
    );
    let naive = fresh();
    let sequential = |targets: &[Target]| {
        let targets = targets.to_vec();
        async move {
            let mut beats = Vec::with_capacity(targets.len());
            for t in &targets {
                beats.push(probe(t, TIMEOUT).await);
            }
            beats
        }
    };
    print(
        "naive sequential loop, cold",
        &measure(&prober, sequential(&naive)),
    );
    print(
        "naive sequential loop, warm",
        &measure(&prober, sequential(&naive)),
    );
    println!(
        "process CPU (prober + {n} endpoint servers): {:.3} s",
        cpu_of(libc::RUSAGE_SELF).as_secs_f64()
    );
    drop(endpoints);
}
