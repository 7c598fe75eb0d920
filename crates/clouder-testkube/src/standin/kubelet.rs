//! `clouder-testkube kubelet`: registers this host's Node (name, labels, taints, InternalIP and
//! version from its flags, as kubeadm writes them) and keeps it Ready: a Lease heartbeat, the
//! Node's conditions, and the pods bound to it. With `CLOUDER_STANDIN_CRI=1` and a live
//! `--container-runtime-endpoint` the pods run for real through CRI ([`super::runtime`]) and the kubelet API is served on its port
//! ([`super::server`]); without one, no containers run: bound pods are reported running and
//! their graceful deletions finished.

use super::Host;
use super::runtime::Runtime;
use crate::kubelet::{Kubelet, NodeConfig};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often the Lease is renewed and the pods looked at; the Node's status every few rounds.
const BEAT: Duration = Duration::from_secs(3);
const STATUS_EVERY: u32 = 5;
/// How often pods run through CRI are looked at.
const POD_SYNC: Duration = Duration::from_secs(1);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print `Kubernetes VERSION` and exit.
    #[arg(long)]
    version: bool,
    #[arg(long, required_unless_present = "version")]
    kubeconfig: Option<PathBuf>,
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    bootstrap_kubeconfig: Option<PathBuf>,
    #[arg(long)]
    node_ip: Option<String>,
    /// `key=value,…`
    #[arg(long, value_delimiter = ',')]
    node_labels: Vec<String>,
    /// `key[=value]:Effect,…`
    #[arg(long, value_delimiter = ',')]
    register_with_taints: Vec<String>,
    #[arg(long)]
    hostname_override: Option<String>,
    #[arg(long)]
    container_runtime_endpoint: Option<String>,
    #[arg(long, value_delimiter = ',')]
    feature_gates: Vec<String>,
    /// The kubelet API's port (deprecated in the real kubelet in favour of `port` in --config).
    #[arg(long)]
    port: Option<u16>,
}

/// What the stand-in takes from the KubeletConfiguration file (--config).
#[derive(Debug, PartialEq)]
pub struct Settings {
    pub port: u16,
    pub address: String,
    pub client_ca_file: Option<String>,
    /// ContainerCheckpoint: beta and on by default since Kubernetes 1.30.
    pub checkpoint_gate: bool,
}

/// Pure: the settings from the configuration (YAML) and the flags, which win.
pub fn settings(config: Option<&str>, args: &Args) -> Result<Settings, String> {
    let doc: Value = match config {
        Some(text) => serde_yaml_ng::from_str(text).map_err(|e| format!("kubelet config: {e}"))?,
        None => Value::Null,
    };
    let gate_in = |gates: &[(String, bool)]| {
        gates
            .iter()
            .rev()
            .find(|(k, _)| k == "ContainerCheckpoint")
            .map(|(_, v)| *v)
    };
    let mut flags = Vec::new();
    for g in args.feature_gates.iter().filter(|g| !g.is_empty()) {
        let (k, v) = g
            .split_once('=')
            .ok_or_else(|| format!("invalid feature gate {g:?}"))?;
        let on = v
            .parse::<bool>()
            .map_err(|_| format!("invalid value of {k}: {v:?}"))?;
        flags.push((k.to_string(), on));
    }
    let from_file: Vec<(String, bool)> = doc["featureGates"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_bool()?)))
        .collect();
    Ok(Settings {
        port: args
            .port
            .or(doc["port"].as_u64().map(|p| p as u16))
            .unwrap_or(10250),
        address: doc["address"].as_str().unwrap_or("0.0.0.0").to_string(),
        client_ca_file: doc["authentication"]["x509"]["clientCAFile"]
            .as_str()
            .map(String::from),
        checkpoint_gate: gate_in(&flags).or(gate_in(&from_file)).unwrap_or(true),
    })
}

/// The runtime at `endpoint` (`unix:///run/containerd/containerd.sock`), when it answers.
async fn runtime_at(endpoint: &str) -> Option<clouder_cri::Cri> {
    let socket = std::path::Path::new(endpoint.strip_prefix("unix://").unwrap_or(endpoint));
    if !socket.exists() {
        return None;
    }
    let cri = clouder_cri::Cri::connect(socket).await.ok()?;
    match cri.version().await {
        Ok(v) => {
            tracing::info!("running pods through {v} at {endpoint}");
            Some(cri)
        }
        Err(e) => {
            tracing::warn!("the runtime at {endpoint} does not answer ({e}): no containers run");
            None
        }
    }
}

