//! shellcheck over generated shell (installed by `scripts/peers.sh`).

use std::io::Write as _;
use std::process::{Command, Stdio};

/// Panics with shellcheck's findings unless `text`, checked as `shell` (`bash`, `sh`), is clean;
/// `what` names it in the message.
pub fn assert_clean(shell: &str, what: &str, text: &str) {
    let out = Command::new("shellcheck")
        .arg(format!("--shell={shell}"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .expect("piped")
                .write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("shellcheck (apt-get install shellcheck; scripts/peers.sh does)");
    assert!(
        out.status.success(),
        "{what}:\n{text}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
