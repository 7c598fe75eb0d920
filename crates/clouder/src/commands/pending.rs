//! Documented commands whose behaviour lands with later work: they resolve their cluster like any
//! command, then say plainly what is not available yet and exit 1 — never a silent no-op.

use super::resolve_name;
use crate::home::Home;
use anyhow::{Result, bail};

pub fn not_yet(home: &Home, name: Option<String>, command: &str, lands_with: &str) -> Result<()> {
    let name = resolve_name(home, name)?;
    bail!(
        "`clouder kubeadm {command} {name}` is not available yet: it needs {lands_with}, which this build does not have"
    )
}
