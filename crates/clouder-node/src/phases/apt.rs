//! Packages from an apt repository, the way every package phase installs them: the repository in
//! its own deb822 file (with its own key), a foreign suite pinned low so it never upgrades the rest
//! of the system, the packages at the wanted version, then held so that no unattended upgrade
//! moves them.

use super::Node;
use crate::shell::{file_is, quote, write_file};
use clouder_spec::AptSource;

pub struct AptInstall {
    /// Names the files clouder writes: `clouder-<component>`.
    pub component: &'static str,
    pub source: AptSource,
    pub packages: Vec<String>,
    /// A version pattern as apt and `case` both take it (`1.32.3-*`); absent: the newest.
    pub version: Option<String>,
    /// The host's own suite; a different one is foreign and gets pinned.
    pub host_codename: String,
}

const KEYRINGS: &str = "/etc/apt/keyrings";

impl AptInstall {
    /// A component's configured source, else its default; the source's packages, else the usual.
    pub fn resolve(
        component: &'static str,
        node: Node,
        configured: Option<&AptSource>,
        default: AptSource,
        usual: &[&str],
        version: Option<String>,
    ) -> Self {
        let source = configured.cloned().unwrap_or(default);
        AptInstall {
            component,
            packages: source
                .packages
                .clone()
                .unwrap_or_else(|| usual.iter().map(|p| p.to_string()).collect()),
            source,
            version,
            host_codename: node.facts.os_codename.clone(),
        }
    }

    fn list_file(&self) -> String {
        format!("/etc/apt/sources.list.d/clouder-{}.sources", self.component)
    }

    fn key_file(&self) -> Option<String> {
        self.source
            .key
            .as_ref()
            .map(|_| format!("{KEYRINGS}/clouder-{}.asc", self.component))
    }

    fn preferences_file(&self) -> String {
        format!("/etc/apt/preferences.d/clouder-{}", self.component)
    }

    fn list(&self) -> String {
        let s = &self.source;
        let mut text = format!("Types: deb\nURIs: {}\nSuites: {}\n", s.uri, s.suite);
        if !s.components.is_empty() {
            text += &format!("Components: {}\n", s.components.join(" "));
        }
        if let Some(key) = self.key_file() {
            text += &format!("Signed-By: {key}\n");
        }
        text
    }

    /// A suite other than the host's own (say, `sid` on trixie) serves only what is asked of it.
    fn foreign_suite(&self) -> Option<&str> {
        let suite = self.source.suite.as_str();
        (!suite.ends_with('/') && suite != self.host_codename).then_some(suite)
    }

    fn preferences(&self) -> Option<String> {
        self.foreign_suite()
            .map(|suite| format!("Package: *\nPin: release n={suite}\nPin-Priority: 100\n"))
    }

    /// Passes when the repository, its pin and the held packages are as wanted.
    pub fn probe(&self) -> Vec<String> {
        let mut lines = vec![file_is(&self.list_file(), &self.list())];
        if let Some(key) = self.key_file() {
            lines.push(format!("[ -s {} ]", quote(&key)));
        }
        match self.preferences() {
            Some(p) => lines.push(file_is(&self.preferences_file(), &p)),
            None => lines.push(format!("[ ! -e {} ]", quote(&self.preferences_file()))),
        }
        // One dpkg-query for all (apt-mark would load apt's whole cache); it fails on a package it
        // has never heard of. `hi` is held and installed, then the version.
        let names: Vec<String> = self.packages.iter().map(|p| quote(p)).collect();
        let version = self.version.as_deref().unwrap_or("*");
        lines.push(format!(
            "rows=$(dpkg-query -W -f='${{db:Status-Abbrev}}|${{Version}}\\n' {} 2>/dev/null)",
            names.join(" ")
        ));
        lines.push(format!(
            "while IFS= read -r row; do [[ $row == hi?\\|{version} ]]; done <<< \"$rows\""
        ));
        lines
    }

    pub fn apply(&self) -> Vec<String> {
        let mut lines = vec!["export DEBIAN_FRONTEND=noninteractive".to_string()];
        if let (Some(url), Some(file)) = (&self.source.key, self.key_file()) {
            lines.push(format!("mkdir -p {KEYRINGS}"));
            lines.push(FETCH.into());
            lines.push(format!("fetch {} {}", quote(url), quote(&file)));
            lines.push(format!("chmod 0644 {}", quote(&file)));
        }
        lines.push(write_file(&self.list_file(), "0644", &self.list()));
        match self.preferences() {
            Some(p) => lines.push(write_file(&self.preferences_file(), "0644", &p)),
            None => lines.push(format!("rm -f {}", quote(&self.preferences_file()))),
        }
        let names: Vec<String> = self.packages.iter().map(|p| quote(p)).collect();
        let wanted: Vec<String> = self
            .packages
            .iter()
            .map(|p| match &self.version {
                Some(v) => quote(&format!("{p}={v}")),
                None => quote(p),
            })
            .collect();
        let target = self
            .foreign_suite()
            .map(|s| format!(" -t {}", quote(s)))
            .unwrap_or_default();
        // No translated descriptions: a node never shows them, and they double what is fetched.
        lines.push("apt-get update -qq -o Acquire::Languages=none".into());
        lines.push(format!(
            "apt-get install -y -qq --no-install-recommends --allow-downgrades --allow-change-held-packages{target} {} >/dev/null",
            wanted.join(" ")
        ));
        // What `apt-mark hold` does, without loading apt's whole cache.
        lines.push(format!(
            "printf '%s hold\\n' {} | dpkg --set-selections",
            names.join(" ")
        ));
        lines
    }
}

/// Copies a `file:` URL (a mirror on a mounted filesystem needs no network); downloads others
/// with whichever client the host has, installing curl when it has none.
pub(super) const FETCH: &str = r#"fetch() {
  case "$1" in
    file:*) cp -- "${1#file:}" "$2"; return ;;
  esac
  if ! command -v curl >/dev/null && ! command -v wget >/dev/null; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends curl ca-certificates >/dev/null
  fi
  if command -v curl >/dev/null; then curl -fsSL --retry 3 -o "$2" "$1"; else wget -q -O "$2" "$1"; fi
}"#;

#[cfg(test)]
mod tests {
    use super::FETCH;

    #[test]
    fn a_file_url_is_copied_without_any_download_client() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("Release.key"), dir.path().join("copy.asc"));
        std::fs::write(&from, "KEY\n").unwrap();
        // Only `cp` on PATH: neither curl nor wget (nor apt-get to install them) can fetch it.
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink("/bin/cp", bin.join("cp")).unwrap();
        for url in [
            format!("file:{}", from.display()),
            format!("file://{}", from.display()),
        ] {
            let _ = std::fs::remove_file(&to);
            let out = std::process::Command::new("/bin/bash")
                .env("PATH", &bin)
                .arg("-c")
                .arg(format!("{FETCH}\nfetch \"$0\" \"$1\""))
                .arg(&url)
                .arg(&to)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{url}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(std::fs::read_to_string(&to).unwrap(), "KEY\n", "{url}");
        }
    }
}
