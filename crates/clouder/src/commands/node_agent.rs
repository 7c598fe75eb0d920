//! `clouder node-agent attach|detach`: the node agent's operations, run by hand on a node (as
//! root). See `clouder_userdata::agent` for what counts as a container process.

use super::userdata_error;
use crate::cli::{AgentPolicyFlags, NodeAgent};
use anyhow::Result;
use clouder_userdata::agent::{Policy, attach, detach};
use clouder_userdata::storage::parse_size;

pub fn run(command: NodeAgent) -> Result<()> {
    match command {
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
        storage_root: flags.storage_root.clone(),
        mount_root: flags.mount_root.clone(),
        cgroup_marker: (!flags.cgroup_marker.is_empty()).then(|| flags.cgroup_marker.clone()),
        quota_bytes: None,
    }
}
