//! `clouder-testkube kubeadm`: what clouder asks of kubeadm, done as kubeadm does it, with
//! testkube as the control plane's API server (a systemd unit on the control-plane host).

use super::config::{
    self, ClusterConfiguration, InitConfiguration, JoinConfiguration, NodeRegistration,
};
use super::{Host, client, cluster_of, insecure_client, kubeconfig, pki, read_arg};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
const PKI: &str = "/etc/kubernetes/pki";
const MANIFESTS: [&str; 4] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
];
const FLAGS_ENV: &str = "/var/lib/kubelet/kubeadm-flags.env";
const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
/// The API server's state (testkube's `serve --dir`).
const STATE_DIR: &str = "/var/lib/clouder-testkube";
const APISERVER_UNIT: &str = "kube-apiserver.service";
const TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";
const DEFAULT_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
const CONTROL_PLANE_ROLE: &str = "node-role.kubernetes.io/control-plane";
/// What a certificate key must authenticate in the uploaded Secret.
const CERTS_SECRET: &str = "kubeadm-certs";
const CERTS_MAC: &str = "certificate-key.hmac-sha256";
const WAIT: Duration = Duration::from_secs(90);

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Print the version of kubeadm.
    Version {
        #[arg(short, long)]
        output: Option<String>,
    },
    /// Run this command in order to set up the Kubernetes control plane.
    Init {
        #[command(subcommand)]
        phase: Option<InitPhase>,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        upload_certs: bool,
        #[arg(long)]
        skip_token_print: bool,
        #[arg(long)]
        certificate_key: Option<String>,
    },
    /// Run this on any machine you wish to join an existing cluster.
    Join {
        #[arg(long)]
        config: PathBuf,
    },
    /// Manage bootstrap tokens.
    Token {
        #[arg(long, global = true, default_value = ADMIN_CONF)]
        kubeconfig: String,
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Performs a best effort revert of changes made to this host by 'kubeadm init' or 'kubeadm join'.
    Reset {
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
enum InitPhase {
    /// Use this command to invoke single phase of the init workflow.
    Phase {
        #[command(subcommand)]
        phase: Phase,
    },
}

#[derive(clap::Subcommand, Debug)]
enum Phase {
    /// Upload certificates to kubeadm-certs.
    UploadCerts {
        #[arg(long)]
        upload_certs: bool,
        #[arg(long)]
        certificate_key: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = ADMIN_CONF)]
        kubeconfig: String,
    },
}

#[derive(clap::Subcommand, Debug)]
enum TokenCommand {
    /// List bootstrap tokens on the server.
    List,
    /// Create bootstrap tokens on the server.
    Create {
        token: Option<String>,
        #[arg(long, default_value = "24h0m0s")]
        ttl: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, value_delimiter = ',', default_value = "signing,authentication")]
        usages: Vec<String>,
        #[arg(long, value_delimiter = ',', default_value = DEFAULT_GROUP)]
        groups: Vec<String>,
    },
    /// Delete bootstrap tokens on the server.
    Delete { tokens: Vec<String> },
}

#[derive(clap::Parser)]
#[command(name = "kubeadm")]
struct Cli {
    #[command(flatten)]
    args: Args,
}

/// Parses a kubeadm command line (`kubeadm token list`…), as the binary does.
pub fn parse<I, S>(argv: I) -> Result<Args, clap::Error>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    use clap::Parser;
    Cli::try_parse_from(argv).map(|c| c.args)
}

/// Runs one kubeadm command on this host; the exit code kubeadm would give.
pub async fn main(args: Args) -> i32 {
    let host = Host::from_env();
    let argv: Vec<String> = std::env::args().skip(2).collect();
    let config = match &args.command {
        Command::Init {
            config: Some(c), ..
        }
        | Command::Join { config: c } => std::fs::read_to_string(c).ok(),
        _ => None,
    };
    host.record(&argv, config.as_deref());
    match run(&host, args).await {
        Ok(out) => {
            print!("{out}");
            0
        }
        Err(e) => {
            eprintln!("{e}\nTo see the stack trace of this error execute with --v=5 or higher");
            1
        }
    }
}

