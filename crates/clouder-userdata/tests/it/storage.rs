//! Folders with quotas (real XFS project quotas where loop devices and the kernel allow, the
//! usage scan otherwise) and the shared filesystem's manifests on testkube.

use crate::support::testkube;
use clouder_spec::Provider;
use clouder_userdata::Error;
use clouder_userdata::storage::folders::Folders;
use clouder_userdata::storage::manifests::{Backend, CLAIM, Disk, render};
use clouder_userdata::storage::place::{Local, Place, Remote};
use clouder_userdata::storage::quota::Quota;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn gid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().gid()
}

#[tokio::test]
async fn folders_lifecycle_with_scanned_usage() {
    let root = tempfile::tempdir().unwrap();
    folders_lifecycle(&Local, root.path()).await;
}

/// Everything `storage user` does, at `place` under `root` (a folder on a filesystem without
/// quotas, which the test reads here).
async fn folders_lifecycle(place: &dyn Place, root: &Path) {
    let folders = Folders::open(place, root, gid()).await.unwrap();
    assert_eq!(folders.quota(), &Quota::Scan);
    let alice = folders.create("alice", 1 << 20).await.unwrap();
    let meta = std::fs::metadata(&alice.path).unwrap();
    assert_eq!(
        (meta.gid(), meta.permissions().mode() & 0o7777),
        (gid(), 0o2770)
    );
    assert!(!alice.over_quota && !alice.enforced);
    assert!(
        matches!(folders.create("alice", 1).await, Err(Error::Invalid(m)) if m.contains("already"))
    );
    assert!(matches!(
        folders.create("../x", 1).await,
        Err(Error::Invalid(_))
    ));

    std::fs::write(alice.path.join("data"), vec![1u8; 2 << 20]).unwrap();
    let shown = folders.show("alice").await.unwrap();
    assert!(shown.used_bytes >= 2 << 20 && shown.over_quota, "{shown:?}");
    let resized = folders.resize("alice", 10 << 20).await.unwrap();
    assert!(!resized.over_quota);
    folders.create("bob", 1 << 20).await.unwrap();
    let users: Vec<String> = folders
        .ls()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.user)
        .collect();
    assert_eq!(users, ["alice", "bob"]);

    // Kept for the grace period, then purged.
    let kept = folders
        .rm("alice", false, Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(kept.path.join("data").exists() && kept.purge_after.is_some());
    assert!(matches!(
        folders.show("alice").await,
        Err(Error::Invalid(_))
    ));
    assert!(folders.purge_expired().await.unwrap().is_empty());
    let gone = folders.rm("bob", false, Duration::ZERO).await.unwrap();
    assert_eq!(folders.purge_expired().await.unwrap(), vec![gone.clone()]);
    assert!(!gone.path.exists() && kept.path.exists());
    folders.create("carol", 1).await.unwrap();
    let purged = folders
        .rm("carol", true, Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(!purged.path.exists() && purged.purge_after.is_none());
}

/// The same, over SSH on a real sshd host (a lab host: its own network namespace, this
/// machine's filesystem, so the test reads what the host did).
#[tokio::test(flavor = "multi_thread")]
async fn folders_over_ssh_on_the_node_that_has_them() {
    use clouder_node::fleet::{Fleet, MemoryPins};
    let lab = clouder_testenv::Lab::start(1);
    let fleet = Fleet::new(
        clouder_node::ssh::load_key(&lab.client_key()).unwrap(),
        std::sync::Arc::new(MemoryPins::default()),
    );
    let host = clouder_node::Host::new(&lab.hosts[0].address, "root");
    let session = fleet.connect(&host).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    folders_lifecycle(&Remote(session), root.path()).await;
    let index = std::fs::metadata(root.path().join(".clouder/folders.json")).unwrap();
    assert_eq!(index.permissions().mode() & 0o777, 0o600);
}

/// Every script the folders are kept with passes shellcheck, with paths that need quoting.
#[test]
fn folder_scripts_pass_shellcheck() {
    use clouder_userdata::storage::place::scripts;
    let odd = Path::new("/srv/user data/it's");
    let other = Path::new("/srv/trash/a b.1");
    let all = [
        scripts::is_folder(odd),
        scripts::read(odd),
        scripts::write(odd, "{\"users\": {}}"),
        scripts::make_folder(odd, 100),
        scripts::keep(odd, other),
        scripts::delete(&[odd, other]),
        scripts::usage(&[odd, other]),
        scripts::filesystem(odd),
        scripts::xfs_quota(odd, "limit -p bhard=1024 1001"),
    ];
    for text in all {
        clouder_testenv::shellcheck("a folder script", &text);
    }
}

/// Through the cluster: the NFS server pod's disk (its CSI volume's kubelet path) on its node,
/// or a node agent's mount for an existing export; refused while nothing runs.
#[tokio::test]
async fn the_shared_filesystem_is_found_in_the_cluster() {
    use clouder_userdata::storage::locate::locate;
    use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
    use kube::api::{Api, Patch, PatchParams, PostParams};
    let (_kube, client) = testkube(false).await;
    let node: Node =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "n1"}})).unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    let address = serde_json::json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.7"}]}});
    Api::<Node>::all(client.clone())
        .patch_status("n1", &PatchParams::default(), &Patch::Merge(&address))
        .await
        .unwrap();
    let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": "clouder-storage"}}))
        .unwrap();
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "clouder-storage");
    let in_cluster = Backend::InCluster {
        disk: Disk::Default,
        size: "1Ti".into(),
        image: "nfs".into(),
    };
    let existing = Backend::Existing {
        server: "fs-1.efs".into(),
        path: "/".into(),
    };
    for backend in [&in_cluster, &existing] {
        let none = locate(&client, backend).await;
        assert!(
            matches!(&none, Err(Error::Failed(m)) if m.contains("not running")),
            "{none:?}"
        );
    }
    let run = |name: &str, labels: serde_json::Value| {
        serde_json::from_value::<Pod>(serde_json::json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
        }))
        .unwrap()
    };
    let running = serde_json::json!({"status": {"phase": "Running"}});
    for (name, labels) in [
        ("clouder-nfs-0", serde_json::json!({})),
        (
            "clouder-node-agent-x",
            serde_json::json!({"app.kubernetes.io/name": "clouder-node-agent"}),
        ),
    ] {
        pods.create(&PostParams::default(), &run(name, labels))
            .await
            .unwrap();
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&running))
            .await
            .unwrap();
    }
    let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "exports-clouder-nfs-0"},
        "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pvc-0a1b", "resources": {"requests": {"storage": "1Ti"}}},
    }))
    .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), "clouder-storage")
        .create(&PostParams::default(), &claim)
        .await
        .unwrap();
    let uid = |name: &str| {
        let pods = pods.clone();
        let name = name.to_string();
        async move { pods.get(&name).await.unwrap().metadata.uid.unwrap() }
    };
    let server = locate(&client, &in_cluster).await.unwrap();
    assert_eq!(
        (server.node.as_str(), server.address.as_str()),
        ("n1", "10.0.0.7")
    );
    assert_eq!(
        server.path,
        Path::new(&format!(
            "/var/lib/kubelet/pods/{}/volumes/kubernetes.io~csi/pvc-0a1b/mount",
            uid("clouder-nfs-0").await
        ))
    );
    let agent = locate(&client, &existing).await.unwrap();
    assert_eq!(
        agent.path,
        Path::new(&format!(
            "/var/lib/kubelet/pods/{}/volumes/kubernetes.io~nfs/userdata",
            uid("clouder-node-agent-x").await
        ))
    );
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

