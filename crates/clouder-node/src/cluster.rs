//! Forming the cluster once every host is prepared: `kubeadm init` on the first control plane (never
//! again once it is initialised), this run's join credentials (a bootstrap token that expires in 30
//! minutes, the certificate key for control planes), joins with the CA pinned by its hash, then the
//! CNI. Each step is a script sent over SSH stdin, so no secret lands in a process list or a log.

use crate::encryption;
use crate::fleet::{Fleet, HostReport};
use crate::kubeadm::{self, ClusterInputs, NodeInputs, TOKEN_TTL};
use crate::shell::{quote, script, write_file};
use crate::ssh::{Host, Session};
use crate::watch::Ended;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
const CA_CERT: &str = "/etc/kubernetes/pki/ca.crt";
/// Configs holding this run's secrets live here only while kubeadm reads them.
const RUN_DIR: &str = "/etc/kubernetes/clouder";

/// Calico: it enforces NetworkPolicy (flannel does not), needs no helm, runs on every supported
/// kernel, and with VXLAN it works on AWS and Azure networks alike (Azure drops IP-in-IP).
pub const CALICO_VERSION: &str = "v3.30.3";

/// Secrets of one run: never stored, sent to hosts on SSH stdin only.
pub struct RunSecrets {
    /// `[a-z0-9]{6}.[a-z0-9]{16}`, as kubeadm wants.
    pub token: String,
    /// 32 random bytes in hex: encrypts the control-plane certificates kubeadm uploads.
    pub certificate_key: String,
}

