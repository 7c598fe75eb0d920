//! A run killed after any mutating call resumes to exactly the same resources.

use crate::harness::*;
use clouder_engine::calls::FAULT_EXIT_CODE;

fn shape(objects: &[clouder_engine::Tagged]) -> Vec<(String, Option<String>)> {
    objects
        .iter()
        .map(|t| (t.kind.clone(), t.resource_id.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_every_mutating_call_a_rerun_converges_without_duplicates_or_leaks() {
    // The reference: an uninterrupted run, to learn the total and the expected resource set.
    let env = Env::new();
    let reference = env.create("resume-ref", 1, &[]);
    let total = reference["calls"]["mutating"].as_u64().unwrap();
    let expected = shape(&tagged("resume-ref").await);
    env.ok(&["kubeadm", "terminate", "resume-ref", "--force"]);
    assert!(total >= 20, "a cluster takes many mutating calls: {total}");

    let runs: Vec<u64> = (1..=total).collect();
    for batch in runs.chunks(6) {
        let handles: Vec<_> = batch
            .iter()
            .map(|&n| {
                std::thread::spawn(move || {
                    let env = Env::new();
                    let name = format!("resume-{n}");
                    let key = env.key();
                    let args = [
                        "kubeadm",
                        "create",
                        &name,
                        "-w",
                        "1",
                        "--admin-cidr",
                        "203.0.113.7/32",
                        "--image",
                        IMAGE,
                        "--ssh-public-key",
                        key.to_str().unwrap(),
                        "-o",
                        "json",
                    ];
                    let killed = env.run_with(&args, &[("CLOUDER_FAULT_AFTER", &n.to_string())]);
                    assert_eq!(
                        killed.status.code(),
                        Some(FAULT_EXIT_CODE),
                        "run {n}: {}",
                        text(&killed.stderr)
                    );
                    let resumed = env.run(&args);
                    assert!(
                        resumed.status.success(),
                        "resume after {n}: {}",
                        text(&resumed.stderr)
                    );
                    (n, env, name)
                })
            })
            .collect();
        for handle in handles {
            let (n, env, name) = handle.join().unwrap();
            assert_eq!(
                shape(&tagged(&name).await),
                expected,
                "after a kill at call {n}"
            );
            env.ok(&["kubeadm", "terminate", &name, "--force"]);
            assert!(
                tagged(&name).await.is_empty(),
                "leak after a kill at call {n}"
            );
        }
    }
}
