//! Where a restored container gets its checkpoint image: nodes pull it from a registry
//! themselves; from a local directory, S3 or Azure Blob clouder reads it back and streams it as
//! an OCI image archive over SSH into the node's containerd (`ctr images import`), and the pod
//! is pinned to that node and never pulls.

use super::node;
use crate::cli::{Global, SshFlags};
use crate::home::Home;
use anyhow::{Context as _, Result, anyhow};
use clouder_checkpoint::{archive, backend};
use clouder_node::shell::quote;
use clouder_state::CheckpointRecord;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt as _;
use kube::api::{Api, ListParams};

/// The repository imported checkpoint images are named in, `BASE:ID` (CRI resolves
/// `localhost/…` as it is, with no registry behind it).
pub const IMPORTED_BASE: &str = "localhost/clouder-checkpoint";

/// How the restored container finds its image.
#[derive(Debug, PartialEq)]
pub struct Placed {
    pub image: String,
    /// The node the pod must run on (the one the image was imported on, or `--node`).
    pub node: Option<String>,
    /// `Never` for an imported image: a pull could only fail.
    pub pull_policy: Option<&'static str>,
    /// Bytes streamed to the node.
    pub imported_bytes: Option<u64>,
}

/// Pure: the node to import on: the asked one, else the checkpoint's own when it can take
/// pods, else the first (by name) that can. `nodes` are (name, ready and schedulable).
pub fn pick_node(
    asked: Option<&str>,
    original: Option<&str>,
    nodes: &[(String, bool)],
) -> std::result::Result<String, String> {
    if let Some(asked) = asked {
        return match nodes.iter().any(|(n, _)| n == asked) {
            true => Ok(asked.to_string()),
            false => Err(format!("node {asked} is not in the cluster")),
        };
    }
    let usable = |n: &&(String, bool)| n.1;
    nodes
        .iter()
        .filter(usable)
        .find(|(n, _)| Some(n.as_str()) == original)
        .or_else(|| nodes.iter().filter(usable).min_by(|a, b| a.0.cmp(&b.0)))
        .map(|(n, _)| n.clone())
        .ok_or_else(|| "no node is Ready and schedulable to restore on (pass --node)".to_string())
}

fn usable(node: &Node) -> bool {
    let schedulable = !node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    schedulable && ready
}

/// The shell command that imports the archive on its stdin.
pub fn import_command() -> String {
    let args = archive::import_command_args(IMPORTED_BASE);
    std::iter::once("ctr".to_string())
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Makes checkpoint `r`'s image available to the restored container, on `asked` or a node
/// chosen by [`pick_node`] when the backend is not a registry.
pub async fn place(
    home: &Home,
    g: &Global,
    client: &kube::Client,
    r: &CheckpointRecord,
    asked: Option<String>,
    ssh: &SshFlags,
) -> Result<Placed> {
    let backend = backend::open(&r.backend).await?;
    if backend.pulled_by_nodes() {
        return Ok(Placed {
            image: r.reference.clone(),
            node: asked,
            pull_policy: None,
            imported_bytes: None,
        });
    }
    let nodes: Vec<Node> = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .context("listing the cluster's nodes")?
        .items;
    let names: Vec<(String, bool)> = nodes.iter().map(|n| (n.name_any(), usable(n))).collect();
    let chosen = pick_node(asked.as_deref(), r.node.as_deref(), &names).map_err(|e| {
        anyhow!(
            "checkpoint {} is in {}, which nodes cannot pull from, so it is imported on one: {e}",
            r.id,
            r.backend
        )
    })?;
    let node = nodes
        .iter()
        .find(|n| n.name_any() == chosen)
        .expect("picked among them");
    let reached = node::reach(home, &r.cluster, node, ssh, node::Purpose::Import)?;
    let session = reached.connect(home, g, ssh).await?;
    // The archive is written into one end of a pipe while SSH sends the other to ctr.
    let (mut into, from) = tokio::io::duplex(1 << 20);
    let writing = async {
        let written = archive::write(backend.as_ref(), &r.id, &mut into).await;
        drop(into);
        written
    };
    let command = import_command();
    let (written, imported) = tokio::join!(writing, session.upload(&command, from));
    session.close().await;
    let refused = |stderr: &str| {
        anyhow!(
            "importing checkpoint {} on node {chosen} (`{command}`) failed: {}",
            r.id,
            stderr.trim()
        )
    };
    // The first failure is the cause: ctr stopping early breaks the pipe the archive goes to,
    // and a backend that fails mid-read leaves ctr a cut-off archive.
    let written = match (written, imported?) {
        (Err(archive::ArchiveError::Write(_)), out) if !out.ok() => {
            return Err(refused(&out.stderr));
        }
        (Err(e), _) => {
            return Err(e).with_context(|| format!("reading {} from {}", r.id, r.backend));
        }
        (Ok(_), out) if !out.ok() => return Err(refused(&out.stderr)),
        (Ok(written), _) => written,
    };
    Ok(Placed {
        image: format!("{IMPORTED_BASE}:{}", r.id),
        node: Some(chosen),
        pull_policy: Some("Never"),
        imported_bytes: Some(written),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_import_node_is_the_asked_one_or_the_checkpoints_own_or_the_first_usable() {
        let nodes = [
            ("w-2".to_string(), true),
            ("w-0".to_string(), false),
            ("w-1".to_string(), true),
        ];
        assert_eq!(pick_node(Some("w-0"), None, &nodes), Ok("w-0".into()));
        assert_eq!(
            pick_node(Some("w-9"), None, &nodes),
            Err("node w-9 is not in the cluster".into())
        );
        assert_eq!(pick_node(None, Some("w-2"), &nodes), Ok("w-2".into()));
        assert_eq!(
            pick_node(None, Some("w-0"), &nodes),
            Ok("w-1".into()),
            "the checkpoint's node is drained: the first usable by name"
        );
        assert!(pick_node(None, None, &[("w-0".into(), false)]).is_err());
    }

    #[test]
    fn the_import_command_is_quoted_and_passes_shellcheck() {
        let command = import_command();
        assert_eq!(
            command,
            "ctr -n k8s.io images import --base-name localhost/clouder-checkpoint -"
        );
        clouder_testenv::shellcheck::assert_clean("bash", "the import command", &command);
    }
}
