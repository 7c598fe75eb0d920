//! A component from its configured source: packages from an apt repository, or binaries from an
//! archive.

use super::apt::AptInstall;
use super::archive::{ArchiveInstall, Layout};

pub enum Install {
    /// Packages, and the layout an archive would have installed instead (removed if it was).
    Apt(AptInstall, Layout),
    Archive(ArchiveInstall),
}

impl Install {
    /// Only `which` of the component's packages (or binaries).
    pub fn retain(&mut self, which: &[&str]) {
        match self {
            Install::Apt(apt, layout) => {
                apt.packages.retain(|p| which.contains(&p.as_str()));
                layout.retain(which);
            }
            Install::Archive(archive) => archive.layout.retain(which),
        }
    }

    pub fn probe(&self) -> Vec<String> {
        match self {
            Install::Apt(apt, layout) => [layout.probe_absent(), apt.probe()].concat(),
            Install::Archive(archive) => archive.probe(),
        }
    }

    pub fn apply(&self) -> Vec<String> {
        match self {
            Install::Apt(apt, layout) => [layout.remove(), apt.apply()].concat(),
            Install::Archive(archive) => archive.apply(),
        }
    }
}
