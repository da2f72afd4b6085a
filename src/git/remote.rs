//! Talking to the remote: push (outcome as data), fetch of the target branch,
//! and the access check of a dry run. Every failure comes back as
//! [`Evidence`] for the classifier: git2's error, the HTTP status and body the
//! subtransport kept, per-ref statuses and the server's sideband lines.
//!
//! `Remote::push` returning Ok does not mean the ref was accepted: the verdict
//! is in `push_update_reference` (gitui's push.rs, engineering notes).

use super::Repo;
use super::http;
use super::sendpack;
use super::ssh::{KnownHosts, host_and_port};
use crate::explain::{ErrorClass, ErrorCode, Evidence, GitErrorInfo};
use crate::progress::{self, Unit};
use crate::secret::Secret;
use crate::terms::Transport;
use crate::text::split_lines;
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
}

/// One ref a push asked the server to update, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub name: String,
    /// Where the server said it was (None: absent, or never told).
    pub old: Option<Oid>,
    pub new: Oid,
    /// None: not answered (the push failed before); Some(Ok): updated;
    /// Some(Err(reason)): refused.
    pub result: Option<Result<(), String>>,
}

/// The first refspec's ref decides: accepted when the server updated it,
/// even if a later ref (the tag, on a server without atomic pushes) was refused.
// One per push attempt, moved once: boxing the evidence would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum PushOutcome {
    Accepted(Transcript),
    Refused(Evidence),
}

/// A push's outcome and every ref's fate.
pub struct Pushed {
    pub outcome: PushOutcome,
    pub refs: Vec<RefUpdate>,
    /// Objects in the pack and bytes of it handed to the transport.
    pub objects: u64,
    pub bytes: u64,
    /// The pack was written and streamed by git/sendpack.rs.
    pub streamed: bool,
}

/// Upstream state of the target branch.
pub enum BranchTip {
    Missing,
    At(Oid),
}

const UPSTREAM_REF: &str = "refs/commit-back/upstream";

impl Endpoint {
    /// Pushes `updates` (commit or tag object -> full ref name; the zero id
    /// deletes) in one request; `force` marks the refs that may be moved
    /// (never a tag the run did not create).
    pub fn push(&self, repo: &Repo, updates: &[(Oid, String, bool)]) -> Pushed {
        // libgit2's pack builder holds every object whole, twice, and a
        // list that grows with their number: large files and many files go
        // in a pack written and streamed by git/sendpack.rs.
        if self.transport == Transport::Http && sendpack::should_stream(repo.raw(), updates) {
            let operation = http::begin();
            let (result, session) = sendpack::push(&self.url, repo.raw(), updates);
            return self.conclude(updates, result, session, operation);
        }
        let refspecs: Vec<String> = updates
            .iter()
            .map(|(oid, name, force)| match (oid.is_zero(), force) {
                // The zero id deletes the ref.
                (true, _) => format!(":{name}"),
                (false, true) => format!("+{oid}:{name}"),
                (false, false) => format!("{oid}:{name}"),
            })
            .collect();
        // This push's requests, whose failures explain it.
        let operation = http::begin();
        let sideband = RefCell::new(String::new());
        let statuses: RefCell<Vec<(String, Option<String>)>> = RefCell::new(Vec::new());
        let olds: RefCell<Vec<(String, Oid)>> = RefCell::new(Vec::new());
        let auth_attempts = Cell::new(0u32);
        let packing = progress::meter("Building the pack", Unit::Objects, 0);
        let uploading = progress::meter("Uploading", Unit::Bytes, 0);
        let sent = Cell::new((0u64, 0u64));
        let result = {
            let mut callbacks = self.callbacks(&auth_attempts);
            // Only the delta search counts toward a total (adding objects
            // reports none, and would make the count go back).
            callbacks.pack_progress(|stage, current, total| {
                if stage == git2::PackBuilderStage::Deltafication {
                    packing.set(current as u64, total as u64);
                }
            });
            callbacks.push_transfer_progress(|current, total, bytes| {
                sent.set((total as u64, bytes as u64));
                // libgit2 reports once more after the server answered
                // (current == total): that is not upload progress.
                if current < total {
                    uploading.set(bytes as u64, 0);
                }
            });
            callbacks.sideband_progress(|data| {
                sideband
                    .borrow_mut()
                    .push_str(&String::from_utf8_lossy(data));
                true
            });
            callbacks.push_negotiation(|proposed| {
                for u in proposed {
                    if let Ok(name) = u.dst_refname() {
                        olds.borrow_mut().push((name.to_owned(), u.src()));
                    }
                }
                Ok(())
            });
            callbacks.push_update_reference(|refname, status| {
                statuses.borrow_mut().push((
                    crate::text::untrusted(refname),
                    status.map(crate::text::untrusted),
                ));
                Ok(())
            });
            let mut opts = PushOptions::new();
            opts.remote_callbacks(callbacks);
            // Delta search on every core, as git does (libgit2 defaults to one thread).
            opts.packbuilder_parallelism(0);
            repo.raw()
                .remote_anonymous(&self.url)
                .and_then(|mut remote| remote.push(&refspecs, Some(&mut opts)))
        };
        packing.finish(result.is_ok());
        uploading.finish(result.is_ok());
        let (objects, bytes) = sent.get();
        let session = sendpack::Session {
            olds: olds.into_inner(),
            statuses: statuses.into_inner(),
            sideband: sideband.into_inner(),
            objects,
            bytes,
            streamed: false,
        };
        self.conclude(updates, result, session, operation)
    }

