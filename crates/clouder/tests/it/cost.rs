//! Cost estimates from the plan (`plan --cost`, `create --dry-run --cost`), from what exists
//! (`cost show`), and the price cache (`cost refresh`, `cost table`), against moto.

use crate::harness::*;
use serde_json::Value;

/// By hand, us-east-1 embedded table: one t3.large control plane and two t3.xlarge workers
/// (100 GB gp3 each, a public IPv4 each), one network load balancer with one public IPv4.
fn hand_total(workers: u32) -> f64 {
    let machines = 0.0832 + f64::from(workers) * 0.1664;
    let disks = f64::from(1 + workers) * 100.0 * 0.08 / 730.0;
    let addresses = f64::from(2 + workers) * 0.005;
    machines + disks + addresses + 0.0225
}

fn spec(env: &Env, name: &str, worker_size: &str) -> String {
    let path = write(
        env.dir.path(),
        "cluster.yaml",
        &format!(
            "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: {name}\nspec:\n  provider: aws\n  \
             image: {IMAGE}\n  adminCidrs: [203.0.113.7/32]\n  ssh: {{publicKeyPath: {}}}\n  \
             controlPlane: {{count: 1, size: t3.large, osDiskGb: 100}}\n  \
             nodePools:\n    - {{name: workers, count: 2, size: {worker_size}, osDiskGb: 100}}\n",
            env.key().display()
        ),
    );
    path.display().to_string()
}

#[test]
fn plan_cost_prices_the_cluster_the_plan_converges_to() {
    let env = Env::new();
    let file = spec(&env, "cost-plan", "t3.xlarge");
    let out: Value =
        serde_json::from_str(&env.ok(&["k", "plan", "-f", &file, "--cost", "-o", "json"])).unwrap();
    let cost = &out["cost"];
    assert_eq!(cost["complete"], true);
    assert!(
        (cost["hourly"].as_f64().unwrap() - hand_total(2)).abs() < 1e-9,
        "{cost}"
    );
    assert!((cost["days30"].as_f64().unwrap() - hand_total(2) * 720.0).abs() < 1e-6);
    assert_eq!(cost["table"]["origin"], "embedded");
    assert_eq!(cost["table"]["date"], "2025-06-01");
    assert!(out["summary"]["create"].as_u64().unwrap() > 0);

    let table = env.ok(&["k", "plan", "-f", &file, "--cost"]);
    assert!(table.contains("Cost of cost-plan once applied"), "{table}");
    assert!(
        table.contains(&format!("{:.4} USD/hour", hand_total(2))),
        "{table}"
    );
    assert!(table.contains("embedded table dated 2025-06-01"), "{table}");
    assert!(table.contains("egress"), "{table}");
}

#[tokio::test]
async fn create_dry_run_cost_marks_an_unknown_size_and_changes_nothing() {
    let env = Env::new();
    let file = spec(&env, "cost-unknown", "x9.mega");
    let out = env.ok(&["k", "create", "-f", &file, "--dry-run", "--cost"]);
    assert!(out.contains("unknown"), "{out}");
    assert!(out.contains("at least"), "{out}");
    assert!(
        out.contains(
            "UNKNOWN price, not counted: no price for machine size x9.mega in aws us-east-1"
        ),
        "{out}"
    );
    let json: Value = serde_json::from_str(&env.ok(&[
        "k",
        "create",
        "-f",
        &file,
        "--dry-run",
        "--cost",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(json["cost"]["complete"], false);
    let unknown: Vec<&Value> = json["cost"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["hourly"].is_null())
        .collect();
    assert_eq!(unknown.len(), 2, "the two x9.mega workers");
    // Known lines only: the control plane, all disks and addresses, the load balancer.
    let known = hand_total(2) - 2.0 * 0.1664;
    assert!((json["cost"]["hourly"].as_f64().unwrap() - known).abs() < 1e-9);
    assert!(
        tagged("cost-unknown").await.is_empty(),
        "a dry run created objects"
    );
    // --cost without --dry-run is a usage error.
    let out = env.run(&["k", "create", "-f", &file, "--cost"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn cost_show_prices_what_exists() {
    let env = Env::new();
    env.create(
        "cost-live",
        2,
        &[
            "--control-planes",
            "1",
            "--master-size",
            "t3.large",
            "--node-size",
            "t3.xlarge",
            "--os-disk-size",
            "100",
        ],
    );
    let out: Value =
        serde_json::from_str(&env.ok(&["cost", "show", "cost-live", "-o", "json"])).unwrap();
    assert_eq!(out["cluster"], "cost-live");
    assert_eq!(out["complete"], true);
    assert!(
        (out["hourly"].as_f64().unwrap() - hand_total(2)).abs() < 1e-9,
        "{out}"
    );
    let machines: Vec<&str> = out["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["item"]["meter"] == "machine")
        .map(|l| l["item"]["size"].as_str().unwrap())
        .collect();
    assert_eq!(machines, ["t3.large", "t3.xlarge", "t3.xlarge"]);

    let missing = env.run(&["cost", "show", "nope"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn refresh_writes_a_dated_cache_that_estimates_then_use() {
    let env = Env::new();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../clouder-cost/tests/fixtures/aws-get-products.json"
    );
    let out: Value =
        serde_json::from_str(&env.ok(&["cost", "refresh", "--aws", fixture, "-o", "json"]))
            .unwrap();
    assert_eq!(out["aws_prices"], 2);
    let table: Value = serde_json::from_str(&env.ok(&["cost", "table", "-o", "json"])).unwrap();
    assert!(
        table["origin"].as_str().unwrap().ends_with("prices.json"),
        "{table}"
    );
    assert_eq!(table["date"], out["date"]);
    assert!(
        table["source"]
            .as_str()
            .unwrap()
            .starts_with("AWS Price List API")
    );

    let file = spec(&env, "cost-cached", "t3.xlarge");
    let plan: Value =
        serde_json::from_str(&env.ok(&["k", "plan", "-f", &file, "--cost", "-o", "json"])).unwrap();
    assert_eq!(plan["cost"]["table"]["date"], out["date"]);
    assert!((plan["cost"]["hourly"].as_f64().unwrap() - hand_total(2)).abs() < 1e-9);

    // Live, from an API that cannot be reached: a clear error, the cache left as it was.
    let cached = std::fs::read(env.home().join("prices.json")).unwrap();
    let out = env.run_with(
        &["cost", "refresh", "--azure-region", "eastus"],
        &[(
            "CLOUDER_AZURE_PRICES_URL",
            "http://127.0.0.1:9/api/retail/prices",
        )],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("Azure Retail Prices API (eastus)") && err.contains("--azure FILE"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(env.home().join("prices.json")).unwrap(),
        cached
    );

    let bad = write(env.dir.path(), "bad.json", "{\"PriceList\": 3}");
    let out = env.run(&["cost", "refresh", "--aws", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("bad.json"),
        "{}",
        text(&out.stderr)
    );
}
