//! A component from its configured source: packages from an apt repository, or binaries from an
//! archive.

use super::apt::AptInstall;
use super::archive::ArchiveInstall;

pub enum Install {
    Apt(AptInstall),
    Archive(ArchiveInstall),
}

impl Install {
    /// Only `which` of the component's packages (or binaries).
    pub fn retain(&mut self, which: &[&str]) {
        match self {
            Install::Apt(apt) => apt.packages.retain(|p| which.contains(&p.as_str())),
            Install::Archive(archive) => archive.retain(which),
        }
    }

    pub fn probe(&self) -> Vec<String> {
        match self {
            Install::Apt(apt) => apt.probe(),
            Install::Archive(archive) => archive.probe(),
        }
    }

    pub fn apply(&self) -> Vec<String> {
        match self {
            Install::Apt(apt) => apt.apply(),
            Install::Archive(archive) => archive.apply(),
        }
    }
}
