//! `clouder-testkube`: a faithful in-process Kubernetes API server for tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), clouder_testkube::Error> {
//! let kube = clouder_testkube::TestKube::start().await?;
//! let client = kube.client().await?;
//! # Ok(()) }
//! ```

mod apply;
mod bootstrap;
mod controllers;
mod crd;
mod discovery;
mod fields;
mod http;
mod kubeconfig;
mod kubelet;
mod list;
mod objects;
mod patch;
mod persist;
mod printers;
mod protobuf;
mod proxy;
pub mod resources;
mod schema;
pub mod selectors;
pub mod standin;
mod status;
mod store;
mod subresources;
mod tls;
mod verbs;
mod watch;

pub use kubeconfig::{ADMIN_CONTEXT, READ_ONLY_CONTEXT};
pub use kubelet::{AutoKubelet, Kubelet, NodeConfig};

use hyper_util::rt::TokioIo;
use rand::Rng;
use resources::ResourceType;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use store::Store;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Starting a server or a client for it failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding {address}:{port}: {source}")]
    Bind {
        address: std::net::IpAddr,
        port: u16,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("writing the kubeconfig to {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("building a kube client from the testkube kubeconfig: {0}")]
    Client(String),
    #[error("the state directory: {0}")]
    State(#[from] persist::PersistError),
}

/// State shared by every request of one server.
pub(crate) struct App {
    store: Store,
    types: Vec<ResourceType>,
    admin_token: String,
    reader_token: String,
    /// `host:port`, as `/api` advertises it.
    address: String,
    /// How the server reaches kubelets (logs, node proxy).
    kubelet_client: reqwest::Client,
}

impl App {
    /// The built-in types and those the stored CRDs define right now.
    fn types(&self) -> Vec<ResourceType> {
        let mut all = self.types.clone();
        all.extend(crd::resource_types(&self.store.lock()));
        all
    }

    fn user_for(&self, token: &str) -> Option<http::User> {
        if token == self.admin_token {
            Some(http::User::Admin)
        } else if token == self.reader_token {
            Some(http::User::Reader)
        } else {
            bootstrap::authenticate(&self.store.lock(), token).map(http::User::Bootstrap)
        }
    }
}

fn token() -> String {
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:x}", rng.random_range(0..16u8)))
        .collect()
}

/// How to start a server; `Default` is what [`TestKube::start`] uses.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on.
    pub bind: std::net::IpAddr,
    /// Port on `bind`; 0 picks a free one.
    pub port: u16,
    /// Names and addresses the serving certificate is also valid for (besides localhost,
    /// 127.0.0.1, `bind` and kubernetes.default.svc), when the server makes its own.
    pub sans: Vec<String>,
    /// Events kept for watches that resume from a resourceVersion; older ones get 410 Expired.
    pub watch_history: usize,
    /// Events a watcher may fall behind by before it gets 410 Expired and must start over.
    pub watch_backlog: usize,
    /// Run the Deployment, ReplicaSet, DaemonSet and StatefulSet controllers, the scheduler and
    /// node lifecycle (the garbage collector always runs).
    pub controllers: bool,
    /// Keep the CA, tokens and a snapshot of the objects here, and start from them when present,
    /// so that a restarted server is the same server.
    pub state_dir: Option<std::path::PathBuf>,
    /// The certificate and key (PEM) the server presents to kubelets, as kube-apiserver's
    /// `--kubelet-client-certificate`/`--kubelet-client-key` (kubeadm's `apiserver-kubelet-client`).
    pub kubelet_client: Option<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            bind: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 0,
            sans: Vec::new(),
            watch_history: 10_000,
            watch_backlog: 4096,
            controllers: false,
            state_dir: None,
            kubelet_client: None,
        }
    }
}

/// A running server; dropping it stops the server and closes its connections.
pub struct TestKube {
    url: String,
    kubeconfig: String,
    task: JoinHandle<()>,
    controllers: JoinHandle<()>,
    /// With a state directory: the snapshot writer, and what the last snapshot is taken from.
    persistence: Option<(JoinHandle<()>, std::path::PathBuf, Arc<App>)>,
}

impl Drop for TestKube {
    fn drop(&mut self) {
        self.task.abort();
        self.controllers.abort();
        if let Some((writer, dir, app)) = self.persistence.take() {
            writer.abort();
            if let Err(e) = persist::save(&dir, &app.store) {
                tracing::warn!("saving the snapshot on shutdown: {e}");
            }
        }
    }
}

