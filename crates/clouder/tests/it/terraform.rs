//! `export-terraform`: the module written from a spec file or an applied cluster, with the
//! names and tags apply gives the real objects.

use crate::harness::*;
use serde_json::Value;
use std::collections::BTreeSet;

fn module(dir: &std::path::Path) -> Value {
    let mut all = serde_json::Map::new();
    for name in [
        "versions.tf.json",
        "variables.tf.json",
        "main.tf.json",
        "outputs.tf.json",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        for (k, section) in v.as_object().unwrap() {
            all.insert(k.clone(), section.clone());
        }
    }
    Value::Object(all)
}

/// The `clouder.io/resource` tags the module gives its objects, those of pools expanded over
/// the pool's indexes (its count, past its retired indexes, with the variables' defaults).
fn rendered_ids(m: &Value) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for blocks in m["resource"].as_object().unwrap().values() {
        for body in blocks.as_object().unwrap().values() {
            let Some(id) = body["tags"]["clouder.io/resource"].as_str() else {
                continue;
            };
            let Some(for_each) = body["for_each"].as_str() else {
                ids.insert(id.to_string());
                continue;
            };
            let pool = for_each
                .split("local.")
                .nth(1)
                .and_then(|rest| rest.split("_indexes").next())
                .unwrap();
            let default = |v: &str| m["variable"][format!("{pool}_{v}")]["default"].clone();
            let count = default("count").as_u64().unwrap() as usize;
            let retired: Vec<u64> = serde_json::from_value(default("retired")).unwrap();
            let indexes = (0..).filter(|i| !retired.contains(i)).take(count);
            ids.extend(indexes.map(|i| id.replace("${each.key}", &i.to_string())));
        }
    }
    ids
}

