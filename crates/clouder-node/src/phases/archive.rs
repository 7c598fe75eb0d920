//! Binaries from a release tarball, for sites without a package repository: the tarball is
//! downloaded (or copied from a path on the host), its SHA-256 checked before anything is
//! unpacked, its binaries installed to `/usr/local/bin`, and what the packages would have shipped
//! beside them (systemd units) written. Each installed binary gets a stamp holding the tarball's
//! digest, so a re-run with the same tarball changes nothing and a new digest installs again; one
//! stamp a binary because an upgrade moves kubeadm before the kubelet.

use super::apt::FETCH;
use crate::shell::{file_is, quote, write_file};
use clouder_spec::ArchiveSource;

/// What a component's tarball holds, and what ships beside it.
pub struct Layout {
    /// Names the stamps: `/etc/clouder/sources/<component>/<binary>.sha256`.
    pub component: &'static str,
    /// Executable files found by name anywhere in the tarball (top level, `bin/`,
    /// `kubernetes/node/bin/`…).
    pub binaries: Vec<&'static str>,
    /// What the packages ship beside their binaries.
    pub files: Vec<Shipped>,
    /// Binaries that must report the wanted version.
    pub versions: Vec<VersionCheck>,
}

pub struct ArchiveInstall {
    pub layout: Layout,
    pub source: ArchiveSource,
}

/// A file a package would have installed with `binary`.
pub struct Shipped {
    pub binary: &'static str,
    pub path: &'static str,
    pub content: String,
}

/// `binary args` must print `wanted` (a literal prefix, then anything when `exact` is false).
pub struct VersionCheck {
    pub binary: &'static str,
    pub args: &'static str,
    pub wanted: String,
    pub exact: bool,
}

pub const BIN_DIR: &str = "/usr/local/bin";
const STAMPS: &str = "/etc/clouder/sources";

impl VersionCheck {
    /// A test that the binary at `path` (a shell word) reports the wanted version.
    fn test(&self, path: &str) -> String {
        let any = if self.exact { "" } else { "*" };
        format!(
            "[[ \"$({path} {} 2>/dev/null)\" == {}{any} ]]",
            self.args,
            quote(&self.wanted)
        )
    }
}

impl Layout {
    /// Only `which` of the binaries, with what ships beside them.
    pub fn retain(&mut self, which: &[&str]) {
        self.binaries.retain(|b| which.contains(b));
        self.files.retain(|f| which.contains(&f.binary));
        self.versions.retain(|v| which.contains(&v.binary));
    }

    fn stamp(&self, binary: &str) -> String {
        format!("{STAMPS}/{}/{binary}.sha256", self.component)
    }

    /// Passes when no binary of this layout is installed from an archive.
    pub fn probe_absent(&self) -> Vec<String> {
        self.binaries
            .iter()
            .map(|b| format!("[ ! -e {} ]", quote(&self.stamp(b))))
            .collect()
    }

    /// Removes what an archive installed (only what carries its stamp): once the component comes
    /// from packages, those binaries and units would shadow the packages' own.
    pub fn remove(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for binary in &self.binaries {
            let stamp = quote(&self.stamp(binary));
            let mut paths = vec![quote(&format!("{BIN_DIR}/{binary}"))];
            paths.extend(
                self.files
                    .iter()
                    .filter(|f| f.binary == *binary)
                    .map(|f| quote(f.path)),
            );
            lines.push(format!(
                "if [ -e {stamp} ]; then rm -f {} {stamp}; fi",
                paths.join(" ")
            ));
        }
        if !self.files.is_empty() {
            lines.push("systemctl daemon-reload".into());
        }
        lines
    }
}

impl ArchiveInstall {
    fn digest(&self) -> String {
        self.source.sha256.to_ascii_lowercase()
    }

