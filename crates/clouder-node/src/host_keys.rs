//! Host keys a cloud machine announces before anyone connects: cloud-init prints them to the serial
//! console (`-----BEGIN SSH HOST KEY KEYS-----`), which the cloud API returns. Pinning from there
//! beats trust on first use: a man in the middle on the first connection is refused too.

use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PublicKey};

const BEGIN: &str = "-----BEGIN SSH HOST KEY KEYS-----";
const END: &str = "-----END SSH HOST KEY KEYS-----";

/// The public keys in a console log's host-key block (the last block: a reboot prints it again).
pub fn from_console(console: &str) -> Vec<PublicKey> {
    let Some(start) = console.rfind(BEGIN) else {
        return Vec::new();
    };
    let block = &console[start + BEGIN.len()..];
    let block = &block[..block.find(END).unwrap_or(block.len())];
    block
        .lines()
        .filter_map(|line| {
            // Lines may carry a prefix (`ec2: `); the key starts at its algorithm name.
            let at = ["ssh-", "ecdsa-sha2-"]
                .iter()
                .filter_map(|p| line.find(p))
                .min()?;
            PublicKey::from_openssh(line[at..].trim()).ok()
        })
        .collect()
}

/// russh's preference order for host-key algorithms: the key a connection will be shown.
fn rank(algorithm: &Algorithm) -> usize {
    match algorithm {
        Algorithm::Ed25519 => 0,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        } => 1,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        } => 2,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        } => 3,
        Algorithm::Rsa { .. } => 4,
        _ => 5,
    }
}

/// The SHA256 fingerprint of the key an SSH connection to that machine will be shown, if the
/// console announced one.
pub fn expected_fingerprint(console: &str) -> Option<String> {
    from_console(console)
        .into_iter()
        .min_by_key(|k| rank(&k.algorithm()))
        .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tail of an Ubuntu 24.04 EC2 console log, as cloud-init writes it.
    const CONSOLE: &str = "[   12.345678] cloud-init[1021]: Cloud-init v. 24.1.3 running 'modules:final'
ec2:
ec2: #############################################################
ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----
ec2: 256 SHA256:kq3mbS4E6i2oAsVapYwEYuLb3nMiV4sQtTKUSkeOXfw root@ip-10-0-0-4 (ECDSA)
ec2: 256 SHA256:6Jeq7Ktbt0i2LRy2/Xc5a+3VlH2mRObhgZzC1i5vYfQ root@ip-10-0-0-4 (ED25519)
ec2: -----END SSH HOST KEY FINGERPRINTS-----
ec2: #############################################################
-----BEGIN SSH HOST KEY KEYS-----
ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJektnbsBPIgZ1w29IN30ToCB6qCu8QsOHcKBZE8O5ow7mTWL8ZOmJMfGbeYRL264SrPB4jSCw3tp5Q1OTcpfLU= root@ip-10-0-0-4
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHoUpOiwVlAg7RwYBLWu5/+jML/EQ99m+ByUr8BnSa8e root@ip-10-0-0-4
-----END SSH HOST KEY KEYS-----
[   12.901234] cloud-init[1021]: Cloud-init v. 24.1.3 finished
";

    #[test]
    fn the_ed25519_key_of_the_console_is_the_one_expected() {
        let keys = from_console(CONSOLE);
        assert_eq!(keys.len(), 2);
        let ed25519 = keys
            .iter()
            .find(|k| k.algorithm() == Algorithm::Ed25519)
            .unwrap();
        assert_eq!(
            expected_fingerprint(CONSOLE).unwrap(),
            ed25519.fingerprint(HashAlg::Sha256).to_string()
        );
        // What `ssh-keygen -lf` prints for that key.
        assert_eq!(
            expected_fingerprint(CONSOLE).unwrap(),
            "SHA256:cyuaBxYbitLV5aW1Mzw1bdOCyJn86K8jEOx1zj+ojkE"
        );
    }

    #[test]
    fn a_console_without_keys_announces_nothing() {
        assert_eq!(expected_fingerprint("Linux version 6.8.0\nbooting\n"), None);
        let cut = CONSOLE.split("ssh-ed25519").next().unwrap();
        assert_eq!(
            from_console(cut).len(),
            1,
            "a block cut short still yields its whole lines"
        );
    }

    #[test]
    fn prefixed_lines_and_a_second_boot_take_the_last_block() {
        let prefixed: String = CONSOLE.lines().map(|l| format!("ec2: {l}\n")).collect();
        assert_eq!(
            expected_fingerprint(&prefixed),
            expected_fingerprint(CONSOLE)
        );
        let rebooted = format!(
            "{CONSOLE}\n-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH+tlAsln5HC1IF9fn4w4DmYpJEMhB4xxaCB/orVeqgY root@x\n-----END SSH HOST KEY KEYS-----\n"
        );
        assert_ne!(
            expected_fingerprint(&rebooted),
            expected_fingerprint(CONSOLE)
        );
    }
}
