//! `--provider azure` end to end against the fake ARM server: create → every object present,
//! tagged and locked down → re-run makes no write → scale up and down → terminate leaves
//! nothing; an existing resource group is kept; throttling and conflicts are retried.

use crate::harness::*;
use serde_json::Value;

fn count(value: &Value, path: &str) -> u64 {
    value
        .pointer(path)
        .and_then(|v| v.as_u64())
        .unwrap_or_else(|| panic!("{path} missing in {value}"))
}

fn of_type<'a>(ids: &'a [String], ty: &str) -> Vec<&'a String> {
    let needle = format!("/providers/{}/", ty.to_ascii_lowercase());
    ids.iter()
        .filter(|id| {
            id.contains(&needle) && !id.split(&needle).nth(1).unwrap_or_default().contains('/')
        })
        .collect()
}

fn get(arm: &fake_arm::Server, group: &str, ty: &str, name: &str) -> Value {
    let id = format!("{}/providers/{ty}/{name}", group_key(group));
    arm.resource(&id)
        .unwrap_or_else(|| panic!("{id} is missing; have {:?}", arm.ids()))
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_create_is_secure_converges_scales_and_terminate_leaves_nothing() {
    let arm = fake_arm().await;
    let endpoint = arm.endpoint();
    let env = Env::new();
    let name = "azlife";
    let group = "azlife-rg";

    let first = env.create_azure(&endpoint, name, 2, &[]);
    // group, vnet, subnet, nsg, identity, role, lb ip, lb + 3 × (ip, nic, vm)
    assert_eq!(count(&first, "/result/created"), 17, "{first}");

    let ids = in_group(&arm, group);
    assert_eq!(of_type(&ids, "Microsoft.Compute/virtualMachines").len(), 3);
    assert_eq!(
        of_type(&ids, "Microsoft.Network/networkInterfaces").len(),
        3
    );
    assert_eq!(
        of_type(&ids, "Microsoft.Network/publicIPAddresses").len(),
        4
    );
    assert_eq!(
        of_type(&ids, "Microsoft.Compute/disks").len(),
        3,
        "one OS disk per VM"
    );

    // Tags on the group clouder made, and on every tagged object.
    let rg = arm.resource(&group_key(group)).unwrap();
    assert_eq!(rg["tags"]["clouder.io/cluster"], name);
    for ty in ["virtualNetworks", "networkSecurityGroups", "loadBalancers"] {
        let v = &of_type(&ids, &format!("Microsoft.Network/{ty}"));
        let body = arm.resource(v[0]).unwrap();
        assert_eq!(body["tags"]["clouder.io/managed"], "true", "{body}");
    }

    // The NSG: SSH and the API server only from the admin CIDR, nothing from the internet.
    let nsg = get(
        &arm,
        group,
        "Microsoft.Network/networkSecurityGroups",
        "azlife-nsg",
    );
    let rules = nsg["properties"]["securityRules"].as_array().unwrap();
    for rule in rules {
        let p = &rule["properties"];
        let sources: Vec<&str> = p["sourceAddressPrefixes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        for source in &sources {
            assert!(
                !["*", "0.0.0.0/0", "Internet", "Any"].contains(source),
                "open to the world: {rule}"
            );
        }
        if ["22", "6443"].contains(&p["destinationPortRange"].as_str().unwrap()) {
            assert_eq!(sources, ["203.0.113.7/32"], "{rule}");
        } else {
            assert_eq!(sources, ["10.0.0.0/16", "10.244.0.0/16"], "{rule}");
        }
    }
    let subnet = get(
        &arm,
        group,
        "Microsoft.Network/virtualNetworks",
        "azlife-vnet/subnets/azlife-subnet",
    );
    assert!(
        subnet["properties"]["networkSecurityGroup"]["id"]
            .as_str()
            .unwrap()
            .ends_with("/azlife-nsg")
    );

    // Machines: SSH key only, 100 GB disk deleted with the VM, the nodes' identity.
    let master = get(
        &arm,
        group,
        "Microsoft.Compute/virtualMachines",
        "azlife-master",
    );
    let p = &master["properties"];
    assert_eq!(p["hardwareProfile"]["vmSize"], "Standard_B4ms");
    assert_eq!(p["storageProfile"]["osDisk"]["diskSizeGB"], 100);
    assert_eq!(p["storageProfile"]["osDisk"]["deleteOption"], "Delete");
    assert_eq!(
        p["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"],
        true
    );
    assert!(p["osProfile"].get("adminPassword").is_none());
    let key = std::fs::read_to_string(env.key()).unwrap();
    assert_eq!(
        p["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"][0]["keyData"],
        key.trim()
    );
    assert_eq!(
        p["storageProfile"]["imageReference"]["offer"],
        "ubuntu-24_04-lts"
    );
    let identity = get(
        &arm,
        group,
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        "azlife-identity",
    );
    let identity_id = identity["id"].as_str().unwrap();
    assert!(
        master["identity"]["userAssignedIdentities"]
            .get(identity_id)
            .is_some()
    );
    get(
        &arm,
        group,
        "Microsoft.Compute/virtualMachines",
        "azlife-node-1",
    );

    // The API load balancer: 6443 with a probe, the control plane in its pool.
    let lb = get(&arm, group, "Microsoft.Network/loadBalancers", "azlife-lb");
    assert_eq!(lb["sku"]["name"], "Standard");
    let rule = &lb["properties"]["loadBalancingRules"][0]["properties"];
    assert_eq!(
        (rule["frontendPort"].as_u64(), rule["backendPort"].as_u64()),
        (Some(6443), Some(6443))
    );
    assert_eq!(lb["properties"]["probes"][0]["properties"]["port"], 6443);
    let nic = get(
        &arm,
        group,
        "Microsoft.Network/networkInterfaces",
        "azlife-master-nic",
    );
    let pools =
        &nic["properties"]["ipConfigurations"][0]["properties"]["loadBalancerBackendAddressPools"];
    assert!(
        pools[0]["id"]
            .as_str()
            .unwrap()
            .ends_with("azlife-lb/backendAddressPools/control-plane")
    );
    let worker_nic = get(
        &arm,
        group,
        "Microsoft.Network/networkInterfaces",
        "azlife-node-0-nic",
    );
    assert!(
        worker_nic["properties"]["ipConfigurations"][0]["properties"]
            .get("loadBalancerBackendAddressPools")
            .is_none()
    );

    // The identity's role: Contributor on the cluster's group only.
    let roles = of_type(&ids, "Microsoft.Authorization/roleAssignments");
    assert_eq!(roles.len(), 1);
    let role = arm.resource(roles[0]).unwrap();
    assert_eq!(
        role["properties"]["principalId"],
        identity["properties"]["principalId"]
    );
    assert!(
        role["properties"]["scope"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(&group_key(group))
    );
    assert!(
        role["properties"]["roleDefinitionId"]
            .as_str()
            .unwrap()
            .ends_with("b24988ac-6180-42a0-ab88-20f7382dd24c")
    );

    // The same input again writes nothing.
    let again = env.create_azure(&endpoint, name, 2, &[]);
    assert_eq!(count(&again, "/calls/mutating"), 0, "{again}");
    assert_eq!(count(&again, "/result/unchanged"), 17);
    let plan: Value =
        serde_json::from_str(&env.ok_azure(&endpoint, &["kubeadm", "plan", name, "-o", "json"]))
            .unwrap();
    assert_eq!(count(&plan, "/summary/unchanged"), 17, "{plan}");

    // The reference's kubeadm.json knows the machines and the group.
    let info: Value =
        serde_json::from_str(&env.ok_azure(&endpoint, &["kubeadm", "info", name, "-o", "json"]))
            .unwrap();
    assert_eq!(info["cluster"]["status"], "ready", "{info}");

    // Scale up by one machine (IP, NIC, VM), then down to one worker.
    let up: Value = serde_json::from_str(&env.ok_azure(
        &endpoint,
        &["kubeadm", "scale", name, "-w", "3", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(count(&up, "/result/created"), 3, "{up}");
    get(
        &arm,
        group,
        "Microsoft.Compute/virtualMachines",
        "azlife-node-2",
    );
    let down: Value = serde_json::from_str(&env.ok_azure(
        &endpoint,
        &["kubeadm", "scale", name, "-w", "1", "--force", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(count(&down, "/result/deleted"), 6, "{down}");
    let ids = in_group(&arm, group);
    assert_eq!(of_type(&ids, "Microsoft.Compute/virtualMachines").len(), 2);
    assert_eq!(
        of_type(&ids, "Microsoft.Compute/disks").len(),
        2,
        "disks go with their VMs"
    );
    assert_eq!(
        of_type(&ids, "Microsoft.Network/publicIPAddresses").len(),
        3
    );

    env.ok_azure(&endpoint, &["kubeadm", "terminate", name, "--force"]);
    assert_eq!(
        arm.ids(),
        Vec::<String>::new(),
        "nothing is left, the group included"
    );
    let listed: Value =
        serde_json::from_str(&env.ok_azure(&endpoint, &["kubeadm", "ls", "-o", "json"])).unwrap();
    assert_eq!(listed, serde_json::json!([]));
}

async fn put_group(endpoint: &str, group: &str) {
    let url = format!(
        "{endpoint}/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}?api-version=2021-04-01"
    );
    let response = reqwest::Client::new()
        .put(url)
        .bearer_auth("fake-token")
        .json(&serde_json::json!({ "location": LOCATION, "tags": { "team": "data" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

/// PUTs `body` at `path` (with its api-version) as another ARM client would, and — like any
/// such client — waits for the operation to finish. Returns the PUT's status.
async fn put_and_wait(endpoint: &str, path: &str, body: &Value) -> u16 {
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{endpoint}{path}"))
        .bearer_auth("t")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = put.status().as_u16();
    if let Some(operation) = put.headers().get("azure-asyncoperation") {
        let operation = operation.to_str().unwrap().to_string();
        loop {
            let state: Value = http
                .get(&operation)
                .bearer_auth("t")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if state["status"] != "InProgress" {
                assert_eq!(state["status"], "Succeeded", "{state}");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_the_cloud_provider_adds_to_the_nsg_are_kept_and_clouders_own_are_enforced() {
    let arm = fake_arm().await;
    let endpoint = arm.endpoint();
    let env = Env::new();
    let (name, group) = ("aznsg", "aznsg-rg");
    env.create_azure(&endpoint, name, 0, &[]);
    let nsg_path = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.Network/networkSecurityGroups/{name}-nsg?api-version=2024-05-01"
    );
    let rules = |nsg: &Value| -> Vec<String> {
        nsg["properties"]["securityRules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    // cloud-provider-azure opens an ingress Service's port as a rule of its own.
    let mut nsg = get(
        &arm,
        group,
        "Microsoft.Network/networkSecurityGroups",
        &format!("{name}-nsg"),
    );
    let ccm_rule = "a1b2c3d4e5f6-TCP-443-Internet";
    nsg["properties"]["securityRules"].as_array_mut().unwrap().push(serde_json::json!({
        "name": ccm_rule,
        "properties": { "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "443",
            "sourceAddressPrefix": "Internet", "destinationAddressPrefix": "*",
            "access": "Allow", "priority": 500, "direction": "Inbound" },
    }));
    assert_eq!(put_and_wait(&endpoint, &nsg_path, &nsg).await, 200);

    let again = env.create_azure(&endpoint, name, 0, &[]);
    assert_eq!(count(&again, "/calls/mutating"), 0, "not drift: {again}");

    // `setup` finds the machines ARM made: the control plane at its public address, the API
    // behind the load balancer's.
    let ip = |ip_name: &str| {
        get(&arm, group, "Microsoft.Network/publicIPAddresses", ip_name)["properties"]["ipAddress"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let plan: Value = serde_json::from_str(&env.ok_azure(
        &endpoint,
        &["kubeadm", "setup", name, "--dry-run", "-o", "json"],
    ))
    .unwrap();
    let vm = get(
        &arm,
        group,
        "Microsoft.Compute/virtualMachines",
        &format!("{name}-master"),
    );
    let login = vm["properties"]["osProfile"]["adminUsername"]
        .as_str()
        .unwrap();
    assert_eq!(
        plan["hosts"],
        serde_json::json!([format!("{login}@{}:22", ip(&format!("{name}-master-ip")))]),
        "as the VM's admin user: {plan}"
    );
    assert_eq!(
        plan["endpoint"],
        format!("{}:6443", ip(&format!("{name}-lb-ip")))
    );

    // clouder's own SSH rule opened to the world is drift: put back, the foreign rule kept.
    let mut nsg = get(
        &arm,
        group,
        "Microsoft.Network/networkSecurityGroups",
        &format!("{name}-nsg"),
    );
    for rule in nsg["properties"]["securityRules"].as_array_mut().unwrap() {
        if rule["properties"]["destinationPortRange"] == "22" {
            rule["properties"]["sourceAddressPrefixes"] = serde_json::json!(["0.0.0.0/0"]);
        }
    }
    assert_eq!(put_and_wait(&endpoint, &nsg_path, &nsg).await, 200);
    let fixed = env.create_azure(&endpoint, name, 0, &[]);
    assert_eq!(count(&fixed, "/result/updated"), 1, "{fixed}");
    let nsg = get(
        &arm,
        group,
        "Microsoft.Network/networkSecurityGroups",
        &format!("{name}-nsg"),
    );
    assert!(rules(&nsg).contains(&ccm_rule.to_string()), "{nsg}");
    let ssh = nsg["properties"]["securityRules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["properties"]["destinationPortRange"] == "22")
        .unwrap();
    assert_eq!(
        ssh["properties"]["sourceAddressPrefixes"],
        serde_json::json!(["203.0.113.7/32"]),
        "{ssh}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_resource_group_is_used_and_kept_unless_delete_rg() {
    let arm = fake_arm().await;
    let endpoint = arm.endpoint();
    put_group(&endpoint, "shared").await;
    let env = Env::new();

    let created = env.create_azure(&endpoint, "azkeep", 1, &["-g", "shared"]);
    assert_eq!(
        count(&created, "/result/created"),
        13,
        "the group is found, not made: {created}"
    );
    assert_eq!(count(&created, "/result/unchanged"), 1);
    assert!(!in_group(&arm, "shared").is_empty());
    let group = arm.resource(&group_key("shared")).unwrap();
    assert_eq!(
        group["tags"],
        serde_json::json!({ "team": "data" }),
        "clouder leaves its tags alone"
    );

    env.ok_azure(&endpoint, &["kubeadm", "terminate", "azkeep", "--force"]);
    assert_eq!(
        in_group(&arm, "shared"),
        Vec::<String>::new(),
        "the cluster is gone"
    );
    assert!(
        arm.resource(&group_key("shared")).is_some(),
        "the group is kept"
    );

    env.create_azure(&endpoint, "azkeep", 1, &["-g", "shared"]);
    env.ok_azure(
        &endpoint,
        &["kubeadm", "terminate", "azkeep", "--force", "--delete-rg"],
    );
    assert_eq!(
        arm.ids(),
        Vec::<String>::new(),
        "--delete-rg took the group too"
    );
}

/// A cluster this machine has no state of — made by a teammate, or by the reference Clouder —
/// is swept by its tags: named by the flags, or by the reference's `kubeadm.json`. What it
/// does not own (the shared group, another cluster) stays.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_without_local_state_is_terminated_by_its_tags() {
    let arm = fake_arm().await;
    let endpoint = arm.endpoint();
    put_group(&endpoint, "team").await;
    let teammate = Env::new();
    teammate.create_azure(&endpoint, "azaway", 1, &[]);
    teammate.create_azure(&endpoint, "azref", 1, &["-g", "team"]);
    teammate.create_azure(&endpoint, "azother", 1, &["-g", "team"]);
    let others = in_group(&arm, "team").len();

    let me = Env::new();
    let refused = me.run_azure(&endpoint, &["k", "terminate", "azaway", "--force"], &[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("--provider azure"),
        "{}",
        text(&refused.stderr)
    );
    me.ok_azure(
        &endpoint,
        &[
            "k",
            "terminate",
            "azaway",
            "--force",
            "--provider",
            "azure",
            "-r",
            LOCATION,
        ],
    );
    assert!(
        arm.resource(&group_key("azaway-rg")).is_none(),
        "the group clouder made went with it"
    );

    // The reference's folder says where: cloud, region, group.
    let folder = me.home().join("kubeadm/azref");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("kubeadm.json"),
        format!(r#"{{"cloud": "azure", "region": "{LOCATION}", "resource_group": "team", "setup_complete": false}}"#),
    )
    .unwrap();
    me.ok_azure(&endpoint, &["k", "terminate", "azref", "--force"]);
    let left = in_group(&arm, "team");
    assert!(
        arm.resource(&group_key("team")).is_some(),
        "the shared group is kept"
    );
    assert!(
        !left.is_empty() && left.len() < others,
        "azother's objects stay, azref's are gone: {left:?}"
    );
    assert!(left.iter().all(|id| !id.contains("azref")), "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_server_errors_and_conflicts_are_retried_without_duplicates() {
    let arm = fake_arm().await;
    arm.set_config(fake_arm::Config {
        throttle_every: 5,
        retry_after_s: 1,
        fail_every: 13,
        conflict_every: 4,
        op_retry_after_s: 0,
        ..Default::default()
    });
    let endpoint = arm.endpoint();
    let env = Env::new();
    let result = env.create_azure(&endpoint, "azbusy", 1, &[]);
    assert_eq!(count(&result, "/result/created"), 14, "{result}");
    assert!(count(&result, "/calls/throttled") >= 1, "{result}");
    let stats = arm.stats();
    assert!(
        stats.throttled >= 3 && stats.failed >= 1 && stats.conflicts >= 2,
        "{stats:?}"
    );

    let ids = in_group(&arm, "azbusy-rg");
    assert_eq!(
        of_type(&ids, "Microsoft.Compute/virtualMachines").len(),
        2,
        "no duplicates: {ids:?}"
    );
    assert_eq!(
        of_type(&ids, "Microsoft.Network/networkInterfaces").len(),
        2
    );
    assert_eq!(
        of_type(&ids, "Microsoft.Network/publicIPAddresses").len(),
        3
    );

    env.ok_azure(&endpoint, &["kubeadm", "terminate", "azbusy", "--force"]);
    assert_eq!(arm.ids(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn arm_errors_reach_the_user_verbatim_with_the_resource_id() {
    let arm = fake_arm().await;
    let endpoint = arm.endpoint();
    let env = Env::new();
    // In a group clouder did not make (one it owns goes as a whole, foreign objects included).
    put_group(&endpoint, "errgrp").await;
    env.create_azure(&endpoint, "azerr", 0, &["-g", "errgrp"]);

    // Someone else's NIC in the cluster's subnet: the VNet cannot go.
    let group = format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/errgrp");
    let subnet = format!(
        "{group}/providers/Microsoft.Network/virtualNetworks/azerr-vnet/subnets/azerr-subnet"
    );
    let foreign = format!(
        "{group}/providers/Microsoft.Network/networkInterfaces/foreign?api-version=2024-05-01"
    );
    let http = reqwest::Client::new();
    let nic = serde_json::json!({ "location": LOCATION, "properties": { "ipConfigurations": [
        { "name": "ipconfig1", "properties": { "subnet": { "id": subnet } } } ] } });
    assert_eq!(put_and_wait(&endpoint, &foreign, &nic).await, 201);

    let out = env.run_azure(
        &endpoint,
        &["kubeadm", "terminate", "azerr", "--force"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("InUseSubnetCannotBeDeleted (400)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("/virtualNetworks/azerr-vnet"),
        "the resource id is named: {stderr}"
    );
    assert!(
        stderr.contains("networkInterfaces/foreign"),
        "ARM's message is kept: {stderr}"
    );

    // Once it is gone, terminate finishes.
    let gone = http
        .delete(format!("{endpoint}{foreign}"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 202, "{:?}", gone.text().await);
    env.ok_azure(&endpoint, &["kubeadm", "terminate", "azerr", "--force"]);
    assert_eq!(arm.ids(), vec![group_key("errgrp")]);
}

/// Extra flags, extra environment, the exit code and what stderr says.
type BadInput<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32, &'a str);

#[test]
fn azure_bad_input_is_refused_clearly_before_any_call() {
    let env = Env::new();
    let cases: [BadInput; 6] = [
        (
            &["--node-size", "t3.large"],
            &[],
            2,
            "spec.nodePools[0].size: `t3.large` is not an Azure VM size",
        ),
        (
            &["--master-size", "Standard D4"],
            &[],
            2,
            "spec.controlPlane.size",
        ),
        (
            &["-r", "us-east-1"],
            &[],
            2,
            "`us-east-1` is not an Azure location",
        ),
        (&["-g", "bad/group"], &[], 2, "spec.resourceGroup"),
        (
            &[],
            &[("CLOUDER_AZURE_TOKEN", ""), ("PATH", "/nonexistent")],
            1,
            "no Azure credentials",
        ),
        (
            &[],
            &[("AZURE_SUBSCRIPTION_ID", "")],
            1,
            "no Azure subscription",
        ),
    ];
    for (extra, vars, code, says) in cases {
        let wire = Tripwire::new();
        let mut args = env.azure_create_args("azbad", 1, &[]);
        match extra {
            // A region replaces the default one rather than repeating -r.
            ["-r", region] => {
                let at = args.iter().position(|a| a == LOCATION).unwrap();
                args[at] = region.to_string();
            }
            extra => args.extend(extra.iter().map(|s| s.to_string())),
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = env.run_azure(&wire.endpoint(), &args, vars);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{extra:?} {vars:?}: {stderr}"
        );
        assert!(stderr.contains(says), "expected `{says}` in: {stderr}");
        assert!(!wire.touched(), "no call for {extra:?} {vars:?}");
    }

    // No admin CIDR: refused naming the flag.
    let wire = Tripwire::new();
    let key = env.key();
    let out = env.run_azure(
        &wire.endpoint(),
        &[
            "kubeadm",
            "create",
            "azopen",
            "--provider",
            "azure",
            "-r",
            LOCATION,
            "--ssh-public-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--admin-cidr"),
        "{}",
        text(&out.stderr)
    );
    assert!(!wire.touched());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_azure_context_holds_the_subscription_and_location() {
    let arm = fake_arm().await;
    let endpoint = arm.endpoint();
    let env = Env::new();
    let tenant = "11111111-2222-3333-4444-555555555555";
    for (args, says) in [
        (
            vec!["ctx", "add", "nosub", "--provider", "azure"],
            "needs --subscription",
        ),
        (
            vec![
                "ctx",
                "add",
                "badsub",
                "--provider",
                "azure",
                "--subscription",
                "prod",
            ],
            "expected a GUID",
        ),
        (
            vec![
                "ctx",
                "add",
                "awssub",
                "--provider",
                "aws",
                "--subscription",
                SUBSCRIPTION,
            ],
            "azure only",
        ),
    ] {
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }
    env.ok(&[
        "ctx",
        "add",
        "azprod",
        "--provider",
        "azure",
        "--subscription",
        SUBSCRIPTION,
        "--tenant",
        tenant,
        "--location",
        "westeurope",
    ]);
    let shown: Value =
        serde_json::from_str(&env.ok(&["ctx", "show", "azprod", "-o", "json"])).unwrap();
    assert_eq!(shown["account"], SUBSCRIPTION);
    assert_eq!(shown["tenant"], tenant);
    assert_eq!(shown["region"], "westeurope");

    // No subscription in the environment and no -r: both come from the context.
    let key = env.key();
    let out = env.run_azure(
        &endpoint,
        &[
            "kubeadm",
            "create",
            "azctx",
            "--provider",
            "azure",
            "-w",
            "0",
            "--admin-cidr",
            "203.0.113.7/32",
            "--ssh-public-key",
            key.to_str().unwrap(),
        ],
        &[("AZURE_SUBSCRIPTION_ID", "")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let group = arm
        .resource(&group_key("azctx-rg"))
        .expect("made in the context's subscription");
    assert_eq!(group["location"], "westeurope");
    let out = env.run_azure(
        &endpoint,
        &["kubeadm", "terminate", "azctx", "--force"],
        &[("AZURE_SUBSCRIPTION_ID", "")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(arm.ids(), Vec::<String>::new());
}
