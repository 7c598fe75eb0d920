//! `kubeadm init`: certificates, testkube as kube-apiserver (a systemd unit), admin.conf, the
//! cluster's configuration, bootstrap tokens and cluster-info, then the kubelet.

use super::node::{mark_control_plane, start_kubelet};
use super::tokens::create_token;
use super::upgrade::{KUBEADM_CONFIG, KUBELET_CONFIGMAP, manifest_path, static_pod, tag};
use super::{
    ADMIN_CONF, APISERVER_UNIT, CONTROL_PLANE_ROLE, MANIFESTS, PKI, STATE_DIR, file_available,
    preflight, random_hex, upload_certs_with, wait_for,
};
use crate::standin::{Host, client, config, kubeconfig, pki};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

/// The first address of a CIDR plus one: the `kubernetes` Service's cluster IP.
fn first_service_ip(cidr: &str) -> Option<String> {
    let (ip, _) = cidr.split(',').next()?.split_once('/')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    Some(std::net::Ipv4Addr::from(u32::from(ip) + 1).to_string())
}

pub(super) async fn init(
    host: &Host,
    text: &str,
    upload_certs: bool,
    skip_token_print: bool,
) -> Result<String, String> {
    let docs = config::parse(text)?;
    let init = docs.init.unwrap_or_default();
    let cluster = docs.cluster.unwrap_or_default();
    config::validate_init(&init, &cluster)?;
    check_version(cluster.kubernetes_version.as_deref(), &host.version)?;
    let mut errors: Vec<String> = MANIFESTS
        .iter()
        .filter_map(|m| file_available(host, &format!("/etc/kubernetes/manifests/{m}.yaml")))
        .collect();
    errors.extend(file_available(host, ADMIN_CONF));
    preflight(errors)?;

    let name = init
        .node_registration
        .name
        .clone()
        .unwrap_or_else(|| host.hostname());
    let advertise = init
        .local_api_endpoint
        .advertise_address
        .clone()
        .ok_or("localAPIEndpoint.advertiseAddress: Required value: this stand-in needs the address to serve on")?;
    let port = init.local_api_endpoint.bind_port.unwrap_or(6443);
    let endpoint = cluster
        .control_plane_endpoint
        .clone()
        .unwrap_or_else(|| format!("{advertise}:{port}"));
    let (endpoint_host, _) = config::endpoint("controlPlaneEndpoint", &endpoint)?;
    let cluster_name = cluster
        .cluster_name
        .clone()
        .unwrap_or_else(|| "kubernetes".into());
    let service_subnet = cluster
        .networking
        .service_subnet
        .clone()
        .unwrap_or_else(|| "10.96.0.0/12".into());
    let domain = cluster
        .networking
        .dns_domain
        .clone()
        .unwrap_or_else(|| "cluster.local".into());

    // certs
    let mut sans = vec![
        name.clone(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{domain}"),
        advertise.clone(),
        endpoint_host,
    ];
    sans.extend(first_service_ip(&service_subnet));
    sans.extend(cluster.api_server.cert_sans.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    sans.retain(|s| seen.insert(s.clone()));
    let pki = pki::generate(sans).map_err(|e| format!("error execution phase certs: {e}"))?;
    for (file, content, mode) in [
        ("ca.crt", &pki.ca.cert, 0o644),
        ("ca.key", &pki.ca.key, 0o600),
        ("apiserver.crt", &pki.apiserver.cert, 0o644),
        ("apiserver.key", &pki.apiserver.key, 0o600),
        (
            "apiserver-kubelet-client.crt",
            &pki.kubelet_client.cert,
            0o644,
        ),
        (
            "apiserver-kubelet-client.key",
            &pki.kubelet_client.key,
            0o600,
        ),
    ] {
        host.write(&format!("{PKI}/{file}"), content, mode)?;
    }

    // control-plane: testkube as kube-apiserver, started by systemd.
    let admin_token = random_hex(16);
    let state = host.path(STATE_DIR);
    std::fs::create_dir_all(&state).map_err(|e| format!("{STATE_DIR}: {e}"))?;
    crate::persist::save_identity(
        &state,
        &crate::persist::Identity {
            tls: crate::tls::Pems {
                ca: pki.ca.cert.clone(),
                cert: pki.apiserver.cert.clone(),
                key: pki.apiserver.key.clone(),
            },
            admin_token: admin_token.clone(),
            reader_token: random_hex(16),
        },
    )
    .map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let command = [
        exe.display().to_string(),
        "serve".into(),
        format!("--dir={STATE_DIR}"),
        format!("--bind={advertise}"),
        format!("--port={port}"),
        "--controllers".into(),
        format!("--kubelet-client-certificate={PKI}/apiserver-kubelet-client.crt"),
        format!("--kubelet-client-key={PKI}/apiserver-kubelet-client.key"),
    ];
    let version = cluster
        .kubernetes_version
        .clone()
        .filter(|v| !v.starts_with("stable") && !v.starts_with("latest"))
        .unwrap_or_else(|| host.version.clone());
    host.write(
        &manifest_path("kube-apiserver"),
        &static_pod("kube-apiserver", &version, &command),
        0o600,
    )?;
    host.write(
        &format!("/etc/systemd/system/{APISERVER_UNIT}"),
        &format!(
            "[Unit]\nDescription=kube-apiserver (clouder-testkube stand-in)\nAfter=network-online.target\n\n[Service]\nExecStart={}\nRestart=always\nRestartSec=1\n\n[Install]\nWantedBy=multi-user.target\n",
            command.join(" ")
        ),
        0o644,
    )?;
    host.systemctl(&["daemon-reload"])?;
    host.systemctl(&["enable", "--now", APISERVER_UNIT])?;

    let local = kubeconfig(
        &cluster_name,
        &format!("https://{advertise}:{port}"),
        &pki.ca.cert,
        "kubernetes-admin",
        Some(&admin_token),
    );
    let admin = client(&local).await?;
    if host.systemd {
        wait_for("the API server", || {
            let admin = admin.clone();
            async move { admin.apiserver_version().await.ok() }
        })
        .await
        .map_err(|e| format!("error execution phase wait-control-plane: {e}"))?;
    }
    let server = format!("https://{endpoint}");
    host.write(
        ADMIN_CONF,
        &kubeconfig(
            &cluster_name,
            &server,
            &pki.ca.cert,
            "kubernetes-admin",
            Some(&admin_token),
        ),
        0o600,
    )?;

    // upload-config, bootstrap-token
    let mut recorded = cluster.clone();
    recorded.kubernetes_version = Some(tag(&version));
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": KUBEADM_CONFIG, "namespace": "kube-system"},
        "data": {"ClusterConfiguration": serde_yaml_ng::to_string(&recorded).expect("YAML")}});
    apply_configmap(&admin, "kube-system", cm).await?;
    let kubelet = docs.kubelet.clone().unwrap_or_else(
        || json!({"apiVersion": config::KUBELET_API, "kind": "KubeletConfiguration"}),
    );
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": KUBELET_CONFIGMAP, "namespace": "kube-system"},
        "data": {"kubelet": serde_yaml_ng::to_string(&kubelet).expect("YAML")}});
    apply_configmap(&admin, "kube-system", cm).await?;
    for t in &init.bootstrap_tokens {
        create_token(&admin, t)
            .await
            .map_err(|e| format!("error execution phase bootstrap-token: {e}"))?;
    }
    publish_cluster_info(&admin, &cluster_name, &server, &pki.ca.cert).await?;

    // kubelet-start, as the node's kubelet would be (with the admin's token: testkube has no
    // client certificates).
    start_kubelet(
        host,
        &name,
        &init.node_registration,
        docs.kubelet.as_ref(),
        &kubeconfig(
            &cluster_name,
            &server,
            &pki.ca.cert,
            &format!("system:node:{name}"),
            Some(&admin_token),
        ),
    )?;
    let taints = init.node_registration.taints.clone().unwrap_or_else(|| {
        vec![config::Taint {
            key: CONTROL_PLANE_ROLE.into(),
            value: None,
            effect: "NoSchedule".into(),
            time_added: None,
        }]
    });
    if host.systemd {
        mark_control_plane(&admin, &name, &taints).await?;
    }
    let mut out = String::new();
    if upload_certs {
        let key = upload_certs_with(host, &admin, init.certificate_key.clone()).await?;
        out += &format!("[upload-certs] Using certificate key:\n{key}\n");
    }
    out += "\nYour Kubernetes control-plane has initialized successfully!\n";
    if !skip_token_print && let Some(t) = init.bootstrap_tokens.first() {
        out += &format!(
            "\nkubeadm join {endpoint} --token {} --discovery-token-ca-cert-hash {}\n",
            t.token,
            pki::spki_hash(&pki.ca.cert)?
        );
    }
    Ok(out)
}

