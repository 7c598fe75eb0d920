//! The runtime pod patch: folder, environment, secrets and their precedence, as golden YAML.

use clouder_userdata::podspec::{PodPatch, RuntimeUser, runtime_pod_patch};
use clouder_userdata::storage::mount_spec;
use k8s_openapi::api::core::v1::EnvVar;

fn var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn golden(patch: &PodPatch) -> String {
    format!(
        "# warnings: {:?}\n{}",
        patch.warnings,
        serde_yaml_ng::to_string(&patch.spec).unwrap()
    )
}

#[test]
fn runtime_pod_patches() {
    let folder = mount_spec("alice", "clouder-userdata", "/home/jovyan/work", 100).unwrap();
    let env = [
        var("LOG_LEVEL", "info"),
        var("API_TOKEN", "from-the-environment-spec"),
        var("REGION", "eu"),
    ];
    let secrets = ["API_TOKEN".to_string(), "DB_PASSWORD".to_string()];
    let cases: [(&str, RuntimeUser); 4] = [
        (
            "folder_only",
            RuntimeUser {
                container: "notebook",
                folder: Some(&folder),
                ..Default::default()
            },
        ),
        (
            "env_only",
            RuntimeUser {
                container: "notebook",
                env: &env,
                ..Default::default()
            },
        ),
        (
            "secret_wins_over_env",
            RuntimeUser {
                container: "notebook",
                folder: Some(&folder),
                env: &env,
                secrets: &secrets,
            },
        ),
        (
            "nothing",
            RuntimeUser {
                container: "agent",
                ..Default::default()
            },
        ),
    ];
    for (name, user) in cases {
        insta::assert_snapshot!(name, golden(&runtime_pod_patch(&user)));
    }
}

#[test]
fn a_clash_warns_with_the_name_never_the_value() {
    let env = [var("API_TOKEN", "value-in-the-spec")];
    let secrets = ["API_TOKEN".to_string()];
    let patch = runtime_pod_patch(&RuntimeUser {
        container: "c",
        env: &env,
        secrets: &secrets,
        ..Default::default()
    });
    assert_eq!(patch.warnings.len(), 1);
    assert!(patch.warnings[0].contains("API_TOKEN"));
    assert!(!patch.warnings[0].contains("value-in-the-spec"));
    let env = &patch.spec.containers[0].env.as_ref().unwrap();
    assert_eq!(env.len(), 1, "one variable, from the secret");
    assert!(env[0].value.is_none());
    assert_eq!(
        env[0]
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .key,
        "API_TOKEN"
    );
}

#[test]
fn folders_of_unsafe_user_names_are_refused() {
    for user in ["..", "../bob", "/etc", "Alice"] {
        assert!(mount_spec(user, "c", "/w", 100).is_err(), "{user}");
    }
}
