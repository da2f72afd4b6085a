//! The attempt log (`attempt_outcomes` in the report), the sentence that
//! sums it up, and the question the state machine ([`super::push`]) asks of
//! a fetched history: does it hold an artifact commit of this run (one it
//! pushed, or one carrying this run's trailer line)? An attempt the server
//! may have applied without answering (no HTTP answer, or a gateway's
//! 502/504) is [`unanswered`]: the machine then asks before any verdict.

use super::Pusher;
use crate::explain::Evidence;
use crate::git::ArtifactCommit;
use crate::report::{self, BlockageKind};

/// Commits of the fetched history searched for this run's trailer line.
pub(super) const TRAILER_SEARCH: usize = 500;

impl Pusher<'_> {
    /// Logs one attempt: accepted (None) or failed with this kind.
    pub(super) fn record_attempt(
        &mut self,
        commit: &ArtifactCommit,
        failure: Option<(BlockageKind, &Evidence)>,
    ) {
        let (outcome, detail) = match failure {
            None => ("accepted".to_owned(), None),
            Some((kind, evidence)) => (kind_name(kind), detail_of(kind, evidence)),
        };
        self.report.attempt_outcomes.push(report::Attempt {
            attempt: self.report.attempts,
            commit: commit.oid.to_string(),
            outcome,
            detail,
        });
    }

    /// The newest of this run's pushed commits that `tip` contains, or a
    /// commit there carrying this run's trailer line; an error when the
    /// history cannot be walked (the answer stays open).
    pub(super) fn landed_in(&self, tip: crate::git::Oid) -> anyhow::Result<Option<ArtifactCommit>> {
        for c in self.sent.iter().rev() {
            if self.repo.contains(tip, c.oid)? {
                return Ok(Some(c.clone()));
            }
        }
        if self.sent.is_empty() {
            return Ok(None);
        }
        let line = format!("{}: {}", crate::git::TRAILER, self.request.trailer_value);
        let Some(oid) = self.repo.find_trailer(tip, &line, TRAILER_SEARCH)? else {
            return Ok(None);
        };
        let parent = self.repo.first_parent(oid);
        Ok(Some(ArtifactCommit {
            oid,
            parent,
            message: self.sent[0].message.clone(),
            files: self.repo.files_between(parent, oid)?.into(),
        }))
    }

    /// "3 attempts: 2 failed on the network (HTTP 503), 1 lost its answer".
    pub(super) fn attempts_summary(&self) -> String {
        let mut groups: Vec<(String, usize)> = Vec::new();
        for a in &self.report.attempt_outcomes {
            let phrase = match (a.outcome.as_str(), &a.detail) {
                ("accepted", _) => "was accepted".to_owned(),
                ("answer_lost", _) => "lost its answer".to_owned(),
                ("network", Some(d)) => format!("failed on the network ({d})"),
                ("network", None) => "failed on the network".to_owned(),
                ("non_fast_forward", _) => "lost a race".to_owned(),
                (other, _) => format!("was refused ({other})"),
            };
            match groups.iter_mut().find(|(p, _)| *p == phrase) {
                Some((_, n)) => *n += 1,
                None => groups.push((phrase, 1)),
            }
        }
        let n = self.report.attempt_outcomes.len();
        let parts: Vec<String> = groups.iter().map(|(p, c)| format!("{c} {p}")).collect();
        format!(
            "{n} attempt{}: {}",
            if n == 1 { "" } else { "s" },
            parts.join(", ")
        )
    }
}

/// A network failure the server itself did not answer (the connection
/// dropped, an answer was cut or never came), or a gateway's 502/504 (a
/// proxy may have forwarded the push): the push may have been applied.
pub(super) fn unanswered(attempt: &report::Attempt) -> bool {
    attempt.outcome == "network"
        && match attempt.detail.as_deref() {
            // The LFS upload comes before the push, which was not sent.
            Some(d) if d.starts_with(LFS_DETAIL) => false,
            Some(d) if d.starts_with("HTTP ") => matches!(d, "HTTP 502" | "HTTP 504"),
            // Failures before a push could be sent cannot have applied one.
            Some(d) => !NOTHING_SENT
                .iter()
                .any(|n| d.to_ascii_lowercase().contains(n)),
            None => true,
        }
}

/// Network errors that happen before the push is sent: the connection was
/// never made, or the ref advertisement (which precedes the push) failed.
const NOTHING_SENT: &[&str] = &[
    "failed to connect",
    "connection refused",
    "failed to resolve",
    "could not resolve",
    "dns error",
    "the ref advertisement",
];

fn kind_name(kind: BlockageKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

fn detail_of(kind: BlockageKind, evidence: &Evidence) -> Option<String> {
    let detail = git_detail_of(kind, evidence);
    match &evidence.lfs {
        // Said first, so that no one (nor `unanswered`) takes it for the push.
        Some(_) => Some(match detail {
            Some(d) => format!("{LFS_DETAIL}, {d}"),
            None => LFS_DETAIL.to_owned(),
        }),
        None => detail,
    }
}

/// How an attempt stopped by the LFS upload begins its detail.
const LFS_DETAIL: &str = "Git LFS upload";

fn git_detail_of(kind: BlockageKind, evidence: &Evidence) -> Option<String> {
    if let Some(status) = evidence.http_status {
        return Some(format!("HTTP {status}"));
    }
    match kind {
        BlockageKind::Network => evidence
            .git_error
            .as_ref()
            .map(|g| {
                g.message
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
            .filter(|m| !m.is_empty()),
        _ => None,
    }
}
