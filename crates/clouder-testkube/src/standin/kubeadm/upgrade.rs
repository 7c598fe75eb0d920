//! `kubeadm upgrade apply VERSION` and `kubeadm upgrade node`: the control plane's static-pod
//! manifests moved to the new image tag, the cluster's recorded version with them, and the
//! kubelet's configuration refreshed from the cluster's — after kubeadm's version-skew policy.

use super::{ADMIN_CONF, APISERVER_UNIT, KUBELET_CONF, KUBELET_CONFIG, MANIFESTS, wait_for};
use crate::standin::{Host, client};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

/// The ConfigMaps kubeadm keeps the cluster's and the kubelet's configuration in.
pub(super) const KUBEADM_CONFIG: &str = "kubeadm-config";
pub(super) const KUBELET_CONFIGMAP: &str = "kubelet-config";
/// The components whose image follows the Kubernetes version (etcd has its own).
const VERSIONED: [&str; 3] = [MANIFESTS[0], MANIFESTS[1], MANIFESTS[2]];

pub(super) fn manifest_path(component: &str) -> String {
    format!("/etc/kubernetes/manifests/{component}.yaml")
}

/// `1.34.1` or `v1.34.1` → `v1.34.1`.
pub(super) fn tag(version: &str) -> String {
    format!("v{}", version.trim_start_matches('v'))
}

/// A control-plane component's static Pod, as kubeadm writes it.
pub(super) fn static_pod(component: &str, version: &str, command: &[String]) -> String {
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": component, "namespace": "kube-system", "labels": {"component": component, "tier": "control-plane"}},
        "spec": {"hostNetwork": true, "containers": [{
            "name": component,
            "image": format!("registry.k8s.io/{component}:{}", tag(version)),
            "command": command,
        }]},
    });
    serde_yaml_ng::to_string(&manifest).expect("YAML")
}

/// (major, minor, patch) of `v1.34.1`.
fn semver(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.trim_start_matches('v').split('.').map(|p| p.parse().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().unwrap_or(Some(0))?,
    ))
}

/// kubeadm's version-skew policy for `upgrade apply`: (fatal errors, errors `--force` bypasses).
fn skew(cluster: &str, kubeadm: &str, new: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let parse = |v: &str| {
        semver(v).ok_or_else(|| format!("couldn't parse version {v:?}: illegal version string"))
    };
    let (c, k, n) = (parse(cluster)?, parse(kubeadm)?, parse(new)?);
    let (mut fatal, mut skippable) = (Vec::new(), Vec::new());
    if n.1 > c.1 + 1 {
        fatal.push(format!("Specified version to upgrade to {new:?} is too high; kubeadm can upgrade only 1 minor version at a time"));
    }
    if n.1 + 1 < c.1 {
        fatal.push(format!("Specified version to downgrade to {new:?} is too low; kubeadm can downgrade only 1 minor version at a time"));
    }
    if k < n {
        if n.1 > k.1 {
            fatal.push(format!("Specified version to upgrade to {new:?} is at least one minor release higher than the kubeadm minor release ({} > {}). Such an upgrade is not supported", n.1, k.1));
        } else {
            skippable.push(format!("Specified version to upgrade to {new:?} is higher than the kubeadm version {kubeadm:?}. Upgrade kubeadm first using the tool you used to install kubeadm"));
        }
    }
    if k.0 > n.0 || k.1 > n.1 {
        skippable.push(format!(
            "Kubeadm version {kubeadm} can only be used to upgrade to Kubernetes version {}.{}",
            k.0, k.1
        ));
    }
    Ok((fatal, skippable))
}

fn enforce(fatal: &[String], skippable: &[String], force: bool) -> Result<(), String> {
    let list = |errors: &[String]| {
        errors
            .iter()
            .map(|e| format!("\t- {e}\n"))
            .collect::<String>()
    };
    if !fatal.is_empty() {
        return Err(format!(
            "[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\n{}\nPlease fix the misalignments highlighted above and try upgrading again",
            list(fatal)
        ));
    }
    if !skippable.is_empty() && !force {
        return Err(format!(
            "[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n{}\nCan be bypassed if you pass the --force flag",
            list(skippable)
        ));
    }
    Ok(())
}

