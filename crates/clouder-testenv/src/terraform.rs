//! The `terraform` binary on a rendered module, when this machine has one: `providers` (loads
//! every file and resolves the pinned requirement, no plugin needed), `console` (evaluates
//! expressions that need no provider) and `validate` (needs the provider plugin, which these
//! machines cannot download: run only when it is installed under ~/.terraform.d/plugins).
//! Each says SKIPPED with the reason when it cannot run.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Whether `terraform` runs here; prints why not.
pub fn present() -> bool {
    let ok = Command::new("terraform").arg("version").output().is_ok();
    if !ok {
        println!("SKIPPED: no terraform binary on PATH");
    }
    ok
}

fn terraform(dir: &Path) -> Command {
    let mut c = Command::new("terraform");
    c.arg(format!("-chdir={}", dir.display()))
        .env("TF_IN_AUTOMATION", "1")
        .env("NO_COLOR", "1");
    c
}

/// `terraform providers` in `dir`: its output, or a panic with Terraform's words.
pub fn providers(dir: &Path) -> String {
    let out = terraform(dir).arg("providers").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "terraform providers: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `expression` evaluated by `terraform console` in `dir`, as JSON (it is wrapped in
/// `jsonencode`).
pub fn evaluate(dir: &Path, expression: &str) -> serde_json::Value {
    let mut console = terraform(dir)
        .arg("console")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = console.stdin.take().unwrap();
    writeln!(stdin, "jsonencode({expression})").unwrap();
    drop(stdin);
    let out = console.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    let text: String = serde_json::from_str(printed.trim())
        .unwrap_or_else(|e| panic!("terraform console printed {printed:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// `terraform init` + `validate` in `dir` with the plugin of `provider` (`hashicorp/aws`) at
/// `version` from ~/.terraform.d/plugins; SKIPPED when it is not installed there.
pub fn validate(dir: &Path, provider: &str, version: &str) {
    let home = std::env::var("HOME").unwrap_or_default();
    let plugins = format!("{home}/.terraform.d/plugins");
    if !Path::new(&format!(
        "{plugins}/registry.terraform.io/{provider}/{version}"
    ))
    .exists()
    {
        println!(
            "SKIPPED terraform validate: the {provider} {version} plugin is not installed \
             ({plugins}) and registry.terraform.io is not reachable from here"
        );
        return;
    }
    let init = terraform(dir)
        .args(["init", "-backend=false", "-input=false"])
        .arg(format!("-plugin-dir={plugins}"))
        .status()
        .unwrap();
    assert!(init.success());
    let validate = terraform(dir).arg("validate").output().unwrap();
    assert!(
        validate.status.success(),
        "{}",
        String::from_utf8_lossy(&validate.stdout)
    );
}
