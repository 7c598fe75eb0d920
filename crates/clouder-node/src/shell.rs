//! Building shell scripts safely: every value goes through [`quote`]; scripts start strict.

/// POSIX single-quoting: the value arrives as exactly one word, whatever it contains.
pub fn quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c))
    {
        return value.to_string();
    }
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// A bash script with strict mode on, from lines.
pub fn script<I, S>(lines: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    // A failing step names itself, so errors (and unconverged probes) say what is wrong.
    let mut out = String::from(
        "#!/usr/bin/env bash\nset -euo pipefail\ntrap 'echo \"failed: $BASH_COMMAND\" >&2' ERR\n",
    );
    for line in lines {
        out.push_str(line.as_ref());
        out.push('\n');
    }
    out
}

/// Writes `content` to `path` (mode `mode`) only when it differs, via a here-document whose
/// delimiter cannot occur in the content.
pub fn write_file(path: &str, mode: &str, content: &str) -> String {
    let delimiter = delimiter(content);
    let (p, tmp) = (quote(path), quote(&format!("{path}.clouder-new")));
    format!(
        "mkdir -p \"$(dirname {p})\"\ncat > {tmp} <<'{delimiter}'\n{content}{nl}{delimiter}\n\
         if cmp -s {tmp} {p}; then rm -f {tmp}; else chmod {mode} {tmp} && mv {tmp} {p}; fi",
        nl = newline(content),
    )
}

/// A test that passes when `path` holds exactly `content`.
pub fn file_is(path: &str, content: &str) -> String {
    format!(
        "cmp -s {} - <<'{d}'\n{content}{nl}{d}",
        quote(path),
        d = delimiter(content),
        nl = newline(content)
    )
}

fn delimiter(content: &str) -> String {
    let mut delimiter = String::from("CLOUDER_EOF");
    while content.contains(&delimiter) {
        delimiter.push('_');
    }
    delimiter
}

fn newline(content: &str) -> &'static str {
    if content.ends_with('\n') { "" } else { "\n" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_one_word() {
        assert_eq!(quote("plain-1.32"), "plain-1.32");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's $(rm -rf /)"), r"'it'\''s $(rm -rf /)'");
    }
}
