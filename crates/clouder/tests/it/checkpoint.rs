//! `clouder checkpoint` against clouder-testkube (pods and their status, as a kubelet reports
//! them) and a local OCI layout: create with retention, ls/show/rm, restore, and bad input that
//! leaves the catalogue untouched.

use super::harness::{Env, text};
use super::parity::adopted;
use clouder_checkpoint::testing::fake_archive;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};

/// A pod `shop/web-0` on node `w-0` whose container `app` runs, as the kubelet would report it.
async fn running_pod(kube: &clouder_testkube::TestKube) {
    let client = kube.client().await.unwrap();
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let body = serde_json::from_value(serde_json::json!({"metadata": {"name": "shop"}})).unwrap();
    ns.create(&PostParams::default(), &body).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "shop");
    let pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-0"},
        "spec": {"nodeName": "w-0", "containers": [{"name": "app", "image": "app:1"}, {"name": "sidecar", "image": "side:1"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    play_kubelet(&pods, "web-0", &["app"]).await;
}

/// Reports the named containers of a pod as running, as its kubelet does.
async fn play_kubelet(pods: &Api<Pod>, name: &str, running: &[&str]) {
    let statuses: Vec<_> = running
        .iter()
        .map(|c| serde_json::json!({"name": c, "ready": true, "restartCount": 0, "image": "i", "imageID": "i", "state": {"running": {"startedAt": "2026-11-25T18:00:00Z"}}}))
        .collect();
    let status = serde_json::json!({"status": {"phase": "Running", "containerStatuses": statuses}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_are_stored_listed_kept_and_removed() {
    let env = Env::new();
    let kube = adopted(&env, "ck").await;
    running_pod(&kube).await;
    let layout = env.dir.path().join("layout");
    let to = layout.to_str().unwrap();
    let mut ids = Vec::new();
    for (n, at) in [
        "2026-11-25T18:01:00Z",
        "2026-11-25T18:02:00Z",
        "2026-11-25T18:03:00Z",
    ]
    .iter()
    .enumerate()
    {
        let archive = fake_archive(env.dir.path(), &format!("{n}.tar"), 1 << 16, at);
        let out = json(&env.ok(&[
            "checkpoint",
            "create",
            "ck",
            "-n",
            "shop",
            "web-0",
            "-c",
            "app",
            "--archive",
            archive.to_str().unwrap(),
            "--to",
            to,
            "--keep",
            "2",
            "--label",
            "reason=test",
            "-o",
            "json",
        ]));
        let id = out["checkpoint"]["id"].as_str().unwrap().to_string();
        assert_eq!(out["checkpoint"]["node"], "w-0");
        assert_eq!(out["checkpoint"]["labels"]["reason"], "test");
        assert_eq!(
            out["dropped"].as_array().unwrap().len(),
            usize::from(n == 2),
            "{out}"
        );
        ids.push(id);
    }
    let listed = json(&env.ok(&["checkpoint", "ls", "ck", "-o", "json"]));
    let listed: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        listed,
        [ids[2].clone(), ids[1].clone()],
        "newest first, the oldest dropped by --keep 2"
    );
    let table = env.ok(&["checkpoint", "ls", "ck"]);
    assert!(
        table.starts_with("ID") && table.contains("shop/web-0") && table.contains(&ids[2]),
        "{table}"
    );

    let shown = json(&env.ok(&["checkpoint", "show", &ids[2], "-o", "json"]));
    assert_eq!(shown["reference"], format!("oci:{to}:{}", ids[2]));
    assert_eq!(
        shown["image"],
        "localhost:5000/app@sha256:1111111111111111111111111111111111111111111111111111111111111111"
    );

    env.ok(&["checkpoint", "rm", &ids[1]]);
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    assert!(
        !index.contains(&ids[1]) && index.contains(&ids[2]),
        "{index}"
    );
    let gone = env.run(&["checkpoint", "show", &ids[1]]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        text(&gone.stderr).contains(&format!("no checkpoint {} in the catalogue", ids[1])),
        "{}",
        text(&gone.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_and_leaves_the_catalogue_empty() {
    let env = Env::new();
    let kube = adopted(&env, "bad").await;
    running_pod(&kube).await;
    let archive = fake_archive(env.dir.path(), "a.tar", 1 << 12, "2026-11-25T18:01:00Z");
    let archive = archive.to_str().unwrap();
    let layout = env.dir.path().join("layout");
    let to = layout.to_str().unwrap();
    let garbage = env.dir.path().join("garbage.tar");
    std::fs::write(&garbage, vec![7u8; 2048]).unwrap();
    let unreachable = format!(
        "127.0.0.1:{}/checkpoints",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let cases: [(&[&str], i32, &str); 6] = [
        (
            &["-n", "shop", "nope", "--archive", archive, "--to", to],
            1,
            "pod shop/nope not found in cluster bad",
        ),
        (
            &[
                "-n",
                "shop",
                "web-0",
                "-c",
                "db",
                "--archive",
                archive,
                "--to",
                to,
            ],
            1,
            "pod shop/web-0 has no container db (it has: app, sidecar)",
        ),
        (
            &[
                "-n",
                "shop",
                "web-0",
                "-c",
                "sidecar",
                "--archive",
                archive,
                "--to",
                to,
            ],
            1,
            "container sidecar of pod shop/web-0 is not running",
        ),
        (
            &[
                "-n",
                "shop",
                "web-0",
                "--archive",
                garbage.to_str().unwrap(),
                "--to",
                to,
            ],
            1,
            "garbage.tar is not a readable tar archive",
        ),
        (
            &[
                "-n",
                "shop",
                "web-0",
                "--archive",
                archive,
                "--to",
                &unreachable,
            ],
            1,
            &format!("{unreachable} is unreachable"),
        ),
        (
            &["-n", "default", "web-0", "--archive", archive, "--to", to],
            1,
            "pod default/web-0 not found",
        ),
    ];
    for (args, code, message) in cases {
        let mut all = vec!["checkpoint", "create", "bad"];
        all.extend_from_slice(args);
        let out = env.run(&all);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{all:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(message),
            "{all:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(
        json(&env.ok(&["checkpoint", "ls", "bad", "-o", "json"])),
        serde_json::json!([]),
        "nothing half-written"
    );
    assert!(!layout.join("index.json").exists(), "no image half-stored");

    let no_kubeconfig = env.run(&[
        "checkpoint",
        "create",
        "ghost",
        "web-0",
        "--archive",
        archive,
        "--to",
        to,
    ]);
    assert_eq!(no_kubeconfig.status.code(), Some(2));
    assert!(
        text(&no_kubeconfig.stderr).contains("cluster ghost has no kubeconfig"),
        "{}",
        text(&no_kubeconfig.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_creates_a_pod_from_the_checkpoint_image_and_waits_until_it_runs() {
    let env = Env::new();
    let kube = adopted(&env, "rs").await;
    running_pod(&kube).await;
    let archive = fake_archive(env.dir.path(), "a.tar", 1 << 12, "2026-11-25T18:01:00Z");
    let layout = env.dir.path().join("layout");
    let created = json(&env.ok(&[
        "checkpoint",
        "create",
        "rs",
        "-n",
        "shop",
        "web-0",
        "--archive",
        archive.to_str().unwrap(),
        "--to",
        layout.to_str().unwrap(),
        "-o",
        "json",
    ]));
    let id = created["checkpoint"]["id"].as_str().unwrap().to_string();

    // The test plays the kubelet of w-1: once the restored pod appears, its container runs.
    let pods: Api<Pod> = Api::namespaced(kube.client().await.unwrap(), "shop");
    let kubelet = tokio::spawn({
        let pods = pods.clone();
        async move {
            while pods.get_opt("web-0-restored").await.unwrap().is_none() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            play_kubelet(&pods, "web-0-restored", &["app"]).await;
        }
    });
    let restore_id = id.clone();
    let out = tokio::task::spawn_blocking(move || {
        let out = env.run(&[
            "checkpoint",
            "restore",
            "rs",
            &restore_id,
            "--node",
            "w-1",
            "-o",
            "json",
        ]);
        (env, out)
    })
    .await
    .unwrap();
    let (env, out) = out;
    assert!(out.status.success(), "{}", text(&out.stderr));
    kubelet.await.unwrap();
    let restored = json(&text(&out.stdout));
    assert_eq!(restored["pod"], "shop/web-0-restored");
    assert_eq!(restored["node"], "w-1");
    assert!(restored["seconds"].as_f64().unwrap() < 30.0);
    let pod = pods.get("web-0-restored").await.unwrap();
    let spec = pod.spec.unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("w-1"));
    assert_eq!(spec.containers[0].name, "app");
    assert_eq!(
        spec.containers[0].image.as_deref(),
        created["checkpoint"]["reference"].as_str()
    );
    assert_eq!(
        pod.metadata.annotations.unwrap()["clouder.io/checkpoint"],
        id
    );

    let wrong = env.run(&["checkpoint", "restore", "other", &id]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        text(&wrong.stderr).contains("belongs to cluster rs, not other"),
        "{}",
        text(&wrong.stderr)
    );
}