/// The cluster's configuration as `upload-config` stored it (YAML), and its kubernetesVersion.
pub(super) async fn cluster_configuration(
    admin: &kube::Client,
) -> Result<(serde_yaml_ng::Value, String), String> {
    let cm = Api::<ConfigMap>::namespaced(admin.clone(), "kube-system")
        .get(KUBEADM_CONFIG)
        .await
        .map_err(|e| format!("unable to fetch the kubeadm-config ConfigMap: {e}"))?;
    let text = cm
        .data
        .and_then(|d| d.get("ClusterConfiguration").cloned())
        .ok_or("unexpected error when reading kubeadm-config ConfigMap: ClusterConfiguration key value pair missing")?;
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?;
    let version = config["kubernetesVersion"]
        .as_str()
        .ok_or("the kubeadm-config ConfigMap has no kubernetesVersion")?
        .to_string();
    Ok((config, version))
}

/// Moves the image of each versioned manifest on this host to `version`; whether any changed.
fn retag(host: &Host, version: &str) -> Result<bool, String> {
    let mut changed = false;
    for component in VERSIONED {
        let path = manifest_path(component);
        if !host.exists(&path) {
            continue;
        }
        let mut pod: Value =
            serde_yaml_ng::from_str(&host.read(&path)?).map_err(|e| format!("{path}: {e}"))?;
        let image = format!("registry.k8s.io/{component}:{}", tag(version));
        for c in pod["spec"]["containers"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if c["image"] != image.as_str() {
                c["image"] = json!(image);
                changed = true;
            }
        }
        host.write(&path, &serde_yaml_ng::to_string(&pod).expect("YAML"), 0o600)?;
    }
    Ok(changed)
}

/// The kubelet's configuration on this host, from the cluster's `kubelet-config` ConfigMap.
async fn write_kubelet_config(host: &Host, client: &kube::Client) -> Result<(), String> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
        .get(KUBELET_CONFIGMAP)
        .await
        .map_err(|e| format!("error execution phase kubelet-config: unable to download the kubelet configuration from ConfigMap \"kubelet-config\": {e}"))?;
    let text = cm.data.and_then(|d| d.get("kubelet").cloned()).ok_or(
        "error execution phase kubelet-config: the kubelet-config ConfigMap has no kubelet key",
    )?;
    host.write(KUBELET_CONFIG, &text, 0o644)
}

/// Restarts the API server (a unit here, a static Pod for real) when this host runs it.
async fn restart_apiserver(host: &Host, admin: &kube::Client) -> Result<(), String> {
    if !host.systemd || !host.exists(&format!("/etc/systemd/system/{APISERVER_UNIT}")) {
        return Ok(());
    }
    host.systemctl(&["restart", APISERVER_UNIT])?;
    wait_for("the upgraded API server", || {
        let admin = admin.clone();
        async move { admin.apiserver_version().await.ok() }
    })
    .await
    .map(|_| ())
    .map_err(|e| format!("error execution phase control-plane: {e}"))
}

pub(super) async fn apply(
    host: &Host,
    version: Option<String>,
    yes: bool,
    force: bool,
) -> Result<String, String> {
    let new =
        tag(&version
            .ok_or("missing one or more required arguments. Required arguments: [version]")?);
    let admin_conf = host.read(ADMIN_CONF).map_err(|_| {
        format!("couldn't create a Kubernetes client from file {ADMIN_CONF:?}: failed to load admin kubeconfig: open {ADMIN_CONF}: no such file or directory")
    })?;
    if !host.exists(&manifest_path("kube-apiserver")) {
        return Err(format!(
            "[upgrade/apply] FATAL: 'kubeadm upgrade apply' must be run on a control-plane node: {} does not exist",
            manifest_path("kube-apiserver")
        ));
    }
    let admin = client(&admin_conf).await?;
    let (mut config, current) = cluster_configuration(&admin).await?;
    let (fatal, skippable) = skew(&current, &host.version, &new)?;
    enforce(&fatal, &skippable, force)?;
    if !yes && !force {
        eprint!("[upgrade] Are you sure you want to proceed? [y/N]: ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y") {
            return Err("won't proceed; the user didn't answer (Y|y) in order to continue".into());
        }
    }
    if retag(host, &new)? {
        restart_apiserver(host, &admin).await?;
    }
    config["kubernetesVersion"] = serde_yaml_ng::Value::String(new.clone());
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": KUBEADM_CONFIG, "namespace": "kube-system"},
        "data": {"ClusterConfiguration": serde_yaml_ng::to_string(&config).expect("YAML")}});
    Api::<ConfigMap>::namespaced(admin.clone(), "kube-system")
        .patch(
            KUBEADM_CONFIG,
            &PatchParams::apply("kubeadm").force(),
            &Patch::Apply(&cm),
        )
        .await
        .map_err(|e| format!("error execution phase upload-config/kubeadm: {e}"))?;
    write_kubelet_config(host, &admin).await?;
    Ok(format!(
        "[upgrade/version] You have chosen to change the cluster version to {new:?}\n[upgrade/successful] SUCCESS! Your cluster was upgraded to {new:?}. Enjoy!\n\n[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your kubelets if you haven't already done so.\n"
    ))
}

