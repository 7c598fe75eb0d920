//! A user's secrets: one Kubernetes Secret per user namespace whose keys are environment
//! variable names, filled from stdin, a file, AWS Secrets Manager, SSM Parameter Store or Azure
//! Key Vault, kept in step with those sources by `sync`.

pub mod source;
pub mod store;

use crate::Error;
use std::collections::BTreeMap;

/// The Secret holding a user's secrets, in the user's namespace.
pub const SECRET_NAME: &str = "clouder-user-secrets";
/// Kubernetes refuses a Secret over 1 MiB.
pub const SIZE_LIMIT: usize = 1024 * 1024;
/// Names the platform sets itself; a secret must not shadow them.
const RESERVED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "SHELL",
    "PWD",
    "HOSTNAME",
    "TERM",
    "LANG",
    "TZ",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
];
const RESERVED_PREFIXES: &[&str] = &["KUBERNETES_", "CLOUDER_"];

/// A secret's value: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretValue(bytes)
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue({} bytes)", self.0.len())
    }
}

/// A secret's name is the variable's name: `[A-Za-z_][A-Za-z0-9_]*`, not reserved.
pub fn check_name(name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let well_formed = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !well_formed {
        return Err(Error::Invalid(format!(
            "secret name `{name}`: must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
        )));
    }
    if RESERVED.contains(&name) {
        return Err(Error::Invalid(format!(
            "secret name `{name}`: reserved (the runtime sets it)"
        )));
    }
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(*p)) {
        return Err(Error::Invalid(format!(
            "secret name `{name}`: names starting with {prefix} are reserved"
        )));
    }
    Ok(())
}

/// The user's secrets together (names and values, as the Secret stores them) must stay under
/// the Secret size limit; `name` is the one being set, for the message.
pub fn check_size(name: &str, data: &BTreeMap<String, SecretValue>) -> Result<(), Error> {
    let total: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > SIZE_LIMIT {
        return Err(Error::Invalid(format!(
            "secret {name}: the user's secrets would total {total} bytes, over the Secret size limit of {SIZE_LIMIT} bytes"
        )));
    }
    Ok(())
}