#[tokio::test]
async fn xfs_project_quotas_are_enforced() {
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
    let folders = Folders::open(&Local, &xfs.root(), gid()).await.unwrap();
    assert!(
        matches!(folders.quota(), Quota::Xfs { .. }),
        "{:?}",
        folders.quota()
    );
    let alice = folders.create("alice", 1 << 20).await.unwrap();
    assert!(alice.enforced);
    let over = std::fs::write(alice.path.join("big"), vec![0u8; 4 << 20]);
    assert!(
        over.is_err(),
        "the filesystem refuses writes over the quota"
    );
    let shown = folders.show("alice").await.unwrap();
    assert!(
        shown.used_bytes <= 1 << 20 && shown.used_bytes > 0,
        "{shown:?}"
    );
}

#[test]
fn the_spec_names_the_backend() {
    let spec = "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata: {name: demo}\nspec:\n  provider: aws\n  adminCidrs: [203.0.113.7/32]\n  storage:\n    nfs: {inCluster: {size: 200Gi}}\n";
    let cluster = clouder_spec::parse("c.yaml", spec).unwrap();
    let storage = cluster.spec.storage.as_ref().unwrap();
    let backend = Backend::from_spec(storage, Provider::Aws).unwrap();
    assert!(
        matches!(backend, Backend::InCluster { disk: Disk::Xfs(Provider::Aws), ref size, .. } if size == "200Gi")
    );
    let on_hosts = Backend::from_spec(storage, Provider::Ssh).unwrap();
    assert!(matches!(
        on_hosts,
        Backend::InCluster {
            disk: Disk::Default,
            ..
        }
    ));
    let ceph = spec.replace("nfs: {inCluster: {size: 200Gi}}", "ceph: {}");
    let cluster = clouder_spec::parse("c.yaml", &ceph).unwrap();
    assert_eq!(
        Backend::from_spec(cluster.spec.storage.as_ref().unwrap(), Provider::Aws).unwrap(),
        Backend::Ceph {
            filesystem: CLAIM.into()
        }
    );
}

#[tokio::test]
async fn manifests_are_golden_and_apply() {
    let in_cluster = Backend::InCluster {
        disk: Disk::Xfs(Provider::Aws),
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
