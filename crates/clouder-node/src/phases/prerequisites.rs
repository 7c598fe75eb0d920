//! Kernel and system prerequisites of kubeadm: swap off for good, the `overlay` and
//! `br_netfilter` modules, bridged traffic through iptables and IP forwarding, and a clock kept
//! in sync (certificates and etcd leases go wrong on a drifting one).

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

/// The clock is synced by chrony or systemd-timesyncd (either running is enough: `timedatectl
/// set-ntp false` stops timesyncd); a container shares its host's clock.
const TIME_SYNCED: &str = r#"time_synced() {
  systemd-detect-virt --quiet --container 2>/dev/null || systemctl is-active --quiet chrony chronyd systemd-timesyncd
}"#;

/// A kernel parameter's value, read from /proc/sys without a process of its own.
const SYSCTL_IS: &str = r#"sysctl_is() {
  local value
  read -r value < "/proc/sys/${1//.//}" && [ "$value" = "$2" ]
}"#;

/// chrony when the host has it, else systemd-timesyncd (installed when missing).
const SYNC_TIME: &str = r#"if ! time_synced; then
  if command -v chronyc >/dev/null; then
    systemctl enable --now chrony 2>/dev/null || systemctl enable --now chronyd
  else
    if ! systemctl cat systemd-timesyncd >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd-timesyncd >/dev/null
    fi
    systemctl enable --now systemd-timesyncd
    timedatectl set-ntp true
  fi
fi"#;

impl Phase for Prerequisites {
    fn title(&self) -> &'static str {
        "prerequisites"
    }

    fn probe(&self, _: Node) -> String {
        let mut lines = vec![
            MODULE_PRESENT.to_string(),
            SYSCTL_IS.into(),
            // /proc/swaps has its header line only.
            "mapfile -t swaps < /proc/swaps".into(),
            "[ \"${#swaps[@]}\" -le 1 ]".into(),
            "if grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab 2>/dev/null; then exit 1; fi".into(),
            format!("[ \"$(cat {MODULES_FILE} 2>/dev/null)\" = \"$(printf '{}')\" ]", MODULES.replace('\n', "\\n")),
            "for m in overlay br_netfilter; do module_present \"$m\"; done".into(),
            format!("[ \"$(cat {SYSCTL_FILE} 2>/dev/null)\" = \"$(printf '{}')\" ]", sysctl_file().replace('\n', "\\n")),
        ];
        for (key, value) in SYSCTLS {
            lines.push(format!("sysctl_is {key} {value}"));
        }
        lines.push(TIME_SYNCED.into());
        lines.push("time_synced".into());
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
            TIME_SYNCED.into(),
            SYNC_TIME.into(),
        ])
    }
}
