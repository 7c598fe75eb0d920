//! `WWW-Authenticate` challenges (RFC 7235): a scheme and its `key="value"` parameters.
//! Values may be quoted and hold commas (`scope="repository:app:pull,push"`).

use std::collections::BTreeMap;

/// What the registry asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// User name and password on every request.
    Basic,
    /// A token from `realm` (with `service`, and the scope asked for).
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    /// A bearer challenge, or basic for anything else (a bare 401 included: registries
    /// behind a plain password check send no header or a scheme of their own).
    pub fn parse(header: &str) -> Result<Challenge, String> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Ok(Challenge::Basic);
        }
        let mut params = params(rest);
        Ok(Challenge::Bearer {
            realm: params
                .remove("realm")
                .ok_or("bearer challenge without a realm")?,
            service: params.remove("service"),
        })
    }
}

/// `k1="v, 1", k2=v2` → {k1: "v, 1", k2: "v2"}; keys lower-cased.
fn params(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_give_realm_and_service_even_with_commas_in_the_scope() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Ok(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
            })
        );
        assert_eq!(
            Challenge::parse("bearer realm=http://x/t"),
            Ok(Challenge::Bearer {
                realm: "http://x/t".into(),
                service: None
            })
        );
    }

    #[test]
    fn basic_unknown_and_realmless_challenges() {
        for basic in [r#"Basic realm="Registry Realm""#, "", "Negotiate abc"] {
            assert_eq!(Challenge::parse(basic), Ok(Challenge::Basic), "{basic}");
        }
        assert_eq!(
            Challenge::parse(r#"Bearer service="x""#),
            Err("bearer challenge without a realm".into())
        );
    }
}
