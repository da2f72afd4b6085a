//! The JSON report (version 1): one value, documented field by field in the
//! README, printed as exactly one document on stdout on every run and copied to
//! REPORT_FILE. The exit-code policy lives here too, in one `match`.

use crate::terms::ConfigError;
use crate::terms::CredentialKind;
use serde::Serialize;

pub const REPORT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pushed,
    NothingToCommit,
    PullRequest,
    DryRun,
    Blocked,
    InvalidConfiguration,
    Failed,
}

/// Stable blockage codes (README "Blockage kinds").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockageKind {
    BranchRestriction,
    TwoStepVerification,
    IpAllowlist,
    InvalidCredentials,
    AppPasswordRemoved,
    InsufficientScope,
    ReadOnlyKey,
    RepositoryNotFound,
    RepositorySizeLimit,
    /// The Git LFS server refused an upload (permissions, validation).
    LfsRefused,
    /// The Git LFS server is out of storage for this repository, or refused
    /// the object's size.
    LfsStorageQuota,
    /// The server refused the commits for their signatures (unsigned, or
    /// signed by a key it cannot verify).
    SignatureRequired,
    NonFastForward,
    RebaseConflict,
    /// TAG exists on the remote at another commit; tags are never moved.
    TagExists,
    Network,
    HookRejected,
    Unknown,
}

impl BlockageKind {
    /// Transient refusals are worth another attempt after fetch and rebase
    /// (races) or a pause (network, 5xx). Everything else fails fast.
    pub fn is_transient(self) -> bool {
        matches!(self, BlockageKind::NonFastForward | BlockageKind::Network)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    /// Files the artifact commit adds, changes or deletes.
    pub files: usize,
    /// Size of the files it adds or changes (an LFS file at its content's size).
    pub bytes_committed: u64,
    /// Objects in the pack of the last push that was sent.
    pub objects: u64,
    /// Request body bytes sent over HTTP(S): pushes and fetch negotiation
    /// of every attempt, the Git LFS API and uploads; not the REST API's
    /// (over SSH: the packs' bytes).
    pub bytes_sent: u64,
    /// Who wrote the pack of the last push sent: `streamed` (commit-back,
    /// read from disk as it was sent: a push over HTTP(S) with a file of
    /// 1 MiB or more, or 1,000 new objects or more), `libgit2`, or null
    /// when none was sent.
    pub pack: Option<&'static str>,
}

/// Milliseconds per phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub config_ms: u64,
    pub stage_ms: u64,
    pub commit_ms: u64,
    /// Each push attempt (its LFS upload included), in order.
    pub push_ms: Vec<u64>,
    /// REST API calls (rules, pull requests, Code Insights).
    pub api_ms: u64,
}

