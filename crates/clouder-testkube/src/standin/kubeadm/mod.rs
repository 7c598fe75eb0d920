//! `clouder-testkube kubeadm`: what clouder asks of kubeadm, done as kubeadm does it, with
//! testkube as the control plane's API server (a systemd unit on the control-plane host).

mod certs;
mod init;
mod join;
mod node;
mod reset;
mod tokens;
mod upgrade;

pub use crate::bootstrap::detached_signature;
pub use init::publish_cluster_info;
pub use join::discover;
pub use tokens::create_token;

use certs::upload_certs_with;
use init::init;
use join::join;
use reset::reset;
use tokens::{random_token, token_list};

use super::{Host, client, config, read_arg};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::json;
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
    /// Upgrade your cluster smoothly to a newer version with this command.
    Upgrade {
        #[command(subcommand)]
        command: UpgradeCommand,
    },
    /// Manage configuration for a kubeadm cluster persisted in a ConfigMap in the cluster.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
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
enum UpgradeCommand {
    /// Upgrade your Kubernetes cluster to the specified version.
    Apply {
        version: Option<String>,
        /// Perform the upgrade and do not prompt for confirmation (non-interactive mode).
        #[arg(short, long)]
        yes: bool,
        /// Force upgrading although some requirements might not be met.
        #[arg(short, long)]
        force: bool,
    },
    /// Upgrade commands for a node in the cluster.
    Node,
}

#[derive(clap::Subcommand, Debug)]
enum ConfigCommand {
    /// Read a file containing the kubeadm configuration API and report any validation problems.
    Validate {
        #[arg(long)]
        config: PathBuf,
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
            Some("short") => format!("{}\n", host.version),
            Some("json") => format!(
                "{}\n",
                json!({"clientVersion": {"gitVersion": host.version}})
            ),
            _ => format!(
                "kubeadm version: &version.Info{{GitVersion:\"{}\"}}\n",
                host.version
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
        Command::Upgrade { command } => match command {
            UpgradeCommand::Apply {
                version,
                yes,
                force,
            } => upgrade::apply(host, version, yes, force).await,
            UpgradeCommand::Node => upgrade::node(host).await,
        },
        Command::Reset { force } => reset(host, force),
        Command::Config {
            command: ConfigCommand::Validate { config },
        } => validate(&config),
    }
}

/// `kubeadm config validate`: the documents decoded strictly and their values checked, as
/// `init` and `join` would; kubeadm prints `ok` when there is nothing to report.
fn validate(file: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("unable to read config from {:?}: {e}", file.display()))?;
    let docs = config::parse(&text)?;
    if let Some(init) = &docs.init {
        config::validate_init(init, &docs.cluster.clone().unwrap_or_default())?;
    }
    if let Some(join) = &docs.join {
        config::validate_join(join)?;
    }
    Ok("ok\n".into())
}

fn random_hex(bytes: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
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

fn data(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}
