//! Checkpoint/restore benchmark, run by hand (`scripts/bench-checkpoint.sh`): the same counter
//! with ~100 MiB of touched memory, (a) raw `criu dump` + `criu restore` in the trixie root
//! filesystem, (b) clouder's path: CRI checkpoint + OCI image + push to a local registry, and
//! restore through CRI from the registry. Prints both, their ratio, and image size vs RSS.

#[path = "../tests/support/mod.rs"]
mod support;

use clouder_checkpoint::backend::{LocalDir, Registry};
use clouder_checkpoint::cri::api;
use clouder_checkpoint::{CheckpointImage, push};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::{Node, RegistryPeer, busybox_image, cri_rootfs};

/// The counter touches this many MiB (a shell variable), reports its RSS once, then counts.
const MIB: usize = 100;

fn counter_script() -> String {
    format!(
        "x=$(head -c {} /dev/zero | tr '\\0' a); grep VmRSS /proc/$$/status; i=0; while :; do echo $i; i=$((i+1)); sleep 0.2; done",
        MIB << 20
    )
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn mib(bytes: f64) -> f64 {
    bytes / 1048576.0
}

/// Raw CRIU: dump and restore the same counter inside the root filesystem, timed there.
fn raw_criu() -> (f64, f64, u64) {
    let dir = tempfile::Builder::new()
        .prefix("clouder-bench-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::write(dir.path().join("config.toml"), "").unwrap();
    let script = r#"set -e
setsid sh /checkpoints/counter.sh </dev/null >/tmp/counter.log 2>&1 &
sleep 4
pid=$!
mkdir -p /checkpoints/raw
t0=$(date +%s%N); criu dump -t $pid -D /checkpoints/raw --shell-job -o dump.log; t1=$(date +%s%N)
t2=$(date +%s%N); criu restore -D /checkpoints/raw --shell-job -d -o restore.log; t3=$(date +%s%N)
sleep 1
echo "dump_ns=$((t1-t0)) restore_ns=$((t3-t2)) images=$(du -sb /checkpoints/raw | cut -f1)"
echo "counter: $(grep -v VmRSS /tmp/counter.log | tail -1)"
"#;
    // cri-node.sh bind-mounts DIR/checkpoints at /checkpoints.
    std::fs::create_dir_all(dir.path().join("checkpoints")).unwrap();
    std::fs::write(dir.path().join("checkpoints/counter.sh"), counter_script()).unwrap();
    let node_script = support::node_script();
    let out = std::process::Command::new("unshare")
        .args(["-m", "-p", "-f", "--kill-child"])
        .arg(node_script)
        .arg(cri_rootfs())
        .arg(dir.path())
        .args(["/bin/sh", "-c", script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("dump_ns="))
        .unwrap_or_else(|| {
            panic!(
                "raw criu failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let field = |k: &str| -> u64 {
        line.split(' ')
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    if let Some(counter) = stdout.lines().find(|l| l.starts_with("counter:")) {
        println!("raw criu:    restored {counter}");
    }
    (
        field("dump_ns") as f64 / 1e9,
        field("restore_ns") as f64 / 1e9,
        field("images"),
    )
}

fn counter_config(image: &str) -> api::ContainerConfig {
    support::counter_container(image, &counter_script(), HashMap::new())
}

#[tokio::main]
async fn main() {
    let (raw_dump, raw_restore, raw_images) = raw_criu();

    let registry = RegistryPeer::start(None);
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let base = Registry::new(&format!("{}/bench/busybox", registry.host()), None).unwrap();
    push(&base, &busybox_image(work.path()), "1").await.unwrap();
    let image = format!("{}/bench/busybox:1", registry.host());
    let node = Node::start(&image).await;
    node.cri.pull(&image).await.unwrap();
    let (pod, pod_config) = node.run_pod("bench", "uid-bench").await;
    let id = node
        .cri
        .create_and_start(&pod, &pod_config, counter_config(&image))
        .await
        .unwrap();
    let rss_kib = loop {
        let log = node.container_log(&pod_config, "counter/0.log");
        let rss = log
            .lines()
            .find_map(|l| l.split("VmRSS:").nth(1))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
        if let Some(kib) = rss {
            break kib;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (inside, archive) = node.archive("bench.tar");
    let t = Instant::now();
    node.cri
        .checkpoint(&id, &inside, Duration::from_secs(120))
        .await
        .unwrap();
    let cri_checkpoint = t.elapsed();
    let t = Instant::now();
    let built =
        tokio::task::spawn_blocking(move || CheckpointImage::from_archive(&archive, Some("bench")))
            .await
            .unwrap()
            .unwrap();
    let build = t.elapsed();
    let repo = Registry::new(&format!("{}/bench/checkpoints", registry.host()), None).unwrap();
    let t = Instant::now();
    let pushed = push(&repo, &built.oci, "bench").await.unwrap();
    let push_time = t.elapsed();
    support::remove_pod(&node, &pod).await;

    let t = Instant::now();
    node.cri.pull(&pushed.reference).await.unwrap();
    let pull = t.elapsed();
    let (pod, pod_config) = node.run_pod("bench-restored", "uid-restored").await;
    let t = Instant::now();
    node.cri
        .create_and_start(&pod, &pod_config, counter_config(&pushed.reference))
        .await
        .unwrap();
    let start = t.elapsed();
    support::remove_pod(&node, &pod).await;

    // The same image kept in a local directory: restore streams it into containerd with ctr
    // (over SSH on a real node; here straight into its socket) and creates from it, no pull.
    let layout = LocalDir::new(work.path().join("layout"));
    let t = Instant::now();
    push(&layout, &built.oci, "bench").await.unwrap();
    let store_local = t.elapsed();
    let t = Instant::now();
    let imported = import(&node, &layout, "bench").await;
    let import_time = t.elapsed();
    let (pod, pod_config) = node.run_pod("bench-imported", "uid-imported").await;
    let t = Instant::now();
    node.cri
        .create_and_start(&pod, &pod_config, counter_config(&imported))
        .await
        .unwrap();
    let start_imported = t.elapsed();

    let checkpoint_total = secs(cri_checkpoint + build + push_time);
    let restore_total = secs(pull + start);
    let layer = built.layer.size as f64;
    println!(
        "process RSS: {:.1} MiB (counter touching {MIB} MiB)",
        rss_kib as f64 / 1024.0
    );
    println!(
        "raw criu:    dump {raw_dump:.2}s, restore {raw_restore:.2}s, images {:.1} MiB",
        mib(raw_images as f64)
    );
    println!(
        "clouder:     checkpoint {checkpoint_total:.2}s (CRI checkpoint {:.2}s + image {:.2}s + push {:.2}s)",
        secs(cri_checkpoint),
        secs(build),
        secs(push_time)
    );
    println!(
        "             restore {restore_total:.2}s (pull {:.2}s + create/start {:.2}s)",
        secs(pull),
        secs(start)
    );
    println!(
        "local dir:   checkpoint {:.2}s (CRI checkpoint + image + store {:.2}s), restore {:.2}s (import {:.2}s + create/start {:.2}s) = {:.2}x raw restore",
        secs(cri_checkpoint + build + store_local),
        secs(store_local),
        secs(import_time + start_imported),
        secs(import_time),
        secs(start_imported),
        secs(import_time + start_imported) / raw_restore
    );
    println!(
        "image:       {:.1} MiB layer, {:.2}x the RSS",
        mib(layer),
        layer / (rss_kib as f64 * 1024.0)
    );
    println!(
        "ratio:       checkpoint {:.2}x raw dump (target <= 1.5x), restore {:.2}x raw restore (target <= 1.2x)",
        checkpoint_total / raw_dump,
        restore_total / raw_restore
    );
    // The runtime's own calls (containerd's CRI checkpoint, pull and create) are the floor
    // clouder builds on; what clouder adds is the image and the push.
    println!(
        "clouder's share: checkpoint {:.2}x the CRI checkpoint alone (which is {:.2}x raw dump); restore is the runtime's pull + create alone ({:.2}x raw restore)",
        checkpoint_total / secs(cri_checkpoint),
        secs(cri_checkpoint) / raw_dump,
        restore_total / raw_restore
    );
    println!(
        "build:       {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
}

/// Streams the image `tag` of `backend` into the node's containerd through the real
/// `ctr images import -`, as restore does on a node; returns the image's name there.
async fn import(node: &Node, backend: &dyn clouder_checkpoint::Backend, tag: &str) -> String {
    use tokio::io::AsyncWriteExt as _;
    let base = "localhost/clouder-checkpoint";
    let socket = node.dir.path().join("run/containerd/containerd.sock");
    let mut ctr = tokio::process::Command::new(cri_rootfs().join("usr/bin/ctr"))
        .arg(format!("--address={}", socket.display()))
        .args(clouder_checkpoint::archive::import_command_args(base))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = ctr.stdin.take().unwrap();
    clouder_checkpoint::archive::write(backend, tag, &mut stdin)
        .await
        .unwrap();
    stdin.shutdown().await.unwrap();
    drop(stdin);
    assert!(ctr.wait().await.unwrap().success(), "ctr import failed");
    format!("{base}:{tag}")
}