/// Runs `args`; what kubeadm prints on success.
pub async fn run(host: &Host, args: Args) -> Result<String, String> {
    match args.command {
        Command::Version { output } => Ok(match output.as_deref() {
            Some("short") => format!("{}\n", super::version()),
            Some("json") => format!(
                "{}\n",
                json!({"clientVersion": {"gitVersion": super::version()}})
            ),
            _ => format!(
                "kubeadm version: &version.Info{{GitVersion:\"{}\"}}\n",
                super::version()
            ),
        }),
        Command::Init {
            phase:
                Some(InitPhase::Phase {
                    phase:
                        Phase::UploadCerts {
                            upload_certs,
                            certificate_key,
                            config,
                            kubeconfig,
                        },
                }),
            ..
        } => {
            let key = match (certificate_key, config) {
                (Some(k), _) => Some(k),
                (None, Some(c)) => config::parse(&read_arg(&c)?)?
                    .init
                    .and_then(|i| i.certificate_key),
                (None, None) => None,
            };
            if !upload_certs {
                return Ok("[upload-certs] Skipping phase. Please see --upload-certs\n".into());
            }
            let admin = client(&host.read(&kubeconfig)?).await?;
            let key = upload_certs_with(host, &admin, key).await?;
            Ok(format!(
                "[upload-certs] Storing the certificates in Secret \"{CERTS_SECRET}\" in the \"kube-system\" Namespace\n[upload-certs] Using certificate key:\n{key}\n"
            ))
        }
        Command::Init {
            config,
            upload_certs,
            skip_token_print,
            ..
        } => {
            let text = match config {
                Some(c) => read_arg(&c)?,
                None => String::new(),
            };
            init(host, &text, upload_certs, skip_token_print).await
        }
        Command::Join { config } => join(host, &read_arg(&config)?).await,
        Command::Token {
            kubeconfig,
            command,
        } => {
            let admin = client(&host.read(&kubeconfig)?).await?;
            match command {
                TokenCommand::List => token_list(&admin).await,
                TokenCommand::Create {
                    token,
                    ttl,
                    description,
                    usages,
                    groups,
                } => {
                    let token = token.unwrap_or_else(random_token);
                    let bt = config::BootstrapToken {
                        token: token.clone(),
                        description,
                        ttl: Some(ttl),
                        expires: None,
                        usages,
                        groups,
                    };
                    create_token(&admin, &bt).await?;
                    Ok(format!("{token}\n"))
                }
                TokenCommand::Delete { tokens } => {
                    let secrets: Api<Secret> = Api::namespaced(admin, "kube-system");
                    let mut out = String::new();
                    for t in tokens {
                        let id = t.split('.').next().unwrap_or_default().to_string();
                        secrets
                            .delete(&format!("bootstrap-token-{id}"), &Default::default())
                            .await
                            .map_err(|e| {
                                format!("failed to delete bootstrap token with id {id:?}: {e}")
                            })?;
                        out += &format!("bootstrap token {id:?} deleted\n");
                    }
                    Ok(out)
                }
            }
        }
        Command::Reset { force } => reset(host, force),
    }
}

fn random_token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut word = |n: usize| -> String {
        (0..n)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    format!("{}.{}", word(6), word(16))
}

fn random_hex(bytes: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// Go's duration syntax as kubeadm's `--ttl` takes it (`30m`, `24h0m0s`); zero never expires.
fn ttl(text: &str) -> Result<Option<jiff::SignedDuration>, String> {
    if text == "0" {
        return Ok(None);
    }
    let d: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("invalid duration {text:?}: {e}"))?;
    Ok((!d.is_zero()).then_some(d))
}

