//! Which credential pushes, and how each kind authenticates.
//!
//! The closed [`Credential`] enum is resolved from the pipe variables in the
//! documented order (the first complete one wins; a half-given one is an
//! error), and the username/secret mapping for git and for the REST API lives
//! in one `match` each. Facts: bitbucket-facts.md §2.

use crate::config::{ConfigError, PIPELINES_SSH_DIR, RawVars};
use crate::secret::Secret;
pub use crate::terms::CredentialKind;
use base64::Engine as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshKeySource {
    /// SSH_KEY, base64-encoded (the official pipes' convention).
    Variable,
    /// The pipeline's own key (AUTH=ssh).
    PipelineFile,
}

#[derive(Debug, Clone)]
pub enum Credential {
    AccessToken {
        token: Secret,
    },
    ApiToken {
        email: String,
        token: Secret,
        git_user: String,
    },
    AppPassword {
        username: String,
        password: Secret,
    },
    SshKey {
        private_key: Secret,
        source: SshKeySource,
        path: Option<PathBuf>,
    },
    Pipeline,
}

/// Git's static user for access tokens (facts §2, "Repository cloning").
pub const ACCESS_TOKEN_GIT_USER: &str = "x-token-auth";
/// Git's static user for API tokens (support.atlassian.com "Using API tokens").
pub const API_TOKEN_GIT_USER: &str = "x-bitbucket-api-token-auth";

impl Credential {
    pub fn kind(&self) -> CredentialKind {
        match self {
            Credential::AccessToken { .. } => CredentialKind::AccessToken,
            Credential::ApiToken { .. } => CredentialKind::ApiToken,
            Credential::AppPassword { .. } => CredentialKind::AppPassword,
            Credential::SshKey { .. } => CredentialKind::SshKey,
            Credential::Pipeline => CredentialKind::Pipeline,
        }
    }

    pub fn is_ssh(&self) -> bool {
        matches!(self, Credential::SshKey { .. })
    }

    /// Git-over-HTTP Basic credentials, or None (SSH, or the proxy adds them).
    pub fn git_http_basic(&self) -> Option<(&str, &Secret)> {
        match self {
            Credential::AccessToken { token } => Some((ACCESS_TOKEN_GIT_USER, token)),
            Credential::ApiToken {
                token, git_user, ..
            } => Some((git_user, token)),
            Credential::AppPassword { username, password } => Some((username, password)),
            Credential::SshKey { .. } | Credential::Pipeline => None,
        }
    }

    /// The REST `Authorization` header value (facts §2): Bearer for access
    /// tokens, Basic e-mail:token for API tokens, Basic user:password for app
    /// passwords. None where the proxy authenticates or there is no REST secret.
    /// The git-over-HTTP `Authorization` header value (Basic).
    pub fn git_http_authorization(&self) -> Option<Secret> {
        self.git_http_basic()
            .map(|(user, secret)| basic(user, secret))
    }

    pub fn rest_authorization(&self) -> Option<Secret> {
        match self {
            Credential::AccessToken { token } => {
                Some(Secret::new(format!("Bearer {}", token.expose())))
            }
            Credential::ApiToken { email, token, .. } => Some(basic(email, token)),
            Credential::AppPassword { username, password } => Some(basic(username, password)),
            Credential::SshKey { .. } | Credential::Pipeline => None,
        }
    }

    /// Every value that must never be shown: the secret itself and the
    /// base64 of each `Basic` header made from it (its base64 is not a
    /// substring of the header's, which also holds the user name).
    pub fn secrets(&self) -> Vec<Secret> {
        let mut all = match self {
            Credential::AccessToken { token } => vec![token.clone()],
            Credential::ApiToken { token, .. } => vec![token.clone()],
            Credential::AppPassword { password, .. } => vec![password.clone()],
            Credential::SshKey { private_key, .. } => vec![private_key.clone()],
            Credential::Pipeline => vec![],
        };
        for header in [self.git_http_authorization(), self.rest_authorization()]
            .into_iter()
            .flatten()
        {
            if let Some(encoded) = header.expose().strip_prefix("Basic ") {
                all.push(Secret::new(encoded));
            }
        }
        all
    }
}

/// `Basic base64(user:secret)`.
fn basic(user: &str, secret: &Secret) -> Secret {
    Secret::new(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", secret.expose()))
    ))
}