/// The `lfs` section: where LFS objects went, and each object.
#[derive(Debug, Clone, Serialize)]
pub struct Lfs {
    /// The LFS endpoint (the batch API is `<endpoint>/objects/batch`).
    pub endpoint: String,
    pub objects: Vec<LfsObject>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LfsObject {
    pub path: String,
    /// SHA-256 of the content, hex (the pointer's `oid sha256:`).
    pub oid: String,
    pub size: u64,
    /// `uploaded`, `already_present`, `would_upload` (dry run), or
    /// `pending` (the run stopped before the server was asked).
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Credential {
    pub kind: CredentialKind,
}

#[derive(Debug, Clone, Serialize)]
pub struct Commit {
    pub sha: String,
    pub parent: Option<String>,
    pub message: String,
    /// The artifact commit's own list, shared.
    pub files: std::sync::Arc<crate::path_list::PathList>,
    /// How the commit (and the tag) is signed; null when unsigned.
    pub signature: Option<Signature>,
}

/// The key that signed, never its material.
#[derive(Debug, Clone, Serialize)]
pub struct Signature {
    pub format: SignatureFormat,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `rsa-sha2-512`; `ed25519`, `rsa`, `ecdsa` (OpenPGP).
    pub key_type: String,
    /// `SHA256:…` (SSH, as `ssh-keygen -l`), 40 hex digits (OpenPGP, the signing key's).
    pub fingerprint: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Remedy {
    pub title: String,
    pub steps: Vec<String>,
    pub docs: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Blockage {
    pub kind: BlockageKind,
    pub summary: String,
    pub explanation: String,
    pub remote_messages: Vec<String>,
    pub ref_status: Option<String>,
    pub http_status: Option<u16>,
    pub remedies: Vec<Remedy>,
    /// Files in conflict (rebase_conflict only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// What the REST API said (identity, permission, matching rules), when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<crate::enrich::ApiContext>,
}

impl Blockage {
    /// A blockage with nothing but its kind (exit-code policy, tests).
    pub fn of_kind(kind: BlockageKind) -> Blockage {
        Blockage {
            kind,
            summary: String::new(),
            explanation: String::new(),
            remote_messages: vec![],
            ref_status: None,
            http_status: None,
            remedies: vec![],
            files: vec![],
            context: None,
        }
    }
}

/// One push attempt and how it ended (`attempt_outcomes`).
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub attempt: u32,
    /// The artifact commit it pushed (a rebased copy after a race).
    pub commit: String,
    /// `accepted`, `answer_lost` (applied by the server, answer never
    /// received), or the blockage kind it failed with.
    pub outcome: String,
    /// E.g. `HTTP 503`, or the first line of the network error.
    pub detail: Option<String>,
}

/// What the server did with one ref this run pushed (`refs`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RefOutcome {
    /// Full ref name, e.g. `refs/heads/main`, `refs/tags/v1.2.0`.
    pub name: String,
    /// Where the remote ref was before (None: it did not exist or was not told).
    pub old: Option<String>,
    /// What this run asked it to point at.
    pub new: String,
    /// `updated`, `rejected`, `unchanged` (it already pointed there), or
    /// `deleted` (a tag this run created without its branch, withdrawn).
    pub status: String,
    /// The server's reason for a rejection.
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    pub bundle: String,
    pub patch: String,
    pub restore: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PullRequest {
    pub id: u64,
    pub url: String,
    pub source_branch: String,
    pub destination_branch: String,
    /// An open pull request from the same source branch was reused.
    pub reused: bool,
    /// ON_RESTRICTED=merge: the pull request was merged into the destination.
    pub merged: bool,
    /// The commit the merge left on the destination branch (the artifact
    /// commit itself with `fast_forward`).
    pub merge_commit: Option<String>,
    /// MERGE_STRATEGY, when a merge was asked for.
    pub merge_strategy: Option<String>,
    /// Why the merge was refused; the pull request stays open.
    pub merge_refusal: Option<MergeRefusal>,
}

impl PullRequest {
    /// `Opened pull request #1 from commit-back/main-7 to main`.
    pub fn headline(&self) -> String {
        format!(
            "{} pull request #{} from {} to {}",
            if self.reused { "Updated" } else { "Opened" },
            self.id,
            self.source_branch,
            self.destination_branch
        )
    }
}

/// Why Bitbucket did not merge the fallback pull request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MergeRefusal {
    pub kind: MergeRefusalKind,
    pub summary: String,
    pub explanation: String,
    /// The API's status (None: no answer) and message, as Bitbucket gave them.
    pub http_status: Option<u16>,
    pub message: String,
    pub remedies: Vec<Remedy>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: u32,
    pub status: Status,
    /// One human sentence saying what happened.
    pub summary: String,
    pub repository: Option<String>,
    pub remote: Option<String>,
    pub branch: Option<String>,
    pub credential: Option<Credential>,
    pub commit: Option<Commit>,
    pub tag: Option<String>,
    pub attempts: u32,
    /// Each push attempt and its outcome, in order.
    pub attempt_outcomes: Vec<Attempt>,
    /// The refs pushed (branch, tag) and what the server did with each, as
    /// of the last push that reached them.
    pub refs: Vec<RefOutcome>,
    /// Git LFS objects the pushed commit brought, and what became of each.
    pub lfs: Option<Lfs>,
    /// How much was committed and sent.
    pub sizes: Option<Sizes>,
    /// Where the time went.
    pub timings: Timings,
    pub blockage: Option<Blockage>,
    pub recovery: Option<Recovery>,
    pub pull_request: Option<PullRequest>,
    /// ON_RESTRICTED=pull-request failed too: why (the push refusal stays in `blockage`).
    pub pull_request_error: Option<String>,
    /// The run was a dry run: nothing was pushed; `blockage` is a prediction.
    pub dry_run: bool,
    pub errors: Vec<ConfigError>,
    pub duration_ms: u64,
}

impl Report {
    pub fn new(status: Status, summary: impl Into<String>) -> Self {
        Report {
            version: REPORT_VERSION,
            status,
            summary: summary.into(),
            repository: None,
            remote: None,
            branch: None,
            credential: None,
            commit: None,
            tag: None,
            attempts: 0,
            attempt_outcomes: Vec::new(),
            refs: Vec::new(),
            lfs: None,
            sizes: None,
            timings: Timings::default(),
            blockage: None,
            recovery: None,
            pull_request: None,
            pull_request_error: None,
            dry_run: false,
            errors: Vec::new(),
            duration_ms: 0,
        }
    }

    /// The whole exit-code policy (README "Exit codes").
    pub fn exit_code(&self) -> u8 {
        let kind = self.blockage.as_ref().map(|b| b.kind);
        match self.status {
            // The branch landed but the tag did not: the tag's refusal decides.
            Status::Pushed if kind.is_some() => kind_code(kind),
            Status::Pushed | Status::NothingToCommit | Status::PullRequest | Status::DryRun => 0,
            Status::InvalidConfiguration => 2,
            Status::Failed => 1,
            Status::Blocked => kind_code(kind),
        }
    }

    /// Pretty JSON, in a buffer of its exact size: measured first, so that
    /// a report of 100,000 files is not copied as its buffer grows.
    pub fn to_json(&self) -> String {
        struct Length(usize);
        impl std::io::Write for Length {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut length = Length(0);
        serde_json::to_writer_pretty(&mut length, self).expect("report serialises");
        let mut out = Vec::with_capacity(length.0);
        serde_json::to_writer_pretty(&mut out, self).expect("report serialises");
        String::from_utf8(out).expect("JSON is UTF-8")
    }
}

fn kind_code(kind: Option<BlockageKind>) -> u8 {
    match kind {
        Some(BlockageKind::InvalidCredentials | BlockageKind::AppPasswordRemoved) => 3,
        Some(BlockageKind::BranchRestriction | BlockageKind::SignatureRequired) => 4,
        Some(BlockageKind::TwoStepVerification) => 5,
        Some(BlockageKind::IpAllowlist) => 6,
        Some(
            BlockageKind::InsufficientScope
            | BlockageKind::ReadOnlyKey
            | BlockageKind::RepositoryNotFound
            | BlockageKind::LfsRefused,
        ) => 7,
        Some(
            BlockageKind::NonFastForward | BlockageKind::RebaseConflict | BlockageKind::TagExists,
        ) => 8,
        Some(BlockageKind::Network) => 9,
        Some(BlockageKind::RepositorySizeLimit | BlockageKind::LfsStorageQuota) => 10,
        Some(BlockageKind::HookRejected | BlockageKind::Unknown) | None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(kind: BlockageKind) -> Report {
        let mut r = Report::new(Status::Blocked, "x");
        r.blockage = Some(Blockage::of_kind(kind));
        r
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        use BlockageKind::*;
        let table = [
            (InvalidCredentials, 3),
            (AppPasswordRemoved, 3),
            (BranchRestriction, 4),
            (SignatureRequired, 4),
            (TwoStepVerification, 5),
            (IpAllowlist, 6),
            (InsufficientScope, 7),
            (ReadOnlyKey, 7),
            (RepositoryNotFound, 7),
            (NonFastForward, 8),
            (RebaseConflict, 8),
            (TagExists, 8),
            (Network, 9),
            (RepositorySizeLimit, 10),
            (LfsStorageQuota, 10),
            (LfsRefused, 7),
            (HookRejected, 1),
            (Unknown, 1),
        ];
        for (kind, code) in table {
            assert_eq!(blocked(kind).exit_code(), code, "{kind:?}");
        }
        for (status, code) in [
            (Status::Pushed, 0),
            (Status::NothingToCommit, 0),
            (Status::PullRequest, 0),
            (Status::DryRun, 0),
            (Status::InvalidConfiguration, 2),
            (Status::Failed, 1),
        ] {
            assert_eq!(Report::new(status, "").exit_code(), code);
        }
        // The branch landed, the tag was refused: the tag's kind decides.
        let mut tag_refused = Report::new(Status::Pushed, "");
        tag_refused.blockage = Some(Blockage::of_kind(TagExists));
        assert_eq!(tag_refused.exit_code(), 8);
    }

    #[test]
    fn json_has_every_documented_field() {
        let v: serde_json::Value =
            serde_json::from_str(&Report::new(Status::Pushed, "ok").to_json()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "version",
            "status",
            "summary",
            "repository",
            "remote",
            "branch",
            "credential",
            "commit",
            "tag",
            "attempts",
            "attempt_outcomes",
            "refs",
            "lfs",
            "sizes",
            "timings",
            "blockage",
            "recovery",
            "pull_request",
            "errors",
            "duration_ms",
        ] {
            assert!(keys.contains(&k), "missing {k}");
        }
        assert_eq!(v["status"], "pushed");
        assert_eq!(v["version"], 1);
    }
}

/// How a commit was signed (`commit.signature.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureFormat {
    /// `gpg.format=ssh`.
    Ssh,
    /// `gpg.format=openpgp`, git's default.
    Openpgp,
}

/// Why Bitbucket did not merge the fallback pull request (`pull_request.merge_refusal.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeRefusalKind {
    /// The credential may not merge into the branch (`restrict_merges`, or
    /// no write permission).
    MergeRestricted,
    /// Merge checks are not met (approvals, passing builds, tasks).
    MergeChecks,
    /// The repository does not allow this merge strategy.
    MergeStrategy,
    /// The destination moved (fast-forward impossible, refs changed):
    /// rebased and tried again within RETRIES, then given up.
    DestinationMoved,
    /// The merge took too long on Bitbucket's side (HTTP 555), or its
    /// task did not finish in time.
    TimedOut,
    /// The API could not be reached (no answer).
    Network,
    Unknown,
}

impl MergeRefusalKind {
    /// Worth another attempt (after a rebase, or a pause).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            MergeRefusalKind::DestinationMoved
                | MergeRefusalKind::TimedOut
                | MergeRefusalKind::Network
        )
    }
}