fn preflight(errors: Vec<String>) -> Result<(), String> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(format!(
        "error execution phase preflight: [preflight] Some fatal errors occurred:\n{}\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`",
        errors
            .iter()
            .map(|e| format!("\t{e}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

fn file_available(host: &Host, path: &str) -> Option<String> {
    host.exists(path).then(|| {
        format!(
            "[ERROR FileAvailable-{}]: {path} already exists",
            path.replace('/', "-")
        )
    })
}

/// Tells a config's own defaults from kubeadm's.
fn default_doc<T: serde::de::DeserializeOwned>(kind: &str) -> T {
    serde_json::from_value(json!({"apiVersion": config::KUBEADM_API, "kind": kind}))
        .expect("an empty document decodes")
}

/// The first address of a CIDR plus one: the `kubernetes` Service's cluster IP.
fn first_service_ip(cidr: &str) -> Option<String> {
    let (ip, _) = cidr.split(',').next()?.split_once('/')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    Some(std::net::Ipv4Addr::from(u32::from(ip) + 1).to_string())
}

async fn wait_for<F, Fut, T>(what: &str, mut probe: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn init(
    host: &Host,
    text: &str,
    upload_certs: bool,
    skip_token_print: bool,
) -> Result<String, String> {
    let docs = config::parse(text)?;
    let init = docs
        .init
        .unwrap_or_else(|| default_doc::<InitConfiguration>("InitConfiguration"));
    let cluster = docs
        .cluster
        .unwrap_or_else(|| default_doc::<ClusterConfiguration>("ClusterConfiguration"));
    config::validate_init(&init, &cluster)?;
    check_version(cluster.kubernetes_version.as_deref())?;
    let mut errors: Vec<String> = MANIFESTS
        .iter()
        .filter_map(|m| file_available(host, &format!("/etc/kubernetes/manifests/{m}.yaml")))
        .collect();
    errors.extend(file_available(host, ADMIN_CONF));
    preflight(errors)?;

    let name = init
        .node_registration
        .name
        .clone()
        .unwrap_or_else(|| host.hostname());
    let advertise = init
        .local_api_endpoint
        .advertise_address
        .clone()
        .ok_or("localAPIEndpoint.advertiseAddress: Required value: this stand-in needs the address to serve on")?;
    let port = init.local_api_endpoint.bind_port.unwrap_or(6443);
    let endpoint = cluster
        .control_plane_endpoint
        .clone()
        .unwrap_or_else(|| format!("{advertise}:{port}"));
    let (endpoint_host, _) = config::endpoint("controlPlaneEndpoint", &endpoint)?;
    let cluster_name = cluster
        .cluster_name
        .clone()
        .unwrap_or_else(|| "kubernetes".into());
    let service_subnet = cluster
        .networking
        .service_subnet
        .clone()
        .unwrap_or_else(|| "10.96.0.0/12".into());
    let domain = cluster
        .networking
        .dns_domain
        .clone()
        .unwrap_or_else(|| "cluster.local".into());

    // certs
    let mut sans = vec![
        name.clone(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{domain}"),
        advertise.clone(),
        endpoint_host,
    ];
    sans.extend(first_service_ip(&service_subnet));
    sans.extend(cluster.api_server.cert_sans.iter().cloned());
    sans.dedup();
    let pki = pki::generate(sans).map_err(|e| format!("error execution phase certs: {e}"))?;
    for (file, content, mode) in [
        ("ca.crt", &pki.ca.cert, 0o644),
        ("ca.key", &pki.ca.key, 0o600),
        ("apiserver.crt", &pki.apiserver.cert, 0o644),
        ("apiserver.key", &pki.apiserver.key, 0o600),
        (
            "apiserver-kubelet-client.crt",
            &pki.kubelet_client.cert,
            0o644,
        ),
        (
            "apiserver-kubelet-client.key",
            &pki.kubelet_client.key,
            0o600,
        ),
    ] {
        host.write(&format!("{PKI}/{file}"), content, mode)?;
    }

    // control-plane: testkube as kube-apiserver, started by systemd.
    let admin_token = random_hex(16);
    let state = host.path(STATE_DIR);
    std::fs::create_dir_all(&state).map_err(|e| format!("{STATE_DIR}: {e}"))?;
    crate::persist::save_identity(
        &state,
        &crate::persist::Identity {
            tls: crate::tls::Pems {
                ca: pki.ca.cert.clone(),
                cert: pki.apiserver.cert.clone(),
                key: pki.apiserver.key.clone(),
            },
            admin_token: admin_token.clone(),
            reader_token: random_hex(16),
        },
    )
    .map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let command = [
        exe.display().to_string(),
        "serve".into(),
        format!("--dir={STATE_DIR}"),
        format!("--bind={advertise}"),
        format!("--port={port}"),
        "--controllers".into(),
    ];
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "kube-apiserver", "namespace": "kube-system", "labels": {"component": "kube-apiserver", "tier": "control-plane"}},
        "spec": {"hostNetwork": true, "containers": [{"name": "kube-apiserver", "command": command}]},
    });
    host.write(
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        &serde_yaml_ng::to_string(&manifest).expect("YAML"),
        0o600,
    )?;
    host.write(
        &format!("/etc/systemd/system/{APISERVER_UNIT}"),
        &format!(
            "[Unit]\nDescription=kube-apiserver (clouder-testkube stand-in)\nAfter=network-online.target\n\n[Service]\nExecStart={}\nRestart=always\nRestartSec=1\n\n[Install]\nWantedBy=multi-user.target\n",
            command.join(" ")
        ),
        0o644,
    )?;
    host.systemctl(&["daemon-reload"])?;
    host.systemctl(&["enable", "--now", APISERVER_UNIT])?;

    let local = kubeconfig(
        &cluster_name,
        &format!("https://{advertise}:{port}"),
        &pki.ca.cert,
        "kubernetes-admin",
        Some(&admin_token),
    );
    let admin = client(&local).await?;
    if host.systemd {
        wait_for("the API server", || {
            let admin = admin.clone();
            async move { admin.apiserver_version().await.ok() }
        })
        .await
        .map_err(|e| format!("error execution phase wait-control-plane: {e}"))?;
    }
    let server = format!("https://{endpoint}");
    host.write(
        ADMIN_CONF,
        &kubeconfig(
            &cluster_name,
            &server,
            &pki.ca.cert,
            "kubernetes-admin",
            Some(&admin_token),
        ),
        0o600,
    )?;

    // upload-config, bootstrap-token
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
        "data": {"ClusterConfiguration": serde_yaml_ng::to_string(&cluster).expect("YAML")}});
    apply_configmap(&admin, "kube-system", cm).await?;
    for t in &init.bootstrap_tokens {
        create_token(&admin, t)
            .await
            .map_err(|e| format!("error execution phase bootstrap-token: {e}"))?;
    }
    publish_cluster_info(&admin, &cluster_name, &server, &pki.ca.cert).await?;

    // kubelet-start, as the node's kubelet would be (with the admin's token: testkube has no
    // client certificates).
    start_kubelet(
        host,
        &name,
        &init.node_registration,
        docs.kubelet.as_ref(),
        &kubeconfig(
            &cluster_name,
            &server,
            &pki.ca.cert,
            &format!("system:node:{name}"),
            Some(&admin_token),
        ),
    )?;
    let taints = init.node_registration.taints.clone().unwrap_or_else(|| {
        vec![config::Taint {
            key: CONTROL_PLANE_ROLE.into(),
            value: None,
            effect: "NoSchedule".into(),
            time_added: None,
        }]
    });
    if host.systemd {
        mark_control_plane(&admin, &name, &taints).await?;
    }
    let mut out = String::new();
    if upload_certs {
        let key = upload_certs_with(host, &admin, init.certificate_key.clone()).await?;
        out += &format!("[upload-certs] Using certificate key:\n{key}\n");
    }
    out += "\nYour Kubernetes control-plane has initialized successfully!\n";
    if !skip_token_print && let Some(t) = init.bootstrap_tokens.first() {
        out += &format!(
            "\nkubeadm join {endpoint} --token {} --discovery-token-ca-cert-hash {}\n",
            t.token,
            pki::spki_hash(&pki.ca.cert)?
        );
    }
    Ok(out)
}

/// kubeadm refuses a control plane newer than itself by a minor version or more.
fn check_version(wanted: Option<&str>) -> Result<(), String> {
    let Some(wanted) = wanted.filter(|w| !w.starts_with("stable") && !w.starts_with("latest"))
    else {
        return Ok(());
    };
    let minor = |v: &str| {
        v.trim_start_matches('v')
            .split('.')
            .nth(1)
            .and_then(|m| m.parse::<u32>().ok())
    };
    let ours = super::version();
    match (minor(wanted), minor(&ours)) {
        (Some(w), Some(o)) if w > o => Err(format!(
            "this version of kubeadm only supports deploying clusters with the control plane version >= {}. Current version: {wanted}: the specified version to deploy {wanted:?} is at least one minor release higher than the kubeadm minor release ({w} > {o}). Such deployment is not supported",
            ours
        )),
        (None, _) => Err(format!(
            "kubernetesVersion: Invalid value: {wanted:?}: could not parse version"
        )),
        _ => Ok(()),
    }
}

async fn apply_configmap(admin: &kube::Client, ns: &str, cm: Value) -> Result<(), String> {
    let api: Api<ConfigMap> = Api::namespaced(admin.clone(), ns);
    let name = cm["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    api.patch(
        &name,
        &PatchParams::apply("kubeadm").force(),
        &Patch::Apply(&cm),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("creating ConfigMap {ns}/{name}: {e}"))
}

/// The public `kube-public/cluster-info` ConfigMap joining nodes discover the cluster by.
pub async fn publish_cluster_info(
    admin: &kube::Client,
    cluster: &str,
    server: &str,
    ca_pem: &str,
) -> Result<(), String> {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": kubeconfig(cluster, server, ca_pem, "", None)}});
    apply_configmap(admin, "kube-public", cm).await
}

/// A bootstrap token's Secret, as `kubeadm token create` and init's bootstrapTokens make it.
pub async fn create_token(admin: &kube::Client, t: &config::BootstrapToken) -> Result<(), String> {
    let (id, secret) = crate::bootstrap::split(&t.token)
        .ok_or_else(|| format!("the bootstrap token {:?} was not of the form \"^([a-z0-9]{{6}})\\\\.([a-z0-9]{{16}})$\"", t.token))?;
    let mut data = serde_json::Map::new();
    let mut put = |k: &str, v: &str| {
        data.insert(k.into(), json!(STANDARD.encode(v)));
    };
    put("token-id", id);
    put("token-secret", secret);
    let expiration = match (&t.expires, t.ttl.as_deref()) {
        (Some(at), _) => Some(at.clone()),
        (None, ttl_text) => ttl(ttl_text.unwrap_or("24h0m0s"))?.map(|d| {
            (jiff::Timestamp::now() + d)
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        }),
    };
    if let Some(at) = &expiration {
        put("expiration", at);
    }
    if let Some(d) = &t.description {
        put("description", d);
    }
    let usages = if t.usages.is_empty() {
        vec!["signing".to_string(), "authentication".into()]
    } else {
        t.usages.clone()
    };
    for u in &usages {
        if !matches!(u.as_str(), "signing" | "authentication") {
            return Err(format!(
                "invalid bootstrap token usage string: {u}, valid usage options: signing,authentication"
            ));
        }
        put(&format!("usage-bootstrap-{u}"), "true");
    }
    let groups = if t.groups.is_empty() {
        vec![DEFAULT_GROUP.to_string()]
    } else {
        t.groups.clone()
    };
    put("auth-extra-groups", &groups.join(","));
    let body: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "data": data,
    }))
    .map_err(|e| e.to_string())?;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "kube-system");
    secrets
        .create(&PostParams::default(), &body)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 409 => {
                format!("a token with id {id:?} already exists")
            }
            e => {
                format!("failed to create bootstrap token with name \"bootstrap-token-{id}\": {e}")
            }
        })
}

