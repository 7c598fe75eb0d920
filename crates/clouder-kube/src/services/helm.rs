//! Helm charts rendered by the real `helm template` (Helm 3 or later), behind a trait so that the
//! rollout does not care how a chart becomes manifests. clouder applies the result itself: the
//! release history, gates and rollbacks stay clouder's, whatever rendered the chart.

use crate::services::file::HelmChart;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio::process::Command;

/// Turns a chart and values into multi-document YAML.
#[async_trait::async_trait]
pub trait Renderer: Send + Sync {
    async fn template(
        &self,
        release: &str,
        namespace: &str,
        chart: &HelmChart,
        values: &BTreeMap<String, serde_json::Value>,
    ) -> Result<String, String>;
}

/// The `helm` binary (`CLOUDER_HELM`, or `helm` on PATH).
pub struct HelmBinary {
    pub program: PathBuf,
}

/// The oldest Helm whose `template` behaves as clouder expects.
const MIN_MAJOR: u64 = 3;

impl Default for HelmBinary {
    fn default() -> Self {
        HelmBinary {
            program: std::env::var_os("CLOUDER_HELM")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("helm")),
        }
    }
}

impl HelmBinary {
    async fn run(&self, args: &[&str]) -> Result<String, String> {
        let program = self.program.display();
        let out = Command::new(&self.program)
            .args(args)
            .output()
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "the helm binary ({program}) was not found: install Helm {MIN_MAJOR} or later, set CLOUDER_HELM, or use a manifests or oci source"
                ),
                _ => format!("running {program}: {e}"),
            })?;
        if !out.status.success() {
            return Err(format!(
                "{program} {}: {}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `v3.16.2` or later; older or unparsable versions are refused.
    pub async fn check_version(&self) -> Result<String, String> {
        let version = self.run(&["version", "--template", "{{.Version}}"]).await?;
        let version = version.trim().to_string();
        let major = version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|m| m.parse::<u64>().ok());
        match major {
            Some(m) if m >= MIN_MAJOR => Ok(version),
            _ => Err(format!(
                "{} reports version `{version}`; clouder needs Helm {MIN_MAJOR} or later",
                self.program.display()
            )),
        }
    }
}

#[async_trait::async_trait]
impl Renderer for HelmBinary {
    async fn template(
        &self,
        release: &str,
        namespace: &str,
        chart: &HelmChart,
        values: &BTreeMap<String, serde_json::Value>,
    ) -> Result<String, String> {
        self.check_version().await?;
        let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        std::fs::write(
            file.path(),
            serde_json::to_vec(values).expect("values serialise"),
        )
        .map_err(|e| e.to_string())?;
        let values_file = file.path().display().to_string();
        self.run(&[
            "template",
            release,
            &chart.chart,
            "--repo",
            &chart.repo,
            "--version",
            &chart.version,
            "--namespace",
            namespace,
            "--values",
            &values_file,
        ])
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_helm_says_what_to_do() {
        let helm = HelmBinary {
            program: PathBuf::from("/nonexistent/helm"),
        };
        let chart = HelmChart {
            repo: "https://charts.example".into(),
            chart: "x".into(),
            version: "1.0.0".into(),
        };
        let err = helm
            .template("x", "x", &chart, &BTreeMap::new())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            "the helm binary (/nonexistent/helm) was not found: install Helm 3 or later, set CLOUDER_HELM, or use a manifests or oci source"
        );
    }

    #[tokio::test]
    async fn an_old_or_odd_helm_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("helm");
        // A script standing in for Helm 2, which has no `version --template`.
        std::fs::write(&fake, "#!/bin/sh\necho v2.17.0\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let helm = HelmBinary { program: fake };
        let err = helm.check_version().await.unwrap_err();
        assert!(
            err.ends_with("reports version `v2.17.0`; clouder needs Helm 3 or later"),
            "{err}"
        );
    }
}
