//! Whether an image fits what BYOC asks of it: every rule is checked and every failure listed,
//! so one run tells the whole story.

use crate::oci::{Credentials, ImageFacts, OciError, Platform, Registry};
use crate::reference::{Reference, ReferenceError};
use serde::Serialize;

/// What an image must satisfy.
#[derive(Debug, Clone)]
pub struct Rules {
    pub platform: Platform,
    /// Compressed size limit in bytes.
    pub max_size: Option<u64>,
    pub required_labels: Vec<String>,
    pub non_root: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            platform: Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None,
            },
            max_size: None,
            required_labels: Vec::new(),
            non_root: false,
        }
    }
}

/// One rule an image broke.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// `platform`, `entrypoint`, `non-root`, `max-size`, `label`.
    pub rule: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub image: ImageFacts,
    pub failures: Vec<Failure>,
}

impl Report {
    pub fn fits(&self) -> bool {
        self.failures.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// Exit code 2: the reference itself is wrong.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Registry(#[from] OciError),
}

/// Where and how to reach the registry.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub credentials: Option<Credentials>,
    /// Plain HTTP to the registry.
    pub insecure: bool,
}

/// Reads `image` from its registry and checks it against `rules`. An index without the
/// platform is an error naming the platforms it offers (there is no image to check).
pub async fn validate(
    image: &str,
    rules: &Rules,
    access: &Access,
) -> Result<Report, ValidateError> {
    let reference = Reference::parse(image)?;
    let registry = Registry::new(
        &reference.registry,
        access.credentials.clone(),
        access.insecure,
    );
    let facts = registry.inspect(&reference, &rules.platform).await?;
    Ok(Report {
        failures: check(&facts, rules),
        image: facts,
    })
}

/// Pure: every rule `facts` breaks.
pub fn check(facts: &ImageFacts, rules: &Rules) -> Vec<Failure> {
    let mut failures = Vec::new();
    let mut fail = |rule, message: String| failures.push(Failure { rule, message });
    let want = &rules.platform;
    let variant_ok = want.variant.is_none() || want.variant == facts.variant;
    if facts.os != want.os || facts.architecture != want.architecture || !variant_ok {
        let got = Platform {
            os: facts.os.clone(),
            architecture: facts.architecture.clone(),
            variant: facts.variant.clone(),
        };
        fail("platform", format!("the image is {got}, not {want}"));
    }
    if facts.entrypoint.is_empty() && facts.cmd.is_empty() {
        fail(
            "entrypoint",
            "the image has neither an entrypoint nor a cmd: nothing to run".into(),
        );
    }
    if rules.non_root && runs_as_root(&facts.user) {
        let who = if facts.user.is_empty() {
            "no user (root)".to_string()
        } else {
            format!("user `{}`", facts.user)
        };
        fail("non-root", format!("the image runs as {who}"));
    }
    if let Some(max) = rules.max_size
        && facts.compressed_size > max
    {
        fail(
            "max-size",
            format!(
                "compressed size {} is over the limit {}",
                human(facts.compressed_size),
                human(max)
            ),
        );
    }
    for label in &rules.required_labels {
        if !facts.labels.contains_key(label) {
            fail("label", format!("required label `{label}` is missing"));
        }
    }
    failures
}

/// `""`, `root`, `0` and `0:GROUP`/`root:GROUP` run as uid 0.
fn runs_as_root(user: &str) -> bool {
    let uid = user.split(':').next().unwrap_or("");
    matches!(uid, "" | "root" | "0")
}

/// Parses `500MB`, `2GiB`, `1.5G`, `512Mi`, `1048576`: decimal (kB, MB, GB, TB) and binary
/// (K, M, G, T with or without `i`/`iB`) units, as Kubernetes quantities and Docker read them.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 512Mi, 2GB, 1048576)"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "k" | "kB" | "KB" => 1000,
        "MB" => 1000u64.pow(2),
        "GB" => 1000u64.pow(3),
        "TB" => 1000u64.pow(4),
        "K" | "Ki" | "KiB" => 1024,
        "M" | "Mi" | "MiB" => 1024u64.pow(2),
        "G" | "Gi" | "GiB" => 1024u64.pow(3),
        "T" | "Ti" | "TiB" => 1024u64.pow(4),
        other => {
            return Err(format!(
                "`{other}` is not a size unit (use B, kB, MB, GB, Ki, Mi, Gi, Ti)"
            ));
        }
    };
    Ok((number * factor as f64).round() as u64)
}

/// Bytes for people: `1.5 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_both_unit_systems() {
        assert_eq!(parse_size("1048576"), Ok(1048576));
        assert_eq!(parse_size("512Mi"), Ok(512 << 20));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("3 MiB"), Ok(3 << 20));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(
            parse_size("3 parsecs")
                .unwrap_err()
                .contains("not a size unit")
        );
    }

    #[test]
    fn root_is_every_spelling_of_uid_zero() {
        for user in ["", "root", "0", "0:0", "root:wheel"] {
            assert!(runs_as_root(user), "{user}");
        }
        for user in ["1000", "app", "65534:65534", "nobody"] {
            assert!(!runs_as_root(user), "{user}");
        }
    }
}
