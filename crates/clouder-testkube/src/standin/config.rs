//! kubeadm's configuration files (`kubeadm.k8s.io/v1beta4`), decoded strictly as kubeadm does:
//! an unknown kind or field is an error, and values are validated before anything is changed.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;

pub const KUBEADM_API: &str = "kubeadm.k8s.io/v1beta4";
pub const KUBELET_API: &str = "kubelet.config.k8s.io/v1beta1";
const PROXY_API: &str = "kubeproxy.config.k8s.io/v1alpha1";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Arg {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
    pub effect: String,
    #[serde(default)]
    pub time_added: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct NodeRegistration {
    pub name: Option<String>,
    pub cri_socket: Option<String>,
    /// Absent: kubeadm's default (control planes tainted); empty: no taints.
    pub taints: Option<Vec<Taint>>,
    pub kubelet_extra_args: Vec<Arg>,
    pub ignore_preflight_errors: Vec<String>,
    pub image_pull_policy: Option<String>,
    pub image_pull_serial: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Endpoint {
    pub advertise_address: Option<String>,
    pub bind_port: Option<u16>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct BootstrapToken {
    pub token: String,
    pub description: Option<String>,
    pub ttl: Option<String>,
    pub expires: Option<String>,
    pub usages: Vec<String>,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct InitConfiguration {
    pub api_version: String,
    pub kind: String,
    pub bootstrap_tokens: Vec<BootstrapToken>,
    pub node_registration: NodeRegistration,
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: Endpoint,
    pub certificate_key: Option<String>,
    pub skip_phases: Vec<String>,
    pub patches: Option<Value>,
    pub timeouts: Option<Value>,
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Networking {
    pub pod_subnet: Option<String>,
    pub service_subnet: Option<String>,
    pub dns_domain: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Component {
    #[serde(rename = "certSANs")]
    pub cert_sans: Vec<String>,
    pub extra_args: Vec<Arg>,
    pub extra_volumes: Vec<Value>,
    pub extra_envs: Vec<Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ClusterConfiguration {
    pub api_version: String,
    pub kind: String,
    pub cluster_name: Option<String>,
    pub kubernetes_version: Option<String>,
    pub control_plane_endpoint: Option<String>,
    pub networking: Networking,
    pub api_server: Component,
    pub controller_manager: Component,
    pub scheduler: Component,
    pub etcd: Option<Value>,
    pub dns: Option<Value>,
    pub proxy: Option<Value>,
    pub certificates_dir: Option<String>,
    pub image_repository: Option<String>,
    pub feature_gates: Option<std::collections::BTreeMap<String, bool>>,
    pub encryption_algorithm: Option<String>,
    pub certificate_validity_period: Option<String>,
    pub ca_certificate_validity_period: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TokenDiscovery {
    pub token: String,
    pub api_server_endpoint: Option<String>,
    pub ca_cert_hashes: Vec<String>,
    pub unsafe_skip_ca_verification: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Discovery {
    pub bootstrap_token: Option<TokenDiscovery>,
    pub file: Option<Value>,
    pub tls_bootstrap_token: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct JoinControlPlane {
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: Endpoint,
    pub certificate_key: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct JoinConfiguration {
    pub api_version: String,
    pub kind: String,
    pub ca_cert_path: Option<String>,
    pub discovery: Discovery,
    pub node_registration: NodeRegistration,
    pub control_plane: Option<JoinControlPlane>,
    pub skip_phases: Vec<String>,
    pub patches: Option<Value>,
    pub timeouts: Option<Value>,
    pub dry_run: Option<bool>,
}

/// The documents of one `--config` file.
#[derive(Debug, Default)]
pub struct Documents {
    pub init: Option<InitConfiguration>,
    pub cluster: Option<ClusterConfiguration>,
    pub join: Option<JoinConfiguration>,
    /// Passed on to the kubelet, which validates it itself.
    pub kubelet: Option<Value>,
}

/// serde's "unknown field `x`, expected …" as kubeadm's strict decoder says it.
fn strict(kind: &str, e: serde_yaml_ng::Error) -> String {
    let text = e.to_string();
    match text
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'))
    {
        Some((field, _)) => format!("{kind}: strict decoding error: unknown field \"{field}\""),
        None => format!("{kind}: {text}"),
    }
}

/// Decodes every document of `text`; unknown kinds and fields are refused.
pub fn parse(text: &str) -> Result<Documents, String> {
    let mut docs = Documents::default();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(doc)
            .map_err(|e| format!("error converting YAML to JSON: {e}"))?;
        if value.is_null() {
            continue;
        }
        let field = |f: &str| value.get(f).and_then(|v| v.as_str()).unwrap_or_default();
        let (api, kind) = (field("apiVersion").to_string(), field("kind").to_string());
        if kind.is_empty() {
            return Err("invalid configuration: kind and apiVersion is mandatory information that must be specified".into());
        }
        match (api.as_str(), kind.as_str()) {
            (KUBEADM_API, "InitConfiguration") => {
                docs.init = Some(serde_yaml_ng::from_value(value).map_err(|e| strict(&kind, e))?)
            }
            (KUBEADM_API, "ClusterConfiguration") => {
                docs.cluster = Some(serde_yaml_ng::from_value(value).map_err(|e| strict(&kind, e))?)
            }
            (KUBEADM_API, "JoinConfiguration") => {
                docs.join = Some(serde_yaml_ng::from_value(value).map_err(|e| strict(&kind, e))?)
            }
            (KUBELET_API, "KubeletConfiguration") => {
                docs.kubelet = Some(serde_json::to_value(value).map_err(|e| e.to_string())?)
            }
            (PROXY_API, "KubeProxyConfiguration") => {}
            (a, _) if a.starts_with("kubeadm.k8s.io/") && a != KUBEADM_API => {
                return Err(format!(
                    "your configuration file uses an old API spec: {a:?} is no longer supported. Please use kubeadm v1.22 instead and run 'kubeadm config migrate --old-config old-config-file --new-config new-config-file', which will write the new, similar spec using a newer API version."
                ));
            }
            (a, k) => {
                return Err(format!(
                    "no kind {k:?} is registered for version {a:?} in scheme \"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31\""
                ));
            }
        }
    }
    Ok(docs)
}

fn invalid(field: &str, value: &str, why: &str) -> String {
    format!("{field}: Invalid value: {value:?}: {why}")
}

fn cidr(field: &str, value: &str, errors: &mut Vec<String>) {
    for part in value.split(',') {
        let ok = part.split_once('/').is_some_and(|(ip, bits)| {
            let max = match ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => 32,
                Ok(IpAddr::V6(_)) => 128,
                Err(_) => return false,
            };
            bits.parse::<u8>().is_ok_and(|b| b <= max)
        });
        if !ok {
            errors.push(invalid(field, value, "couldn't parse subnet"));
        }
    }
}

/// `host:port` with a port, as controlPlaneEndpoint and apiServerEndpoint must be.
pub fn endpoint(field: &str, value: &str) -> Result<(String, u16), String> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| invalid(field, value, "address is missing a port"))?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
        invalid(
            field,
            value,
            "port must be a valid number between 1 and 65535, inclusive",
        )
    })?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid(field, value, "host is empty"));
    }
    Ok((host.to_string(), port))
}

fn token(field: &str, value: &str, errors: &mut Vec<String>) {
    if crate::bootstrap::split(value).is_none() {
        errors.push(invalid(
            field,
            value,
            &format!("the bootstrap token {value:?} was not of the form \"^([a-z0-9]{{6}})\\\\.([a-z0-9]{{16}})$\""),
        ));
    }
}

fn certificate_key(field: &str, value: &str, errors: &mut Vec<String>) {
    if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        errors.push(invalid(
            field,
            value,
            "certificate key size must be 32 bytes, hex-encoded",
        ));
    }
}

fn registration(r: &NodeRegistration, errors: &mut Vec<String>) {
    for (i, t) in r.taints.iter().flatten().enumerate() {
        if !matches!(
            t.effect.as_str(),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute"
        ) {
            errors.push(format!(
                "nodeRegistration.taints[{i}].effect: Unsupported value: {:?}: supported values: \"NoExecute\", \"NoSchedule\", \"PreferNoSchedule\"",
                t.effect
            ));
        }
    }
}

fn joined(errors: Vec<String>) -> Result<(), String> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.into_iter().next().unwrap_or_default()),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

pub fn validate_init(
    init: &InitConfiguration,
    cluster: &ClusterConfiguration,
) -> Result<(), String> {
    let mut errors = Vec::new();
    for (i, t) in init.bootstrap_tokens.iter().enumerate() {
        token(
            &format!("bootstrapTokens[{i}].token"),
            &t.token,
            &mut errors,
        );
    }
    if let Some(key) = &init.certificate_key {
        certificate_key("certificateKey", key, &mut errors);
    }
    if let Some(a) = &init.local_api_endpoint.advertise_address
        && a.parse::<IpAddr>().is_err()
    {
        errors.push(invalid(
            "localAPIEndpoint.advertiseAddress",
            a,
            "cannot parse IP address",
        ));
    }
    registration(&init.node_registration, &mut errors);
    let net = &cluster.networking;
    if let Some(s) = &net.pod_subnet {
        cidr("networking.podSubnet", s, &mut errors);
    }
    cidr(
        "networking.serviceSubnet",
        net.service_subnet.as_deref().unwrap_or("10.96.0.0/12"),
        &mut errors,
    );
    if let Some(e) = &cluster.control_plane_endpoint
        && let Err(why) = endpoint("controlPlaneEndpoint", e)
    {
        errors.push(why);
    }
    joined(errors)
}

pub fn validate_join(join: &JoinConfiguration) -> Result<(), String> {
    let mut errors = Vec::new();
    match &join.discovery.bootstrap_token {
        None => {
            errors.push("discovery: Invalid value: \"\": bootstrapToken or file must be set".into())
        }
        Some(d) => {
            token("discovery.bootstrapToken.token", &d.token, &mut errors);
            match &d.api_server_endpoint {
                Some(e) => {
                    if let Err(why) = endpoint("discovery.bootstrapToken.apiServerEndpoint", e) {
                        errors.push(why);
                    }
                }
                None => errors.push("discovery.bootstrapToken.apiServerEndpoint: Required value: the apiServerEndpoint must be set".into()),
            }
            if d.ca_cert_hashes.is_empty() && !d.unsafe_skip_ca_verification {
                errors.push("discovery.bootstrapToken.caCertHashes: Invalid value: []string(nil): using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue".into());
            }
        }
    }
    if let Some(key) = join
        .control_plane
        .as_ref()
        .and_then(|c| c.certificate_key.as_ref())
    {
        certificate_key("controlPlane.certificateKey", key, &mut errors);
    }
    registration(&join.node_registration, &mut errors);
    joined(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INIT: &str = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens:\n- token: abcdef.0123456789abcdef\n  ttl: 30m\nnodeRegistration:\n  name: cp\n  taints: []\nlocalAPIEndpoint:\n  advertiseAddress: 10.0.0.10\n  bindPort: 6443\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.33.2\ncontrolPlaneEndpoint: 10.0.0.10:6443\nnetworking:\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\n";

    #[test]
    fn a_good_init_config_decodes_and_validates() {
        let docs = parse(INIT).unwrap();
        let (init, cluster) = (docs.init.unwrap(), docs.cluster.unwrap());
        assert_eq!(
            init.node_registration.taints.as_ref().map(Vec::len),
            Some(0)
        );
        validate_init(&init, &cluster).unwrap();
    }

    #[test]
    fn unknown_kinds_fields_and_bad_values_are_refused() {
        let e = parse(&INIT.replace("bindPort", "bindPorts")).unwrap_err();
        assert_eq!(
            e,
            "InitConfiguration: strict decoding error: unknown field \"bindPorts\""
        );
        let e = parse(&INIT.replace("kind: ClusterConfiguration", "kind: Cluster")).unwrap_err();
        assert!(
            e.starts_with(
                "no kind \"Cluster\" is registered for version \"kubeadm.k8s.io/v1beta4\""
            ),
            "{e}"
        );
        let e = parse(&INIT.replace("v1beta4\nkind: Init", "v1beta2\nkind: Init")).unwrap_err();
        assert!(e.contains("old API spec"), "{e}");
        let bad = INIT
            .replace("abcdef.0123456789abcdef", "ABCDEF.0123456789abcdef")
            .replace("10.244.0.0/16", "10.244.0.0/33")
            .replace(
                "controlPlaneEndpoint: 10.0.0.10:6443",
                "controlPlaneEndpoint: 10.0.0.10",
            );
        let docs = parse(&bad).unwrap();
        let e = validate_init(&docs.init.unwrap(), &docs.cluster.unwrap()).unwrap_err();
        for says in [
            "bootstrapTokens[0].token: Invalid value: \"ABCDEF.0123456789abcdef\"",
            "networking.podSubnet: Invalid value: \"10.244.0.0/33\": couldn't parse subnet",
            "controlPlaneEndpoint: Invalid value: \"10.0.0.10\": address is missing a port",
        ] {
            assert!(e.contains(says), "{says}: {e}");
        }
    }
}
