//! ON_RESTRICTED=merge: the fallback pull request is merged through the API
//! (`POST …/pullrequests/{id}/merge`, MERGE_STRATEGY, `close_source_branch`,
//! the artifact commit's message), so the artifacts land on the branch with
//! the team's merge rules applied. A destination that moved is handled as
//! the direct push handles it: the pull request's branch is rebased onto the
//! new tip and pushed, and the merge tried again, within RETRIES. Whether
//! the branch moved is read from git, not from the API's words (its merge
//! refusal texts are not confirmed). Before a retry, and before giving up,
//! the pull request itself is asked whether it is merged already (a merge
//! that timed out or lost its answer may have gone through).
//!
//! A refusal leaves the pull request open and is explained on its own
//! (`pull_request.merge_refusal`); the run's status stays `pull_request`
//! (exit 0): the artifacts are safe on the pull request's branch.
//!
//! Never: force-pushes anything but the pull request's own source branch.

use super::{Pusher, backoff, short};
use crate::bitbucket::{BitbucketPullRequest, Client, MergeAnswer};
use crate::checkout::Target;
use crate::explain::merge_refusal::{self, MergeRefusalKind, MergeSituation};
use crate::explain::{Evidence, classify};
use crate::git::remote::{BranchTip, PushOutcome};
use crate::git::{ArtifactCommit, RebaseOutcome};
use crate::report;
use std::time::Duration;

/// An asynchronous merge is polled at most this often, this far apart.
const TASK_POLLS: u32 = 120;
const TASK_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Why one merge attempt did not end merged.
enum Failure {
    /// The API's answer (status None: no answer).
    Api {
        status: Option<u16>,
        message: String,
    },
    /// Something commit-back found itself: kind, summary, sentence.
    Local(MergeRefusalKind, String, String),
}

