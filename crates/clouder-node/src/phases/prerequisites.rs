//! Kernel and system prerequisites of kubeadm: swap off for good, the `overlay` and
//! `br_netfilter` modules, bridged traffic through iptables and IP forwarding.

use super::{Node, Phase};
use crate::shell::{script, write_file};

pub struct Prerequisites;

const MODULES_FILE: &str = "/etc/modules-load.d/clouder-kubernetes.conf";
const MODULES: &str = "overlay\nbr_netfilter\n";
const SYSCTL_FILE: &str = "/etc/sysctl.d/90-clouder-kubernetes.conf";
const SYSCTLS: [(&str, &str); 3] = [
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.bridge.bridge-nf-call-ip6tables", "1"),
    ("net.ipv4.ip_forward", "1"),
];

fn sysctl_file() -> String {
    SYSCTLS
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect()
}

/// A module counts as present when the kernel has it, built in or loaded.
const MODULE_PRESENT: &str = r#"module_present() {
  case "$1" in
    br_netfilter) [ -d /proc/sys/net/bridge ] ;;
    *) [ -d "/sys/module/$1" ] ;;
  esac
}"#;

impl Phase for Prerequisites {
    fn title(&self) -> &'static str {
        "prerequisites"
    }

    fn probe(&self, _: Node) -> String {
        let mut lines = vec![
            MODULE_PRESENT.to_string(),
            "[ -z \"$(swapon --noheadings --show 2>/dev/null)\" ]".into(),
            "if grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab 2>/dev/null; then exit 1; fi".into(),
            format!("[ \"$(cat {MODULES_FILE} 2>/dev/null)\" = \"$(printf '{}')\" ]", MODULES.replace('\n', "\\n")),
            "for m in overlay br_netfilter; do module_present \"$m\"; done".into(),
            format!("[ \"$(cat {SYSCTL_FILE} 2>/dev/null)\" = \"$(printf '{}')\" ]", sysctl_file().replace('\n', "\\n")),
        ];
        for (key, value) in SYSCTLS {
            lines.push(format!("[ \"$(sysctl -n {key})\" = {value} ]"));
        }
        script(lines)
    }

    fn apply(&self, _: Node) -> String {
        script([
            MODULE_PRESENT.to_string(),
            "if command -v swapoff >/dev/null; then swapoff -a; fi".into(),
            // Comment out swap entries so swap stays off after a reboot.
            "if [ -f /etc/fstab ]; then sed -i -E 's@^([^#].*[[:space:]]swap[[:space:]].*)$@# \\1  # disabled by clouder@' /etc/fstab; fi".into(),
            write_file(MODULES_FILE, "0644", MODULES),
            "for m in overlay br_netfilter; do module_present \"$m\" || modprobe \"$m\" || { echo \"kernel module $m is not available\" >&2; exit 1; }; done".into(),
            write_file(SYSCTL_FILE, "0644", &sysctl_file()),
            format!("sysctl -q -p {SYSCTL_FILE}"),
        ])
    }
}
