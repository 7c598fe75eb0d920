//! Encryption at rest for Secrets: the kube-apiserver's EncryptionConfiguration with a 32-byte
//! `secretbox` key. The key is made on the first control plane by `host_script` (clouder never
//! makes or stores it); control planes that join get the same file, read from the first and sent
//! over SSH stdin. `identity` stays last so Secrets written before encryption still read.

use base64::Engine;
use rand::RngCore;

/// Where the configuration lives on control planes (mounted into the kube-apiserver pod).
pub const DIR: &str = "/etc/kubernetes/encryption";
/// The kube-apiserver flag that reads it.
pub const API_SERVER_ARG: (&str, &str) = (
    "encryption-provider-config",
    "/etc/kubernetes/encryption/config.yaml",
);

/// The configuration with `secret` (base64 of 32 bytes, or a shell expansion of one).
fn template(secret: &str) -> String {
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

/// The configuration for `key`.
pub fn render(key: &[u8; 32]) -> String {
    template(&base64::engine::general_purpose::STANDARD.encode(key))
}

/// A configuration with a fresh random key (for tests and one-off use; hosts use `host_script`).
pub fn encryption_config() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    render(&key)
}

/// A POSIX shell script that writes `dir/config.yaml` (0600, in a 0700 folder) with a key drawn
/// from the host's /dev/urandom, once: a re-run keeps the existing key.
pub fn host_script(dir: &str) -> String {
    format!(
        "set -eu
dir='{dir}'
if [ ! -s \"$dir/config.yaml\" ]; then
  install -d -m 0700 \"$dir\"
  umask 077
  key=$(head -c 32 /dev/urandom | base64 | tr -d '\\n')
  cat > \"$dir/config.yaml.tmp\" <<EOF
{}EOF
  mv \"$dir/config.yaml.tmp\" \"$dir/config.yaml\"
fi
",
        template("${key}")
    )
}

/// The kube-apiserver's `extraVolumes` entry (kubeadm v1beta4 shape) for the folder.
pub fn api_server_volume() -> serde_json::Value {
    serde_json::json!({
        "name": "encryption-config",
        "hostPath": DIR,
        "mountPath": DIR,
        "readOnly": true,
        "pathType": "DirectoryOrCreate",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key_of(config: &str) -> Vec<u8> {
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(config).unwrap();
        assert_eq!(value["kind"], "EncryptionConfiguration");
        assert_eq!(value["resources"][0]["resources"][0], "secrets");
        let providers = &value["resources"][0]["providers"];
        assert!(providers[1]["identity"].is_mapping(), "identity stays last");
        let secret = providers[0]["secretbox"]["keys"][0]["secret"]
            .as_str()
            .unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(secret)
            .unwrap()
    }

    #[test]
    fn each_config_has_its_own_32_byte_key() {
        let (a, b) = (encryption_config(), encryption_config());
        assert_eq!(key_of(&a).len(), 32);
        assert_ne!(key_of(&a), key_of(&b));
    }

    #[test]
    fn the_host_script_makes_a_private_key_once_and_passes_shellcheck() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("encryption");
        let script = host_script(dir.to_str().unwrap());
        let run = || {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::read_to_string(dir.join("config.yaml")).unwrap()
        };
        let first = run();
        assert_eq!(key_of(&first).len(), 32);
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&dir), mode(&dir.join("config.yaml"))), (0o700, 0o600));
        assert_eq!(run(), first, "a re-run keeps the key");

        clouder_testenv::shellcheck::assert_clean("sh", "the encryption script", &script);
    }
}
