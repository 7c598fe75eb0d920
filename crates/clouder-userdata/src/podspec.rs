//! The one place a runtime pod's user data is built: the user's folder on the shared claim,
//! the environment spec's variables, and the user's secrets as variables and as files.
//!
//! The result is a partial `PodSpec` meant as a strategic merge patch (containers, volumes and
//! env merge by name), so it applies to a pod, a Deployment's template, or a warm pod's spec
//! alike. Secret values never appear in it: variables refer to the Secret by key.

use crate::secrets::SECRET_NAME;
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, PersistentVolumeClaimVolumeSource, PodSecurityContext,
    PodSpec, ProjectedVolumeSource, SecretKeySelector, SecretProjection, Volume, VolumeMount,
    VolumeProjection,
};

/// The volume that carries every user's folder.
pub const STORAGE_VOLUME: &str = "clouder-userdata";
/// The projected volume with the user's secrets as files.
pub const SECRETS_VOLUME: &str = "clouder-secrets";
/// Where the secret files appear; Kubernetes refreshes them in place when the Secret changes.
/// The node agent binds the same files at the same path into warm pods (`secret_files`); under
/// `/run`, not `/var/run`, which images often make a symlink the agent will not follow.
pub const SECRETS_DIR: &str = "/run/clouder/secrets";

/// The user's folder on the shared claim (see `storage::MountSpec::for_user`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FolderMount {
    /// The ReadWriteMany claim holding all user folders.
    pub claim: String,
    /// The user's folder inside the claim.
    pub sub_path: String,
    /// Where the folder appears in the container.
    pub mount_path: String,
    /// The group that owns the folders; the pod runs with it as `fsGroup`.
    pub fs_group: i64,
}

/// What a runtime pod assigned to a user gets.
#[derive(Debug, Clone, Default)]
pub struct RuntimeUser<'a> {
    /// The container the user's code runs in.
    pub container: &'a str,
    pub folder: Option<&'a FolderMount>,
    /// The environment spec's variables.
    pub env: &'a [EnvVar],
    /// Names of the user's secrets (keys of the user's Secret), never values.
    pub secrets: &'a [String],
}

/// The patch, and warnings that name variables (never values).
#[derive(Debug, Clone, PartialEq)]
pub struct PodPatch {
    pub spec: PodSpec,
    pub warnings: Vec<String>,
}

/// Builds the patch for `user`. Variables keep the environment spec's order; a user's secret
/// of the same name replaces the spec's variable (with a warning) and secrets follow, sorted.
pub fn runtime_pod_patch(user: &RuntimeUser<'_>) -> PodPatch {
    let mut secrets: Vec<&String> = user.secrets.iter().collect();
    secrets.sort();
    secrets.dedup();
    let mut warnings = Vec::new();
    let mut env: Vec<EnvVar> = Vec::new();
    for var in user.env {
        if secrets.iter().any(|s| **s == var.name) {
            warnings.push(format!(
                "variable {} of the environment spec is replaced by the user's secret of that name",
                var.name
            ));
        } else {
            env.push(var.clone());
        }
    }
    env.extend(secrets.iter().map(|name| EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: SECRET_NAME.into(),
                key: name.to_string(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }));

    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if let Some(folder) = user.folder {
        volumes.push(Volume {
            name: STORAGE_VOLUME.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: folder.claim.clone(),
                read_only: Some(false),
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: STORAGE_VOLUME.into(),
            mount_path: folder.mount_path.clone(),
            sub_path: Some(folder.sub_path.clone()),
            ..Default::default()
        });
    }
    if !secrets.is_empty() {
        volumes.push(Volume {
            name: SECRETS_VOLUME.into(),
            projected: Some(ProjectedVolumeSource {
                // Readable by the fsGroup, so the user's processes can re-read rotated values.
                default_mode: Some(0o440),
                sources: Some(vec![VolumeProjection {
                    secret: Some(SecretProjection {
                        name: SECRET_NAME.into(),
                        optional: Some(false),
                        items: None,
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        // No subPath: only whole-volume mounts are refreshed in place.
        mounts.push(VolumeMount {
            name: SECRETS_VOLUME.into(),
            mount_path: SECRETS_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }

    let spec = PodSpec {
        containers: vec![Container {
            name: user.container.into(),
            env: (!env.is_empty()).then_some(env),
            volume_mounts: (!mounts.is_empty()).then_some(mounts),
            ..Default::default()
        }],
        volumes: (!volumes.is_empty()).then_some(volumes),
        security_context: user.folder.map(|f| PodSecurityContext {
            fs_group: Some(f.fs_group),
            // Large folders: change ownership only when the root's does not match already.
            fs_group_change_policy: Some("OnRootMismatch".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    PodPatch { spec, warnings }
}