    /// Passes when every binary is installed from this very tarball, at the wanted version, with
    /// its files as shipped.
    pub fn probe(&self) -> Vec<String> {
        let digest = format!("{}\n", self.digest());
        let mut lines = Vec::new();
        for binary in &self.layout.binaries {
            lines.push(file_is(&self.layout.stamp(binary), &digest));
            lines.push(format!("[ -x {} ]", quote(&format!("{BIN_DIR}/{binary}"))));
        }
        for v in &self.layout.versions {
            lines.push(v.test(&quote(&format!("{BIN_DIR}/{}", v.binary))));
        }
        for f in &self.layout.files {
            lines.push(file_is(f.path, &f.content));
        }
        lines
    }

    /// Fetches, verifies, unpacks, checks versions, and only then installs: a wrong digest or
    /// version leaves the host as it was.
    pub fn apply(&self) -> Vec<String> {
        let (component, url) = (self.layout.component, &self.source.url);
        let from = if url.starts_with('/') {
            format!("file:{url}")
        } else {
            url.clone()
        };
        let mut lines = vec![
            "tmp=$(mktemp -d)".to_string(),
            "trap 'rm -rf -- \"$tmp\"' EXIT".into(),
            FETCH.into(),
            format!("fetch {} \"$tmp/archive\"", quote(&from)),
            "got=$(sha256sum \"$tmp/archive\" | cut -d' ' -f1)".into(),
            format!(
                "if [ \"$got\" != {digest} ]; then\n  echo {what}\"$got\"{wants} >&2\n  exit 1\nfi",
                digest = quote(&self.digest()),
                what = quote(&format!("the {component} archive {url} has sha256 ")),
                wants = quote(&format!(
                    ", the spec wants {}: nothing was installed",
                    self.digest()
                )),
            ),
            "mkdir \"$tmp/x\" \"$tmp/bin\"".into(),
            "tar -xf \"$tmp/archive\" -C \"$tmp/x\" --no-same-owner".into(),
        ];
        for binary in &self.layout.binaries {
            let b = quote(binary);
            lines.push(format!(
                "f=$(find \"$tmp/x\" -type f -perm -u+x -name {b} -print -quit)\n\
                 if [ -z \"$f\" ]; then echo {} >&2; exit 1; fi\n\
                 install -m 0755 \"$f\" \"$tmp/bin/\"{b}",
                quote(&format!(
                    "the {component} archive {url} has no {binary}: nothing was installed"
                )),
            ));
        }
        for v in &self.layout.versions {
            let path = format!("\"$tmp/bin/\"{}", quote(v.binary));
            lines.push(format!(
                "if ! {test}; then echo {what}\"$({path} {args} 2>&1 | head -n1)\"{wants} >&2; exit 1; fi",
                test = v.test(&path),
                args = v.args,
                what = quote(&format!(
                    "the {component} archive {url} has a {} that reports ",
                    v.binary
                )),
                wants = quote(&format!(
                    ", the spec wants {}{}: nothing was installed",
                    v.wanted,
                    if v.exact { "" } else { "*" }
                )),
            ));
        }
        lines.push(format!("mkdir -p {BIN_DIR}"));
        for binary in &self.layout.binaries {
            // A new file moved over the old one: a running kubelet keeps its own inode.
            let to = format!("{BIN_DIR}/{binary}");
            let new = quote(&format!("{to}.clouder-new"));
            lines.push(format!(
                "install -m 0755 \"$tmp/bin/\"{} {new} && mv -f {new} {}",
                quote(binary),
                quote(&to)
            ));
        }
        for f in &self.layout.files {
            lines.push(write_file(f.path, "0644", &f.content));
        }
        if !self.layout.files.is_empty() {
            lines.push("systemctl daemon-reload".into());
        }
        // The stamps last: a run that stopped before them installs again.
        let digest = format!("{}\n", self.digest());
        for binary in &self.layout.binaries {
            lines.push(write_file(&self.layout.stamp(binary), "0644", &digest));
        }
        lines
    }
}