fn data(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}

async fn token_list(admin: &kube::Client) -> Result<String, String> {
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "kube-system");
    let list = secrets
        .list(&ListParams::default().fields(&format!("type={TOKEN_TYPE}")))
        .await
        .map_err(|e| format!("failed to list bootstrap tokens: {e}"))?;
    let mut rows = vec![
        [
            "TOKEN",
            "TTL",
            "EXPIRES",
            "USAGES",
            "DESCRIPTION",
            "EXTRA GROUPS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for s in list
        .items
        .iter()
        .filter(|s| s.type_.as_deref() == Some(TOKEN_TYPE))
    {
        let expires = data(s, "expiration");
        let ttl = match expires.parse::<jiff::Timestamp>() {
            Ok(at) => {
                let left = at.duration_since(jiff::Timestamp::now());
                if left.is_negative() {
                    continue;
                }
                format!("{}m", left.as_secs() / 60)
            }
            Err(_) => "<forever>".into(),
        };
        let usages: Vec<&str> = ["authentication", "signing"]
            .into_iter()
            .filter(|u| data(s, &format!("usage-bootstrap-{u}")) == "true")
            .collect();
        rows.push(vec![
            format!("{}.{}", data(s, "token-id"), data(s, "token-secret")),
            ttl,
            if expires.is_empty() {
                "<never>".into()
            } else {
                expires
            },
            usages.join(","),
            match data(s, "description") {
                d if d.is_empty() => "<none>".into(),
                d => d,
            },
            data(s, "auth-extra-groups"),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    Ok(rows
        .iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("{}\n", cells.join("   ").trim_end())
        })
        .collect())
}

fn mac(key: &str, ca_pem: &str) -> Result<String, String> {
    let key = hex_bytes(key).ok_or("error decoding certificate key: encoding/hex: invalid byte")?;
    let mut mac =
        <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(ca_pem.as_bytes());
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    text.len().is_multiple_of(2).then_some(())?;
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Secret `kube-system/kubeadm-certs`: the control-plane certificates under the certificate key.
/// (Here only the CA and a MAC of it under the key: a joining control plane proves its key.)
async fn upload_certs_with(
    host: &Host,
    admin: &kube::Client,
    key: Option<String>,
) -> Result<String, String> {
    let key = key.unwrap_or_else(|| random_hex(32));
    if key.len() != 64 || hex_bytes(&key).is_none() {
        return Err("error execution phase upload-certs: error uploading certs: error decoding certificate key: certificate key size must be 32 bytes, hex-encoded".into());
    }
    let ca = host.read(&format!("{PKI}/ca.crt"))?;
    let body: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": CERTS_SECRET, "namespace": "kube-system"},
        "data": {"ca.crt": STANDARD.encode(&ca), CERTS_MAC: STANDARD.encode(mac(&key, &ca)?)},
    }))
    .map_err(|e| e.to_string())?;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "kube-system");
    secrets
        .patch(
            CERTS_SECRET,
            &PatchParams::apply("kubeadm").force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| format!("error execution phase upload-certs: error uploading certs: {e}"))?;
    Ok(key)
}

