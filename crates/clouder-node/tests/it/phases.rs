//! Bootstrap phases on rooted hosts: applied once, a no-op the second time; every generated
//! script passes shellcheck.

use clouder_node::Facts;
use clouder_node::fleet::MemoryPins;
use clouder_node::phases::{self, Node, NodePlan, Outcome, Phase};
use clouder_node::ssh::load_key;
use clouder_node::{Fleet, Host};
use clouder_spec::{AptSource, ArchiveSource, Source, Sources};
use clouder_testenv::lab::{debian_mirror, sid_sources};
use clouder_testenv::{Lab, NodeKit};
use std::sync::Arc;

/// Two hosts' worth of facts, so that every default source is rendered.
pub(crate) fn hosts() -> [Facts; 2] {
    let mut ubuntu = Facts {
        os_id: "ubuntu".into(),
        os_version: "24.04".into(),
        os_codename: "noble".into(),
        ..Facts::default()
    };
    ubuntu.arch = "x86_64".into();
    let debian = Facts {
        os_id: "debian".into(),
        os_version: "12".into(),
        os_codename: "bookworm".into(),
        ..ubuntu.clone()
    };
    [ubuntu, debian]
}

/// The lab's sources: containerd and CRIU from Debian's mirror (the registry these machines reach).
fn mirror_sources() -> Sources {
    serde_yaml_ng::from_str(&sid_sources()).expect("the lab's sources")
}

/// Kubernetes from a release tarball: a path on the host, or a URL.
fn archive_sources(url: &str, sha256: &str) -> Sources {
    Sources {
        kubernetes: Some(Source::archive(ArchiveSource {
            url: url.into(),
            sha256: sha256.into(),
        })),
        ..mirror_sources()
    }
}

const SOME_SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[test]
fn every_generated_script_passes_shellcheck() {
    for sources in [
        Sources::default(),
        mirror_sources(),
        archive_sources("/srv/mirror/kubernetes-node-linux-amd64.tar.gz", SOME_SHA),
        archive_sources("https://mirror.example/k8s/it's.tar.gz", SOME_SHA),
    ] {
        for version in ["1.32", "v1.33.2"] {
            let plan = NodePlan {
                kubernetes_version: version.into(),
                sources: sources.clone(),
            };
            for facts in &hosts() {
                let node = Node { plan: &plan, facts };
                shellcheck("all probes", &phases::all_probes(&phases::all(), node));
                for phase in phases::all() {
                    for (what, text) in [("probe", phase.probe(node)), ("apply", phase.apply(node))]
                    {
                        shellcheck(&format!("{} {what}", phase.title()), &text);
                    }
                }
            }
        }
    }
}

pub(crate) use clouder_testenv::shellcheck;