#[tokio::test]
async fn an_applied_cluster_exports_the_names_and_tags_apply_gave_its_objects() {
    let env = Env::new();
    env.create("tfx", 2, &["--control-planes", "1"]);
    let dir = env.dir.path().join("infra");
    let out = env.ok(&[
        "kubeadm",
        "export-terraform",
        "tfx",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert!(out.contains("Wrote"), "{out}");
    let m = module(&dir);

    let cloud: BTreeSet<String> = tagged("tfx")
        .await
        .into_iter()
        .filter_map(|t| t.resource_id)
        .collect();
    let rendered = rendered_ids(&m);
    // Listeners carry no tags on either path; everything else matches one to one.
    let untagged: BTreeSet<String> = cloud.difference(&rendered).cloned().collect();
    assert_eq!(untagged, BTreeSet::from(["api-listener".to_string()]));
    assert!(rendered.is_subset(&cloud), "{rendered:?} vs {cloud:?}");
    assert_eq!(m["variable"]["region"]["default"], REGION);
    assert_eq!(m["variable"]["workers_count"]["default"], 2);
    assert_eq!(m["resource"]["aws_instance"]["workers"]["ami"], IMAGE);
    // The key apply installed, as the default of the key variable.
    let key = std::fs::read_to_string(env.key()).unwrap();
    assert_eq!(m["variable"]["ssh_public_key"]["default"], key.trim());
}

#[test]
fn a_spec_file_exports_without_credentials_or_calls() {
    let env = Env::new();
    let spec = write(
        env.dir.path(),
        "cluster.yaml",
        "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: tff\nspec:\n  provider: aws\n  region: eu-central-1\n  adminCidrs: [203.0.113.7/32]\n",
    );
    let dir = env.dir.path().join("out");
    let trip = Tripwire::new();
    let out = env.run_with(
        &[
            "k",
            "export-terraform",
            "-f",
            spec.to_str().unwrap(),
            "--dir",
            dir.to_str().unwrap(),
            "-o",
            "json",
        ],
        &[
            ("AWS_ENDPOINT_URL", &trip.endpoint()),
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!trip.touched(), "export called the cloud");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["files"].as_array().unwrap().len(), 4);
    let m = module(&dir);
    assert_eq!(m["variable"]["region"]["default"], "eu-central-1");
    // No key on this machine: the variable has no default, so Terraform asks for one.
    assert!(m["variable"]["ssh_public_key"].get("default").is_none());
    assert_eq!(
        m["terraform"]["required_providers"]["aws"]["version"],
        "6.0.0"
    );
}

#[test]
fn export_of_an_unknown_cluster_or_provider_is_a_usage_error() {
    let env = Env::new();
    let dir = env.dir.path().join("out");
    let out = env.run(&[
        "k",
        "export-terraform",
        "nope",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no cluster `nope`"),
        "{}",
        text(&out.stderr)
    );
    let spec = write(
        env.dir.path(),
        "c.yaml",
        "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: own\nspec:\n  provider: ssh\n  hosts: [{address: 192.0.2.10, role: control-plane}]\n",
    );
    let out = env.run(&[
        "k",
        "export-terraform",
        "-f",
        spec.to_str().unwrap(),
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("`ssh` has no cloud infrastructure"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.exists());
}

/// The Azure module names and tags its objects as `create` did on (fake) Resource Manager:
/// every tagged object there has its block, with the same `clouder.io/resource` tag.
#[tokio::test(flavor = "multi_thread")]
async fn an_applied_azure_cluster_exports_the_names_and_tags_create_gave_its_objects() {
    let arm = fake_arm().await;
    let env = Env::new();
    env.create_azure(&arm.endpoint(), "tfaz", 2, &[]);
    let dir = env.dir.path().join("infra");
    let out = env.ok_azure(
        &arm.endpoint(),
        &[
            "k",
            "export-terraform",
            "tfaz",
            "--dir",
            dir.to_str().unwrap(),
        ],
    );
    assert!(out.contains("hashicorp/azurerm"), "{out}");
    let m = module(&dir);
    let cloud: BTreeSet<String> = arm
        .ids()
        .iter()
        .filter_map(|id| arm.resource(id))
        .filter(|body| body["tags"]["clouder.io/cluster"] == "tfaz")
        .filter_map(|body| {
            body["tags"]["clouder.io/resource"]
                .as_str()
                .map(String::from)
        })
        .collect();
    let rendered = rendered_ids(&m);
    assert_eq!(rendered, cloud, "module vs Resource Manager");
    assert!(cloud.contains("instance/workers-1"), "{cloud:?}");
    let vm = &m["resource"]["azurerm_linux_virtual_machine"]["workers"];
    assert_eq!(vm["name"], "${local.workers_names[each.key]}");
    assert_eq!(m["variable"]["location"]["default"], LOCATION);
    let key = std::fs::read_to_string(env.key()).unwrap();
    assert_eq!(m["variable"]["ssh_public_key"]["default"], key.trim());
}

/// `terraform output -json` of an exported module, as Terraform prints it.
const OUTPUTS: &str = r#"{
  "api_endpoint": {"sensitive": false, "type": "string", "value": "tfimp-api-0123456789.elb.eu-west-1.amazonaws.com"},
  "cluster_name": {"sensitive": false, "type": "string", "value": "tfimp"},
  "nodes": {"sensitive": false, "type": ["object", {}], "value": {
    "control-plane": {"instance_ids": ["i-0aaa"], "names": ["tfimp-cp-0"], "private_ips": ["10.0.0.10"], "public_ips": ["198.51.100.10"]},
    "workers": {"instance_ids": ["i-0bbb", "i-0ccc"], "names": ["tfimp-workers-0", "tfimp-workers-1"], "private_ips": ["10.0.0.11", "10.0.0.12"], "public_ips": ["198.51.100.11", "198.51.100.12"]}
  }},
  "provider": {"sensitive": false, "type": "string", "value": "aws"},
  "region": {"sensitive": false, "type": "string", "value": "eu-west-1"},
  "ssh_user": {"sensitive": false, "type": "string", "value": "ubuntu"}
}"#;

#[test]
fn import_records_the_machines_terraform_made() {
    let env = Env::new();
    let file = write(env.dir.path(), "out.json", OUTPUTS);
    let out = env.ok(&[
        "k",
        "import",
        "tfimp",
        "--terraform-output",
        file.to_str().unwrap(),
    ]);
    assert!(out.contains("3 machines"), "{out}");
    let info: Value = serde_json::from_str(&env.ok(&["k", "info", "tfimp", "-o", "json"])).unwrap();
    assert_eq!(info["cluster"]["status"], "imported");
    assert_eq!(info["cluster"]["region"], "eu-west-1");
    let spec = &info["cluster"]["spec"]["spec"];
    assert_eq!(spec["controlPlane"]["count"], 1);
    assert_eq!(spec["nodePools"][0]["name"], "workers");
    assert_eq!(spec["nodePools"][0]["count"], 2);
    assert_eq!(spec["adminUser"], "ubuntu");
    let resources = info["resources"].as_array().unwrap();
    let worker = resources
        .iter()
        .find(|r| r["id"] == "instance/workers-1")
        .expect("worker 1 recorded");
    assert_eq!(worker["cloud_id"], "i-0ccc");
    assert_eq!(worker["attrs"]["public_ip"], "198.51.100.12");
    assert_eq!(worker["attrs"]["private_ip"], "10.0.0.12");
    assert!(resources.iter().any(|r| r["id"] == "api-load-balancer"
        && r["attrs"]["dns_name"] == "tfimp-api-0123456789.elb.eu-west-1.amazonaws.com"));

    // A module past a retired index says which indexes its machines have.
    let env = Env::new();
    let numbered = OUTPUTS.replace(
        r#""workers": {"instance_ids""#,
        r#""workers": {"indexes": [0, 2], "instance_ids""#,
    );
    let file = write(env.dir.path(), "out.json", &numbered);
    env.ok(&[
        "k",
        "import",
        "tfimp",
        "--terraform-output",
        file.to_str().unwrap(),
    ]);
    let info: Value = serde_json::from_str(&env.ok(&["k", "info", "tfimp", "-o", "json"])).unwrap();
    let ids: Vec<&str> = info["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            r["id"]
                .as_str()
                .filter(|id| id.starts_with("instance/workers"))
        })
        .collect();
    assert_eq!(ids, ["instance/workers-0", "instance/workers-2"]);
}

/// `setup NAME --terraform-output FILE` records Terraform's machines first and bootstraps
/// them (here `--dry-run`: the machines and endpoint it would work on); a re-run keeps what
/// setup recorded, and a cluster clouder did not import is never overwritten.
#[test]
fn setup_takes_the_machines_terraform_made() {
    let env = Env::new();
    let file = write(env.dir.path(), "out.json", OUTPUTS);
    let file = file.to_str().unwrap();
    let key = env.key();
    let setup = [
        "k",
        "setup",
        "--terraform-output",
        file,
        "-i",
        key.to_str().unwrap(),
        "--dry-run",
        "-o",
        "json",
    ];
    let plan: Value = serde_json::from_str(&env.ok(&setup)).unwrap();
    assert_eq!(plan["cluster"], "tfimp", "the name comes from the outputs");
    assert_eq!(
        plan["endpoint"]
            .as_str()
            .unwrap()
            .split(':')
            .next()
            .unwrap(),
        "tfimp-api-0123456789.elb.eu-west-1.amazonaws.com"
    );
    let hosts: Vec<&str> = plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert_eq!(hosts.len(), 3, "{hosts:?}");
    assert!(
        hosts[0].contains("198.51.100.10"),
        "control plane first: {hosts:?}"
    );
    // Again, naming the cluster: the same record, still imported.
    let again = [&setup[..2], &["tfimp"], &setup[2..]].concat();
    env.ok(&again);
    let info: Value = serde_json::from_str(&env.ok(&["k", "info", "tfimp", "-o", "json"])).unwrap();
    assert_eq!(info["cluster"]["status"], "imported");

    // A cluster of that name that clouder created itself is left alone.
    let other = Env::new();
    other.create("tfimp", 1, &[]);
    let out = other.run(&[&["k", "setup"], &setup[2..]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not imported from Terraform"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn import_refuses_outputs_of_another_module_with_a_clear_error() {
    let env = Env::new();
    let cases = [
        (
            OUTPUTS.replace("\"nodes\"", "\"machines\""),
            "no `nodes` output",
        ),
        (OUTPUTS.replace("\"i-0bbb\", ", ""), "differ in length"),
        ("[1, 2]".to_string(), "not `terraform output -json` JSON"),
        (
            OUTPUTS.to_string(),
            "the module is for cluster `tfimp`, not `other`",
        ),
    ];
    for (i, (body, message)) in cases.iter().enumerate() {
        let file = write(env.dir.path(), &format!("bad{i}.json"), body);
        let name = if i == 3 { "other" } else { "tfimp" };
        let out = env.run(&[
            "k",
            "import",
            name,
            "--terraform-output",
            file.to_str().unwrap(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{message}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(err.contains(message), "{message}: {err}");
        assert!(
            err.contains(&format!("bad{i}.json")),
            "names the file: {err}"
        );
    }
    assert!(
        env.run(&["k", "info", "tfimp"]).status.code() != Some(0),
        "nothing recorded"
    );
}
