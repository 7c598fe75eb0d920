//! `clouder byoc` end to end: a real docker-registry holding images built here, real HTTPS
//! endpoints with a CA made here, and clouder-testkube as the cluster. Exit codes, what is
//! recorded (never the token), bad input that records nothing, and a removal that leaves
//! nothing behind.

use super::harness::{Env, text};
use super::parity::adopted;
use clouder_testenv::RegistryPeer;
use clouder_testenv::endpoint::{Ca, Endpoint};
use clouder_testenv::images::Pusher;
use serde_json::{Value, json};

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `app:1` (runs as a user, labelled), `app:2` (an index: amd64 and arm64) and `bare:1`
/// (nothing to run, root, 3 MiB).
async fn images(registry: &RegistryPeer) -> (String, String) {
    let app = Pusher::new(&registry.host(), "app", None);
    app.image(
        "1",
        ("linux", "amd64", None),
        json!({"Entrypoint": ["/serve"], "User": "1000", "Labels": {"team": "ml"}}),
        &[4096],
    )
    .await;
    let run = json!({"Entrypoint": ["/serve", "--v2"], "User": "1000"});
    let (amd, _) = app
        .image("2-amd64", ("linux", "amd64", None), run.clone(), &[8192])
        .await;
    let (arm, _) = app
        .image("2-arm64", ("linux", "arm64", Some("v8")), run, &[8192])
        .await;
    app.index(
        "2",
        &[
            (amd, "linux", "amd64", None),
            (arm, "linux", "arm64", Some("v8")),
        ],
    )
    .await;
    let bare = Pusher::new(&registry.host(), "bare", None);
    bare.image("1", ("linux", "amd64", None), json!({}), &[3 << 20])
        .await;
    (
        format!("{}/app:1", registry.host()),
        format!("{}/bare:1", registry.host()),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_answers_0_1_or_2() {
    let env = Env::new();
    let registry = RegistryPeer::start(None);
    let (app, bare) = images(&registry).await;

    let out = env.ok(&[
        "byoc",
        "validate",
        &app,
        "--insecure-registry",
        "--non-root",
        "-o",
        "json",
    ]);
    let report = json_of(&out);
    assert_eq!(report["failures"], json!([]));
    assert_eq!(report["image"]["entrypoint"], json!(["/serve"]));
    assert_eq!(report["image"]["labels"], json!({"team": "ml"}));
    assert_eq!(report["image"]["compressed_size"], 4096);

    let out = env.run(&[
        "byoc",
        "validate",
        &bare,
        "--insecure-registry",
        "--non-root",
        "--max-size",
        "1MiB",
        "--require-label",
        "team",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for line in [
        "FAIL entrypoint: the image has neither an entrypoint nor a cmd: nothing to run",
        "FAIL non-root: the image runs as no user (root)",
        "FAIL max-size: compressed size 3.0 MiB is over the limit 1.0 MiB",
        "FAIL label: required label `team` is missing",
    ] {
        assert!(table.contains(line), "{line}\n{table}");
    }
    // Layers were never asked for: only manifests and config blobs.
    assert_eq!(registry.requests("GET", "/blobs/"), 2, "{}", registry.log());

    let out = env.run(&["byoc", "validate", "Not A/Reference"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is not an image reference"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_is_enrolled_run_and_removed_leaving_nothing() {
    let env = Env::new();
    let kube = adopted(&env, "bc").await;
    let registry = RegistryPeer::start(None);
    let (app, bare) = images(&registry).await;
    let ca = Ca::new("endpoint-ca");
    let ca_file = env.dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let ca_file = ca_file.to_str().unwrap();
    let endpoint = Endpoint::start(Some(ca.server()), "").await;
    let token_file = env.dir.path().join("token");
    let register = |name: &str, url: &str, image: &str, extra: &[&str]| {
        let mut args = vec![
            "byoc",
            "register",
            "bc",
            name,
            "--endpoint",
            url,
            "--image",
            image,
            "--insecure-registry",
            "--cpu",
            "4",
            "--memory",
            "8Gi",
            "--gpu",
            "1",
            "--class",
            "gpu",
            "--label",
            "zone=lab",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: &[String]| env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let out = run(&register(
        "gpu-a",
        &endpoint.url,
        &app,
        &[
            "--ca-file",
            ca_file,
            "--token-file",
            token_file.to_str().unwrap(),
            "-o",
            "json",
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = json_of(&text(&out.stdout));
    assert_eq!(shown["node"], "byoc-gpu-a");
    assert!(
        shown.get("token").is_none(),
        "written to the file, not shown"
    );
    assert!(shown["image"].as_str().unwrap().contains("/app@sha256:"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    // The state keeps the token's hash, never the token.
    let state = std::fs::read(env.home().join("state.db")).unwrap();
    let has = |needle: &str| state.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!has(&token));
    assert!(has(&clouder_byoc::enroll::token_sha256(&token)));
    endpoint.set_token(&token);

    // kubectl sees the virtual Node and the resource.
    let nodes = env.ok(&[
        "kubectl",
        "bc",
        "get",
        "nodes",
        "-l",
        "clouder.io/byoc=gpu-a",
    ]);
    assert!(nodes.contains("byoc-gpu-a"), "{nodes}");
    // The platform is the image's.
    let arch = |env: &super::harness::Env| {
        env.ok(&[
            "kubectl",
            "bc",
            "get",
            "node",
            "byoc-gpu-a",
            "-o",
            "jsonpath={.metadata.labels.kubernetes\\.io/arch} {.status.nodeInfo.architecture}",
        ])
    };
    assert_eq!(arch(&env), "amd64 amd64");
    let rcs = env.ok(&["kubectl", "bc", "get", "remotecontainers", "-o", "json"]);
    assert_eq!(
        json_of(&rcs)["items"][0]["spec"]["endpoint"],
        endpoint.url.as_str(),
        "{rcs}"
    );

    let listed = json_of(&env.ok(&["byoc", "ls", "bc", "-o", "json"]));
    assert_eq!(listed[0]["status"]["conditions"], json!([]));
    let seen = json_of(&env.ok(&["byoc", "controller", "bc", "--once", "-o", "json"]));
    assert_eq!(seen[0]["health"], "Ready", "{seen}");
    // The CRD's printer columns, as kubectl shows them.
    let rcs = env.ok(&["kubectl", "bc", "get", "byoc"]);
    let header: Vec<&str> = rcs
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        ["NAME", "ENDPOINT", "READY", "LAST HEARTBEAT", "AGE"],
        "{rcs}"
    );
    let row: Vec<&str> = rcs.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["gpu-a", endpoint.url.as_str(), "True"], "{rcs}");
    let table = env.ok(&["byoc", "ls", "bc"]);
    assert!(
        table.contains("gpu-a") && table.contains("Ready") && table.contains("8.0 GiB"),
        "{table}"
    );

    // Bad input: refused, nothing recorded.
    let before = env.ok(&["byoc", "ls", "bc", "-o", "json"]);
    let out = run(&register(
        "gpu-a",
        &endpoint.url,
        &app,
        &["--ca-file", ca_file],
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already enrolled"),
        "{}",
        text(&out.stderr)
    );
    // Rounds too far apart for the virtual Nodes' Leases: refused before anything runs.
    let out = env.run(&["byoc", "controller", "bc", "--interval", "25", "--once"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("Leases lapse"),
        "{}",
        text(&out.stderr)
    );
    let plain = Endpoint::start(None, "").await;
    let out = run(&register("plain", &plain.url, &app, &[]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("pass --insecure"),
        "{}",
        text(&out.stderr)
    );
    let stranger = env.dir.path().join("stranger.pem");
    std::fs::write(&stranger, Ca::new("stranger").pem).unwrap();
    let out = run(&register(
        "b",
        &endpoint.url,
        &app,
        &["--ca-file", stranger.to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not trusted"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&register(
        "c",
        &endpoint.url,
        &bare,
        &["--ca-file", ca_file],
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("does not fit"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&register(
        "d",
        &endpoint.url,
        "localhost:1/x:y",
        &["--ca-file", ca_file],
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unreachable"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(env.ok(&["byoc", "ls", "bc", "-o", "json"]), before);

    env.ok(&["byoc", "cordon", "bc", "gpu-a"]);
    assert_eq!(
        json_of(&env.ok(&["byoc", "show", "bc", "gpu-a", "-o", "json"]))["cordoned"],
        true
    );
    env.ok(&["byoc", "uncordon", "bc", "gpu-a"]);
    assert_eq!(
        json_of(&env.ok(&["byoc", "show", "bc", "gpu-a", "-o", "json"]))["cordoned"],
        false
    );

    let rotated = env.ok(&["byoc", "rotate-token", "bc", "gpu-a"]);
    let new_token = rotated.trim().strip_prefix("Token: ").unwrap().to_string();
    assert_ne!(new_token, token);
    let shown = json_of(&env.ok(&["byoc", "show", "bc", "gpu-a", "-o", "json"]));
    assert_eq!(
        shown["record"]["token_sha256"],
        clouder_byoc::enroll::token_sha256(&new_token)
    );
    // The endpoint still holds the old token: its beat is refused.
    let seen = json_of(&env.ok(&["byoc", "controller", "bc", "--once", "-o", "json"]));
    assert_eq!(
        seen[0]["reason"], "the endpoint refused the token (401 Unauthorized)",
        "{seen}"
    );

    let v2 = app.replace(":1", ":2");
    let updated = json_of(&env.ok(&[
        "byoc",
        "update-image",
        "bc",
        "gpu-a",
        &v2,
        "--platform",
        "linux/arm64",
        "--insecure-registry",
        "-o",
        "json",
    ]));
    let shown = json_of(&env.ok(&["byoc", "show", "bc", "gpu-a", "-o", "json"]));
    assert_eq!(shown["spec"]["image"], updated["pinned"]);
    assert_eq!(shown["spec"]["architecture"], "arm64");
    assert_eq!(shown["record"]["image_digest"], updated["digest"]);
    // An arm64 image makes an arm64 node.
    assert_eq!(arch(&env), "arm64 arm64");

    let out = env.run(&["byoc", "remove", "bc", "gpu-a"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no confirmation without a terminal"
    );
    env.ok(&["byoc", "remove", "bc", "gpu-a", "--yes"]);
    assert_eq!(
        json_of(&env.ok(&["byoc", "ls", "bc", "-o", "json"])),
        json!([])
    );
    let client = kube.client().await.unwrap();
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    assert!(nodes.get_opt("byoc-gpu-a").await.unwrap().is_none());
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client.clone(), "kube-node-lease");
    assert!(leases.get_opt("byoc-gpu-a").await.unwrap().is_none());
    // No token Secret, no egress policy.
    for kind in ["secrets", "networkpolicies"] {
        let left = env.ok(&[
            "kubectl",
            "bc",
            "get",
            kind,
            "-n",
            "clouder-byoc",
            "-o",
            "name",
        ]);
        assert_eq!(left.trim(), "", "{kind}");
    }
    let out = env.run(&["byoc", "show", "bc", "gpu-a"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no endpoint named gpu-a"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeadm_info_groups_nodes_by_provenance() {
    use clouder_byoc::provenance::{self, Origin, Provenance};
    let env = Env::new();
    let kube = adopted(&env, "pv").await;
    let client = kube.client().await.unwrap();
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    for name in ["cp-0", "w-0", "jane-laptop", "old"] {
        let node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        nodes.create(&Default::default(), &node).await.unwrap();
    }
    let marks = |provenance| {
        provenance::labels_and_taints(&Origin {
            provenance,
            owner: "platform".into(),
            enrolled_at: "2026-11-25T20:39:01Z".parse().unwrap(),
            non_production_taint: true,
        })
    };
    for (node, p) in [
        ("cp-0", Provenance::Ssh),
        ("w-0", Provenance::Ssh),
        ("jane-laptop", Provenance::Laptop),
    ] {
        provenance::apply(&client, node, &marks(p)).await.unwrap();
    }
    let info = json_of(&env.ok(&["kubeadm", "info", "pv", "-o", "json"]));
    assert_eq!(
        info["nodes_by_provenance"],
        json!({"laptop": ["jane-laptop"], "ssh": ["cp-0", "w-0"], "unknown": ["old"]})
    );
    let text = env.ok(&["kubeadm", "info", "pv"]);
    assert!(
        text.contains(
            "Nodes by provenance:\n  laptop   jane-laptop\n  ssh      cp-0, w-0\n  unknown  old\n"
        ),
        "{text}"
    );
}