/// Resolves the credential in the documented order.
pub fn resolve(raw: &RawVars) -> Result<Credential, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let api_pair = (
        raw.atlassian_account_email.as_deref(),
        raw.atlassian_api_token.as_ref().map(Secret::expose),
    );
    match api_pair {
        (Some(_), None) => errors.push(ConfigError::new(
            "ATLASSIAN_API_TOKEN",
            "ATLASSIAN_ACCOUNT_EMAIL is set but ATLASSIAN_API_TOKEN is not; set both (the bot account's e-mail and its API token) or neither",
        )),
        (None, Some(_)) => errors.push(ConfigError::new(
            "ATLASSIAN_ACCOUNT_EMAIL",
            "ATLASSIAN_API_TOKEN is set but ATLASSIAN_ACCOUNT_EMAIL is not; set the e-mail of the account that owns the API token",
        )),
        _ => {}
    }
    if raw.bitbucket_app_password.is_some() && raw.bitbucket_username.is_none() {
        errors.push(ConfigError::new(
            "BITBUCKET_USERNAME",
            "BITBUCKET_APP_PASSWORD is set but BITBUCKET_USERNAME is not; set the Bitbucket username (not the e-mail) that owns the app password",
        ));
    }
    let auth = raw.auth.as_deref().map(|a| a.trim().to_ascii_lowercase());
    if let Some(a) = &auth
        && a != "ssh"
    {
        errors.push(ConfigError::new(
            "AUTH",
            format!("'{a}' is not supported; AUTH=ssh uses the pipeline's own SSH key, leave AUTH unset otherwise"),
        ));
    }
    let ssh_key = raw
        .ssh_key
        .as_ref()
        .map(|k| decode_ssh_key(k.expose()))
        .transpose()
        .unwrap_or_else(|e| {
            errors.push(e);
            None
        });
    if !errors.is_empty() {
        return Err(errors);
    }

    if let Some(token) = &raw.bitbucket_access_token {
        return Ok(Credential::AccessToken {
            token: Secret::new(token.expose().trim()),
        });
    }
    if let (Some(email), Some(token)) = api_pair {
        let git_user = raw
            .bitbucket_username
            .clone()
            .unwrap_or_else(|| API_TOKEN_GIT_USER.to_owned());
        return Ok(Credential::ApiToken {
            email: email.trim().to_owned(),
            token: Secret::new(token.trim()),
            git_user,
        });
    }
    if let (Some(username), Some(password)) = (&raw.bitbucket_username, &raw.bitbucket_app_password)
    {
        return Ok(Credential::AppPassword {
            username: username.trim().to_owned(),
            password: Secret::new(password.expose().trim()),
        });
    }
    if raw.bitbucket_username.is_some() {
        return Err(vec![ConfigError::new(
            "BITBUCKET_APP_PASSWORD",
            "BITBUCKET_USERNAME is set without a secret; add ATLASSIAN_ACCOUNT_EMAIL + ATLASSIAN_API_TOKEN (recommended) or BITBUCKET_APP_PASSWORD, or unset BITBUCKET_USERNAME",
        )]);
    }
    if let Some(key) = ssh_key {
        return Ok(Credential::SshKey {
            private_key: key,
            source: SshKeySource::Variable,
            path: None,
        });
    }
    if auth.as_deref() == Some("ssh") {
        return pipeline_ssh_key(raw).map_err(|e| vec![e]);
    }
    Ok(Credential::Pipeline)
}

/// SSH_KEY: base64 of a private key (Pipelines variables cannot hold line
/// breaks). A raw PEM is accepted too, for `docker run -e SSH_KEY="$(cat key)"`.
fn decode_ssh_key(value: &str) -> Result<Secret, ConfigError> {
    let fix =
        "encode the private key with `base64 -w 0 < id_ed25519` and set the result as SSH_KEY";
    let text =
        key_text(value).map_err(|why| ConfigError::new("SSH_KEY", format!("{why}; {fix}")))?;
    check_private_key(&text).map_err(|why| ConfigError::new("SSH_KEY", format!("{why}; {fix}")))?;
    Ok(Secret::new(text))
}