    /// Every ref's fate and the push's outcome, from what the push learnt.
    pub(super) fn conclude(
        &self,
        updates: &[(Oid, String, bool)],
        result: Result<(), git2::Error>,
        session: sendpack::Session,
        operation: http::Operation,
    ) -> Pushed {
        let sendpack::Session {
            olds,
            statuses,
            sideband,
            objects,
            bytes,
            streamed,
        } = session;
        let remote_lines = split_lines(&sideband);
        let refs: Vec<RefUpdate> = updates
            .iter()
            .map(|(new, name, _)| RefUpdate {
                name: name.clone(),
                old: olds
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, o)| *o)
                    .filter(|o| !o.is_zero()),
                new: *new,
                result: statuses
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, s)| s.clone().map_or(Ok(()), Err)),
            })
            .collect();
        let primary = refs.first().and_then(|r| r.result.clone());
        let outcome = match (result, primary) {
            (Ok(()), Some(Ok(()))) => PushOutcome::Accepted(Transcript { remote_lines }),
            // Every refused ref's reason, the branch's first: an atomic push
            // refuses the branch for the tag's sake ("atomic push failure").
            (Ok(()), Some(Err(status))) => PushOutcome::Refused(Evidence {
                remote_lines,
                ref_status: Some(
                    std::iter::once(status)
                        .chain(refs.iter().skip(1).filter_map(|r| r.result.clone()?.err()))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                ..Default::default()
            }),
            // libgit2 reported success without a status for the ref (a
            // server without report-status): taken as accepted, as git does.
            (Ok(()), None) => PushOutcome::Accepted(Transcript { remote_lines }),
            (Err(e), _) => PushOutcome::Refused(self.evidence(e, remote_lines, operation)),
        };
        Pushed {
            outcome,
            refs,
            objects,
            bytes,
            streamed,
        }
    }

    /// Where `refs/tags/<name>` points on the remote (the tag object or
    /// commit, fetched here); None when the remote has no such tag.
    #[allow(clippy::result_large_err)]
    pub fn fetch_tag(&self, repo: &Repo, name: &str) -> Result<Option<Oid>, Evidence> {
        self.fetch_ref(repo, &format!("refs/tags/{name}"))
    }

    /// Fetches the target branch; where it points now.
    // Evidence is built once per failed attempt; boxing it buys nothing.
    #[allow(clippy::result_large_err)]
    pub fn fetch_branch(&self, repo: &Repo, branch: &str) -> Result<BranchTip, Evidence> {
        Ok(
            match self.fetch_ref(repo, &format!("refs/heads/{branch}"))? {
                Some(oid) => BranchTip::At(oid),
                None => BranchTip::Missing,
            },
        )
    }

    /// Fetches one remote ref into a private ref, reads it, and removes it
    /// again (no ref of the clone is touched); None when it does not exist.
    #[allow(clippy::result_large_err)]
    fn fetch_ref(&self, repo: &Repo, name: &str) -> Result<Option<Oid>, Evidence> {
        let operation = http::begin();
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
            let spec = format!("+{name}:{UPSTREAM_REF}");
            raw.remote_anonymous(&self.url)
                .and_then(|mut remote| remote.fetch(&[spec.as_str()], Some(&mut opts), None))
        };
        if let Err(e) = result {
            return Err(self.evidence(e, Vec::new(), operation));
        }
        Ok(match raw.find_reference(UPSTREAM_REF) {
            Ok(mut r) => {
                let oid = r.target();
                let _ = r.delete();
                oid
            }
            Err(_) => None,
        })
    }

    /// The dry run's access check: the receive-pack ref advertisement, which
    /// is where Bitbucket refuses credentials, 2SV, IP allowlists and scopes.
    #[allow(clippy::result_large_err)]
    pub fn check_push_access(&self, repo: &Repo, branch: &str) -> Result<BranchTip, Evidence> {
        let operation = http::begin();
        let auth_attempts = Cell::new(0u32);
        let mut remote = repo
            .raw()
            .remote_anonymous(&self.url)
            .map_err(|e| self.evidence(e, Vec::new(), operation))?;
        let connection =
            remote.connect_auth(Direction::Push, Some(self.callbacks(&auth_attempts)), None);
        let connection = connection.map_err(|e| self.evidence(e, Vec::new(), operation))?;
        let wanted = format!("refs/heads/{branch}");
        let heads = connection
            .list()
            .map_err(|e| self.evidence(e, Vec::new(), operation))?;
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
                let (host, port) =
                    host_and_port(&self.url).unwrap_or_else(|| (hostname.to_owned(), 22));
                let Some(message) = self
                    .known_hosts
                    .check(&host, port, hostkey)
                    .problem(&host, port)
                else {
                    return Ok(CertificateCheckStatus::CertificateOk);
                };
                *self.host_key_problem.borrow_mut() = Some(message.clone());
                Err(git2::Error::new(
                    git2::ErrorCode::Certificate,
                    git2::ErrorClass::Ssh,
                    message,
                ))
            });
        }
        cb
    }

    fn evidence(
        &self,
        e: git2::Error,
        mut remote_lines: Vec<String>,
        operation: http::Operation,
    ) -> Evidence {
        let message = self
            .host_key_problem
            .borrow_mut()
            .take()
            .unwrap_or_else(|| crate::text::untrusted(e.message()));
        let mut evidence = Evidence {
            git_error: Some(GitErrorInfo {
                class: error_class(e.class()),
                code: error_code(e.code()),
                message,
            }),
            ..Default::default()
        };
        if self.transport == Transport::Http {
            if let Some(f) = http::take_failure(operation) {
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

/// git2's error class as the classifier knows it.
fn error_class(class: git2::ErrorClass) -> ErrorClass {
    use git2::ErrorClass as G;
    match class {
        G::Net => ErrorClass::Net,
        G::Os => ErrorClass::Os,
        G::Http => ErrorClass::Http,
        G::Ssh => ErrorClass::Ssh,
        G::Reference => ErrorClass::Reference,
        G::Odb => ErrorClass::Odb,
        G::Tag => ErrorClass::Tag,
        _ => ErrorClass::Other,
    }
}

/// git2's error code as the classifier knows it.
fn error_code(code: git2::ErrorCode) -> ErrorCode {
    use git2::ErrorCode as G;
    match code {
        G::NotFastForward => ErrorCode::NotFastForward,
        G::Auth => ErrorCode::Auth,
        G::Certificate => ErrorCode::Certificate,
        G::Eof => ErrorCode::Eof,
        G::GenericError => ErrorCode::Generic,
        _ => ErrorCode::Other,
    }
}

#[cfg(test)]
mod tests {
    use crate::text::split_lines;

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
