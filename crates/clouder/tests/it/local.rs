//! Commands that work on local state only: ls, set-default, use, info errors, ctx, schema.

use crate::harness::*;

#[test]
fn without_a_name_or_default_commands_exit_2() {
    let env = Env::new();
    for args in [
        &["kubeadm", "info"][..],
        &["kubeadm", "use"],
        &["kubeadm", "terminate", "--force"],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains("no cluster named and no default set"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn use_print_export_names_the_kubeconfig_even_before_it_is_fetched() {
    let env = Env::new();
    let out = env.ok(&["k", "use", "demo", "--print-export"]);
    assert_eq!(
        out.trim(),
        format!(
            "export KUBECONFIG={}/kubeadm/demo/kubeconfig",
            env.home().display()
        )
    );
}

#[test]
fn set_default_keeps_other_keys_of_clouder_yaml_and_is_private() {
    let env = Env::new();
    std::fs::create_dir_all(env.home().join("kubeadm/alpha")).unwrap();
    write(
        &env.home(),
        "clouder.yaml",
        "clouder:\n  other_setting: keep-me\ntheme: dark\n",
    );
    env.ok(&["kubeadm", "set-default", "alpha"]);
    let config = std::fs::read_to_string(env.home().join("clouder.yaml")).unwrap();
    assert!(
        config.contains("other_setting: keep-me") && config.contains("theme: dark"),
        "{config}"
    );
    assert!(
        config.contains("default_kubeadm_cluster: alpha"),
        "{config}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.home().join("clouder.yaml")), 0o600);
    assert_eq!(mode(&env.home()), 0o700);
    assert_eq!(mode(&env.home().join("state.db")), 0o600);
    let out = env.ok(&["kubeadm", "use", "--print-export"]);
    assert!(out.contains("kubeadm/alpha/kubeconfig"), "{out}");
    let unknown = env.run(&["kubeadm", "set-default", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn contexts_hold_references_never_credentials() {
    let env = Env::new();
    env.ok(&[
        "ctx",
        "add",
        "prod",
        "--provider",
        "aws",
        "--profile",
        "prod-admin",
        "-r",
        "eu-west-1",
    ]);
    env.ok(&["ctx", "add", "dev", "--provider", "aws"]);
    let listed: serde_json::Value =
        serde_json::from_str(&env.ok(&["ctx", "ls", "-o", "json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["ctx", "show", "-o", "json"])).unwrap();
    assert_eq!(shown["name"], "prod", "the first context becomes current");
    assert_eq!(shown["profile"], "prod-admin");
    env.ok(&["ctx", "use", "dev"]);
    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["ctx", "show", "-o", "json"])).unwrap();
    assert_eq!(shown["name"], "dev");
    env.ok(&["ctx", "rm", "dev"]);
    assert_eq!(env.run(&["ctx", "show"]).status.code(), Some(2));
    assert_eq!(env.run(&["ctx", "use", "nope"]).status.code(), Some(2));
    let db = std::fs::read(env.home().join("state.db")).unwrap();
    let db = String::from_utf8_lossy(&db);
    assert!(
        !db.contains("testing"),
        "no credential reaches the state database"
    );
}

#[test]
fn schema_describes_the_spec() {
    let env = Env::new();
    let schema: serde_json::Value = serde_json::from_str(&env.ok(&["kubeadm", "schema"])).unwrap();
    let spec = &schema["$defs"]["ClusterSpec"]["properties"];
    for field in [
        "provider",
        "network",
        "adminCidrs",
        "controlPlane",
        "nodePools",
        "kubernetes",
    ] {
        assert!(spec.get(field).is_some(), "{field} in {spec}");
    }
}

#[test]
fn ls_lists_and_json_matches_the_table() {
    let env = Env::new();
    let empty = env.ok(&["kubeadm", "ls"]);
    assert!(empty.contains("No clusters yet"));
    assert_eq!(env.ok(&["kubeadm", "ls", "-o", "json"]).trim(), "[]");
}