/// kubeadm-flags.env, config.yaml and kubelet.conf, then the kubelet (re)started.
fn start_kubelet(
    host: &Host,
    name: &str,
    reg: &NodeRegistration,
    kubelet: Option<&Value>,
    conf: &str,
) -> Result<(), String> {
    let mut flags = vec![format!(
        "--container-runtime-endpoint={}",
        reg.cri_socket
            .clone()
            .unwrap_or_else(|| "unix:///var/run/containerd/containerd.sock".into())
    )];
    if name != host.hostname() {
        flags.push(format!("--hostname-override={name}"));
    }
    for arg in &reg.kubelet_extra_args {
        flags.push(format!("--{}={}", arg.name, arg.value));
    }
    let taints: Vec<String> = reg
        .taints
        .iter()
        .flatten()
        .map(|t| match &t.value {
            Some(v) => format!("{}={v}:{}", t.key, t.effect),
            None => format!("{}:{}", t.key, t.effect),
        })
        .collect();
    if !taints.is_empty() {
        flags.push(format!("--register-with-taints={}", taints.join(",")));
    }
    host.write(
        FLAGS_ENV,
        &format!("KUBELET_KUBEADM_ARGS=\"{}\"\n", flags.join(" ")),
        0o644,
    )?;
    let kubelet = kubelet.cloned().unwrap_or_else(
        || json!({"apiVersion": config::KUBELET_API, "kind": "KubeletConfiguration"}),
    );
    host.write(
        KUBELET_CONFIG,
        &serde_yaml_ng::to_string(&kubelet).expect("YAML"),
        0o644,
    )?;
    host.write(KUBELET_CONF, conf, 0o600)?;
    host.systemctl(&["restart", "kubelet"])
        .map_err(|e| format!("error execution phase kubelet-start: {e}"))
}