impl Pusher<'_> {
    /// Merges `pr` (just opened or reused for `commit`); fills its merge fields.
    pub(super) fn merge_pull_request(
        &mut self,
        pr: &mut report::PullRequest,
        commit: &ArtifactCommit,
    ) {
        let strategy = self.config.merge_strategy.clone();
        pr.merge_strategy = Some(strategy.clone());
        let client = match self.api_client() {
            Ok(c) => c,
            Err(why) => {
                let summary = "The pull request could not be merged: the API is out of reach for this credential.".to_owned();
                return self
                    .merge_refused(pr, Failure::Local(MergeRefusalKind::Unknown, summary, why));
            }
        };
        let Some(repository) = self.config.repository.clone() else {
            let summary = "The pull request could not be merged: REPOSITORY is unknown.".to_owned();
            let why = "REPOSITORY is unknown, so the API cannot be asked to merge".to_owned();
            return self.merge_refused(pr, Failure::Local(MergeRefusalKind::Unknown, summary, why));
        };
        let mut current = commit.oid;
        for attempt in 0..=self.config.retries {
            self.log.info(format!(
                "ON_RESTRICTED=merge: merging pull request #{} into {} ({strategy}).",
                pr.id, pr.destination_branch
            ));
            let failure =
                match client.merge_pull_request(&repository, pr.id, &strategy, &commit.message) {
                    Ok(MergeAnswer::Merged(done)) => return self.merged(pr, &done, current),
                    Ok(MergeAnswer::Pending(task)) => match self.wait_for_merge(&client, &task) {
                        Ok(done) => return self.merged(pr, &done, current),
                        Err(f) => f,
                    },
                    Err(e) => Failure::Api {
                        status: e.status,
                        message: e.message,
                    },
                };
            // A merge that timed out or lost its answer may have gone through.
            if let Ok(now) = client.pull_request(&repository, pr.id)
                && now.state.as_deref() == Some("MERGED")
            {
                return self.merged(pr, &now, current);
            }
            let kind = match &failure {
                Failure::Api { status, message } => {
                    let kind = merge_refusal::kind_of(*status, message);
                    // Read from git whatever the words: did the branch move
                    // past the pull request's commit?
                    if matches!(
                        kind,
                        MergeRefusalKind::Unknown | MergeRefusalKind::DestinationMoved
                    ) && self.branch_moved_past(current)
                    {
                        MergeRefusalKind::DestinationMoved
                    } else {
                        kind
                    }
                }
                Failure::Local(kind, ..) => *kind,
            };
            if !kind.is_transient() || attempt == self.config.retries {
                return self.merge_refused_as(pr, kind, failure);
            }
            self.log.info(match &failure {
                Failure::Api {
                    status: Some(s),
                    message,
                } => {
                    format!("The merge did not go through (HTTP {s}: {message}); trying again.")
                }
                Failure::Api { message, .. } | Failure::Local(_, _, message) => {
                    format!("The merge did not go through ({message}); trying again.")
                }
            });
            if kind == MergeRefusalKind::DestinationMoved {
                match self.rebase_source(pr, commit, current) {
                    Ok((rebased, tip)) => {
                        current = rebased;
                        // The report names the commit that may land.
                        if let Ok(files) = self.repo.files_between(Some(tip), rebased) {
                            self.set_commit(&ArtifactCommit {
                                oid: rebased,
                                parent: Some(tip),
                                message: commit.message.clone(),
                                files: files.into(),
                            });
                        }
                    }
                    Err(local) => return self.merge_refused(pr, local),
                }
            }
            std::thread::sleep(backoff(attempt));
        }
    }

    /// Polls an asynchronous merge's task until it says SUCCESS (bounded).
    fn wait_for_merge(&self, client: &Client, task: &str) -> Result<BitbucketPullRequest, Failure> {
        self.log
            .info("Bitbucket merges asynchronously; waiting for the merge task.");
        for _ in 0..TASK_POLLS {
            match client.merge_task(task) {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => {}
                Err(e) => {
                    return Err(Failure::Api {
                        status: e.status,
                        message: e.message,
                    });
                }
            }
            std::thread::sleep(TASK_POLL_INTERVAL);
        }
        let secs = (TASK_POLL_INTERVAL * TASK_POLLS).as_secs();
        Err(Failure::Local(
            MergeRefusalKind::TimedOut,
            "Bitbucket did not finish the merge while commit-back waited.".into(),
            format!(
                "the merge task had not finished after {secs} s of polling; it may still complete"
            ),
        ))
    }

    /// Whether BRANCH's tip is no longer in the history of `current`, the
    /// pull request's commit (a fast-forward is then impossible).
    fn branch_moved_past(&self, current: crate::git::Oid) -> bool {
        match self.endpoint().fetch_branch(self.repo, &self.config.branch) {
            Ok(BranchTip::At(tip)) => !self.repo.contains(current, tip).unwrap_or(true),
            _ => false,
        }
    }

    /// The destination moved: the pull request's branch is rebuilt on its
    /// new tip (as the direct push does) and pushed.
    fn rebase_source(
        &self,
        pr: &report::PullRequest,
        commit: &ArtifactCommit,
        current: crate::git::Oid,
    ) -> Result<(crate::git::Oid, crate::git::Oid), Failure> {
        let (repo, config) = (self.repo, self.config);
        let branch = &config.branch;
        let local = |kind, summary: String, why: String| Failure::Local(kind, summary, why);
        let stuck = |why: String| {
            local(
                MergeRefusalKind::Unknown,
                format!(
                    "The pull request's branch could not be brought up to date with '{branch}'."
                ),
                why,
            )
        };
        let endpoint = self.endpoint();
        let tip = match endpoint.fetch_branch(repo, branch) {
            Ok(BranchTip::At(tip)) => tip,
            Ok(BranchTip::Missing) => return Err(stuck(format!("{branch} no longer exists"))),
            Err(e) => {
                return Err(stuck(format!(
                    "fetching {branch} failed: {}",
                    self.evidence_line(&e)
                )));
            }
        };
        let outcome = match config.target {
            Target::OtherRepository => repo.overlay(commit.oid, Some(tip), &config.files),
            _ => repo.rebase(current, tip),
        }
        .map_err(|e| stuck(format!("rebasing the pull request's commit failed: {e:#}")))?;
        let rebased = match outcome {
            RebaseOutcome::Rebased(oid) => oid,
            RebaseOutcome::AlreadyUpstream => {
                return Err(local(
                    MergeRefusalKind::Unknown,
                    format!("'{branch}' already holds these changes: nothing is left to merge."),
                    format!(
                        "{branch} moved on to {} and already holds the artifacts' changes; the pull request can be declined",
                        short(tip)
                    ),
                ));
            }
            RebaseOutcome::Conflict(files) => {
                return Err(local(
                    MergeRefusalKind::DestinationMoved,
                    format!("'{branch}' moved, and the artifacts conflict with the changes there."),
                    format!(
                        "{branch} moved on to {} with changes to the same files ({}); the pull request's commit cannot be replayed on it without a human decision",
                        short(tip),
                        files.join(", ")
                    ),
                ));
            }
        };
        self.log.info(format!(
            "{branch} is at {}: the pull request's commit is now {} on top of it; pushing {}.",
            short(tip),
            short(rebased),
            pr.source_branch
        ));
        let refname = format!("refs/heads/{}", pr.source_branch);
        match endpoint.push(repo, &[(rebased, refname, true)]).outcome {
            PushOutcome::Accepted(_) => Ok((rebased, tip)),
            PushOutcome::Refused(e) => Err(stuck(format!(
                "the push of the rebased commit to {} was refused: {}",
                pr.source_branch,
                self.evidence_line(&e)
            ))),
        }
    }

    /// A failed git operation in one line: its kind's summary and the
    /// server's words.
    fn evidence_line(&self, e: &Evidence) -> String {
        let b = classify::classify(e, &self.situation(None));
        format!("{} {}", b.summary, e.remote_lines.join(" "))
            .trim()
            .to_owned()
    }

    fn merged(
        &mut self,
        pr: &mut report::PullRequest,
        done: &BitbucketPullRequest,
        current: crate::git::Oid,
    ) {
        pr.merged = true;
        pr.merge_commit = done.merge_commit.as_ref().map(|c| c.hash.clone());
        let landed: String = pr
            .merge_commit
            .clone()
            .unwrap_or_else(|| current.to_string())
            .chars()
            .take(12)
            .collect();
        self.report.summary = format!(
            "Merged pull request #{} from {} into {} ({}): {landed} is on {}.",
            pr.id,
            pr.source_branch,
            pr.destination_branch,
            pr.merge_strategy.as_deref().unwrap_or("merge"),
            pr.destination_branch
        );
        self.log.success(&self.report.summary);
    }

    fn merge_refused(&mut self, pr: &mut report::PullRequest, failure: Failure) {
        let kind = match &failure {
            Failure::Api { status, message } => merge_refusal::kind_of(*status, message),
            Failure::Local(kind, ..) => *kind,
        };
        self.merge_refused_as(pr, kind, failure)
    }

    fn merge_refused_as(
        &mut self,
        pr: &mut report::PullRequest,
        kind: MergeRefusalKind,
        failure: Failure,
    ) {
        let situation = MergeSituation {
            credential: self.config.credential.kind(),
            branch: &self.config.branch,
            strategy: pr.merge_strategy.as_deref().unwrap_or("fast_forward"),
            pull_request_url: &pr.url,
        };
        let refusal = match failure {
            Failure::Api { status, message } => {
                merge_refusal::classify_as(kind, status, &message, &situation)
            }
            Failure::Local(kind, summary, why) => {
                merge_refusal::local(kind, summary, &why, &situation)
            }
        };
        self.log.warning(format!(
            "The pull request was not merged: {}",
            refusal.summary
        ));
        self.log.plain(&refusal.explanation);
        for (i, r) in refusal.remedies.iter().enumerate() {
            self.log.plain(format!("Fix {}: {}", i + 1, r.title));
            for step in &r.steps {
                self.log.plain(format!("  - {step}"));
            }
        }
        self.report.summary = format!(
            "{}, not merged: {} {}",
            pr.headline(),
            refusal.summary,
            pr.url
        );
        self.log.success(&self.report.summary);
        pr.merge_refusal = Some(refusal);
    }
}