pub(super) async fn node(host: &Host) -> Result<String, String> {
    let conf = [ADMIN_CONF, KUBELET_CONF]
        .into_iter()
        .find(|p| host.exists(p))
        .ok_or_else(|| format!("couldn't create a Kubernetes client from file {KUBELET_CONF:?}: failed to load admin kubeconfig: open {KUBELET_CONF}: no such file or directory"))?;
    let cluster = client(&host.read(conf)?).await?;
    if host.exists(&manifest_path("kube-apiserver")) {
        let (_, version) = cluster_configuration(&cluster).await?;
        if retag(host, &version)? {
            restart_apiserver(host, &cluster).await?;
        }
        write_kubelet_config(host, &cluster).await?;
        return Ok("[upgrade] The control plane instance for this node was successfully upgraded!\n[upgrade] The configuration for this node was successfully upgraded!\n[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.\n".into());
    }
    write_kubelet_config(host, &cluster).await?;
    Ok("[upgrade] Skipping phase. Not a control plane node.\n[upgrade] The configuration for this node was successfully upgraded!\n[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.\n".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeadms_skew_policy() {
        let ok = skew("v1.33.2", "v1.34.1", "v1.34.1").unwrap();
        assert_eq!(ok, (vec![], vec![]));
        let (fatal, _) = skew("v1.33.2", "v1.35.0", "v1.35.0").unwrap();
        assert_eq!(
            fatal,
            [
                "Specified version to upgrade to \"v1.35.0\" is too high; kubeadm can upgrade only 1 minor version at a time"
            ]
        );
        let (fatal, _) = skew("v1.34.1", "v1.34.1", "v1.35.0").unwrap();
        assert!(
            fatal[0].contains(
                "at least one minor release higher than the kubeadm minor release (35 > 34)"
            ),
            "{fatal:?}"
        );
        let (fatal, skippable) = skew("v1.34.1", "v1.34.1", "v1.34.2").unwrap();
        assert!(fatal.is_empty());
        assert!(
            skippable[0].contains("Upgrade kubeadm first"),
            "{skippable:?}"
        );
        let back = skew("v1.34.1", "v1.33.2", "v1.33.2").unwrap();
        assert_eq!(back, (vec![], vec![]), "one minor back is allowed");
        let (fatal, skippable) = skew("v1.34.1", "v1.34.1", "v1.33.2").unwrap();
        assert!(fatal.is_empty(), "{fatal:?}");
        assert!(skippable[0].contains("can only be used to upgrade to Kubernetes version 1.34"));
        let (fatal, _) = skew("v1.35.0", "v1.33.2", "v1.33.2").unwrap();
        assert!(fatal[0].contains("is too low"), "{fatal:?}");
        assert!(skew("v1.x", "v1.34.1", "v1.34.1").is_err());
    }

    #[test]
    fn the_image_line_ends_with_the_tag_as_clouders_probe_greps_it() {
        let pod = static_pod("kube-apiserver", "1.33.2", &["kube-apiserver".into()]);
        assert!(
            pod.lines().any(|l| l.trim_start().trim_start_matches("- ")
                == "image: registry.k8s.io/kube-apiserver:v1.33.2"),
            "{pod}"
        );
    }
}