async fn wait_for_node(api: &Api<Node>, name: &str) -> Result<(), String> {
    wait_for(
        &format!("the kubelet to register Node {name:?}"),
        || async { api.get_opt(name).await.ok().flatten() },
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("error execution phase kubelet-start: {e}"))
}

/// mark-control-plane: the role label (and kubeadm's exclusion from load balancers) and taints.
async fn mark_control_plane(
    client: &kube::Client,
    name: &str,
    taints: &[config::Taint],
) -> Result<(), String> {
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for_node(&nodes, name).await?;
    let node = nodes.get(name).await.map_err(|e| e.to_string())?;
    let mut all: Vec<Value> = node
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .iter()
        .map(|t| json!(t))
        .collect();
    for t in taints {
        let taint = json!({"key": t.key, "value": t.value, "effect": t.effect});
        if !all
            .iter()
            .any(|x| x["key"] == taint["key"] && x["effect"] == taint["effect"])
        {
            all.push(taint);
        }
    }
    let patch = json!({
        "metadata": {"labels": {CONTROL_PLANE_ROLE: "", "node.kubernetes.io/exclude-from-external-load-balancers": ""}},
        "spec": {"taints": all},
    });
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("error execution phase mark-control-plane: {e}"))
}

/// Token discovery: cluster-info fetched without trusting the server, its CA checked against
/// the pinned hashes, then fetched again over TLS verified with that CA. Returns (server, CA).
pub async fn discover(d: &config::TokenDiscovery) -> Result<(String, String), String> {
    let endpoint = d.api_server_endpoint.clone().unwrap_or_default();
    let fail = |e: String| {
        format!(
            "error execution phase preflight: couldn't validate the identity of the API Server: {e}"
        )
    };
    let insecure = insecure_client(&endpoint, &d.token).map_err(fail)?;
    let info: Api<ConfigMap> = Api::namespaced(insecure, "kube-public");
    let cm = info
        .get("cluster-info")
        .await
        .map_err(|e| fail(format!("failed to request the cluster-info ConfigMap: {e}")))?;
    let text = cm
        .data
        .and_then(|d| d.get("kubeconfig").cloned())
        .ok_or_else(|| fail("there is no kubeconfig key in the cluster-info ConfigMap".into()))?;
    let (server, ca) = cluster_of(&text).map_err(fail)?;
    let hash = pki::spki_hash(&ca).map_err(fail)?;
    if !d.unsafe_skip_ca_verification
        && !d
            .ca_cert_hashes
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&hash))
    {
        return Err(fail(format!(
            "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys {hash:?} are pinned"
        )));
    }
    let secure = client(&kubeconfig(
        "kubernetes",
        &format!("https://{endpoint}"),
        &ca,
        "tls-bootstrap-token-user",
        Some(&d.token),
    ))
    .await
    .map_err(fail)?;
    Api::<ConfigMap>::namespaced(secure, "kube-public")
        .get("cluster-info")
        .await
        .map_err(|e| {
            fail(format!(
                "failed to request the cluster-info ConfigMap over the pinned CA: {e}"
            ))
        })?;
    Ok((server, ca))
}

