//! Bootstrap phases on rooted hosts: applied once, a no-op the second time; every generated
//! script passes shellcheck.

use clouder_node::Facts;
use clouder_node::fleet::MemoryPins;
use clouder_node::phases::{self, Node, NodePlan, Outcome, Phase};
use clouder_node::ssh::load_key;
use clouder_node::{Fleet, Host};
use clouder_spec::{AptSource, Source, Sources};
use clouder_testenv::Lab;
use clouder_testenv::lab::debian_mirror;
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

/// The lab's sources: Debian's mirror (the registry these machines reach), sid for containerd 2.x
/// and CRIU 4.x, as an air-gapped site would point clouder at its own mirror.
fn mirror_sources() -> Sources {
    let sid = |packages: &[&str]| {
        Some(Source {
            apt: AptSource {
                uri: debian_mirror(),
                suite: "sid".into(),
                components: vec!["main".into()],
                key: None,
                packages: Some(packages.iter().map(|p| p.to_string()).collect()),
            },
        })
    };
    Sources {
        containerd: sid(&["containerd", "runc"]),
        criu: sid(&["criu", "iptables"]),
        kubernetes: None,
        cni: None,
    }
}

#[test]
fn every_generated_script_passes_shellcheck() {
    for sources in [Sources::default(), mirror_sources()] {
        for version in ["1.32", "v1.33.2"] {
            let plan = NodePlan {
                kubernetes_version: version.into(),
                sources: sources.clone(),
            };
            for facts in &hosts() {
                let node = Node { plan: &plan, facts };
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

pub(crate) fn shellcheck(what: &str, text: &str) {
    clouder_testenv::shellcheck::assert_clean("bash", what, text);
}

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
    assert!(k8s.contains("apt-get install -y -qq --no-install-recommends --allow-downgrades 'kubeadm=1.33.2-*' 'kubelet=1.33.2-*' 'kubectl=1.33.2-*'"), "{k8s}");
    assert!(
        k8s.contains("apt-mark hold kubeadm kubelet kubectl"),
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
    let fleet = Fleet::new(
        load_key(&lab.client_key()).unwrap(),
        Arc::new(MemoryPins::default()),
    );
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
    let fleet = Fleet::new(
        load_key(&lab.client_key()).unwrap(),
        Arc::new(MemoryPins::default()),
    );
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
