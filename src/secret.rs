//! Secrets and their removal from everything commit-back prints or writes.
//!
//! A [`Secret`] never shows its value through `Debug` or `Display`; the only way
//! to the bytes is [`Secret::expose`], so every use is greppable. The
//! [`Redactor`] is the last line of defence: every log line and the JSON report
//! pass through it, so even a server that echoes a token back cannot make us
//! print it.

use std::fmt;
use std::sync::{Arc, RwLock};

/// A credential value. Cloning is cheap; the value is never formatted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::from(value.into()))
    }

    /// The raw value, for the one place that must send it (HTTP auth, SSH key).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Read straight from the environment into a `Secret` (config::RawVars).
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Replaces every known secret (and its obvious encodings) with `***`.
#[derive(Clone, Default)]
pub struct Redactor {
    needles: Arc<RwLock<Vec<String>>>,
}

/// Secrets shorter than this are not scrubbed from text: a 1-3 character
/// "secret" would turn ordinary words into asterisks and protects nothing.
const MIN_SECRET_LEN: usize = 4;

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a secret value. Its base64 form and, for multi-line values
    /// such as private keys, each long line are registered too, because that
    /// is how they would leak (an Authorization header, a key pasted in a log).
    pub fn add(&self, secret: &str) {
        use base64::Engine as _;
        let mut needles = self.needles.write().unwrap_or_else(|e| e.into_inner());
        let mut push = |s: &str| {
            let s = s.trim();
            if s.len() >= MIN_SECRET_LEN && !needles.iter().any(|n| n == s) {
                needles.push(s.to_owned());
            }
        };
        push(secret);
        push(&base64::engine::general_purpose::STANDARD.encode(secret));
        push(&percent_encoded(secret, b"-_.~"));
        push(&percent_encoded(secret, b""));
        for line in secret
            .lines()
            .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
        {
            push(line);
        }
        // Longest first, so a secret containing another is removed whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// [`Redactor::redact`] without a copy when nothing must go (a
    /// report with 100,000 files is megabytes).
    pub fn redact_owned(&self, text: String) -> String {
        let needles = self.needles.read().unwrap_or_else(|e| e.into_inner());
        if needles.iter().any(|n| text.contains(n.as_str())) {
            drop(needles);
            self.redact(&text)
        } else {
            text
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let needles = self.needles.read().unwrap_or_else(|e| e.into_inner());
        // Copy only when something must go (reports can be large).
        let mut out = std::borrow::Cow::Borrowed(text);
        for needle in needles.iter() {
            if out.contains(needle.as_str()) {
                out = std::borrow::Cow::Owned(out.replace(needle.as_str(), "***"));
            }
        }
        out.into_owned()
    }
}

/// The form a value takes in a URL or a form body: letters, digits and
/// `keep` as they are, every other byte as `%XX` (RFC 3986 keeps `-_.~`;
/// some encoders keep nothing but letters and digits).
fn percent_encoded(s: &str, keep: &[u8]) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || keep.contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2-token");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "hunter2-token");
    }

    #[test]
    fn redacts_value_base64_and_key_lines() {
        let r = Redactor::new();
        r.add("tok-ABCDEFG");
        r.add("-----BEGIN KEY-----\nAAAAB3NzaC1yc2EAAAADAQABAAABAQ\n-----END KEY-----");
        let text = "a tok-ABCDEFG b dG9rLUFCQ0RFRkc= c AAAAB3NzaC1yc2EAAAADAQABAAABAQ d";
        assert_eq!(r.redact(text), "a *** b *** c *** d");
        assert_eq!(r.redact_owned(text.to_owned()), "a *** b *** c *** d");
        assert_eq!(r.redact_owned("clean".to_owned()), "clean");
        r.add("p@ss word/+-x");
        assert_eq!(r.redact("x=p%40ss%20word%2F%2B-x&"), "x=***&");
        assert_eq!(r.redact("x=p%40ss%20word%2F%2B%2Dx&"), "x=***&");
    }

    #[test]
    fn ignores_tiny_values() {
        let r = Redactor::new();
        r.add("ab");
        assert_eq!(r.redact("ab cd"), "ab cd");
    }
}
