//! Image versions per Kubernetes minor. Upgrading an addon is an explicit change here, never a
//! `latest` tag.

use crate::{Error, Result};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pins {
    pub ebs_csi: &'static str,
    pub efs_csi: &'static str,
    pub aws_lbc: &'static str,
    pub csi_provisioner: &'static str,
    pub csi_attacher: &'static str,
    pub csi_resizer: &'static str,
    pub csi_registrar: &'static str,
    /// None: cloud-provider-azure has no release for this minor yet.
    pub azure_ccm: Option<&'static str>,
    /// Where that release's images are (`oss/v2/kubernetes` from 1.32 on).
    pub azure_ccm_repository: &'static str,
    pub azure_disk_csi: &'static str,
    pub azure_file_csi: &'static str,
    /// None: no ingress-nginx release supports this minor (the project is retired).
    pub ingress_nginx: Option<&'static str>,
    pub traefik: &'static str,
    /// None: no cert-manager release supports this minor yet.
    pub cert_manager: Option<&'static str>,
}

/// The oldest and newest Kubernetes minors clouder has pins for.
pub const MINORS: std::ops::RangeInclusive<u32> = 31..=37;

// Checked against the upstream repositories' tags and compatibility tables (2026-08 snapshots;
// the evidence per component is in docs/addon-pins.md).
const BASE: Pins = Pins {
    ebs_csi: "v1.44.0",
    efs_csi: "v2.1.8",
    aws_lbc: "v2.13.0",
    csi_provisioner: "v5.2.0",
    csi_attacher: "v4.8.1",
    csi_resizer: "v1.13.2",
    csi_registrar: "v2.13.0",
    azure_ccm: None,
    azure_ccm_repository: "oss/v2/kubernetes",
    azure_disk_csi: "v1.33.0",
    azure_file_csi: "v1.33.0",
    ingress_nginx: None,
    traefik: "v3.7.9",
    cert_manager: None,
};

impl Pins {
    pub fn for_minor(minor: u32) -> Result<Pins> {
        if !MINORS.contains(&minor) {
            return Err(Error::Refused(format!(
                "no addon versions pinned for Kubernetes 1.{minor} (clouder has 1.{}–1.{})",
                MINORS.start(),
                MINORS.end()
            )));
        }
        // cloud-provider-azure is released in step with Kubernetes: its minor must match.
        let azure_ccm = match minor {
            31 => Some("v1.31.14"),
            32 => Some("v1.32.20"),
            33 => Some("v1.33.17"),
            34 => Some("v1.34.13"),
            35 => Some("v1.35.8"),
            36 => Some("v1.36.5"),
            _ => None,
        };
        let azure_ccm_repository = if minor <= 31 {
            "oss/kubernetes"
        } else {
            BASE.azure_ccm_repository
        };
        // Retired in March 2026; its last line (1.15) supports 1.31–1.35.
        let ingress_nginx = (minor <= 35).then_some("v1.15.1");
        // 1.17 (1.29–1.33, end of life) for the minors 1.21 (1.33–1.36) does not cover.
        let cert_manager = match minor {
            ..=32 => Some("v1.17.4"),
            33..=36 => Some("v1.21.1"),
            _ => None,
        };
        Ok(Pins {
            azure_ccm,
            azure_ccm_repository,
            ingress_nginx,
            cert_manager,
            ..BASE
        })
    }

    /// The manifests' `${name}` variables.
    pub fn vars(&self) -> BTreeMap<&'static str, String> {
        [
            ("ebs_csi", self.ebs_csi),
            ("efs_csi", self.efs_csi),
            ("aws_lbc", self.aws_lbc),
            ("csi_provisioner", self.csi_provisioner),
            ("csi_attacher", self.csi_attacher),
            ("csi_resizer", self.csi_resizer),
            ("csi_registrar", self.csi_registrar),
            ("azure_ccm", self.azure_ccm.unwrap_or_default()),
            ("azure_ccm_repository", self.azure_ccm_repository),
            ("azure_disk_csi", self.azure_disk_csi),
            ("azure_file_csi", self.azure_file_csi),
            ("ingress_nginx", self.ingress_nginx.unwrap_or_default()),
            ("traefik", self.traefik),
            ("cert_manager", self.cert_manager.unwrap_or_default()),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
    }
}
