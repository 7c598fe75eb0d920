//! Folders with quotas (real XFS project quotas where loop devices and the kernel allow, the
//! usage scan otherwise) and the shared filesystem's manifests on testkube.

use crate::support::testkube;
use clouder_userdata::Error;
use clouder_userdata::storage::folders::Folders;
use clouder_userdata::storage::manifests::{Backend, CLAIM, render};
use clouder_userdata::storage::quota::Quota;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

fn gid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().gid()
}

#[test]
fn folders_lifecycle_with_scanned_usage() {
    let root = tempfile::tempdir().unwrap();
    let folders = Folders::open(root.path(), gid()).unwrap();
    assert_eq!(folders.quota(), &Quota::Scan);
    let alice = folders.create("alice", 1 << 20).unwrap();
    let meta = std::fs::metadata(&alice.path).unwrap();
    assert_eq!(
        (meta.gid(), meta.permissions().mode() & 0o7777),
        (gid(), 0o2770)
    );
    assert!(!alice.over_quota && !alice.enforced);
    assert!(matches!(folders.create("alice", 1), Err(Error::Invalid(m)) if m.contains("already")));
    assert!(matches!(folders.create("../x", 1), Err(Error::Invalid(_))));

    std::fs::write(alice.path.join("data"), vec![1u8; 2 << 20]).unwrap();
    let shown = folders.show("alice").unwrap();
    assert!(shown.used_bytes >= 2 << 20 && shown.over_quota, "{shown:?}");
    let resized = folders.resize("alice", 10 << 20).unwrap();
    assert!(!resized.over_quota);
    folders.create("bob", 1 << 20).unwrap();
    let users: Vec<String> = folders.ls().unwrap().into_iter().map(|f| f.user).collect();
    assert_eq!(users, ["alice", "bob"]);

    // Kept for the grace period, then purged.
    let kept = folders
        .rm("alice", false, Duration::from_secs(3600))
        .unwrap();
    assert!(kept.path.join("data").exists() && kept.purge_after.is_some());
    assert!(matches!(folders.show("alice"), Err(Error::Invalid(_))));
    assert!(folders.purge_expired().unwrap().is_empty());
    let gone = folders.rm("bob", false, Duration::ZERO).unwrap();
    assert_eq!(folders.purge_expired().unwrap(), vec![gone.clone()]);
    assert!(!gone.path.exists() && kept.path.exists());
    folders.create("carol", 1).unwrap();
    let purged = folders
        .rm("carol", true, Duration::from_secs(3600))
        .unwrap();
    assert!(!purged.path.exists() && purged.purge_after.is_none());
}

/// A loop-mounted XFS with project quotas, or why there cannot be one here.
struct XfsLoop {
    dir: tempfile::TempDir,
}

impl XfsLoop {
    fn mount() -> Result<XfsLoop, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let image = dir.path().join("disk.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).map_err(|e| e.to_string())?;
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(300 << 20))
            .map_err(|e| e.to_string())?;
        let run = |cmd: &mut Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            out.status
                .success()
                .then_some(())
                .ok_or_else(|| format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
        };
        run(Command::new("mkfs.xfs").arg("-q").arg(&image))?;
        let mount = |options: &str| {
            run(Command::new("mount")
                .args(["-o", options])
                .arg(&image)
                .arg(&mnt))
        };
        if let Err(prjquota) = mount("loop,prjquota") {
            // Tell a kernel without XFS quotas from a machine without XFS or loop devices.
            mount("loop").map_err(|plain| format!("no XFS on a loop device: {plain}"))?;
            let _ = Command::new("umount").arg(&mnt).status();
            let kernel = Command::new("dmesg")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let said = kernel
                .lines()
                .rev()
                .find(|l| l.contains("XFS") && l.contains("quota"))
                .unwrap_or("(no kernel message)");
            return Err(format!(
                "this kernel's XFS has no quota support: a plain XFS loop mount works, \
                 `-o prjquota` is refused; kernel: {}; mount: {prjquota}",
                said.trim()
            ));
        }
        Ok(XfsLoop { dir })
    }
    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for XfsLoop {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.root()).status();
    }
}

#[test]
fn xfs_project_quotas_are_enforced() {
    let xfs = match XfsLoop::mount() {
        Ok(x) => x,
        Err(why) => {
            // Straight to stderr, past the test harness's capture: a skip is always seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIP xfs_project_quotas_are_enforced: {why}"
            );
            return;
        }
    };
    let folders = Folders::open(&xfs.root(), gid()).unwrap();
    assert!(
        matches!(folders.quota(), Quota::Xfs { .. }),
        "{:?}",
        folders.quota()
    );
    let alice = folders.create("alice", 1 << 20).unwrap();
    assert!(alice.enforced);
    let over = std::fs::write(alice.path.join("big"), vec![0u8; 4 << 20]);
    assert!(
        over.is_err(),
        "the filesystem refuses writes over the quota"
    );
    let shown = folders.show("alice").unwrap();
    assert!(
        shown.used_bytes <= 1 << 20 && shown.used_bytes > 0,
        "{shown:?}"
    );
}

