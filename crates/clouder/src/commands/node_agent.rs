//! `clouder node-agent attach|detach`: the node agent's operations, run by hand on a node (as
//! root). See `clouder_userdata::agent` for what counts as a container process.

use super::userdata_error;
use crate::cli::{AgentPolicyFlags, AgentRunArgs, NodeAgent};
use anyhow::Result;
use clouder_userdata::agent::{Policy, attach, detach};
use clouder_userdata::storage::parse_size;

pub async fn run(command: NodeAgent) -> Result<()> {
    match command {
        NodeAgent::Run(a) => return run_loop(a).await,
        NodeAgent::Attach(a) => {
            let mut policy = policy(&a.policy);
            policy.quota_bytes = a
                .quota
                .as_deref()
                .map(parse_size)
                .transpose()
                .map_err(userdata_error)?;
            attach(&policy, a.policy.pid, &a.source, &a.policy.target).map_err(userdata_error)?;
            eprintln!(
                "attached {} at {} in process {}",
                a.source.display(),
                a.policy.target.display(),
                a.policy.pid
            );
        }
        NodeAgent::Detach(a) => {
            detach(&policy(&a.policy), a.policy.pid, &a.policy.target).map_err(userdata_error)?;
            eprintln!(
                "detached {} in process {}",
                a.policy.target.display(),
                a.policy.pid
            );
        }
    }
    Ok(())
}

fn policy(flags: &AgentPolicyFlags) -> Policy {
    Policy {
        cgroup_marker: (!flags.cgroup_marker.is_empty()).then(|| flags.cgroup_marker.clone()),
        ..Policy::new(&flags.storage.storage_root, &flags.mount_root)
    }
}

/// Watches this node's pods (and the users' Secrets) until stopped.
async fn run_loop(a: AgentRunArgs) -> Result<()> {
    let client = match &a.kubeconfig {
        Some(path) => clouder_kube::connect(path).await?,
        None => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            kube::Client::try_default().await?
        }
    };
    let cri = clouder_checkpoint::cri::Cri::connect(&a.cri_socket).await?;
    let pids = clouder_userdata::attacher::CriPids(cri);
    let policy = Policy {
        // Only the mount path itself (and below) may be a target.
        cgroup_marker: Some("kubepods".into()),
        proc: a.proc.clone(),
        ..Policy::new(&a.storage.storage_root, &a.mount_path)
    };
    clouder_userdata::attacher::Agent::new(client, &a.node, policy, &a.mount_path, &pids)
        .with_secrets(&a.secrets_root)
        .run()
        .await;
    Ok(())
}