/// kubeadm refuses a control plane newer than itself by a minor version or more.
fn check_version(wanted: Option<&str>, ours: &str) -> Result<(), String> {
    let Some(wanted) = wanted.filter(|w| !w.starts_with("stable") && !w.starts_with("latest"))
    else {
        return Ok(());
    };
    let minor = |v: &str| {
        v.trim_start_matches('v')
            .split('.')
            .nth(1)
            .and_then(|m| m.parse::<u32>().ok())
    };
    match (minor(wanted), minor(ours)) {
        (Some(w), Some(o)) if w > o => Err(format!(
            "this version of kubeadm only supports deploying clusters with the control plane version >= {}. Current version: {wanted}: the specified version to deploy {wanted:?} is at least one minor release higher than the kubeadm minor release ({w} > {o}). Such deployment is not supported",
            ours
        )),
        (None, _) => Err(format!(
            "kubernetesVersion: Invalid value: {wanted:?}: could not parse version"
        )),
        _ => Ok(()),
    }
}

async fn apply_configmap(admin: &kube::Client, ns: &str, cm: Value) -> Result<(), String> {
    let api: Api<ConfigMap> = Api::namespaced(admin.clone(), ns);
    let name = cm["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    api.patch(
        &name,
        &PatchParams::apply("kubeadm").force(),
        &Patch::Apply(&cm),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("creating ConfigMap {ns}/{name}: {e}"))
}

/// The public `kube-public/cluster-info` ConfigMap joining nodes discover the cluster by.
pub async fn publish_cluster_info(
    admin: &kube::Client,
    cluster: &str,
    server: &str,
    ca_pem: &str,
) -> Result<(), String> {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": kubeconfig(cluster, server, ca_pem, "", None)}});
    apply_configmap(admin, "kube-public", cm).await
}
