//! An Azure run killed after any mutating call resumes to exactly the same resources.

use crate::harness::*;
use clouder_engine::calls::FAULT_EXIT_CODE;

/// What a cluster's group holds, with its name taken out: `type/name-suffix`.
fn shape(arm: &fake_arm::Server, cluster: &str) -> Vec<String> {
    let group = group_key(&format!("{cluster}-rg"));
    let mut shape: Vec<String> = arm
        .ids()
        .into_iter()
        .filter(|id| id.starts_with(&group))
        .map(|id| id[group.len()..].replace(cluster, "C"))
        // Disk and role assignment names carry unique suffixes.
        .map(|id| match id.find("_osdisk_") {
            Some(at) => id[..at].to_string(),
            None if id.contains("roleassignments/") => "role-assignment".into(),
            None => id,
        })
        .collect();
    shape.sort();
    shape
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_killed_after_every_mutating_call_a_rerun_converges_without_duplicates_or_leaks() {
    let arm = fake_arm().await;
    let endpoint = arm.endpoint();
    let env = Env::new();
    let reference = env.create_azure(&endpoint, "azref", 1, &[]);
    let total = reference["calls"]["mutating"].as_u64().unwrap();
    let expected = shape(&arm, "azref");
    env.ok_azure(&endpoint, &["kubeadm", "terminate", "azref", "--force"]);
    assert_eq!(total, 14, "one write per object: {reference}");

    let runs: Vec<u64> = (1..=total).collect();
    for batch in runs.chunks(7) {
        let handles: Vec<_> = batch
            .iter()
            .map(|&n| {
                let endpoint = endpoint.clone();
                std::thread::spawn(move || {
                    let env = Env::new();
                    let name = format!("azr{n}");
                    let args = env.azure_create_args(&name, 1, &[]);
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    let killed =
                        env.run_azure(&endpoint, &args, &[("CLOUDER_FAULT_AFTER", &n.to_string())]);
                    assert_eq!(
                        killed.status.code(),
                        Some(FAULT_EXIT_CODE),
                        "run {n}: {}",
                        text(&killed.stderr)
                    );
                    let resumed = env.run_azure(&endpoint, &args, &[]);
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
            assert_eq!(shape(&arm, &name), expected, "after a kill at call {n}");
            env.ok_azure(&endpoint, &["kubeadm", "terminate", &name, "--force"]);
            assert!(
                arm.resource(&group_key(&format!("{name}-rg"))).is_none(),
                "leak after a kill at call {n}"
            );
        }
    }
    assert_eq!(arm.ids(), Vec::<String>::new());
}