/// Runs pods through CRI and serves the kubelet API, in the background.
async fn start_runtime(
    cri: clouder_cri::Cri,
    client: kube::Client,
    node: &NodeConfig,
    settings: &Settings,
    host: Host,
) -> anyhow::Result<()> {
    let client_ca = settings.client_ca_file.as_ref().and_then(|path| {
        host.read(path)
            .inspect_err(|e| tracing::warn!("the kubelet API is not served: {e}"))
            .ok()
    });
    let runtime = Arc::new(Runtime::new(
        cri,
        client,
        &node.name,
        node.internal_ip.clone(),
        host,
    ));
    match runtime.recover().await {
        Ok(0) => {}
        Ok(n) => tracing::info!("took over {n} pods the runtime already runs"),
        Err(e) => tracing::warn!("listing the runtime's pods: {e}"),
    }
    let syncing = runtime.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = syncing.sync().await {
                tracing::warn!("syncing pods: {e}");
            }
            tokio::time::sleep(POD_SYNC).await;
        }
    });
    let Some(client_ca) = client_ca else {
        tracing::warn!(
            "no readable authentication.x509.clientCAFile: the kubelet API is not served"
        );
        return Ok(());
    };
    let mut names = vec![node.name.clone(), "localhost".into(), "127.0.0.1".into()];
    names.extend(node.internal_ip.clone());
    let tls = super::server::tls_config(&client_ca, names).map_err(anyhow::Error::msg)?;
    let listener =
        tokio::net::TcpListener::bind((settings.address.as_str(), settings.port)).await?;
    tokio::spawn(super::server::serve(
        listener,
        tls,
        runtime,
        settings.checkpoint_gate,
    ));
    Ok(())
}

fn node_config(args: &Args, name: &str) -> Result<NodeConfig, String> {
    let mut node = NodeConfig::new(name).kubelet_version(&super::version());
    if let Some(ip) = &args.node_ip {
        node = node.internal_ip(ip);
    }
    for label in args.node_labels.iter().filter(|l| !l.is_empty()) {
        let (k, v) = label.split_once('=').unwrap_or((label, ""));
        node = node.label(k, v);
    }
    for taint in args.register_with_taints.iter().filter(|t| !t.is_empty()) {
        let (kv, effect) = taint
            .rsplit_once(':')
            .ok_or_else(|| format!("invalid taint spec: {taint:?}"))?;
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        node = node.taint(k, v, effect);
    }
    Ok(node)
}

/// The kubelet may set labels in the `kubernetes.io` and `k8s.io` namespaces only from an
/// allowed set (the NodeRestriction rules): others are refused at start, as the real one does.
pub fn check_labels(labels: &[String]) -> Result<(), String> {
    const ALLOWED: [&str; 10] = [
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/zone",
    ];
    let unknown: Vec<&str> = labels
        .iter()
        .map(|l| l.split('=').next().unwrap_or_default())
        .filter(|key| {
            let ns = key.split_once('/').map(|(ns, _)| ns).unwrap_or_default();
            let restricted = ["kubernetes.io", "k8s.io"]
                .iter()
                .any(|r| ns == *r || ns.ends_with(&format!(".{r}")));
            let allowed = ALLOWED.contains(key)
                || key.starts_with("topology.kubernetes.io/")
                || ["kubelet.kubernetes.io", "node.kubernetes.io"]
                    .iter()
                    .any(|p| ns == *p || ns.ends_with(&format!(".{p}")));
            restricted && !allowed
        })
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(format!(
        "unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: {unknown:?}\n--node-labels in the 'kubernetes.io' namespace must begin with an allowed prefix (kubelet.kubernetes.io, node.kubernetes.io) or be in the specifically allowed set ({})",
        ALLOWED.join(", ")
    ))
}

