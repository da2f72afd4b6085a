//! Talking to the remote: push (outcome as data), fetch of the target branch,
//! and the access check of a dry run. Every failure comes back as
//! [`Evidence`] for the classifier: git2's error, the HTTP status and body the
//! subtransport kept, per-ref statuses and the server's sideband lines.
//!
//! `Remote::push` returning Ok does not mean the ref was accepted: the verdict
//! is in `push_update_reference` (gitui's push.rs, engineering notes).

use super::Repo;
use super::http;
use super::ssh::{HostKeyCheck, KnownHosts, host_and_port};
use crate::classify::{Evidence, GitErrorInfo};
use crate::config::Transport;
use crate::secret::Secret;
use git2::{
    CertificateCheckStatus, Cred, Direction, FetchOptions, Oid, PushOptions, RemoteCallbacks,
};
use std::cell::{Cell, RefCell};

/// How to reach the remote.
pub struct Endpoint {
    pub url: String,
    pub transport: Transport,
    pub ssh_key: Option<Secret>,
    pub known_hosts: KnownHosts,
    /// libgit2 replaces the certificate callback's error text with its own
    /// "invalid or unknown remote ssh hostkey"; ours is kept here.
    pub host_key_problem: RefCell<Option<String>>,
}

/// What the server said while we talked to it.
#[derive(Debug, Default)]
pub struct Transcript {
    /// Sideband lines, trimmed, without `remote: ` (libgit2 strips it).
    pub remote_lines: Vec<String>,
    /// refname -> status text, for refused refs.
    pub refused: Vec<(String, String)>,
}

pub enum PushOutcome {
    Accepted(Transcript),
    Refused(Evidence),
}

/// Upstream state of the target branch.
pub enum BranchTip {
    Missing,
    At(Oid),
}

const UPSTREAM_REF: &str = "refs/commit-back/upstream";

