//! SIGN, SIGNING_KEY and SIGNING_KEY_PASSPHRASE -> the run's [`Signing`],
//! or none. The key is read and unlocked here, so a wrong passphrase or an
//! unusable key is a configuration error (exit 2) before anything is written.

use super::{ConfigError, RawVars, parse_bool};
use crate::config::credentials::{Credential, SshKeySource, key_text};
use crate::secret::Secret;
use crate::signing::{KeyProblem, Signer};
use std::sync::Arc;

/// How the run signs.
#[derive(Debug, Clone)]
pub struct Signing {
    pub signer: Arc<Signer>,
    /// The variable that holds the key: SIGNING_KEY or SSH_KEY.
    pub source: &'static str,
    /// The decoded key and the passphrase, for the redactor.
    secrets: Vec<Secret>,
}

impl Signing {
    pub fn secrets(&self) -> &[Secret] {
        &self.secrets
    }
}

/// What SIGN asks for.
enum Wanted {
    Nothing,
    SigningKey,
    PushKey,
}

/// `credential` is None when the credential variables were invalid (then
/// SIGN=ssh-key is not judged against them).
pub fn parse(
    raw: &RawVars,
    credential: Option<&Credential>,
) -> Result<Option<Signing>, Vec<ConfigError>> {
    let wanted = match raw.sign.as_deref().map(|v| v.trim().to_ascii_lowercase()) {
        None => match raw.signing_key {
            Some(_) => Wanted::SigningKey,
            None => Wanted::Nothing,
        },
        Some(v) if v == "ssh-key" || v == "ssh_key" => Wanted::PushKey,
        Some(v) => match parse_bool(Some(&v), "SIGN", false) {
            Ok(true) => Wanted::SigningKey,
            Ok(false) => Wanted::Nothing,
            Err(_) => {
                // Repeated only when it cannot be a key pasted in the wrong
                // variable.
                let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
                let shown = if v.len() <= 16 && v.chars().all(plain) {
                    format!("'{v}'")
                } else {
                    "the value".to_owned()
                };
                return Err(vec![ConfigError::new(
                    "SIGN",
                    format!(
                        "{shown} is not supported; use SIGN=true (sign with SIGNING_KEY), SIGN=ssh-key (sign with the SSH key that pushes) or SIGN=false"
                    ),
                )]);
            }
        },
    };
    match wanted {
        Wanted::Nothing => Ok(None),
        Wanted::SigningKey => signing_key(raw).map(Some),
        Wanted::PushKey => push_key(raw, credential),
    }
}

fn signing_key(raw: &RawVars) -> Result<Signing, Vec<ConfigError>> {
    let Some(value) = &raw.signing_key else {
        return Err(vec![ConfigError::new(
            "SIGNING_KEY",
            "SIGN=true needs the signing key: set SIGNING_KEY to the private key, base64-encoded (`base64 -w 0 < id_ed25519`, or `gpg --armor --export-secret-keys KEYID | base64 -w 0`), or SIGN=ssh-key to sign with SSH_KEY",
        )]);
    };
    let fix = "encode the key file with `base64 -w 0 < key` and set the result as SIGNING_KEY";
    let text = key_text(value.expose())
        .map_err(|why| vec![ConfigError::new("SIGNING_KEY", format!("{why}; {fix}"))])?;
    let passphrase = raw.signing_key_passphrase.as_ref().map(|p| p.expose());
    let signer = Signer::from_private_key(&text, passphrase).map_err(|problem| {
        vec![match problem {
            KeyProblem::Key(why) => ConfigError::new("SIGNING_KEY", why),
            KeyProblem::Passphrase(why) => ConfigError::new("SIGNING_KEY_PASSPHRASE", why),
        }]
    })?;
    let mut secrets = vec![Secret::new(text)];
    secrets.extend(raw.signing_key_passphrase.clone());
    Ok(Signing {
        signer: Arc::new(signer),
        source: "SIGNING_KEY",
        secrets,
    })
}

fn push_key(
    raw: &RawVars,
    credential: Option<&Credential>,
) -> Result<Option<Signing>, Vec<ConfigError>> {
    if raw.signing_key.is_some() {
        return Err(vec![ConfigError::new(
            "SIGN",
            "SIGN=ssh-key signs with SSH_KEY, but SIGNING_KEY is set too; unset SIGNING_KEY, or set SIGN=true to sign with it",
        )]);
    }
    let (private_key, source) = match credential {
        // Already reported under the credential's own variables.
        None => return Ok(None),
        Some(Credential::SshKey {
            private_key,
            source,
            ..
        }) => (
            private_key,
            match source {
                SshKeySource::Variable => "SSH_KEY",
                SshKeySource::PipelineFile => "AUTH",
            },
        ),
        Some(other) => {
            return Err(vec![ConfigError::new(
                "SIGN",
                format!(
                    "SIGN=ssh-key signs with the SSH key that pushes, but this run pushes with {}; set SSH_KEY, or give a signing key as SIGNING_KEY (SIGN=true)",
                    other.kind().describe()
                ),
            )]);
        }
    };
    let signer = Signer::from_private_key(private_key.expose(), None).map_err(|problem| {
        let (KeyProblem::Key(why) | KeyProblem::Passphrase(why)) = problem;
        vec![ConfigError::new(
            source,
            format!("cannot sign (SIGN=ssh-key): {why}"),
        )]
    })?;
    Ok(Some(Signing {
        signer: Arc::new(signer),
        source,
        secrets: vec![private_key.clone()],
    }))
}
