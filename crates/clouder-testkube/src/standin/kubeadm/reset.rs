//! `kubeadm reset -f`: what init and join wrote goes, their units stop.

use super::{ADMIN_CONF, APISERVER_UNIT, FLAGS_ENV, KUBELET_CONF, KUBELET_CONFIG, PKI, STATE_DIR};
use crate::standin::Host;

pub(super) fn reset(host: &Host, force: bool) -> Result<String, String> {
    if !force {
        return Err("error execution phase preflight: won't proceed; the user didn't answer (Y|y) in order to continue (use --force)".into());
    }
    for unit in ["kubelet", APISERVER_UNIT] {
        let _ = host.systemctl(&["stop", unit]);
    }
    let _ = host.systemctl(&["disable", APISERVER_UNIT]);
    let unit = format!("/etc/systemd/system/{APISERVER_UNIT}");
    host.remove(&[
        &unit,
        "/etc/kubernetes/manifests",
        PKI,
        ADMIN_CONF,
        "/etc/kubernetes/super-admin.conf",
        KUBELET_CONF,
        "/etc/kubernetes/bootstrap-kubelet.conf",
        FLAGS_ENV,
        KUBELET_CONFIG,
        STATE_DIR,
    ]);
    let _ = host.systemctl(&["daemon-reload"]);
    Ok("[reset] Stopping the kubelet service\n[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]\n[reset] Deleting files: [/etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf]\n".into())
}
