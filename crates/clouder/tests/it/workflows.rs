//! The spec-file workflow, dry runs, contexts, and terminate without local state.

use crate::harness::*;

fn spec(name: &str, env: &Env, workers: u32) -> std::path::PathBuf {
    let body = format!(
        "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: {name}\nspec:\n  provider: aws\n  region: {REGION}\n  \
         adminCidrs: [203.0.113.7/32]\n  image: {IMAGE}\n  ssh: {{publicKeyPath: {}}}\n  nodePools:\n    - name: workers\n      count: {workers}\n",
        env.key().display()
    );
    write(env.dir.path(), &format!("{name}.yaml"), &body)
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_plans_without_changing_anything() {
    let env = Env::new();
    let file = spec("dry", &env, 2);
    let plan = json(&env.ok(&[
        "kubeadm",
        "apply",
        "-f",
        file.to_str().unwrap(),
        "--dry-run",
        "-o",
        "json",
    ]));
    assert_eq!(plan["summary"]["create"], 14);
    assert_eq!(plan["calls"]["mutating"], 0);
    assert!(tagged("dry").await.is_empty());
    assert_eq!(
        json(&env.ok(&["kubeadm", "ls", "-o", "json"])),
        serde_json::json!([]),
        "a dry run records nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn flags_override_the_spec_file_and_apply_converges_to_the_file() {
    let env = Env::new();
    let file = spec("layered", &env, 1);
    let f = file.to_str().unwrap();
    let created = json(&env.ok(&["kubeadm", "create", "-f", f, "-w", "2", "-o", "json"]));
    assert_eq!(
        created["result"]["created"], 14,
        "-w 2 overrides the file's 1 worker"
    );
    let plan = json(&env.ok(&["kubeadm", "plan", "-f", f, "-o", "json"]));
    assert_eq!(
        plan["summary"]["delete"], 1,
        "the file alone asks for one worker less"
    );
    let applied = json(&env.ok(&["kubeadm", "apply", "-f", f, "-o", "json"]));
    assert_eq!(applied["result"]["deleted"], 1);
    let out = env.run(&["kubeadm", "create", "other", "-f", f]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a NAME that contradicts the file is a usage error"
    );
    env.ok(&["kubeadm", "terminate", "layered", "--force"]);
    assert!(tagged("layered").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_remembers_its_context_and_the_context_learns_the_account() {
    let env = Env::new();
    env.ok(&["ctx", "add", "lab", "--provider", "aws", "-r", REGION]);
    // `lab` is current (the first context added), so it is used without --context.
    let created = env.create("ctxd", 1, &[]);
    assert_eq!(created["result"]["created"], 13);
    let ctx = json(&env.ok(&["ctx", "show", "lab", "-o", "json"]));
    assert_eq!(
        ctx["account"], "123456789012",
        "moto's account id, seen through STS"
    );
    let info = json(&env.ok(&["kubeadm", "info", "ctxd", "-o", "json"]));
    assert_eq!(info["cluster"]["context"], "lab");
    assert_eq!(
        info["cluster"]["spec"]["spec"]["context"], "lab",
        "pinned in the recorded spec"
    );
    env.ok(&[
        "ctx",
        "add",
        "elsewhere",
        "--provider",
        "aws",
        "-r",
        "eu-west-1",
    ]);
    env.ok(&["ctx", "use", "elsewhere"]);
    let plan = json(&env.ok(&["kubeadm", "plan", "ctxd", "-o", "json"]));
    assert_eq!(
        plan["summary"]["unchanged"], 13,
        "plan NAME still looks in the cluster's own context"
    );
    env.ok(&["kubeadm", "terminate", "ctxd", "--force"]);
    assert!(tagged("ctxd").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn terminate_without_local_state_sweeps_by_tags() {
    let env = Env::new();
    env.create("orphaned", 1, &[]);
    let other = Env::new(); // another machine: same account, no local state
    let refused = other.run(&["kubeadm", "terminate", "orphaned", "--force"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("-r REGION"));
    other.ok(&["kubeadm", "terminate", "orphaned", "--force", "-r", REGION]);
    assert!(tagged("orphaned").await.is_empty());
}