#[test]
fn the_spec_names_the_backend() {
    let spec = "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata: {name: demo}\nspec:\n  provider: aws\n  adminCidrs: [203.0.113.7/32]\n  storage:\n    nfs: {inCluster: {size: 200Gi}}\n";
    let cluster = clouder_spec::parse("c.yaml", spec).unwrap();
    let backend = Backend::from_spec(cluster.spec.storage.as_ref().unwrap()).unwrap();
    assert!(
        matches!(backend, Backend::InCluster { storage_class: None, ref size, .. } if size == "200Gi")
    );
    let ceph = spec.replace("nfs: {inCluster: {size: 200Gi}}", "ceph: {}");
    let cluster = clouder_spec::parse("c.yaml", &ceph).unwrap();
    assert_eq!(
        Backend::from_spec(cluster.spec.storage.as_ref().unwrap()).unwrap(),
        Backend::Ceph {
            filesystem: CLAIM.into()
        }
    );
}

#[tokio::test]
async fn manifests_are_golden_and_apply() {
    let in_cluster = Backend::InCluster {
        storage_class: Some("gp3".into()),
        size: "500Gi".into(),
        image: clouder_userdata::storage::manifests::DEFAULT_SERVER_IMAGE.into(),
    };
    let existing = Backend::Existing {
        server: "fs-0123.efs.eu-west-1.amazonaws.com".into(),
        path: "/".into(),
    };
    let ceph = Backend::Ceph {
        filesystem: "userdata".into(),
    };
    let (_kube, client) = testkube(false).await;
    for (name, backend) in [
        ("nfs_in_cluster", in_cluster),
        ("nfs_existing", existing),
        ("ceph", ceph),
    ] {
        let objects = render(&backend, "500Gi", "runtimes");
        insta::assert_yaml_snapshot!(name, objects);
        for object in &objects {
            let pv = object["kind"] == "PersistentVolume";
            assert!(!pv || object["spec"]["persistentVolumeReclaimPolicy"] == "Retain");
            let class = object["kind"] == "StorageClass";
            assert!(!class || object["reclaimPolicy"] == "Retain");
            if object["kind"] == "PersistentVolumeClaim" {
                assert_eq!(object["spec"]["accessModes"][0], "ReadWriteMany");
            }
        }
        // Applied as clouder applies manifests: every object is a valid instance of its kind
        // (Rook's own kinds need the operator's CRDs, which testkube does not have).
        let mut all = vec![
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "runtimes"}}),
        ];
        all.extend(
            objects
                .into_iter()
                .filter(|o| o["apiVersion"] != "ceph.rook.io/v1"),
        );
        let all: Vec<kube::api::DynamicObject> = all
            .into_iter()
            .map(|o| serde_json::from_value(o).unwrap())
            .collect();
        let applied = clouder_kube::Applier::new(client.clone()).apply(&all).await;
        assert_eq!(
            applied.unwrap_or_else(|e| panic!("{name}: {e}")).len(),
            all.len()
        );
        let pvc: k8s_openapi::api::core::v1::PersistentVolumeClaim =
            kube::Api::namespaced(client.clone(), "runtimes")
                .get(CLAIM)
                .await
                .unwrap();
        assert_eq!(pvc.spec.unwrap().volume_name.as_deref(), Some(CLAIM));
    }
}

#[tokio::test]
async fn the_node_agent_runs_on_every_node() {
    use clouder_testkube::{Kubelet, NodeConfig};
    let (kube, client) = testkube(true).await;
    let kubelet = Kubelet::new(kube.client().await.unwrap());
    for node in ["n1", "n2"] {
        kubelet.register(&NodeConfig::new(node)).await.unwrap();
    }
    kubelet
        .register(&NodeConfig::new("cp").taint(
            "node-role.kubernetes.io/control-plane",
            "",
            "NoSchedule",
        ))
        .await
        .unwrap();
    let backend = Backend::Existing {
        server: "10.0.0.5".into(),
        path: "/exports".into(),
    };
    let objects =
        clouder_userdata::storage::manifests::node_agent(&backend, "clouder:dev", "/home/user");
    insta::assert_yaml_snapshot!("node_agent", objects);
    let on_ceph = clouder_userdata::storage::manifests::node_agent(
        &Backend::Ceph {
            filesystem: "userdata".into(),
        },
        "clouder:dev",
        "/home/user",
    );
    assert_eq!(
        on_ceph[3]["spec"]["template"]["spec"]["volumes"][0],
        serde_json::json!({"name": "userdata", "persistentVolumeClaim": {"claimName": "clouder-userdata-agent"}}),
        "on Ceph the agent mounts its own claim of the same tree"
    );
    let mut all = render(&backend, "1Ti", "runtimes")[..1].to_vec();
    all.extend(objects);
    let all: Vec<kube::api::DynamicObject> = all
        .into_iter()
        .map(|o| serde_json::from_value(o).unwrap())
        .collect();
    clouder_kube::Applier::new(client.clone())
        .apply(&all)
        .await
        .unwrap();
    // One agent pod per node, control plane included (it tolerates every taint).
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client, "clouder-storage");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut nodes: Vec<String>;
    loop {
        nodes = pods
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|p| p.spec?.node_name)
            .collect();
        nodes.sort();
        if nodes.len() == 3 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(nodes, ["cp", "n1", "n2"]);
}
