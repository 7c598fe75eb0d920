//! Image references as Docker and containerd read them: `[REGISTRY/]PATH[:TAG][@DIGEST]`, where
//! the first component is a registry when it has a `.` or `:` or is `localhost`, the default
//! registry is Docker Hub (`docker.io`, single names under `library/`) and the default tag
//! `latest` (distribution's `reference` grammar).

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// `docker.io`, `registry.example.com:5000`, `localhost:5000`.
    pub registry: String,
    /// `library/alpine`, `team/app`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("`{reference}` is not an image reference: {reason}")]
pub struct ReferenceError {
    pub reference: String,
    pub reason: String,
}

impl Reference {
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let bad = |reason: &str| ReferenceError {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() || input.len() > 255 {
            return Err(bad("it must have 1 to 255 characters"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                let (algorithm, hex) = digest
                    .split_once(':')
                    .ok_or_else(|| bad("a digest is ALGORITHM:HEX"))?;
                let valid = match algorithm {
                    "sha256" => hex.len() == 64,
                    "sha512" => hex.len() == 128,
                    _ => return Err(bad(&format!("unknown digest algorithm `{algorithm}`"))),
                };
                if !valid || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(bad(&format!("`{digest}` is not a {algorithm} digest")));
                }
                (rest, Some(digest.to_string()))
            }
            None => (input, None),
        };
        // A tag follows the last `:` after the last `/` (a `:` before it is a registry port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            let mut chars = tag.chars();
            let first_ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if !first_ok
                || tag.len() > 128
                || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            {
                return Err(bad(&format!(
                    "tag `{tag}` must be 1-128 of [A-Za-z0-9_.-], not starting with . or -"
                )));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ if name.contains('/') => ("docker.io".to_string(), name.to_string()),
            _ => ("docker.io".to_string(), format!("library/{name}")),
        };
        if !valid_host(&registry) {
            return Err(bad(&format!("`{registry}` is not a registry host[:port]")));
        }
        if let Some(component) = path.split('/').find(|c| !valid_component(c)) {
            return Err(bad(&format!(
                "path component `{component}` must be lowercase letters and digits, separated by . _ __ or -"
            )));
        }
        Ok(Reference {
            registry,
            repository: path,
            tag: tag
                .map(str::to_string)
                .or(digest.is_none().then(|| "latest".to_string())),
            digest,
        })
    }

    /// What to ask the registry's manifests endpoint for: the digest if pinned, else the tag.
    pub fn target(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same image pinned by `digest`: `REGISTRY/REPOSITORY@DIGEST`.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    name_ok && port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r = Reference::parse(s).unwrap();
        (r.registry, r.repository, r.tag, r.digest)
    }

    #[test]
    fn names_are_normalised_as_docker_does() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        assert_eq!(
            parse("alpine"),
            (
                "docker.io".into(),
                "library/alpine".into(),
                Some("latest".into()),
                None
            )
        );
        assert_eq!(
            parse("team/app:1.2"),
            (
                "docker.io".into(),
                "team/app".into(),
                Some("1.2".into()),
                None
            )
        );
        assert_eq!(
            parse("localhost:5000/a/b"),
            (
                "localhost:5000".into(),
                "a/b".into(),
                Some("latest".into()),
                None
            )
        );
        assert_eq!(
            parse(&format!("ghcr.io/x/y_z@{d}")),
            ("ghcr.io".into(), "x/y_z".into(), None, Some(d.clone()))
        );
        assert_eq!(
            parse(&format!("reg.example:443/x:v1@{d}")),
            (
                "reg.example:443".into(),
                "x".into(),
                Some("v1".into()),
                Some(d.clone())
            )
        );
        assert_eq!(
            Reference::parse("a").unwrap().pinned(&d),
            format!("docker.io/library/a@{d}")
        );
    }

    #[test]
    fn malformed_references_say_why() {
        for (input, why) in [
            ("", "1 to 255"),
            ("Alpine", "lowercase"),
            ("app:", "tag"),
            ("app:-x", "tag"),
            ("a//b", "path component"),
            ("app@sha256:abc", "not a sha256 digest"),
            ("app@md5:abc", "unknown digest algorithm"),
            ("reg.example:99999/app", "registry host"),
            ("my_reg.example/app", "registry host"),
            ("app-/x", "path component"),
        ] {
            let err = Reference::parse(input).unwrap_err().to_string();
            assert!(err.contains(why), "{input}: {err}");
        }
    }
}
