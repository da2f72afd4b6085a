//! The one place a failed push becomes a verdict: before anything but
//! `pushed` is reported for a run in which an attempt may have been applied
//! without an answer (no HTTP answer, or a gateway's 502/504), the server is
//! asked where the branch is. If any artifact commit this run pushed (the original
//! or a rebased copy) is in that history, the push landed and only its
//! answer was lost: the run reports `pushed`, writes no recovery files, and
//! says which attempt lost its answer. If the server cannot be asked, the
//! report says the push may have landed.
//!
//! Owns the attempt log (`attempt_outcomes` in the report) and the closing
//! sentence that sums it up. Must never report a failure without asking
//! when an answer may have been lost.

use super::{Pusher, short};
use crate::classify::Evidence;
use crate::config::Transport;
use crate::git::ArtifactCommit;
use crate::git::remote::{BranchTip, Endpoint};
use crate::report::{self, BlockageKind, Status};

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

    /// The newest of this run's pushed commits that `tip` contains; an
    /// error when the history cannot be walked (the answer stays open).
    pub(super) fn landed_in(&self, tip: git2::Oid) -> anyhow::Result<Option<ArtifactCommit>> {
        for c in self.sent.iter().rev() {
            if self.repo.contains(tip, c.oid)? {
                return Ok(Some(c.clone()));
            }
        }
        Ok(None)
    }

    /// The verdict for a push that failed for good (or ran out of retries).
    pub(super) fn verdict(
        &mut self,
        endpoint: &Endpoint,
        evidence: Evidence,
        current: &ArtifactCommit,
    ) -> anyhow::Result<()> {
        // A push can only have landed unanswered if some attempt failed on
        // the network without an HTTP answer (the connection dropped, an
        // answer was cut or never came); a refusal or a 503 the server
        // answered applied nothing.
        let answer_may_be_lost = self.report.attempt_outcomes.iter().any(unanswered);
        if answer_may_be_lost && !self.sent.is_empty() {
            self.log.info(format!(
                "Asking the server where {} is before reporting a failure.",
                self.config.branch
            ));
            // The network just failed: ask a few times, with backoff.
            let mut unknown = None;
            for ask in 1..=ASKS {
                match endpoint.fetch_branch(self.repo, &self.config.branch) {
                    Ok(BranchTip::At(tip)) => {
                        match self.landed_in(tip) {
                            Ok(Some(landed)) => return self.landed(endpoint, landed),
                            Ok(None) => unknown = None,
                            Err(e) => unknown = Some(format!("{e:#}")),
                        }
                        break;
                    }
                    Ok(BranchTip::Missing) => {
                        unknown = None;
                        break;
                    }
                    Err(e) => {
                        unknown = Some(
                            e.git_error
                                .as_ref()
                                .map(|g| g.message.lines().next().unwrap_or_default().to_owned())
                                .unwrap_or_else(|| "no answer".into()),
                        );
                        if ask < ASKS {
                            std::thread::sleep(super::backoff(ask));
                        }
                    }
                }
            }
            if let Some(why) = unknown {
                self.closing_notes.push(format!(
                    "The server could not be asked whether the push landed ({why}): the push may have landed; check {} before rerunning.",
                    self.config.branch
                ));
            }
        }
        if self.report.attempts > 1 {
            self.closing_notes
                .push(format!("{}.", self.attempts_summary()));
        }
        self.refused(evidence, current)
    }

    /// An artifact commit of this run is upstream: the run succeeded.
    pub(super) fn landed(
        &mut self,
        endpoint: &Endpoint,
        commit: ArtifactCommit,
    ) -> anyhow::Result<()> {
        // The attempt that lost its answer: of those that pushed this
        // commit, the last network failure the server did not answer (a 503
        // is an answer).
        let oid = commit.oid.to_string();
        let log = &mut self.report.attempt_outcomes;
        let candidates: Vec<usize> = (0..log.len())
            .filter(|&i| log[i].commit == oid && log[i].outcome != "accepted")
            .collect();
        // Only an attempt the server may not have answered is named; when
        // none was (the branch holds a commit whose push was refused as a
        // race), no attempt is labelled.
        let pick = candidates
            .iter()
            .rev()
            .find(|&&i| unanswered(&log[i]))
            .copied();
        let lost_at = pick.map(|i| {
            log[i].outcome = "answer_lost".into();
            log[i].attempt
        });
        self.set_commit(&commit, commit.oid);
        if self.repo.head_commit() != Some(commit.oid)
            && let Err(e) = self.repo.advance_head(commit.oid)
        {
            self.log.warning(format!(
                "{} is upstream, but the clone could not follow it: {e:#}",
                short(commit.oid)
            ));
        }
        if self.config.remote.transport == Transport::Ssh
            && let Some(e) = self.push_tag_separately(endpoint)
        {
            return self.refused(e, &commit);
        }
        self.report.status = Status::Pushed;
        self.report.summary = match lost_at {
            Some(n) => format!(
                "Pushed {} to {}: the server's answer to attempt {n} was lost, but {} holds the commit.",
                short(commit.oid),
                self.config.branch,
                self.config.branch
            ),
            None => format!("Pushed {} to {}.", short(commit.oid), self.config.branch),
        };
        if self.report.attempts > 1 {
            self.log.info(format!("{}.", self.attempts_summary()));
        }
        self.log.success(&self.report.summary);
        Ok(())
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

/// Times the server is asked where the branch is before the answer is
/// left open.
const ASKS: u32 = 3;

/// A network failure the server itself did not answer (the connection
/// dropped, an answer was cut or never came), or a gateway's 502/504 (a
/// proxy may have forwarded the push): the push may have been applied.
fn unanswered(attempt: &report::Attempt) -> bool {
    attempt.outcome == "network"
        && match attempt.detail.as_deref() {
            Some(d) if d.starts_with("HTTP ") => matches!(d, "HTTP 502" | "HTTP 504"),
            _ => true,
        }
}

fn kind_name(kind: BlockageKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

fn detail_of(kind: BlockageKind, evidence: &Evidence) -> Option<String> {
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