impl RunSecrets {
    pub fn generate() -> Self {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let mut word = |n: usize| -> String {
            (0..n)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect()
        };
        let token = format!("{}.{}", word(6), word(16));
        let key: [u8; 32] = rand::rng().random();
        RunSecrets {
            token,
            certificate_key: key.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// The kubeadm discovery hash of a CA certificate: SHA-256 of its SubjectPublicKeyInfo.
pub fn ca_cert_hash(pem: &str) -> Result<String, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| format!("the cluster CA is not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("the cluster CA certificate does not parse: {e}"))?;
    let digest = Sha256::digest(cert.tbs_certificate.subject_pki.raw);
    Ok(format!(
        "sha256:{}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

/// Writes `config` (0600) where kubeadm reads it, runs `command`, and removes it whatever happens.
fn with_secret_config(file: &str, config: &str, command: &str) -> Vec<String> {
    let path = format!("{RUN_DIR}/{file}");
    vec![
        format!("install -d -m 0700 {RUN_DIR}"),
        format!("trap 'rm -f {}' EXIT", quote(&path)),
        write_file(&path, "0600", config),
        format!("{command} --config {}", quote(&path)),
    ]
}

/// `kubeadm init` on the first control plane, unless it was initialised before.
pub fn init_script(cluster: &ClusterInputs, node: &NodeInputs, secrets: &RunSecrets) -> String {
    let config = kubeadm::init_config(cluster, node, &secrets.token, &secrets.certificate_key);
    let mut lines = vec![
        format!("if [ -f {ADMIN_CONF} ]; then echo 'already initialised'; exit 0; fi"),
        // The encryption key is made here, on the host, before the API server first starts.
        encryption::host_script(encryption::DIR),
    ];
    lines.extend(with_secret_config(
        "init.yaml",
        &config,
        "kubeadm init --upload-certs --skip-token-print",
    ));
    script(lines)
}

/// On an initialised control plane: makes this run's token valid (and the certificates
/// downloadable with this run's key when control planes join), then prints the CA certificate.
pub fn credentials_script(secrets: &RunSecrets, control_planes_join: bool) -> String {
    let token = quote(&secrets.token);
    let mut lines = vec![
        format!("export KUBECONFIG={ADMIN_CONF}"),
        format!(
            "if ! kubeadm token list | awk '{{print $1}}' | grep -qx {token}; then \
             kubeadm token create {token} --ttl {TOKEN_TTL} --description 'clouder run' >/dev/null; fi"
        ),
    ];
    if control_planes_join {
        lines.push(format!(
            "kubeadm init phase upload-certs --upload-certs --certificate-key {} >/dev/null",
            quote(&secrets.certificate_key)
        ));
    }
    lines.push(format!("cat {CA_CERT}"));
    script(lines)
}

/// `kubeadm join` of a worker, or of a control plane when `encryption` (the first control
/// plane's encryption configuration, which every API server needs) is given; skipped when joined.
pub fn join_script(
    cluster: &ClusterInputs,
    node: &NodeInputs,
    secrets: &RunSecrets,
    ca_hash: &str,
    encryption: Option<&str>,
) -> String {
    let key = encryption.map(|_| secrets.certificate_key.as_str());
    let config = kubeadm::join_config(cluster, node, &secrets.token, ca_hash, key);
    let mut lines = vec![format!(
        "if [ -f {KUBELET_CONF} ]; then echo 'already joined'; exit 0; fi"
    )];
    if let Some(config) = encryption {
        let file = format!("{}/config.yaml", encryption::DIR);
        lines.push(format!("install -d -m 0700 {}", encryption::DIR));
        lines.push(write_file(&file, "0600", config));
    }
    lines.extend(with_secret_config("join.yaml", &config, "kubeadm join"));
    script(lines)
}

/// Calico's operator manifest upstream, for the pinned version.
pub fn calico_manifest() -> String {
    format!(
        "https://raw.githubusercontent.com/projectcalico/calico/{CALICO_VERSION}/manifests/tigera-operator.yaml"
    )
}

/// The Calico operator (from `cluster.cni_manifest`) and its `Installation`, with the cluster's pod CIDR; server-side apply,
/// so a re-run changes nothing.
pub fn cni_script(cluster: &ClusterInputs) -> String {
    let installation = format!(
        "apiVersion: operator.tigera.io/v1\nkind: Installation\nmetadata:\n  name: default\nspec:\n  calicoNetwork:\n    ipPools:\n    - name: default-ipv4-ippool\n      cidr: {}\n      encapsulation: VXLAN\n      natOutgoing: Enabled\n      nodeSelector: all()\n",
        cluster.pod_cidr
    );
    script([
        format!("export KUBECONFIG={ADMIN_CONF}"),
        format!(
            "kubectl apply --server-side --force-conflicts --field-manager=clouder -f {} >/dev/null",
            quote(&cluster.cni_manifest)
        ),
        "kubectl wait --for condition=established --timeout=120s crd/installations.operator.tigera.io >/dev/null".into(),
        format!(
            "kubectl apply --server-side --field-manager=clouder -f - >/dev/null <<'CLOUDER_EOF'\n{installation}CLOUDER_EOF"
        ),
    ])
}

/// One host of the cluster and how it registers.
pub struct Member {
    pub host: Host,
    pub node: NodeInputs,
    pub control_plane: bool,
}

/// What forming did on one host.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Formed {
    pub step: &'static str,
    pub output: String,
}

/// One cluster step on a host; a step whose guard found it done (`already …`) is unchanged.
async fn run(session: &Session, step: &'static str, text: &str) -> Result<Formed, String> {
    session
        .step(step, async {
            let out = session.script(text).await.map_err(|e| e.to_string())?;
            if !out.ok() {
                return Err(format!(
                    "{}: {step} failed (exit {}): {}",
                    session.host().label(),
                    out.status,
                    out.stderr.trim()
                ));
            }
            let output = out.stdout.trim().to_string();
            let ended = if output.starts_with("already ") {
                Ended::Unchanged
            } else {
                Ended::Applied
            };
            Ok((Formed { step, output }, ended))
        })
        .await
}

/// Forms the cluster from prepared hosts; `members[0]` must be the first control plane. Control
/// planes join one at a time (etcd grows one member at a time); workers all at once.
pub async fn form(
    fleet: &Fleet,
    cluster: &ClusterInputs,
    members: &[Member],
) -> Vec<HostReport<Vec<Formed>>> {
    let Some(first) = members.first().filter(|m| m.control_plane) else {
        return vec![HostReport {
            host: String::new(),
            result: Err("the first member must be a control plane".into()),
            elapsed: Default::default(),
        }];
    };
    let secrets = RunSecrets::generate();
    let mut reports = fleet
        .each(std::slice::from_ref(&first.host), |s| {
            let secrets = &secrets;
            async move {
                let init = run(&s, "init", &init_script(cluster, &first.node, secrets)).await?;
                let cni = run(&s, "cni", &cni_script(cluster)).await?;
                Ok(vec![init, cni])
            }
        })
        .await;
    if reports[0].result.is_ok() {
        reports.extend(join(fleet, cluster, &secrets, &first.host, &members[1..]).await);
    }
    reports
}

/// Joins `members` to the cluster whose initialised control plane is `leader`, with this run's
/// `secrets` made valid there: control planes one at a time, then workers all at once. The first
/// report is the leader's (the credentials).
pub async fn join(
    fleet: &Fleet,
    cluster: &ClusterInputs,
    secrets: &RunSecrets,
    leader: &Host,
    members: &[Member],
) -> Vec<HostReport<Vec<Formed>>> {
    let cp_joins = members.iter().any(|m| m.control_plane);
    let mut reports = fleet
        .each(std::slice::from_ref(leader), |s| async move {
            let creds = run(&s, "credentials", &credentials_script(secrets, cp_joins)).await?;
            let mut steps = vec![Formed {
                step: "credentials",
                output: ca_cert_hash(&creds.output)?,
            }];
            if cp_joins {
                // Read without the watcher: the key must not reach a log.
                let file = format!("{}/config.yaml", encryption::DIR);
                let out = s
                    .run(&format!("cat {file}"), None)
                    .await
                    .map_err(|e| e.to_string())?;
                if !out.ok() {
                    return Err(format!(
                        "{}: reading {file}: {}",
                        s.host().label(),
                        out.stderr.trim()
                    ));
                }
                steps.push(Formed {
                    step: "encryption",
                    output: out.stdout,
                });
            }
            Ok(steps)
        })
        .await;
    let (hash, encryption) = match &reports[0].result {
        Ok(steps) => (
            steps[0].output.clone(),
            steps.get(1).map(|s| s.output.clone()),
        ),
        Err(_) => return reports,
    };
    // The key stays in memory only: the leader's report keeps the CA hash alone.
    if let Ok(steps) = &mut reports[0].result {
        steps.truncate(1);
    }
    let scripts: HashMap<String, String> = members
        .iter()
        .map(|m| {
            let config = encryption.as_deref().filter(|_| m.control_plane);
            let text = join_script(cluster, &m.node, secrets, &hash, config);
            (m.host.label(), text)
        })
        .collect();
    let join = |s: Session| {
        let text = scripts[&s.host().label()].clone();
        async move { Ok(vec![run(&s, "join", &text).await?]) }
    };
    for member in members.iter().filter(|m| m.control_plane) {
        reports.extend(fleet.each(std::slice::from_ref(&member.host), join).await);
    }
    let workers: Vec<Host> = members
        .iter()
        .filter(|m| !m.control_plane)
        .map(|m| m.host.clone())
        .collect();
    reports.extend(fleet.each(&workers, join).await);
    reports
}
