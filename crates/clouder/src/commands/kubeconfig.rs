//! `get-config`: the admin kubeconfig from the first control plane with its server rewritten to
//! the cluster's public endpoint, and the `apiserver-kubelet-client` certificate that the kubelet
//! checkpoint API accepts — all 0600 under `CLOUDER_HOME/kubeadm/NAME/`.

use super::bootstrap::{connect_fleet, ssh_formation};
use super::resolve_name;
use crate::cli::{Global, SshTarget};
use crate::home::{Home, private_dir, write_private};
use crate::output::emit;
use anyhow::{Context, Result, bail};
use clouder_node::Session;
use clouder_spec::{Cluster, Role};
use serde::Serialize;
use serde_yaml_ng::Value;
use std::path::{Path, PathBuf};

const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
const KUBELET_CLIENT: [(&str, &str); 2] = [
    (
        "/etc/kubernetes/pki/apiserver-kubelet-client.crt",
        "apiserver-kubelet-client.crt",
    ),
    (
        "/etc/kubernetes/pki/apiserver-kubelet-client.key",
        "apiserver-kubelet-client.key",
    ),
];

#[derive(Serialize)]
pub struct Fetched {
    pub kubeconfig: PathBuf,
    pub server: String,
    pub kubelet_client: Vec<PathBuf>,
}

/// Points every cluster entry of a kubeconfig at `server`, keeping everything else as it was.
pub fn rewrite_server(kubeconfig: &str, server: &str) -> Result<String> {
    let mut doc: Value =
        serde_yaml_ng::from_str(kubeconfig).context("the kubeconfig is not YAML")?;
    let clusters = doc
        .get_mut("clusters")
        .and_then(Value::as_sequence_mut)
        .filter(|c| !c.is_empty())
        .context("the kubeconfig names no cluster")?;
    for entry in clusters {
        let cluster = entry
            .get_mut("cluster")
            .and_then(Value::as_mapping_mut)
            .context("a kubeconfig cluster entry has no `cluster`")?;
        cluster.insert("server".into(), server.into());
    }
    Ok(serde_yaml_ng::to_string(&doc)?)
}

async fn read(session: &Session, path: &str) -> Result<String> {
    let out = session.run(&format!("cat {path}"), None).await?;
    if !out.ok() {
        bail!(
            "{}: cannot read {path} ({}): has the cluster been set up?",
            session.host().label(),
            out.stderr.trim()
        );
    }
    Ok(out.stdout)
}

/// Fetches the files from a control plane into `dir`.
pub async fn fetch(session: &Session, endpoint: &str, dir: &Path) -> Result<Fetched> {
    let server = format!("https://{endpoint}");
    let kubeconfig = rewrite_server(&read(session, ADMIN_CONF).await?, &server)?;
    private_dir(dir)?;
    let mut fetched = Fetched {
        kubeconfig: dir.join("kubeconfig"),
        server,
        kubelet_client: Vec::new(),
    };
    write_private(&fetched.kubeconfig, kubeconfig.as_bytes())?;
    for (remote, local) in KUBELET_CLIENT {
        let path = dir.join(local);
        write_private(&path, read(session, remote).await?.as_bytes())?;
        fetched.kubelet_client.push(path);
    }
    Ok(fetched)
}

/// The public API endpoint of a cluster on the user's own hosts: its first control plane.
pub fn ssh_endpoint(cluster: &Cluster) -> Option<String> {
    cluster
        .spec
        .hosts
        .iter()
        .find(|h| h.role == Role::ControlPlane)
        .map(|h| format!("{}:{}", h.address, clouder_node::kubeadm::API_PORT))
}

pub async fn get_config(home: &Home, g: &Global, args: SshTarget) -> Result<()> {
    let name = resolve_name(home, args.name)?;
    let store = home.store()?;
    let Some(record) = clouder_state::StateStore::cluster(&store, &name)? else {
        bail!("no cluster named `{name}` in {}", home.root.display());
    };
    let cluster: Cluster =
        serde_json::from_value(record.spec).context("the recorded spec does not parse")?;
    let formation = match cluster.spec.provider {
        clouder_spec::Provider::Ssh => ssh_formation(&cluster, Some(&args.ssh)),
        _ => super::setup::cloud_formation(
            &store,
            &cluster,
            Some(&args.ssh),
            cluster.spec.ssh.address,
        )?,
    };
    let first = formation
        .first_control_plane()
        .context("the cluster has no control plane")?;
    let fleet = connect_fleet(home, g, &cluster, Some(&args.ssh))?;
    let session = fleet.connect(&first.host).await?;
    let fetched = fetch(&session, &formation.endpoint, &home.cluster_dir(&name)).await?;
    session.close().await;
    emit(g.output, &fetched, || {
        format!(
            "Kubeconfig for {name} (server {}) written to {}; kubelet client certificate beside it.\n",
            fetched.server,
            fetched.kubeconfig.display()
        )
    })
}
