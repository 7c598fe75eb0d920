//! `clouder-testkube serve --dir DIR`: runs the test API server until SIGTERM or SIGINT.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(
    name = "clouder-testkube",
    about = "A faithful Kubernetes API server for tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve on 127.0.0.1, write DIR/kubeconfig, print `KUBECONFIG=DIR/kubeconfig` once ready.
    /// DIR also keeps the server's CA, tokens and objects: serving the same DIR again resumes.
    Serve {
        /// Directory for the kubeconfig and the server's state (created if missing, mode 0700).
        #[arg(long)]
        dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Port to listen on; 0 picks a free one.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Another name or address for the serving certificate (repeatable).
        #[arg(long = "san")]
        sans: Vec<String>,
        /// Run the workload controllers, the scheduler and node lifecycle.
        #[arg(long)]
        controllers: bool,
        /// The client certificate (PEM) presented to kubelets, for logs and the node proxy.
        #[arg(long, requires = "kubelet_client_key")]
        kubelet_client_certificate: Option<PathBuf>,
        /// Its key (PEM).
        #[arg(long, requires = "kubelet_client_certificate")]
        kubelet_client_key: Option<PathBuf>,
    },
    /// A stand-in for kubeadm on a test host: init, join, token, upload-certs, reset.
    Kubeadm(clouder_testkube::standin::kubeadm::Args),
    /// A stand-in for the kubelet on a test host: registers its Node and keeps it Ready.
    Kubelet(clouder_testkube::standin::kubelet::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let (dir, bind, port, sans, controllers, kubelet_client) = match Cli::parse().command {
        Command::Serve {
            dir,
            bind,
            port,
            sans,
            controllers,
            kubelet_client_certificate,
            kubelet_client_key,
        } => {
            let kubelet_client = match (kubelet_client_certificate, kubelet_client_key) {
                (Some(cert), Some(key)) => Some((
                    std::fs::read_to_string(&cert)
                        .with_context(|| format!("reading {}", cert.display()))?,
                    std::fs::read_to_string(&key)
                        .with_context(|| format!("reading {}", key.display()))?,
                )),
                _ => None,
            };
            (dir, bind, port, sans, controllers, kubelet_client)
        }
        Command::Kubeadm(args) => {
            let code = clouder_testkube::standin::kubeadm::main(args).await;
            std::process::exit(code)
        }
        Command::Kubelet(args) => return clouder_testkube::standin::kubelet::main(args).await,
    };
    // Handlers first: a SIGTERM right after the readiness line must still be a clean exit.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let kube = clouder_testkube::TestKube::start_with(clouder_testkube::Options {
        bind,
        port,
        sans,
        controllers,
        state_dir: Some(dir.clone()),
        kubelet_client,
        ..Default::default()
    })
    .await?;
    let path = dir.join("kubeconfig");
    kube.write_kubeconfig(&path)?;
    println!("KUBECONFIG={}", path.display());
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    drop(kube);
    Ok(())
}
