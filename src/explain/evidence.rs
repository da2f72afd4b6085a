//! What a failed operation left behind, as data: the HTTP status and body
//! lines, the server's `remote:` lines and per-ref status, libgit2's error
//! (class and code as enums), and the facts about the run that shape a
//! remedy. Filled by the transports (git/), read by the classifiers; no
//! logic but the views the classifiers share.

use crate::enrich::ApiContext;
use crate::terms::CredentialKind;
use crate::terms::{OnRestricted, Transport};

/// What a failed attempt left behind.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub http_status: Option<u16>,
    /// Server lines, trimmed, without the `remote: ` prefix: the text/plain
    /// body of a refused HTTP request, sideband lines, SSH stderr.
    pub remote_lines: Vec<String>,
    /// Per-ref status from the server, e.g. `pre-receive hook declined`.
    pub ref_status: Option<String>,
    pub git_error: Option<GitErrorInfo>,
    /// Files in conflict when the artifact commit could not be rebased.
    pub conflicts: Vec<String>,
    /// TAG already exists on the remote at another commit (never moved).
    pub tag_conflict: Option<TagConflict>,
    /// The Git LFS server failed or refused, and what it was asked to do
    /// ("the LFS batch request", "uploading build/app.bin"): the git push
    /// was not sent.
    pub lfs: Option<String>,
}

/// The remote's tag and the commit this run would have tagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagConflict {
    pub tag: String,
    /// The commit the remote tag points at (peeled), or the tag object when
    /// it could not be peeled.
    pub remote: String,
    /// This run's artifact commit.
    pub ours: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitErrorInfo {
    pub class: ErrorClass,
    pub code: ErrorCode,
    pub message: String,
}

/// Where libgit2 says an error came from (`git_error_t`), as far as the
/// classifier tells them apart; git/ maps git2's values onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The network: a transport's connection, or a Rust subtransport's
    /// I/O error (git2 files those under `Net`).
    Net,
    Os,
    Http,
    Ssh,
    Reference,
    Odb,
    Tag,
    Other,
}

#[cfg(test)]
impl ErrorClass {
    /// A captured fixture's class, as git2 spells it (`Net`, `Ssh`, …).
    pub(crate) fn named(name: &str) -> ErrorClass {
        match name {
            "Net" => ErrorClass::Net,
            "Os" => ErrorClass::Os,
            "Http" => ErrorClass::Http,
            "Ssh" => ErrorClass::Ssh,
            "Reference" => ErrorClass::Reference,
            "Odb" => ErrorClass::Odb,
            "Tag" => ErrorClass::Tag,
            _ => ErrorClass::Other,
        }
    }
}

#[cfg(test)]
impl ErrorCode {
    /// A captured fixture's code, as git2 spells it (`GenericError`, …).
    pub(crate) fn named(name: &str) -> ErrorCode {
        match name {
            "NotFastForward" => ErrorCode::NotFastForward,
            "Auth" => ErrorCode::Auth,
            "Certificate" => ErrorCode::Certificate,
            "Eof" => ErrorCode::Eof,
            "GenericError" => ErrorCode::Generic,
            _ => ErrorCode::Other,
        }
    }
}

/// What libgit2 says went wrong (`git_error_code`), as far as the
/// classifier tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotFastForward,
    Auth,
    Certificate,
    Eof,
    Generic,
    Other,
}

/// Facts about the run that shape the remedies.
#[derive(Debug, Clone)]
pub struct Situation {
    pub credential: CredentialKind,
    pub transport: Transport,
    pub branch: String,
    pub repository: Option<String>,
    /// What the REST API said about the identity and the branch's rules.
    pub api: Option<ApiContext>,
    pub on_restricted: OnRestricted,
    /// The key that signed the commits (`SSH key ssh-ed25519 SHA256:…
    /// (SIGNING_KEY)`), None when unsigned.
    pub signed_with: Option<String>,
    /// AUTHOR_EMAIL: the committer e-mail a signature is matched against.
    pub committer_email: String,
}

impl Evidence {
    pub(super) fn haystack(&self) -> String {
        let mut text = self.remote_lines.join("\n");
        if let Some(s) = &self.ref_status {
            text.push('\n');
            text.push_str(s);
        }
        if let Some(e) = &self.git_error {
            text.push('\n');
            text.push_str(&e.message);
        }
        text.to_lowercase()
    }

    pub(super) fn git_code(&self) -> Option<ErrorCode> {
        self.git_error.as_ref().map(|e| e.code)
    }

    pub(super) fn git_class(&self) -> Option<ErrorClass> {
        self.git_error.as_ref().map(|e| e.class)
    }
}

/// The HTTPS server's certificate failed verification: a company proxy that
/// inspects TLS, a self-signed server, a wrong clock. Reported as `unknown`
/// (like an unverifiable SSH host key) with its own words and remedy.
pub(crate) fn tls_certificate_refused(e: &Evidence) -> bool {
    let t = e.haystack();
    [
        "certificate verify failed",
        "self-signed certificate",
        "self signed certificate",
        "unable to get local issuer certificate",
        "certificate has expired",
    ]
    .iter()
    .any(|needle| t.contains(needle))
}