impl Endpoint {
    /// Pushes `refspecs` in one request.
    pub fn push(&self, repo: &Repo, refspecs: &[String]) -> PushOutcome {
        let sideband = RefCell::new(String::new());
        let refused = RefCell::new(Vec::new());
        let auth_attempts = Cell::new(0u32);
        let result = {
            let mut callbacks = self.callbacks(&auth_attempts);
            callbacks.sideband_progress(|data| {
                sideband
                    .borrow_mut()
                    .push_str(&String::from_utf8_lossy(data));
                true
            });
            callbacks.push_update_reference(|refname, status| {
                if let Some(s) = status {
                    refused
                        .borrow_mut()
                        .push((crate::text::untrusted(refname), crate::text::untrusted(s)));
                }
                Ok(())
            });
            let mut opts = PushOptions::new();
            opts.remote_callbacks(callbacks);
            // Delta search on every core, as git does (libgit2 defaults to one thread).
            opts.packbuilder_parallelism(0);
            repo.raw()
                .remote_anonymous(&self.url)
                .and_then(|mut remote| remote.push(refspecs, Some(&mut opts)))
        };
        let remote_lines = split_lines(&sideband.into_inner());
        let refused = refused.into_inner();
        match result {
            Ok(()) if refused.is_empty() => PushOutcome::Accepted(Transcript {
                remote_lines,
                refused,
            }),
            Ok(()) => PushOutcome::Refused(Evidence {
                remote_lines,
                ref_status: Some(
                    refused
                        .iter()
                        .map(|(_, s)| s.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                ..Default::default()
            }),
            Err(e) => PushOutcome::Refused(self.evidence(e, remote_lines)),
        }
    }

    /// Fetches the target branch; where it points now.
    // Evidence is built once per failed attempt; boxing it buys nothing.
    #[allow(clippy::result_large_err)]
    pub fn fetch_branch(&self, repo: &Repo, branch: &str) -> Result<BranchTip, Evidence> {
        let raw = repo.raw();
        if let Ok(mut r) = raw.find_reference(UPSTREAM_REF) {
            let _ = r.delete();
        }
        let auth_attempts = Cell::new(0u32);
        let result = {
            let mut opts = FetchOptions::new();
            opts.remote_callbacks(self.callbacks(&auth_attempts));
            opts.update_fetchhead(false);
            opts.download_tags(git2::AutotagOption::None);
            let spec = format!("+refs/heads/{branch}:{UPSTREAM_REF}");
            raw.remote_anonymous(&self.url)
                .and_then(|mut remote| remote.fetch(&[spec.as_str()], Some(&mut opts), None))
        };
        if let Err(e) = result {
            return Err(self.evidence(e, Vec::new()));
        }
        let tip = match raw.find_reference(UPSTREAM_REF) {
            Ok(mut r) => {
                let oid = r.target();
                let _ = r.delete();
                oid.map(BranchTip::At).unwrap_or(BranchTip::Missing)
            }
            Err(_) => BranchTip::Missing,
        };
        Ok(tip)
    }

    /// The dry run's access check: the receive-pack ref advertisement, which
    /// is where Bitbucket refuses credentials, 2SV, IP allowlists and scopes.
    #[allow(clippy::result_large_err)]
    pub fn check_push_access(&self, repo: &Repo, branch: &str) -> Result<BranchTip, Evidence> {
        let auth_attempts = Cell::new(0u32);
        let mut remote = repo
            .raw()
            .remote_anonymous(&self.url)
            .map_err(|e| self.evidence(e, Vec::new()))?;
        let connection =
            remote.connect_auth(Direction::Push, Some(self.callbacks(&auth_attempts)), None);
        let connection = connection.map_err(|e| self.evidence(e, Vec::new()))?;
        let wanted = format!("refs/heads/{branch}");
        let heads = connection
            .list()
            .map_err(|e| self.evidence(e, Vec::new()))?;
        Ok(heads
            .iter()
            .find(|h| h.name() == wanted)
            .map(|h| BranchTip::At(h.oid()))
            .unwrap_or(BranchTip::Missing))
    }

    fn callbacks<'a>(&'a self, auth_attempts: &'a Cell<u32>) -> RemoteCallbacks<'a> {
        let mut cb = RemoteCallbacks::new();
        if self.transport == Transport::Ssh {
            cb.credentials(move |_url, username, allowed| {
                // libgit2 calls again after each refusal: one try only, so a
                // refused key fails fast instead of looping (git2-rs#347).
                auth_attempts.set(auth_attempts.get() + 1);
                if auth_attempts.get() > 1 {
                    return Err(git2::Error::new(
                        git2::ErrorCode::Auth,
                        git2::ErrorClass::Ssh,
                        "the server refused the SSH key: Permission denied (publickey)",
                    ));
                }
                let user = username.unwrap_or("git");
                if !allowed.contains(git2::CredentialType::SSH_KEY) {
                    if allowed.contains(git2::CredentialType::USERNAME) {
                        return Cred::username(user);
                    }
                    return Err(git2::Error::from_str(
                        "the SSH server does not accept public keys",
                    ));
                }
                let key = self
                    .ssh_key
                    .as_ref()
                    .ok_or_else(|| git2::Error::from_str("no SSH key configured"))?;
                Cred::ssh_key_from_memory(user, None, key.expose(), None)
            });
            cb.certificate_check(move |cert, hostname| {
                let Some(hostkey) = cert.as_hostkey().and_then(|h| h.hostkey()) else {
                    return Err(git2::Error::from_str("the SSH server sent no host key"));
                };
                let (host, port) = host_and_port(&self.url).unwrap_or_else(|| (hostname.to_owned(), 22));
                let problem = match self.known_hosts.check(&host, port, hostkey) {
                    HostKeyCheck::Trusted => return Ok(CertificateCheckStatus::CertificateOk),
                    HostKeyCheck::Unknown => "is not known: add it to KNOWN_HOSTS (ssh-keyscan output) or the pipeline's known hosts",
                    HostKeyCheck::Mismatch => "does not match the known key: refusing to connect (possible man-in-the-middle, or the server's key changed)",
                    HostKeyCheck::UnknownCertificateAuthority => "is not known: known_hosts trusts it only through an @cert-authority line, and host certificates are not supported; add the host key itself to KNOWN_HOSTS (ssh-keyscan output)",
                    HostKeyCheck::Revoked => "is revoked in known_hosts (an @revoked line names it): refusing to connect",
                };
                let message = format!("the SSH host key of {host}:{port} {problem}");
                *self.host_key_problem.borrow_mut() = Some(message.clone());
                Err(git2::Error::new(git2::ErrorCode::Certificate, git2::ErrorClass::Ssh, message))
            });
        }
        cb
    }

    fn evidence(&self, e: git2::Error, mut remote_lines: Vec<String>) -> Evidence {
        let message = self
            .host_key_problem
            .borrow_mut()
            .take()
            .unwrap_or_else(|| crate::text::untrusted(e.message()));
        let mut evidence = Evidence {
            git_error: Some(GitErrorInfo {
                class: format!("{:?}", e.class()),
                code: format!("{:?}", e.code()),
                message,
            }),
            ..Default::default()
        };
        if self.transport == Transport::Http {
            if let Some(f) = http::take_failure() {
                evidence.http_status = f.status;
                remote_lines.extend(f.body_lines);
                if let Some(err) = f.error
                    && let Some(g) = evidence.git_error.as_mut()
                    && !g.message.contains(&err)
                {
                    g.message = format!("{}: {err}", g.message);
                }
            }
        } else if e.class() == git2::ErrorClass::Ssh && e.code() == git2::ErrorCode::Eof {
            // libgit2 turns the server's stderr into this error (ssh_libssh2.c
            // ssh_stream_read): it is the server speaking.
            remote_lines.extend(split_lines(e.message()));
        }
        evidence.remote_lines = remote_lines;
        evidence
    }
}

/// Sideband text arrives in chunks, mixed with `\r` progress and padded with
/// spaces (facts §1.0): split, trim, drop empties and repeats.
pub fn split_lines(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.split(['\n', '\r']) {
        let line = crate::text::untrusted(line.trim());
        let line = line.trim();
        if !line.is_empty() && out.last().map(String::as_str) != Some(line) {
            out.push(line.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::split_lines;

    #[test]
    fn sideband_is_split_and_trimmed() {
        let text =
            "Permission denied to update branch main.        \nprogress 1%\rprogress 1%\r\n\n";
        assert_eq!(
            split_lines(text),
            ["Permission denied to update branch main.", "progress 1%"]
        );
    }
}