/// Runs until killed; errors are logged and retried, as the real kubelet does.
pub async fn main(args: Args) -> anyhow::Result<()> {
    if args.version {
        println!("Kubernetes {}", super::version());
        return Ok(());
    }
    check_labels(&args.node_labels).map_err(anyhow::Error::msg)?;
    let host = Host::from_env();
    let name = args
        .hostname_override
        .clone()
        .unwrap_or_else(|| host.hostname());
    let config = match &args.config {
        Some(path) => Some(std::fs::read_to_string(path)?),
        None => None,
    };
    let settings = settings(config.as_deref(), &args).map_err(anyhow::Error::msg)?;
    let mut node = node_config(&args, &name).map_err(anyhow::Error::msg)?;
    node.kubelet_port = settings.port;
    let text = std::fs::read_to_string(args.kubeconfig.as_ref().expect("required by clap"))?;
    let client = super::client(&text).await.map_err(anyhow::Error::msg)?;
    let wanted = std::env::var(super::CRI_ENV).is_ok_and(|v| v == "1");
    let cri = match &args.container_runtime_endpoint {
        Some(endpoint) if wanted => runtime_at(endpoint).await,
        _ => None,
    };
    let runs_containers = cri.is_some();
    if let Some(cri) = cri {
        node.runtime_version = cri
            .version()
            .await
            .map(|v| v.replacen(' ', "://", 1))
            .unwrap_or_default();
        start_runtime(cri, client.clone(), &node, &settings, host.clone()).await?;
    }
    let kubelet = Kubelet::new(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let on_this_node = watcher::Config::default().fields(&format!("spec.nodeName={name}"));
    let pods = watcher(Api::<Pod>::all(client), on_this_node).default_backoff();
    let mut pods = std::pin::pin!(pods);
    let mut registered = false;
    let mut round = 0u32;
    loop {
        if !registered {
            registered = match kubelet.register(&node).await {
                Ok(_) => true,
                // Registered before (a restart, say after its package was upgraded): the Node
                // now shows this kubelet's version.
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    match kubelet
                        .set_kubelet_version(&name, &node.kubelet_version)
                        .await
                    {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!("updating node {name}'s version: {e}");
                            false
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("registering node {name}: {e}");
                    false
                }
            };
        }
        if registered {
            if round.is_multiple_of(STATUS_EVERY)
                && let Err(e) = kubelet.set_node_ready(&name, true).await
            {
                tracing::warn!("updating node status: {e}");
            }
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": crate::objects::now_micro()},
            });
            if let Err(e) = leases
                .patch(
                    &name,
                    &PatchParams::apply("kubelet").force(),
                    &Patch::Apply(&lease),
                )
                .await
            {
                tracing::warn!("renewing the lease: {e}");
            }
            // With a runtime, the runtime's own loop runs and deletes the pods.
            if !runs_containers {
                sync_pods(&kubelet, &name).await;
            }
            round += 1;
        }
        // Till the next beat, this node's pods are synced as soon as one changes.
        let beat = tokio::time::sleep(BEAT);
        tokio::pin!(beat);
        loop {
            tokio::select! {
                _ = &mut beat => break,
                Some(_) = pods.next() => if registered && !runs_containers {
                    sync_pods(&kubelet, &name).await;
                },
            }
        }
    }
}

/// Finishes the deletions of the node's pods and reports the others running.
async fn sync_pods(kubelet: &Kubelet, node: &str) {
    if let Err(e) = kubelet.finish_deletions_on(node).await {
        tracing::warn!("finishing pod deletions: {e}");
    }
    if let Err(e) = kubelet.run_pods_on(node).await {
        tracing::warn!("reporting pods: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_as_kubeadm_writes_them_make_the_node() {
        let cli = Cli::try_parse_from([
            "kubelet",
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
            "--config=/var/lib/kubelet/config.yaml",
            "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
            "--node-ip=10.1.2.3",
            "--node-labels=pool=gpu,role.datalayer.io/runtime=true",
            "--register-with-taints=nvidia.com/gpu=true:NoSchedule,dedicated:NoExecute",
        ])
        .unwrap();
        let node = node_config(&cli.args, "w1").unwrap();
        assert_eq!(node.internal_ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(node.labels["pool"], "gpu");
        assert_eq!(node.labels["role.datalayer.io/runtime"], "true");
        assert_eq!(
            node.taints,
            [
                ("nvidia.com/gpu".into(), "true".into(), "NoSchedule".into()),
                ("dedicated".into(), String::new(), "NoExecute".into()),
            ]
        );
        assert!(Cli::try_parse_from(["kubelet", "--kubeconfig=x", "--no-such-flag"]).is_err());
    }

    #[test]
    fn settings_come_from_the_config_file_and_flags_win() {
        let args = |extra: &[&str]| {
            let mut all = vec!["kubelet", "--kubeconfig=k"];
            all.extend_from_slice(extra);
            Cli::try_parse_from(all).unwrap().args
        };
        let config = "port: 10350\nauthentication:\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\nfeatureGates:\n  ContainerCheckpoint: false\n";
        let s = settings(Some(config), &args(&[])).unwrap();
        assert_eq!(
            s,
            Settings {
                port: 10350,
                address: "0.0.0.0".into(),
                client_ca_file: Some("/etc/kubernetes/pki/ca.crt".into()),
                checkpoint_gate: false,
            }
        );
        let s = settings(
            Some(config),
            &args(&["--port=9", "--feature-gates=ContainerCheckpoint=true"]),
        )
        .unwrap();
        assert_eq!((s.port, s.checkpoint_gate), (9, true));
        let s = settings(None, &args(&[])).unwrap();
        assert_eq!(
            (s.port, s.checkpoint_gate, s.client_ca_file),
            (10250, true, None),
            "on by default since 1.30"
        );
        assert!(settings(None, &args(&["--feature-gates=ContainerCheckpoint=maybe"])).is_err());
    }

    #[test]
    fn labels_in_the_kubernetes_namespaces_must_be_allowed_ones() {
        let ok = [
            "node.kubernetes.io/pool=a",
            "topology.kubernetes.io/zone=z",
            "team.example.com/x=y",
        ];
        check_labels(&ok.map(String::from)).unwrap();
        let e = check_labels(&["node-role.kubernetes.io/worker=".to_string()]).unwrap_err();
        assert!(
            e.starts_with("unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: [\"node-role.kubernetes.io/worker\"]"),
            "{e}"
        );
    }
}
