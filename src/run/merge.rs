//! ON_RESTRICTED=merge: the fallback pull request is merged through the API
//! (`POST …/pullrequests/{id}/merge`, MERGE_STRATEGY, `close_source_branch`),
//! so the artifacts land on the branch with the team's merge rules applied.
//! A destination that moved is handled as the direct push handles it: the
//! pull request's branch is rebased onto the new tip and pushed, and the
//! merge tried again, within RETRIES. A refusal leaves the pull request open
//! and is explained on its own (`pull_request.merge_refusal`); the run's
//! status stays `pull_request` (exit 0): the artifacts are safe on the branch.
//!
//! Never: force-pushes anything but the pull request's own source branch.

use super::{Pusher, backoff, short};
use crate::bitbucket::{ApiError, BitbucketPullRequest, Client, MergeAnswer};
use crate::checkout::Target;
use crate::classify::{self, Evidence};
use crate::git::remote::{BranchTip, PushOutcome};
use crate::git::{ArtifactCommit, RebaseOutcome};
use crate::merge_refusal::{self, MergeRefusalKind, MergeSituation};
use crate::report;
use std::time::Duration;

/// An asynchronous merge is polled at most this often, this far apart.
const TASK_POLLS: u32 = 120;
const TASK_POLL_INTERVAL: Duration = Duration::from_millis(500);

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
            Err(why) => return self.merge_refused(pr, None, &why),
        };
        let Some(repository) = self.config.repository.clone() else {
            return self.merge_refused(pr, None, "REPOSITORY is unknown");
        };
        let mut current = commit.oid;
        for attempt in 0..=self.config.retries {
            self.log.info(format!(
                "ON_RESTRICTED=merge: merging pull request #{} into {} ({strategy}).",
                pr.id, pr.destination_branch
            ));
            let merged = match client.merge_pull_request(&repository, pr.id, &strategy) {
                Ok(MergeAnswer::Merged(done)) => Ok(done),
                Ok(MergeAnswer::Pending(task)) => self.wait_for_merge(&client, &task),
                Err(e) => Err(e),
            };
            let e = match merged {
                Ok(done) => return self.merged(pr, &done, current),
                Err(e) => e,
            };
            let kind = merge_refusal::kind_of(e.status, &e.message);
            if !kind.is_transient() || attempt == self.config.retries {
                return self.merge_refused(pr, e.status, &e.message);
            }
            self.log
                .info(format!("The merge did not go through ({e}); trying again."));
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
                                files,
                            });
                        }
                    }
                    Err(why) => return self.merge_refused(pr, e.status, &why),
                }
            }
            std::thread::sleep(backoff(attempt));
        }
    }

    /// Polls an asynchronous merge's task until it says SUCCESS (bounded).
    fn wait_for_merge(
        &self,
        client: &Client,
        task: &str,
    ) -> Result<BitbucketPullRequest, ApiError> {
        self.log
            .info("Bitbucket merges asynchronously; waiting for the merge task.");
        for _ in 0..TASK_POLLS {
            if let Some(done) = client.merge_task(task)? {
                return Ok(done);
            }
            std::thread::sleep(TASK_POLL_INTERVAL);
        }
        Err(ApiError {
            status: None,
            message: format!(
                "the merge task had not finished after {} s (merge timed out waiting)",
                (TASK_POLL_INTERVAL * TASK_POLLS).as_secs()
            ),
        })
    }

    /// The destination moved: the pull request's branch is rebuilt on its
    /// new tip (as the direct push does) and pushed.
    fn rebase_source(
        &self,
        pr: &report::PullRequest,
        commit: &ArtifactCommit,
        current: git2::Oid,
    ) -> Result<(git2::Oid, git2::Oid), String> {
        let (repo, config) = (self.repo, self.config);
        let endpoint = self.endpoint();
        let tip = match endpoint.fetch_branch(repo, &config.branch) {
            Ok(BranchTip::At(tip)) => tip,
            Ok(BranchTip::Missing) => return Err(format!("{} no longer exists", config.branch)),
            Err(e) => {
                return Err(format!(
                    "fetching {} failed: {}",
                    config.branch,
                    self.evidence_line(&e)
                ));
            }
        };
        let outcome = match config.target {
            Target::OtherRepository => repo.overlay(commit.oid, Some(tip), &config.files),
            _ => repo.rebase(current, tip),
        }
        .map_err(|e| format!("rebasing the pull request's commit failed: {e:#}"))?;
        let rebased = match outcome {
            RebaseOutcome::Rebased(oid) => oid,
            RebaseOutcome::AlreadyUpstream => {
                return Err(format!("{} already holds these changes", config.branch));
            }
            RebaseOutcome::Conflict(files) => {
                return Err(format!(
                    "the artifacts conflict with changes on {}: {}",
                    config.branch,
                    files.join(", ")
                ));
            }
        };
        self.log.info(format!(
            "{} is at {}: the pull request's commit is now {} on top of it; pushing {}.",
            config.branch,
            short(tip),
            short(rebased),
            pr.source_branch
        ));
        let refname = format!("refs/heads/{}", pr.source_branch);
        match endpoint.push(repo, &[(rebased, refname, true)]).outcome {
            PushOutcome::Accepted(_) => Ok((rebased, tip)),
            PushOutcome::Refused(e) => Err(format!(
                "the push of the rebased commit to {} was refused: {}",
                pr.source_branch,
                self.evidence_line(&e)
            )),
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
        current: git2::Oid,
    ) {
        pr.merged = true;
        pr.merge_commit = done.merge_commit.as_ref().map(|c| c.hash.clone());
        let landed = pr
            .merge_commit
            .clone()
            .unwrap_or_else(|| current.to_string());
        self.report.summary = format!(
            "Merged pull request #{} from {} into {} ({}): {} is on {}.",
            pr.id,
            pr.source_branch,
            pr.destination_branch,
            pr.merge_strategy.as_deref().unwrap_or("merge"),
            &landed[..landed.len().min(12)],
            pr.destination_branch
        );
        self.log.success(&self.report.summary);
    }

    fn merge_refused(&mut self, pr: &mut report::PullRequest, status: Option<u16>, message: &str) {
        let situation = MergeSituation {
            credential: self.config.credential.kind(),
            branch: &self.config.branch,
            strategy: pr.merge_strategy.as_deref().unwrap_or("fast_forward"),
            pull_request_url: &pr.url,
        };
        let refusal = merge_refusal::classify(status, message, &situation);
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
            "{} pull request #{} from {} to {}, not merged: {} {}",
            if pr.reused { "Updated" } else { "Opened" },
            pr.id,
            pr.source_branch,
            pr.destination_branch,
            refusal.summary,
            pr.url
        );
        self.log.success(&self.report.summary);
        pr.merge_refusal = Some(refusal);
    }
}
