//! CRIU 4.x, which runc drives for checkpoint/restore, with the node-wide options runc passes it
//! (runc reads `/etc/criu/runc.conf`; CRIU's own default files are not read over RPC).

use super::apt::AptInstall;
use super::{Node, Phase};
use crate::shell::{file_is, script, write_file};
use clouder_spec::AptSource;

pub struct Criu;

const RUNC_CONF: &str = "/etc/criu/runc.conf";
/// Established TCP connections are dumped and restored instead of failing the checkpoint.
const OPTIONS: &str = "tcp-established\n";

/// The CRIU project's packages on the openSUSE Build Service (distributions ship 3.x or none).
fn default_source(node: Node) -> AptSource {
    let f = node.facts;
    let distro = match f.os_id.as_str() {
        "ubuntu" => format!("xUbuntu_{}", f.os_version),
        _ => format!("Debian_{}", f.os_version),
    };
    let base = format!("https://download.opensuse.org/repositories/devel:/tools:/criu/{distro}/");
    AptSource {
        key: Some(format!("{base}Release.key")),
        uri: base,
        suite: "/".into(),
        components: Vec::new(),
        packages: None,
    }
}

fn install(node: Node) -> AptInstall {
    let configured = node.plan.sources.criu.as_ref().and_then(|s| s.apt.as_ref());
    let default = default_source(node);
    AptInstall::resolve("criu", node, configured, default, &["criu"], None)
}

/// `criu check` probes the kernel for a while; its pass is kept for this boot and this binary.
const CHECKED: &str = "/var/lib/clouder/criu-checked";
const IDENTITY: &str = r#"criu_identity() { echo "$(cat /proc/sys/kernel/random/boot_id) $(stat -Lc '%d:%i:%s:%Y' "$(command -v criu)")"; }"#;

const VERSION_4: &str = "[[ \"$(criu --version | awk '/^Version/ {print $2}')\" == [4-9].* ]]";

impl Phase for Criu {
    fn title(&self) -> &'static str {
        "criu"
    }

    fn probe(&self, node: Node) -> String {
        let mut lines = install(node).probe();
        lines.extend([
            file_is(RUNC_CONF, OPTIONS),
            IDENTITY.into(),
            format!("[ \"$(cat {CHECKED} 2>/dev/null)\" = \"$(criu_identity)\" ]"),
        ]);
        script(lines)
    }

    fn apply(&self, node: Node) -> String {
        let mut lines = install(node).apply();
        lines.extend([
            format!("{VERSION_4} || {{ echo \"CRIU $(criu --version | awk '/^Version/ {{print $2}}') is installed; 4.x is needed: check the criu source\" >&2; exit 1; }}"),
            write_file(RUNC_CONF, "0644", OPTIONS),
            // `criu check` names what the kernel lacks; the phase fails with its words.
            "criu check".into(),
            IDENTITY.into(),
            format!("mkdir -p \"$(dirname {CHECKED})\" && criu_identity > {CHECKED}"),
        ]);
        script(lines)
    }
}
