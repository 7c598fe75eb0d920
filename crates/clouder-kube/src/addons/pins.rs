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
    pub azure_ccm: &'static str,
    pub azure_disk_csi: &'static str,
    pub azure_file_csi: &'static str,
    pub ingress_nginx: &'static str,
    pub traefik: &'static str,
    pub cert_manager: &'static str,
}

/// The oldest and newest Kubernetes minors clouder has pins for.
pub const MINORS: std::ops::RangeInclusive<u32> = 31..=37;

const BASE: Pins = Pins {
    ebs_csi: "v1.44.0",
    efs_csi: "v2.1.8",
    aws_lbc: "v2.13.0",
    csi_provisioner: "v5.2.0",
    csi_attacher: "v4.8.1",
    csi_resizer: "v1.13.2",
    csi_registrar: "v2.13.0",
    azure_ccm: "v1.33.0",
    azure_disk_csi: "v1.33.0",
    azure_file_csi: "v1.33.0",
    ingress_nginx: "v1.12.1",
    traefik: "v3.3.4",
    cert_manager: "v1.17.1",
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
        // The Azure cloud provider is released in step with Kubernetes: its minor must match.
        let azure_ccm = match minor {
            31 => "v1.31.4",
            32 => "v1.32.3",
            _ => BASE.azure_ccm,
        };
        Ok(Pins { azure_ccm, ..BASE })
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
            ("azure_ccm", self.azure_ccm),
            ("azure_disk_csi", self.azure_disk_csi),
            ("azure_file_csi", self.azure_file_csi),
            ("ingress_nginx", self.ingress_nginx),
            ("traefik", self.traefik),
            ("cert_manager", self.cert_manager),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
    }
}
