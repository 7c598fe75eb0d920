//! create → converged re-run → scale down → terminate, checked from outside with the AWS SDK.

use crate::harness::*;
use aws_sdk_ec2::types::Filter;

fn count(value: &serde_json::Value, path: &str) -> u64 {
    value
        .pointer(path)
        .and_then(|v| v.as_u64())
        .unwrap_or_else(|| panic!("{path} missing in {value}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn create_is_tagged_secure_and_converges_then_terminate_leaves_nothing() {
    let env = Env::new();
    let name = "life";
    let first = env.create(name, 2, &[]);
    assert_eq!(count(&first, "/result/created"), 14, "{first}");
    assert!(count(&first, "/calls/mutating") > 0);

    let cloud = cloud().await;
    let by_cluster = cluster_filter(name);
    let instances: Vec<_> = cloud
        .ec2
        .describe_instances()
        .filters(by_cluster.clone())
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("running")
                .values("pending")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .reservations()
        .iter()
        .flat_map(|r| r.instances().to_vec())
        .collect();
    assert_eq!(instances.len(), 3, "1 control plane + 2 workers");
    for i in &instances {
        let tag = |k: &str| {
            i.tags()
                .iter()
                .find(|t| t.key() == Some(k))
                .and_then(|t| t.value())
                .map(str::to_string)
        };
        assert_eq!(tag("clouder.io/managed").as_deref(), Some("true"));
        assert!(tag("clouder.io/resource").unwrap().starts_with("instance/"));
        assert_eq!(
            i.iam_instance_profile()
                .and_then(|p| p.arn())
                .map(|a| a.ends_with("clouder-life-us-east-1-nodes")),
            Some(true)
        );
    }

    let groups = cloud
        .ec2
        .describe_security_groups()
        .filters(by_cluster.clone())
        .send()
        .await
        .unwrap();
    let group = &groups.security_groups()[0];
    for rule in group.ip_permissions() {
        for range in rule.ip_ranges() {
            let cidr = range.cidr_ip().unwrap();
            assert_ne!(cidr, "0.0.0.0/0", "nothing is open to the world");
            if matches!(rule.from_port(), Some(22) | Some(6443)) {
                assert_eq!(
                    cidr, "203.0.113.7/32",
                    "SSH and API only from the admin CIDR"
                );
            }
        }
    }
    let ports: Vec<_> = group
        .ip_permissions()
        .iter()
        .filter_map(|p| p.from_port())
        .collect();
    assert!(ports.contains(&22) && ports.contains(&6443), "{ports:?}");

    let lbs = cloud
        .elb
        .describe_load_balancers()
        .names("life-api")
        .send()
        .await
        .unwrap();
    assert_eq!(lbs.load_balancers().len(), 1);
    let tgs = cloud
        .elb
        .describe_target_groups()
        .names("life-api")
        .send()
        .await
        .unwrap();
    let tg = tgs.target_groups()[0].target_group_arn().unwrap();
    let health = cloud
        .elb
        .describe_target_health()
        .target_group_arn(tg)
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.target_health_descriptions().len(),
        1,
        "the control plane is the API target"
    );
    // A control plane reaches the API through the NLB: no hairpin drop of its own connections.
    let attributes = cloud
        .elb
        .describe_target_group_attributes()
        .target_group_arn(tg)
        .send()
        .await
        .unwrap();
    let preserve = attributes
        .attributes()
        .iter()
        .find(|a| a.key() == Some("preserve_client_ip.enabled"))
        .and_then(|a| a.value());
    assert_eq!(preserve, Some("false"), "{attributes:?}");

    // The same input again changes nothing.
    let again = env.create(name, 2, &[]);
    assert_eq!(count(&again, "/calls/mutating"), 0, "{again}");
    assert_eq!(count(&again, "/result/unchanged"), 14);
    let plan: serde_json::Value =
        serde_json::from_str(&env.ok(&["kubeadm", "plan", name, "-o", "json"])).unwrap();
    assert_eq!(count(&plan, "/summary/unchanged"), 14);
    assert_eq!(count(&plan, "/calls/mutating"), 0);

    // Scaling down removes exactly one worker.
    let down = env.create(name, 1, &[]);
    assert_eq!(count(&down, "/result/deleted"), 1, "{down}");
    let left = tagged(name).await;
    assert_eq!(left.iter().filter(|t| t.kind == "aws_instance").count(), 2);

    let info: serde_json::Value =
        serde_json::from_str(&env.ok(&["kubeadm", "info", name, "-o", "json"])).unwrap();
    assert_eq!(info["cluster"]["status"], "ready");
    assert_eq!(info["resources"].as_array().unwrap().len(), 13);

    env.ok(&["kubeadm", "terminate", name, "--force"]);
    assert_eq!(tagged(name).await, vec![], "nothing tagged is left");
    let listed: serde_json::Value =
        serde_json::from_str(&env.ok(&["kubeadm", "ls", "-o", "json"])).unwrap();
    assert_eq!(listed, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_calls_are_retried_and_create_nothing_twice() {
    let env = Env::new();
    let name = "throttled";
    let key = env.key();
    let out = env.run_with(
        &[
            "kubeadm",
            "create",
            name,
            "-w",
            "2",
            "--admin-cidr",
            "198.51.100.0/24",
            "--image",
            IMAGE,
            "--ssh-public-key",
            key.to_str().unwrap(),
            "-o",
            "json",
        ],
        &[("CLOUDER_FAULT_THROTTLE", "3")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        count(&result, "/calls/throttled") >= 5,
        "every third request was refused: {result}"
    );
    assert_eq!(count(&result, "/result/created"), 14);

    let objects = tagged(name).await;
    let mut ids: Vec<_> = objects
        .iter()
        .map(|t| t.resource_id.clone().unwrap_or_default())
        .collect();
    let total = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), total, "no duplicates: {objects:?}");
    assert_eq!(total, 14);

    env.ok(&["kubeadm", "terminate", name, "--force"]);
    assert!(tagged(name).await.is_empty());
}