/// A key variable's text: base64 of the key file (Pipelines variables
/// cannot hold line breaks), or the armored text itself, for
/// `docker run -e SSH_KEY="$(cat key)"`. The error says why in words, never
/// repeating the value.
pub(crate) fn key_text(value: &str) -> Result<String, &'static str> {
    if value.trim_start().starts_with("-----BEGIN") {
        return Ok(value.to_owned());
    }
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| "is not valid base64")?;
    String::from_utf8(bytes).map_err(|_| "does not decode to a text private key")
}

fn check_private_key(text: &str) -> Result<(), String> {
    let trimmed = text.trim();
    if !(trimmed.starts_with("-----BEGIN") && trimmed.contains("PRIVATE KEY-----")) {
        return Err(
            "is not a private key (no '-----BEGIN … PRIVATE KEY-----' block; is it the .pub file?)"
                .into(),
        );
    }
    if trimmed.contains("ENCRYPTED") || openssh_key_is_encrypted(trimmed) {
        return Err("is protected by a passphrase, which a pipeline cannot type; use a key without a passphrase".into());
    }
    Ok(())
}

/// The openssh-key-v1 format names its cipher right after the magic; "none"
/// means no passphrase.
fn openssh_key_is_encrypted(pem: &str) -> bool {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(body.trim()) else {
        return false;
    };
    let magic = b"openssh-key-v1\0";
    if !bytes.starts_with(magic) || bytes.len() < magic.len() + 4 {
        return false;
    }
    let rest = &bytes[magic.len()..];
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    rest.get(4..4 + len).is_some_and(|cipher| cipher != b"none")
}

