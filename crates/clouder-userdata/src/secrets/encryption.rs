//! Encryption at rest for Secrets: the kube-apiserver's EncryptionConfiguration with a fresh
//! 32-byte key, rendered where it is placed (on the control-plane hosts, mode 0600). The key is
//! never stored by clouder; `identity` stays last so Secrets written before still read.

use base64::Engine;
use rand::RngCore;

/// Where kubeadm's control planes read it (mounted into the kube-apiserver's static pod).
pub const PATH: &str = "/etc/kubernetes/encryption/config.yaml";

/// A new configuration with one generated `secretbox` key named `key1`.
pub fn encryption_config() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    render(&key)
}

/// The configuration for `key` (XSalsa20-Poly1305, the upstream-recommended local provider).
pub fn render(key: &[u8; 32]) -> String {
    let secret = base64::engine::general_purpose::STANDARD.encode(key);
    format!(
        "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
    providers:
      - secretbox:
          keys:
            - name: key1
              secret: {secret}
      - identity: {{}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_config_has_its_own_32_byte_key() {
        let a = encryption_config();
        let b = encryption_config();
        assert_ne!(a, b);
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&a).unwrap();
        assert_eq!(value["kind"], "EncryptionConfiguration");
        let providers = &value["resources"][0]["providers"];
        let secret = providers[0]["secretbox"]["keys"][0]["secret"].as_str().unwrap();
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret)
            .unwrap();
        assert_eq!(key.len(), 32);
        assert!(providers[1]["identity"].is_mapping());
        assert_eq!(value["resources"][0]["resources"][0], "secrets");
    }
}
