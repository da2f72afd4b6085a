//! Git LFS in a run: before each push, the LFS objects the commit brings
//! are uploaded ([`crate::git::lfs::transfer`]) with the push's own
//! credential; a refusal is evidence like a git one, and the git push is
//! not sent. Objects uploaded once are not asked about again (a replay
//! after a lost race brings the same pointers). Also the warning for files
//! over Bitbucket's 100 MB per-file limit that are not in LFS.
//!
//! Owns where LFS objects go and with which credential; it must never
//! send the credential to another origin than the push's.

use super::Pusher;
use crate::checkout::Target;
use crate::config::Transport;
use crate::explain::{ErrorClass, ErrorCode, Evidence, GitErrorInfo};
use crate::git::ArtifactCommit;
use crate::git::lfs::transfer::{self, Access, LfsFailure, ObjectOutcome};
use crate::git::lfs::{self, LfsObject, Store};
use crate::report;

/// Bitbucket Cloud refuses files larger than this in a push, unless a
/// repository admin turned the limit off (bitbucket-facts.md, "Size limits
/// and Git LFS"; the refusal's text is NOT CONFIRMED).
pub(super) const BITBUCKET_FILE_LIMIT: u64 = 100 * 1000 * 1000;

impl Pusher<'_> {
    /// Uploads what a push of `commit` brings to LFS that no earlier
    /// attempt settled (`upstream`: the branch's tip, when it was fetched).
    /// The evidence when the LFS server refused or could not be reached.
    pub(super) fn upload_lfs(
        &mut self,
        commit: &ArtifactCommit,
        upstream: Option<crate::git::Oid>,
    ) -> Option<Evidence> {
        self.settle_lfs(commit, upstream, false)
    }

    /// DRY_RUN: which objects would be uploaded, and whether the LFS
    /// endpoint accepts the credential; nothing is uploaded.
    pub(super) fn check_lfs(
        &mut self,
        commit: &ArtifactCommit,
        upstream: Option<crate::git::Oid>,
    ) -> Option<Evidence> {
        self.settle_lfs(commit, upstream, true)
    }

    fn settle_lfs(
        &mut self,
        commit: &ArtifactCommit,
        upstream: Option<crate::git::Oid>,
        dry_run: bool,
    ) -> Option<Evidence> {
        let raw = self.repo.raw();
        let upstream: Vec<crate::git::Oid> = upstream.into_iter().collect();
        let objects = match lfs::objects_in(raw, commit.oid, &upstream) {
            Ok(o) => o,
            Err(e) => {
                // Local, not the network's: not retried.
                return Some(lfs_evidence(LfsFailure {
                    during: "reading the commit's LFS pointers".into(),
                    failure: crate::git::http::HttpFailure {
                        status: None,
                        body_lines: vec![format!("{e:#}")],
                        error: None,
                    },
                }));
            }
        };
        let settled: Vec<&str> = self
            .report
            .lfs
            .iter()
            .flat_map(|l| &l.objects)
            .filter(|o| o.outcome != "pending")
            .map(|o| o.oid.as_str())
            .collect();
        let todo: Vec<LfsObject> = objects
            .into_iter()
            .filter(|o| !settled.contains(&o.pointer.oid.as_str()))
            .collect();
        if todo.is_empty() {
            return None;
        }
        let access = match self.lfs_access() {
            Ok(a) => a,
            Err(failure) => return Some(lfs_evidence(failure)),
        };
        let total: u64 = todo.iter().map(|o| o.pointer.size).sum();
        self.log.info(format!(
            "{} {} Git LFS object(s), {}, with {}.",
            if dry_run { "Checking" } else { "Uploading" },
            todo.len(),
            crate::progress::size(total),
            access.url
        ));
        let lfs_report = self.report.lfs.get_or_insert_with(|| report::Lfs {
            endpoint: access.url.clone(),
            objects: Vec::new(),
        });
        lfs_report.objects.retain(|o| o.outcome != "pending");
        for o in &todo {
            lfs_report.objects.push(report::LfsObject {
                path: o.path.clone(),
                oid: o.pointer.oid.clone(),
                size: o.pointer.size,
                outcome: "pending".into(),
            });
        }
        let refname = format!("refs/heads/{}", self.config.branch);
        let store = Store::of(raw);
        let redactor = self.log.redactor().clone();
        let transferred = transfer::upload(&access, &store, &todo, &refname, dry_run, &|s| {
            redactor.add(s)
        });
        let lfs_report = self.report.lfs.as_mut().expect("set above");
        for (object, outcome) in todo.iter().zip(transferred.outcomes) {
            let name = match outcome {
                ObjectOutcome::Uploaded => "uploaded",
                ObjectOutcome::AlreadyPresent => "already_present",
                ObjectOutcome::WouldUpload => "would_upload",
            };
            if let Some(r) = lfs_report
                .objects
                .iter_mut()
                .find(|r| r.oid == object.pointer.oid && r.outcome == "pending")
            {
                r.outcome = name.into();
            }
            self.log.debug(format!(
                "  LFS {} ({}): {}",
                object.path,
                crate::progress::size(object.pointer.size),
                name.replace('_', " ")
            ));
        }
        if let Some(failure) = transferred.failure {
            return Some(lfs_evidence(failure));
        }
        let count = |n: &str| lfs_report.objects.iter().filter(|o| o.outcome == n).count();
        self.log.info(format!(
            "Git LFS: {} uploaded, {} already on the server{}.",
            count("uploaded"),
            count("already_present"),
            if dry_run {
                format!(", {} would be uploaded", count("would_upload"))
            } else {
                String::new()
            }
        ));
        None
    }

    /// The batch endpoint and how to reach it, as git-lfs finds it.
    fn lfs_access(&self) -> Result<Access, LfsFailure> {
        let config = self.config;
        let remote = (config.target != Target::OtherRepository).then_some("origin");
        let endpoint = lfs::endpoint(self.repo.raw(), remote, &config.remote.url);
        self.log.debug(format!(
            "LFS endpoint {} (from {})",
            endpoint.url, endpoint.source
        ));
        if endpoint.ssh.is_some() || config.remote.transport == Transport::Ssh {
            return self.lfs_access_over_ssh(endpoint);
        }
        // The credential goes only to the push's own origin; an LFS server
        // elsewhere (lfs.url) gets the request without it.
        let on_origin = crate::origin::same_origin(&endpoint.url, &config.remote.url);
        if !on_origin && config.credential.git_http_authorization().is_some() {
            self.log.warning(format!(
                "The LFS endpoint {} ({}) is not on the push's origin: commit-back does not send the credential there.",
                endpoint.url, endpoint.source
            ));
        }
        Ok(Access {
            url: endpoint.url,
            headers: Vec::new(),
            push_url: config.remote.url.clone(),
        })
    }

    /// Over SSH, git-lfs asks the server itself: `git-lfs-authenticate`
    /// names the LFS API and the header that authorises requests there.
    fn lfs_access_over_ssh(&self, endpoint: lfs::Endpoint) -> Result<Access, LfsFailure> {
        let config = self.config;
        let failure = |error: String, lines: Vec<String>| LfsFailure {
            during: "git-lfs-authenticate over SSH".into(),
            failure: crate::git::http::HttpFailure {
                status: None,
                body_lines: lines,
                error: Some(error),
            },
        };
        let (Some(target), Some(key)) = (&endpoint.ssh, super::ssh_key(&config.credential)) else {
            // lfs.url set to an https URL while pushing over SSH: git-lfs
            // would use git's credential helpers there; commit-back has no
            // HTTP credential for it.
            return Ok(Access {
                url: endpoint.url,
                headers: Vec::new(),
                push_url: config.remote.url.clone(),
            });
        };
        let known_hosts = crate::git::ssh::KnownHosts::with_bitbucket(&config.known_hosts);
        let auth = crate::git::ssh::lfs_authenticate(
            &target.url,
            &target.path,
            &key,
            &known_hosts,
            config.network_timeout,
        )
        .map_err(|(error, lines)| failure(error, lines))?;
        let headers = auth
            .header
            .into_iter()
            .inspect(|(_, value)| self.log.redactor().add(value.expose()))
            .collect();
        Ok(Access {
            url: auth.href.trim_end_matches('/').to_owned(),
            headers,
            push_url: config.remote.url.clone(),
        })
    }

    /// Beside the recovery files: the LFS objects `commit` brings that the
    /// server did not confirm having, hard-linked (or copied) from the
    /// store in its layout (`lfs/objects/aa/bb/<oid>`). The directory, when
    /// there were any.
    pub(super) fn keep_lfs_objects(
        &self,
        commit: &ArtifactCommit,
    ) -> anyhow::Result<Option<std::path::PathBuf>> {
        let raw = self.repo.raw();
        let store = Store::of(raw);
        let confirmed: Vec<&str> = self
            .report
            .lfs
            .iter()
            .flat_map(|l| &l.objects)
            .filter(|o| o.outcome == "uploaded" || o.outcome == "already_present")
            .map(|o| o.oid.as_str())
            .collect();
        let dir = self
            .repo
            .workdir()
            .join(crate::git::recovery::DIR)
            .join("lfs/objects");
        let mut kept = false;
        for object in lfs::objects_in(raw, commit.oid, &[])? {
            let oid = &object.pointer.oid;
            if confirmed.contains(&oid.as_str()) || !store.has(&object.pointer) {
                continue;
            }
            let target = dir.join(&oid[..2]).join(&oid[2..4]).join(oid);
            std::fs::create_dir_all(target.parent().expect("aa/bb"))?;
            if !target.exists() && std::fs::hard_link(store.path(oid), &target).is_err() {
                std::fs::copy(store.path(oid), &target)?;
            }
            kept = true;
        }
        Ok(kept.then_some(dir))
    }

    /// Warns about files over Bitbucket's per-file limit that are committed
    /// whole (not as LFS pointers): the push would be refused after the
    /// whole upload.
    pub(super) fn warn_large_files(&self, large: &[(String, u64)]) {
        for (path, size) in large {
            self.log.warning(format!(
                "{path} is {} and is committed whole: Bitbucket Cloud refuses files over 100 MB in a push unless the limit is turned off (Repository settings > Advanced). Track it with Git LFS: add `{} filter=lfs diff=lfs merge=lfs -text` to .gitattributes, and commit-back commits a pointer and uploads the file itself.",
                crate::progress::size(*size),
                lfs_pattern(path)
            ));
        }
    }
}

/// The `.gitattributes` pattern for one path (spaces and specials escaped
/// as gitattributes reads them).
fn lfs_pattern(path: &str) -> String {
    let mut out = String::from("/");
    for c in path.chars() {
        if matches!(c, ' ' | '*' | '?' | '[' | '\\' | '!' | '#') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An LFS failure as evidence for the classifier.
fn lfs_evidence(f: LfsFailure) -> Evidence {
    Evidence {
        http_status: f.failure.status,
        remote_lines: f.failure.body_lines,
        git_error: f.failure.error.map(|error| GitErrorInfo {
            class: ErrorClass::Net,
            code: ErrorCode::Generic,
            message: format!("{}: {error}", f.during),
        }),
        lfs: Some(f.during),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_patterns_read_well() {
        assert_eq!(crate::progress::size(200 * 1024 * 1024), "200.0 MiB");
        assert_eq!(lfs_pattern("out/app bundle.bin"), "/out/app\\ bundle.bin");
    }
}