/// AUTH=ssh: `$BITBUCKET_SSH_KEY_FILE`, else the files Pipelines mounts.
fn pipeline_ssh_key(raw: &RawVars) -> Result<Credential, ConfigError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(f) = &raw.bitbucket_ssh_key_file {
        candidates.push(f.into());
    }
    // id_rsa_tmp is "the default ssh key with open perms readable by alt uids" (facts §4).
    candidates.push(Path::new(PIPELINES_SSH_DIR).join("id_rsa_tmp"));
    candidates.push(Path::new(PIPELINES_SSH_DIR).join("id_rsa"));
    let mut last_error = None;
    for path in &candidates {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_private_key(&text).map_err(|why| {
                    ConfigError::new("AUTH", format!("the pipeline key {} {why}", path.display()))
                })?;
                return Ok(Credential::SshKey {
                    private_key: Secret::new(text),
                    source: SshKeySource::PipelineFile,
                    path: Some(path.clone()),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => last_error = Some(format!("{}: {e}", path.display())),
        }
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(ConfigError::new(
        "AUTH",
        format!(
            "AUTH=ssh but no pipeline SSH key could be read ({}); add one in Repository settings > Pipelines > SSH keys, or set SSH_KEY",
            last_error.unwrap_or_else(|| format!("tried {}", tried.join(", ")))
        ),
    ))
}

/// known_hosts lines beyond the built-in Bitbucket keys: the pipeline's
/// known_hosts (beside its SSH key) and the KNOWN_HOSTS variable (plain lines
/// or base64 of them).
pub fn known_hosts_lines(raw: &RawVars) -> Result<Vec<String>, ConfigError> {
    let mut lines = Vec::new();
    let mut files: Vec<PathBuf> = vec![Path::new(PIPELINES_SSH_DIR).join("known_hosts")];
    if let Some(dir) = raw
        .bitbucket_ssh_key_file
        .as_deref()
        .and_then(|f| Path::new(f).parent())
    {
        files.insert(0, dir.join("known_hosts"));
    }
    files.dedup();
    for f in files {
        if let Ok(text) = std::fs::read_to_string(&f) {
            lines.extend(text.lines().map(str::to_owned));
        }
    }
    if let Some(value) = &raw.known_hosts {
        let looks_plain = value.lines().any(|l| l.split_whitespace().count() >= 3);
        let text = if looks_plain {
            value.clone()
        } else {
            let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ConfigError::new("KNOWN_HOSTS", "is neither known_hosts lines nor base64 of them; e.g. KNOWN_HOSTS=\"$(ssh-keyscan -t ed25519 git.example.com)\"")
                })?
        };
        let parsed: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(str::to_owned)
            .collect();
        if parsed.is_empty() || parsed.iter().any(|l| l.split_whitespace().count() < 3) {
            return Err(ConfigError::new(
                "KNOWN_HOSTS",
                "each line must be 'host keytype base64key', as ssh-keyscan prints",
            ));
        }
        lines.extend(parsed);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawVars {
        RawVars::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n";

    #[test]
    fn order_first_complete_wins() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(KEY);
        let all = [
            ("BITBUCKET_ACCESS_TOKEN", "at-1234"),
            ("ATLASSIAN_ACCOUNT_EMAIL", "bot@example.com"),
            ("ATLASSIAN_API_TOKEN", "api-1234"),
            ("BITBUCKET_USERNAME", "botuser"),
            ("BITBUCKET_APP_PASSWORD", "app-1234"),
            ("SSH_KEY", b64.as_str()),
        ];
        let expected = [
            CredentialKind::AccessToken,
            CredentialKind::ApiToken,
            CredentialKind::AppPassword,
            CredentialKind::SshKey,
        ];
        for (skip, kind) in [0usize, 1, 3, 5].into_iter().zip(expected) {
            let pairs: Vec<_> = all[skip..].to_vec();
            assert_eq!(resolve(&raw(&pairs)).unwrap().kind(), kind, "from {skip}");
        }
        assert_eq!(resolve(&raw(&[])).unwrap().kind(), CredentialKind::Pipeline);
    }

    #[test]
    fn api_token_git_user_defaults_to_static_name() {
        let c = resolve(&raw(&[
            ("ATLASSIAN_ACCOUNT_EMAIL", "bot@example.com"),
            ("ATLASSIAN_API_TOKEN", "api-1234"),
        ]))
        .unwrap();
        assert_eq!(c.git_http_basic().unwrap().0, API_TOKEN_GIT_USER);
        let c = resolve(&raw(&[
            ("ATLASSIAN_ACCOUNT_EMAIL", "b@e.com"),
            ("ATLASSIAN_API_TOKEN", "api-1234"),
            ("BITBUCKET_USERNAME", "bot"),
        ]))
        .unwrap();
        assert_eq!(c.git_http_basic().unwrap().0, "bot");
        // REST uses the e-mail, never the git user.
        let header = c.rest_authorization().unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("b@e.com:api-1234");
        assert_eq!(header.expose(), format!("Basic {expected}"));
    }

    #[test]
    fn access_token_is_bearer_for_rest_and_x_token_auth_for_git() {
        let c = resolve(&raw(&[("BITBUCKET_ACCESS_TOKEN", "at-1234")])).unwrap();
        assert_eq!(c.git_http_basic().unwrap().0, "x-token-auth");
        assert_eq!(c.rest_authorization().unwrap().expose(), "Bearer at-1234");
    }

    #[test]
    fn ssh_key_forms() {
        assert!(decode_ssh_key(KEY).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode(KEY);
        assert!(decode_ssh_key(&b64).is_ok());
        let wrapped: String = b64
            .as_bytes()
            .chunks(60)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert!(decode_ssh_key(&wrapped).is_ok());
        let public =
            base64::engine::general_purpose::STANDARD.encode("ssh-ed25519 AAAAC3Nza user@host");
        assert!(
            decode_ssh_key(&public)
                .unwrap_err()
                .message
                .contains(".pub")
        );
        let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nabc\n-----END RSA PRIVATE KEY-----";
        assert!(
            decode_ssh_key(encrypted)
                .unwrap_err()
                .message
                .contains("passphrase")
        );
    }

    #[test]
    fn pipeline_key_file_is_found_or_explained() {
        let dir = std::env::temp_dir().join(format!("cb-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("id_rsa");
        std::fs::write(&key, KEY).unwrap();
        std::fs::write(
            dir.join("known_hosts"),
            "[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIaz\n",
        )
        .unwrap();
        let r = raw(&[
            ("AUTH", "ssh"),
            ("BITBUCKET_SSH_KEY_FILE", key.to_str().unwrap()),
        ]);
        let c = resolve(&r).unwrap();
        assert!(matches!(
            c,
            Credential::SshKey {
                source: SshKeySource::PipelineFile,
                ..
            }
        ));
        assert!(
            known_hosts_lines(&r)
                .unwrap()
                .iter()
                .any(|l| l.starts_with("[127.0.0.1]:2222"))
        );
        let missing = raw(&[
            ("AUTH", "ssh"),
            ("BITBUCKET_SSH_KEY_FILE", "/nonexistent/id_rsa"),
        ]);
        let e = resolve(&missing).unwrap_err();
        assert_eq!(e[0].variable, "AUTH");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