async fn join(host: &Host, text: &str) -> Result<String, String> {
    let docs = config::parse(text)?;
    let join: JoinConfiguration = docs
        .join
        .ok_or("no JoinConfiguration found in the config file")?;
    config::validate_join(&join)?;
    let mut errors: Vec<String> = [KUBELET_CONF, "/etc/kubernetes/pki/ca.crt"]
        .iter()
        .filter_map(|p| file_available(host, p))
        .collect();
    if join.control_plane.is_some() {
        errors.extend(
            MANIFESTS.iter().filter_map(|m| {
                file_available(host, &format!("/etc/kubernetes/manifests/{m}.yaml"))
            }),
        );
    }
    preflight(errors)?;
    let d = join.discovery.bootstrap_token.as_ref().expect("validated");
    let (server, ca) = discover(d).await?;
    let conf = kubeconfig(
        "kubernetes",
        &server,
        &ca,
        "tls-bootstrap-token-user",
        Some(&d.token),
    );
    let bootstrap = client(&conf).await?;
    if let Some(cp) = &join.control_plane {
        let key = cp.certificate_key.clone().ok_or("error execution phase control-plane-prepare/download-certs: certificateKey is required to download the certificates")?;
        let certs = Api::<Secret>::namespaced(bootstrap.clone(), "kube-system")
            .get(CERTS_SECRET)
            .await
            .map_err(|e| format!("error execution phase control-plane-prepare/download-certs: error downloading certs: error downloading the secret: {e}"))?;
        if mac(&key, &data(&certs, "ca.crt"))? != data(&certs, CERTS_MAC) {
            return Err("error execution phase control-plane-prepare/download-certs: error downloading certs: error decoding certs: cipher: message authentication failed".into());
        }
    }
    host.write("/etc/kubernetes/pki/ca.crt", &ca, 0o644)?;
    let name = join
        .node_registration
        .name
        .clone()
        .unwrap_or_else(|| host.hostname());
    start_kubelet(
        host,
        &name,
        &join.node_registration,
        docs.kubelet.as_ref(),
        &conf,
    )?;
    if host.systemd {
        match &join.control_plane {
            Some(_) => {
                let taints = join.node_registration.taints.clone().unwrap_or_default();
                mark_control_plane(&bootstrap, &name, &taints).await?;
            }
            None => wait_for_node(&Api::all(bootstrap), &name).await?,
        }
    }
    Ok("\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a response was received.\n* The Kubelet was informed of the new secure connection details.\n\nRun 'kubectl get nodes' on the control-plane to see this node join the cluster.\n".into())
}

fn reset(host: &Host, force: bool) -> Result<String, String> {
    if !force {
        return Err("error execution phase preflight: won't proceed; the user didn't answer (Y|y) in order to continue (use --force)".into());
    }
    for unit in ["kubelet", APISERVER_UNIT] {
        let _ = host.systemctl(&["stop", unit]);
    }
    let _ = host.systemctl(&["disable", APISERVER_UNIT]);
    let unit = format!("/etc/systemd/system/{APISERVER_UNIT}");
    host.remove(&[
        &unit,
        "/etc/kubernetes/manifests",
        PKI,
        ADMIN_CONF,
        "/etc/kubernetes/super-admin.conf",
        KUBELET_CONF,
        "/etc/kubernetes/bootstrap-kubelet.conf",
        FLAGS_ENV,
        KUBELET_CONFIG,
        STATE_DIR,
    ]);
    let _ = host.systemctl(&["daemon-reload"]);
    Ok("[reset] Stopping the kubelet service\n[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]\n[reset] Deleting files: [/etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf]\n".into())
}