impl TestKube {
    /// Starts a server on 127.0.0.1 with a random port and fresh CA and tokens.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(Options::default()).await
    }

    /// Starts a server whose controllers and scheduler act on Deployments, ReplicaSets,
    /// DaemonSets, StatefulSets, Pods and Nodes; a [`Kubelet`] plays the nodes.
    pub async fn start_with_controllers() -> Result<Self, Error> {
        Self::start_with(Options {
            controllers: true,
            ..Options::default()
        })
        .await
    }

    /// Starts a server with the given options.
    pub async fn start_with(options: Options) -> Result<Self, Error> {
        let (address, port) = (options.bind, options.port);
        // kube's client needs a process-wide provider when the build enables more than one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let identity = match &options.state_dir {
            Some(dir) => persist::load_identity(dir)?,
            None => None,
        };
        let (tls, admin_token, reader_token) = match identity {
            Some(id) => (tls::load(id.tls)?, id.admin_token, id.reader_token),
            None => {
                let mut sans = options.sans.clone();
                sans.push(address.to_string());
                (tls::generate(&sans)?, token(), token())
            }
        };
        if let Some(dir) = &options.state_dir {
            persist::save_identity(
                dir,
                &persist::Identity {
                    tls: tls.pems.clone(),
                    admin_token: admin_token.clone(),
                    reader_token: reader_token.clone(),
                },
            )?;
        }
        let bind_error = |source| Error::Bind {
            address,
            port,
            source,
        };
        let listener = TcpListener::bind((address, port))
            .await
            .map_err(bind_error)?;
        let addr: SocketAddr = listener.local_addr().map_err(bind_error)?;
        let url = format!("https://{addr}");
        let kubeconfig = kubeconfig::render(&url, &tls.ca_pem, &admin_token, &reader_token);
        let types = resources::builtin();
        let store = Store::new(options.watch_history, options.watch_backlog);
        let restored = match &options.state_dir {
            Some(dir) => persist::restore(dir, &store)?,
            None => false,
        };
        if !restored {
            let ns = types
                .iter()
                .find(|t| t.group.is_empty() && t.plural == "namespaces")
                .expect("namespaces are built in");
            objects::seed(&mut store.lock(), ns);
        }
        let app = Arc::new(App {
            store,
            types,
            admin_token,
            reader_token,
            address: addr.to_string(),
            kubelet_client: proxy::kubelet_client(options.kubelet_client.as_ref()),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
        let controllers = controllers::spawn(app.clone(), options.controllers);
        let persistence = options.state_dir.clone().map(|dir| {
            let writer = persist::spawn_writer(app.clone(), dir.clone());
            (writer, dir, app.clone())
        });
        let task = tokio::spawn(serve(listener, acceptor, app));
        Ok(Self {
            url,
            kubeconfig,
            task,
            controllers,
            persistence,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kubeconfig with the admin context current and a read-only context beside it.
    pub fn kubeconfig_yaml(&self) -> &str {
        &self.kubeconfig
    }

    /// Writes the kubeconfig with mode 0600.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = path.as_ref();
        let err = |source| Error::Write {
            path: path.display().to_string(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        // An existing file keeps its mode on open; tighten it too.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(err)?;
        f.write_all(self.kubeconfig.as_bytes()).map_err(err)
    }

    async fn client_for(&self, context: &str) -> Result<kube::Client, Error> {
        let err = |e: &dyn std::fmt::Display| Error::Client(e.to_string());
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig).map_err(|e| err(&e))?;
        let opts = kube::config::KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        };
        let mut config = kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .map_err(|e| err(&e))?;
        // Tests want the server's answer, e.g. an eviction's 429, not minutes of retries.
        config.default_retry = false;
        kube::Client::try_from(config).map_err(|e| err(&e))
    }

    /// A client with the admin token. It does not retry 429/503/504: tests see the server's answer.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        self.client_for(ADMIN_CONTEXT).await
    }

    /// A client with the read-only token: get, list and watch only.
    pub async fn read_only_client(&self) -> Result<kube::Client, Error> {
        self.client_for(READ_ONLY_CONTEXT).await
    }
}

async fn serve(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, app: Arc<App>) {
    // Connections live in this set so that aborting the server task closes them all.
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        conns.spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| http::handle(app.clone(), req));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}