#[test]
fn default_sources_are_the_upstream_repositories_pinned_to_the_version() {
    let plan = NodePlan {
        kubernetes_version: "v1.33.2".into(),
        sources: Sources::default(),
    };
    let [ubuntu, debian] = hosts();
    let on = |facts| Node { plan: &plan, facts };
    let k8s = phases::KubernetesPackages.apply(on(&ubuntu));
    assert!(k8s.contains("URIs: https://pkgs.k8s.io/core:/stable:/v1.33/deb/\nSuites: /\nSigned-By: /etc/apt/keyrings/clouder-kubernetes.asc"), "{k8s}");
    assert!(k8s.contains("apt-get install -y -qq --no-install-recommends --allow-downgrades --allow-change-held-packages 'kubeadm=1.33.2-*' 'kubelet=1.33.2-*' 'kubectl=1.33.2-*'"), "{k8s}");
    assert!(
        k8s.contains("printf '%s hold\\n' kubeadm kubelet kubectl | dpkg --set-selections"),
        "{k8s}"
    );
    let runtime = phases::ContainerRuntime.apply(on(&debian));
    assert!(
        runtime.contains(
            "URIs: https://download.docker.com/linux/debian\nSuites: bookworm\nComponents: stable"
        ),
        "{runtime}"
    );
    assert!(runtime.contains("SystemdCgroup = true"), "{runtime}");
    let criu = phases::Criu.apply(on(&ubuntu));
    assert!(criu.contains("devel:/tools:/criu/xUbuntu_24.04/"), "{criu}");
    assert!(
        !criu.contains("preferences.d/clouder-criu <<"),
        "a flat repository is not pinned"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn phases_apply_once_and_a_rerun_changes_nothing() {
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let lab = Lab::start_rooted(2);
    let fleet = fleet(&lab);
    let hosts: Vec<Host> = lab
        .hosts
        .iter()
        .map(|h| Host::new(&h.address, "root"))
        .collect();
    let plan = NodePlan {
        kubernetes_version: "1.32".into(),
        sources: mirror_sources(),
    };
    // No registry here serves kubeadm: the package phase is checked by its scripts above.
    let offline: Vec<Box<dyn Phase>> = vec![
        Box::new(phases::Prerequisites),
        Box::new(phases::ContainerRuntime),
        Box::new(phases::Criu),
    ];
    let run = || {
        fleet.each(&hosts, |s| {
            let (plan, offline) = (&plan, &offline);
            async move {
                let facts = Facts::gather(&s).await.map_err(|e| e.to_string())?;
                let node = Node {
                    plan,
                    facts: &facts,
                };
                let progress = phases::run(&s, node, offline).await;
                match progress.failure {
                    Some(e) => Err(e.to_string()),
                    None => Ok(progress.done),
                }
            }
        })
    };

    for report in run().await {
        let phases = report.result.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            phases.iter().all(|p| p.outcome == Outcome::Applied),
            "{phases:?}"
        );
    }
    for i in 0..2 {
        let sysctl = lab
            .written_by_host(i, "/etc/sysctl.d/90-clouder-kubernetes.conf")
            .expect("written inside the host");
        assert!(sysctl.contains("net.ipv4.ip_forward = 1"));
        let config = lab
            .written_by_host(i, "/etc/containerd/config.toml")
            .unwrap();
        assert!(config.contains("SystemdCgroup = true"), "{config}");
        assert_eq!(
            lab.written_by_host(i, "/etc/criu/runc.conf").unwrap(),
            "tcp-established\n"
        );
    }
    assert!(
        !std::path::Path::new("/etc/sysctl.d/90-clouder-kubernetes.conf").exists(),
        "the test machine is untouched"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        machine,
        "booted hosts name themselves in their own UTS namespace"
    );

    for report in run().await {
        let phases = report.result.unwrap();
        assert!(
            phases.iter().all(|p| p.outcome == Outcome::Skipped),
            "a re-run applies nothing: {phases:?}"
        );
    }

    // `criu check`'s pass is kept for one binary: a CRIU that changed is checked again.
    as_root(&fleet, &hosts[0].address, "touch \"$(command -v criu)\"").await;
    let outcomes: Vec<Vec<(&str, Outcome)>> = run()
        .await
        .into_iter()
        .map(|r| {
            r.result
                .unwrap()
                .into_iter()
                .map(|p| (p.phase, p.outcome))
                .collect()
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            vec![
                ("prerequisites", Outcome::Skipped),
                ("container runtime", Outcome::Skipped),
                ("criu", Outcome::Applied),
            ],
            vec![
                ("prerequisites", Outcome::Skipped),
                ("container runtime", Outcome::Skipped),
                ("criu", Outcome::Skipped),
            ],
        ]
    );
}

/// A fleet that reaches `lab`'s hosts with its key, pinning host keys in memory.
fn fleet(lab: &Lab) -> Fleet {
    Fleet::new(
        load_key(&lab.client_key()).unwrap(),
        Arc::new(MemoryPins::default()),
    )
}

/// Runs `text` as root on the host, insisting on success.
async fn as_root(fleet: &Fleet, address: &str, text: &str) {
    let session = fleet.connect(&Host::new(address, "root")).await.unwrap();
    let out = session.script(text).await.unwrap();
    assert!(out.ok(), "{text}: {out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_user_with_sudo_applies_phases_as_root_and_one_without_is_told_why() {
    let lab = Lab::start_rooted(1);
    let fleet = fleet(&lab);
    let address = lab.hosts[0].address.clone();
    as_root(
        &fleet,
        &address,
        &format!(
            "set -e\necho 'deb {} trixie main' > /etc/apt/sources.list\n\
             apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo >/dev/null\n\
             for u in admin nosudo; do\n  useradd -m -s /bin/bash \"$u\"\n  install -d -m 700 -o \"$u\" -g \"$u\" \"/home/$u/.ssh\"\n\
             install -m 600 -o \"$u\" -g \"$u\" /root/.ssh/authorized_keys \"/home/$u/.ssh/authorized_keys\"\ndone\n\
             echo 'admin ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/admin\nchmod 440 /etc/sudoers.d/admin\n",
            debian_mirror()
        ),
    )
    .await;
    let plan = NodePlan {
        kubernetes_version: "1.33".into(),
        sources: Sources::default(),
    };
    let phase: Vec<Box<dyn Phase>> = vec![Box::new(phases::Prerequisites)];
    let run = |user: &'static str| {
        let (fleet, address, plan, phase) = (&fleet, &address, &plan, &phase);
        async move {
            let session = fleet.connect(&Host::new(address, user)).await.unwrap();
            let facts = Facts::gather(&session).await.unwrap();
            let node = Node {
                plan,
                facts: &facts,
            };
            phases::run(&session, node, phase).await
        }
    };
    let first = run("admin").await;
    assert!(first.failure.is_none(), "{:?}", first.failure);
    assert_eq!(first.done[0].outcome, Outcome::Applied);
    // Written as root, through sudo.
    as_root(
        &fleet,
        &address,
        "[ \"$(stat -c %U /etc/sysctl.d/90-clouder-kubernetes.conf)\" = root ]",
    )
    .await;
    assert_eq!(run("admin").await.done[0].outcome, Outcome::Skipped);

    // Without sudo, the first command (reading facts) says why, before anything is changed.
    let session = fleet.connect(&Host::new(&address, "nosudo")).await.unwrap();
    let error = Facts::gather(&session).await.unwrap_err().to_string();
    assert!(
        error.contains("nosudo@") && error.contains("sudo: a password is required"),
        "{error}"
    );
}

/// Runs the Kubernetes phase on one host with `sources`, for Kubernetes `version`.
async fn kubernetes_phase(
    fleet: &Fleet,
    address: &str,
    version: &str,
    sources: Sources,
) -> phases::Progress {
    let session = fleet.connect(&Host::new(address, "root")).await.unwrap();
    let facts = Facts::gather(&session).await.unwrap();
    let plan = NodePlan {
        kubernetes_version: version.into(),
        sources,
    };
    let phase: Vec<Box<dyn Phase>> = vec![Box::new(phases::KubernetesPackages)];
    let node = Node {
        plan: &plan,
        facts: &facts,
    };
    phases::run(&session, node, &phase).await
}

fn outcome(progress: &phases::Progress) -> Outcome {
    assert!(progress.failure.is_none(), "{:?}", progress.failure);
    progress.done[0].outcome.clone()
}

fn failure(progress: &phases::Progress) -> String {
    progress
        .failure
        .as_ref()
        .expect("the phase fails")
        .to_string()
}

/// Serves `dir` over HTTP on `address` (python's http.server) while it lives.
struct HttpMirror {
    child: std::process::Child,
    url: String,
}

impl HttpMirror {
    fn start(dir: &std::path::Path, address: &str) -> HttpMirror {
        let port = std::net::TcpListener::bind((address, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .args(["-m", "http.server", "--bind", address, &port.to_string()])
            .arg("--directory")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3");
        for _ in 0..100 {
            if std::net::TcpStream::connect((address, port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        HttpMirror {
            child,
            url: format!("http://{address}:{port}"),
        }
    }
}

impl Drop for HttpMirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubernetes_from_an_archive_is_verified_before_it_is_installed_and_once_only() {
    let kit = NodeKit::shared("1.33.2-1.1");
    let archive = kit.archive();
    let (repo, guest) = kit.share();
    let lab = Lab::start_rooted_with(2, &[(repo.clone(), &guest)]);
    let fleet = fleet(&lab);
    let (first, second) = (lab.hosts[0].address.clone(), lab.hosts[1].address.clone());
    let path = archive.guest_path.as_str();
    let stamp = "/etc/clouder/sources/kubernetes/kubelet.sha256";

    // A wrong digest: refused before anything is unpacked, naming the archive and both digests.
    let wrong = "0".repeat(64);
    let refused = kubernetes_phase(&fleet, &first, "1.33.2", archive_sources(path, &wrong)).await;
    let error = failure(&refused);
    assert!(
        error.contains(&format!(
            "the kubernetes archive {path} has sha256 {}, the spec wants {wrong}: nothing was installed",
            archive.sha256
        )),
        "{error}"
    );
    for file in [
        "/usr/local/bin/kubelet",
        "/usr/local/bin/kubeadm",
        stamp,
        "/etc/systemd/system/kubelet.service",
    ] {
        assert_eq!(lab.written_by_host(0, file), None, "{file} was installed");
    }

    // The right one, from the path on the host: installed, units as the packages ship them.
    let sources = archive_sources(path, &archive.sha256);
    let applied = kubernetes_phase(&fleet, &first, "1.33.2", sources.clone()).await;
    assert_eq!(outcome(&applied), Outcome::Applied);
    assert_eq!(
        lab.written_by_host(0, stamp).unwrap(),
        format!("{}\n", archive.sha256)
    );
    let unit = lab
        .written_by_host(0, "/etc/systemd/system/kubelet.service")
        .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/kubelet\n"),
        "{unit}"
    );
    let drop_in = lab
        .written_by_host(0, "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf")
        .unwrap();
    assert!(
        drop_in.contains("ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS"),
        "{drop_in}"
    );
    as_root(
        &fleet,
        &first,
        "set -e\n[ \"$(kubelet --version)\" = 'Kubernetes v1.33.2' ]\n[ \"$(kubeadm version -o short)\" = v1.33.2 ]\n\
         [ \"$(command -v kubectl)\" = /usr/local/bin/kubectl ]\nkubectl version --client >/dev/null\n\
         systemctl is-enabled --quiet kubelet\n[ ! -e /var/lib/dpkg/info/kubelet.list ]",
    )
    .await;
    // The same archive again: nothing to do.
    let again = kubernetes_phase(&fleet, &first, "1.33.2", sources.clone()).await;
    assert_eq!(outcome(&again), Outcome::Skipped);
    // The same archive for another version: a clear error, and what is installed stays.
    let other = kubernetes_phase(&fleet, &first, "1.34.0", sources).await;
    let error = failure(&other);
    assert!(
        error.contains(&format!("the kubernetes archive {path} has a kubeadm that reports v1.33.2, the spec wants v1.34.0: nothing was installed")),
        "{error}"
    );
    assert_eq!(
        lab.written_by_host(0, stamp).unwrap(),
        format!("{}\n", archive.sha256)
    );

    // A new archive (another digest): installed again.
    let session = fleet.connect(&Host::new(&first, "root")).await.unwrap();
    let repacked = session
        .script(&format!(
            "set -e\nmkdir -p /tmp/k/x\ntar -xf {path} -C /tmp/k/x\necho 'a rebuilt archive' > /tmp/k/x/NOTES\n\
             tar -czf /tmp/k/new.tar.gz -C /tmp/k/x .\nsha256sum /tmp/k/new.tar.gz | cut -d' ' -f1"
        ))
        .await
        .unwrap();
    assert!(repacked.ok(), "{repacked:?}");
    let new_sha = repacked.stdout.trim().to_string();
    assert_ne!(new_sha, archive.sha256);
    let new = archive_sources("/tmp/k/new.tar.gz", &new_sha);
    let reinstalled = kubernetes_phase(&fleet, &first, "1.33.2", new.clone()).await;
    assert_eq!(outcome(&reinstalled), Outcome::Applied);
    assert_eq!(
        lab.written_by_host(0, stamp).unwrap(),
        format!("{new_sha}\n")
    );
    let again = kubernetes_phase(&fleet, &first, "1.33", new).await;
    assert_eq!(
        outcome(&again),
        Outcome::Skipped,
        "a minor version takes any patch"
    );

    // Back to packages: what the archive installed goes (it would shadow them), nothing else.
    let packages = Sources {
        kubernetes: Some(Source::apt(AptSource {
            uri: format!("file:{guest}/"),
            suite: "/".into(),
            components: Vec::new(),
            key: Some(format!("file:{guest}/Release.key")),
            packages: None,
        })),
        ..Sources::default()
    };
    let switched = kubernetes_phase(&fleet, &first, "1.33.2", packages.clone()).await;
    assert_eq!(outcome(&switched), Outcome::Applied);
    as_root(
        &fleet,
        &first,
        "set -e\n[ ! -e /usr/local/bin/kubelet ] && [ ! -e /usr/local/bin/kubectl ]\n\
         [ ! -e /etc/systemd/system/kubelet.service ] && [ ! -e /etc/clouder/sources/kubernetes/kubeadm.sha256 ]\n\
         [ \"$(command -v kubelet)\" = /usr/bin/kubelet ]\n[ \"$(kubelet --version)\" = 'Kubernetes v1.33.2' ]\n\
         [ \"$(systemctl show -P FragmentPath kubelet)\" = /usr/lib/systemd/system/kubelet.service ]",
    )
    .await;
    let again = kubernetes_phase(&fleet, &first, "1.33.2", packages).await;
    assert_eq!(outcome(&again), Outcome::Skipped);

    // Over HTTP from a mirror on this machine; the host has no curl yet, and gets it from the
    // Debian mirror it is given.
    as_root(
        &fleet,
        &second,
        &format!(
            "echo 'deb {} trixie main' > /etc/apt/sources.list\n! command -v curl",
            debian_mirror()
        ),
    )
    .await;
    let mirror = HttpMirror::start(&repo, &lab.gateway());
    let url = format!("{}/{}", mirror.url, clouder_testenv::nodekit::ARCHIVE);
    let sources = archive_sources(&url, &archive.sha256);
    let applied = kubernetes_phase(&fleet, &second, "1.33.2", sources.clone()).await;
    assert_eq!(outcome(&applied), Outcome::Applied);
    let again = kubernetes_phase(&fleet, &second, "1.33.2", sources).await;
    assert_eq!(outcome(&again), Outcome::Skipped);
    as_root(
        &fleet,
        &second,
        "[ \"$(/usr/local/bin/kubelet --version)\" = 'Kubernetes v1.33.2' ]",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn containerd_from_an_archive_runs_under_systemd_and_a_rerun_changes_nothing() {
    let lab = Lab::start_rooted(1);
    let fleet = fleet(&lab);
    let address = lab.hosts[0].address.clone();
    let session = fleet.connect(&Host::new(&address, "root")).await.unwrap();
    // The local mirror: containerd's release layout (bin/…) with runc beside it, made of the
    // binaries of Debian's packages (apt's own sources stay untouched).
    let built = session
        .script(&format!(
            "set -e\nmkdir -p /tmp/m/lists /tmp/m/root /tmp/m/tar/bin\ncd /tmp/m\n\
             echo 'deb {} sid main' > sid.list\n\
             apt=(-o Dir::Etc::SourceList=/tmp/m/sid.list -o Dir::Etc::SourceParts=/nonexistent -o Dir::State::Lists=/tmp/m/lists)\n\
             apt-get \"${{apt[@]}}\" update -qq\napt-get \"${{apt[@]}}\" download -qq containerd runc >/dev/null 2>&1\n\
             for d in ./*.deb; do dpkg-deb -x \"$d\" root; done\n\
             for b in containerd containerd-shim-runc-v2 ctr runc; do cp \"$(find root -type f -perm -u+x -name \"$b\" -print -quit)\" tar/bin/; done\n\
             tar -czf /tmp/containerd.tar.gz -C tar bin\nsha256sum /tmp/containerd.tar.gz | cut -d' ' -f1",
            debian_mirror()
        ))
        .await
        .unwrap();
    assert!(built.ok(), "{built:?}");
    let sources = Sources {
        containerd: Some(Source::archive(ArchiveSource {
            url: "/tmp/containerd.tar.gz".into(),
            sha256: built.stdout.lines().last().unwrap_or_default().into(),
        })),
        ..Sources::default()
    };
    let plan = NodePlan {
        kubernetes_version: "1.33".into(),
        sources,
    };
    let facts = Facts::gather(&session).await.unwrap();
    let node = Node {
        plan: &plan,
        facts: &facts,
    };
    let wanted: Vec<Box<dyn Phase>> = vec![
        Box::new(phases::Prerequisites),
        Box::new(phases::ContainerRuntime),
    ];
    let first = phases::run(&session, node, &wanted).await;
    assert!(first.failure.is_none(), "{:?}", first.failure);
    assert_eq!(first.done[1].outcome, Outcome::Applied);
    let unit = lab
        .written_by_host(0, "/etc/systemd/system/containerd.service")
        .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/containerd\n"),
        "{unit}"
    );
    as_root(
        &fleet,
        &address,
        "set -e\n[ \"$(command -v containerd)\" = /usr/local/bin/containerd ]\n[ -x /usr/local/bin/runc ]\n\
         systemctl is-active --quiet containerd\nctr version >/dev/null\n! dpkg -s containerd >/dev/null 2>&1",
    )
    .await;
    let again = phases::run(&session, node, &wanted).await;
    assert!(again.failure.is_none(), "{:?}", again.failure);
    assert!(
        again.done.iter().all(|p| p.outcome == Outcome::Skipped),
        "{:?}",
        again.done
    );
}
