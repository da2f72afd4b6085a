//! When Bitbucket refuses, or might: the refusal predicted (DRY_RUN),
//! explained with what the API can tell, worked around (a pull request,
//! ON_RESTRICTED=pull-request), reported (Code Insights), and the commit kept
//! as recovery files. The push itself is the state machine in [`super::push`].

use super::{API_TIMEOUT_SECS, Pusher, short};
use crate::bitbucket::Client;
use crate::config::credentials::Credential;
use crate::config::{OnRestricted, RunMode};
use crate::enrich::{self, ApiContext, Prediction};
use crate::explain::{Evidence, Situation, classify};
use crate::git::ArtifactCommit;
use crate::git::remote::{BranchTip, Endpoint, PushOutcome};
use crate::report::{self, BlockageKind, Status};
use crate::{insights, pull_request};
use std::path::Path;
use std::time::Duration;

impl Pusher<'_> {
    pub(super) fn situation(&self, api: Option<ApiContext>) -> Situation {
        Situation {
            credential: self.config.credential.kind(),
            transport: self.config.remote.transport,
            branch: self.config.branch.clone(),
            repository: self.config.repository.clone(),
            api,
            on_restricted: self.config.on_restricted,
            signed_with: self
                .config
                .signing
                .as_ref()
                .map(|s| format!("{} ({})", s.signer.describe(), s.source)),
            committer_email: self.config.author_email.clone(),
        }
    }

    /// A REST client for this credential, or why there is none.
    pub(super) fn api_client(&self) -> Result<Client, String> {
        let config = self.config;
        let timeout = config
            .network_timeout
            .min(Duration::from_secs(API_TIMEOUT_SECS));
        match &config.credential {
            Credential::SshKey { .. } => {
                Err("an SSH key cannot call the Bitbucket REST API".into())
            }
            Credential::Pipeline => Client::new(
                &insights::proxied_api_base(&config.api_url),
                None,
                Some(&config.auth_proxy),
                timeout,
                self.log.redactor().clone(),
            )
            .map_err(|e| e.to_string()),
            c => Client::new(
                &config.api_url,
                c.rest_authorization(),
                None,
                timeout,
                self.log.redactor().clone(),
            )
            .map_err(|e| e.to_string()),
        }
    }

    /// ON_RESTRICTED=merge in a dry run: what would happen after the push
    /// is refused, in one sentence.
    fn predict_merge(&self, ctx: Option<&ApiContext>) -> String {
        let strategy = &self.config.merge_strategy;
        let branch = &self.config.branch;
        match ctx.and_then(|c| enrich::predict_merge(c, self.config.credential.kind())) {
            Some(Ok(why)) => format!(
                "With ON_RESTRICTED=merge, a pull request would be opened and merged into {branch} ({strategy}): {why}."
            ),
            Some(Err(why)) => format!(
                "With ON_RESTRICTED=merge, a pull request would be opened, but its merge into {branch} would be refused: {why}; the pull request would stay open."
            ),
            None => format!(
                "With ON_RESTRICTED=merge, a pull request would be opened and merged into {branch} ({strategy}) if the merge rules allow it; they could not be read."
            ),
        }
    }

    /// Asks the API about identity, permission and the branch's rules.
    fn enrich(&self) -> Option<ApiContext> {
        let repository = self.config.repository.as_deref()?;
        match self.api_client() {
            Ok(client) => {
                self.log
                    .info("Asking the Bitbucket API who this credential is and which rules apply…");
                let mut ctx = enrich::gather(
                    &client,
                    repository,
                    &self.config.branch,
                    self.config.credential.kind(),
                );
                if self.config.on_restricted != OnRestricted::Merge {
                    ctx.merge_rules = None;
                }
                ctx.notes.iter().for_each(|n| self.log.debug(n));
                Some(ctx)
            }
            Err(why) => {
                self.log.debug(format!("no API enrichment: {why}"));
                Some(ApiContext {
                    notes: vec![format!("The rules could not be read: {why}.")],
                    ..Default::default()
                })
            }
        }
    }

    pub(super) fn dry_run(
        &mut self,
        endpoint: &Endpoint,
        artifact: &ArtifactCommit,
    ) -> anyhow::Result<()> {
        let log = self.log;
        log.info("Dry run: checking push access (nothing will be pushed or changed).");
        self.report.attempts = 1;
        self.report.dry_run = true;
        match endpoint.check_push_access(self.repo, &self.config.branch) {
            Ok(tip) => {
                let upstream = match tip {
                    BranchTip::Missing => format!(
                        "{} does not exist yet and would be created",
                        self.config.branch
                    ),
                    BranchTip::At(oid) if Some(oid) == artifact.parent => {
                        format!("{} is at the commit it would build on", self.config.branch)
                    }
                    BranchTip::At(oid) => format!(
                        "{} is at {}; the commit would be rebased onto it",
                        self.config.branch,
                        short(oid)
                    ),
                };
                // LFS objects are asked about (the batch API with the
                // credential), never uploaded.
                let remote_tip = match tip {
                    BranchTip::At(oid) => Some(oid),
                    BranchTip::Missing => None,
                };
                if let Some(evidence) = self.check_lfs(artifact, remote_tip) {
                    evidence.remote_lines.iter().for_each(|l| log.remote(l));
                    self.explain(evidence);
                    return Ok(());
                }
                let lfs_note = self
                    .report
                    .lfs
                    .as_ref()
                    .map(|l| {
                        let would = l
                            .objects
                            .iter()
                            .filter(|o| o.outcome == "would_upload")
                            .count();
                        format!(
                            ", {would} Git LFS object(s) to upload ({} already on the server)",
                            l.objects.len() - would
                        )
                    })
                    .unwrap_or_default();
                let ctx = self.enrich();
                let prediction = ctx
                    .as_ref()
                    .map(|c| enrich::predict(c, self.config.credential.kind()))
                    .unwrap_or(Prediction::Unknown);
                let rules_note = match &prediction {
                    Prediction::Refused(_) => {
                        let merge = (self.config.on_restricted == OnRestricted::Merge)
                            .then(|| self.predict_merge(ctx.as_ref()));
                        let situation = self.situation(ctx);
                        let mut blockage = classify::blockage_for(
                            BlockageKind::BranchRestriction,
                            &Evidence::default(),
                            &situation,
                        );
                        blockage.summary =
                            format!("Dry run: the push would be refused. {}", blockage.summary);
                        if let Some(merge) = merge {
                            log.info(&merge);
                            blockage.explanation.push(' ');
                            blockage.explanation.push_str(&merge);
                        }
                        self.show(blockage);
                        return Ok(());
                    }
                    Prediction::Allowed => "no branch restriction stops it".to_string(),
                    Prediction::Uncertain(r) => format!(
                        "rule {} on '{}' allows groups {}: membership could not be checked",
                        r.kind,
                        r.pattern,
                        r.groups.join(", ")
                    ),
                    Prediction::Unknown => "the branch restrictions could not be read".to_string(),
                };
                self.report.status = Status::DryRun;
                self.report.summary = format!(
                    "Dry run: would push {} file(s) to {}{lfs_note}; access granted, {upstream}; {rules_note}.",
                    artifact.files.len(),
                    self.config.branch
                );
                log.success(&self.report.summary);
                Ok(())
            }
            Err(evidence) => {
                evidence.remote_lines.iter().for_each(|l| log.remote(l));
                self.explain(evidence);
                Ok(())
            }
        }
    }

    /// The push failed for good: open a pull request if asked to, else keep
    /// the commit, explain, report.
    pub(super) fn refused(
        &mut self,
        evidence: Evidence,
        commit: &ArtifactCommit,
    ) -> anyhow::Result<()> {
        self.debug_evidence(&evidence);
        let kind = classify::kind_of(&evidence, self.config.credential.kind());
        let api = (kind == BlockageKind::BranchRestriction)
            .then(|| self.enrich())
            .flatten();
        let blockage = classify::classify(&evidence, &self.situation(api));
        let fallback = self.config.on_restricted;
        if kind == BlockageKind::BranchRestriction && fallback != OnRestricted::Fail {
            match self.open_pull_request(commit, &blockage) {
                Ok(mut pr) => {
                    self.log.plain(format!(
                        "The push to {} was refused: {}",
                        self.config.branch, blockage.summary
                    ));
                    self.report.status = Status::PullRequest;
                    self.report.summary = format!("{}: {}", pr.headline(), pr.url);
                    self.report.blockage = Some(blockage);
                    if fallback == OnRestricted::Merge {
                        self.log.info(&self.report.summary);
                        self.merge_pull_request(&mut pr, commit);
                    } else {
                        self.log.success(&self.report.summary);
                    }
                    self.report.pull_request = Some(pr);
                    return Ok(());
                }
                Err(why) => {
                    self.log
                        .warning(format!("ON_RESTRICTED={}: {why}", fallback.name()));
                    self.report.pull_request_error = Some(why);
                }
            }
        }
        self.keep_commit(commit);
        self.show(blockage);
        self.announce_recovery(commit);
        Ok(())
    }

    /// Where the kept commit is and how to get it back.
    pub(super) fn announce_recovery(&self, commit: &ArtifactCommit) {
        if let Some(r) = &self.report.recovery {
            self.log.info(format!(
                "The artifact commit {} is kept: bundle {} and patch {}.",
                short(commit.oid),
                r.bundle,
                r.patch
            ));
            self.log.info(format!(
                "Restore with `{}` or `{}`.",
                r.restore[0], r.restore[1]
            ));
            for more in r.restore.iter().skip(2) {
                self.log.info(format!(
                    "The Git LFS objects are kept beside them: `{more}` puts them back, and a push with git-lfs installed uploads them."
                ));
            }
        }
    }

    /// Pushes the commit to PR_BRANCH and opens (or reuses) a pull request to BRANCH.
    fn open_pull_request(
        &self,
        commit: &ArtifactCommit,
        blockage: &report::Blockage,
    ) -> Result<report::PullRequest, String> {
        let config = self.config;
        let repository = config
            .repository
            .as_deref()
            .ok_or("REPOSITORY is unknown, so no pull request can be opened")?;
        let source = config.pr_branch.clone().unwrap_or_else(|| {
            pull_request::default_source_branch(
                &config.branch,
                config.build_number.as_deref(),
                &commit.oid.to_string(),
            )
        });
        let client = self.api_client()?;
        self.log.info(format!(
            "ON_RESTRICTED={}: pushing {} to {source}.",
            config.on_restricted.name(),
            short(commit.oid)
        ));
        let endpoint = self.endpoint();
        if let PushOutcome::Refused(e) = endpoint
            .push(
                self.repo,
                &[(commit.oid, format!("refs/heads/{source}"), true)],
            )
            .outcome
        {
            e.remote_lines.iter().for_each(|l| self.log.remote(l));
            let b = classify::classify(&e, &self.situation(None));
            return Err(format!(
                "the push to {source} was refused too: {} {}",
                b.summary,
                e.remote_lines.join(" ")
            ));
        }
        let existing = client
            .open_pull_request(repository, &source, &config.branch)
            .map_err(|e| format!("listing pull requests failed: {e}"))?;
        let (pr, reused) = match existing {
            Some(pr) => (pr, true),
            None => {
                let body = pull_request::body(&commit.message, &source, &config.branch, blockage);
                (
                    client
                        .create_pull_request(repository, &body)
                        .map_err(|e| format!("opening the pull request failed: {e}"))?,
                    false,
                )
            }
        };
        let url = pr
            .links
            .and_then(|l| l.html)
            .map(|h| h.href)
            .unwrap_or_else(|| {
                format!("https://bitbucket.org/{repository}/pull-requests/{}", pr.id)
            });
        Ok(report::PullRequest {
            id: pr.id,
            url,
            source_branch: source,
            destination_branch: config.branch.clone(),
            reused,
            merged: false,
            merge_commit: None,
            merge_strategy: None,
            merge_refusal: None,
        })
    }

    /// CODE_INSIGHTS: a report on the commit that started the build. Failing
    /// to post is a warning, never a failure.
    pub(super) fn post_code_insights(&self) {
        let config = self.config;
        if !config.in_pipelines || !config.code_insights || config.mode == RunMode::DryRun {
            self.log
                .debug("Code Insights: off (not in Pipelines, CODE_INSIGHTS=false, or a dry run)");
            return;
        }
        let (Some(repository), Some(rev)) = (
            config.build_repository.as_deref(),
            config.build_commit.as_deref(),
        ) else {
            return;
        };
        // BITBUCKET_COMMIT can be a 12-character hash (facts §4): resolve it.
        let commit = self.repo.resolve(rev).unwrap_or_else(|| rev.to_owned());
        let timeout = config
            .network_timeout
            .min(Duration::from_secs(API_TIMEOUT_SECS));
        let result = Client::new(
            &insights::proxied_api_base(&config.api_url),
            None,
            Some(&config.auth_proxy),
            timeout,
            self.log.redactor().clone(),
        )
        .and_then(|c| {
            c.put_report(
                repository,
                &commit,
                insights::REPORT_ID,
                &insights::body(&self.report),
            )
        });
        match result {
            Ok(()) => self.log.info(format!(
                "Code Insights report posted on {}.",
                &commit[..commit.len().min(12)]
            )),
            Err(e) => self
                .log
                .warning(format!("could not post the Code Insights report: {e}")),
        }
    }

    /// Writes the bundle and patch and records them in the report.
    pub(super) fn keep_commit(&mut self, commit: &ArtifactCommit) {
        let tag = self.config.tag.as_deref().zip(self.tag_oid);
        match self
            .repo
            .write_recovery(commit.oid, tag, &self.config.branch, &|t| {
                self.log.redactor().redact(t)
            }) {
            Ok(files) => {
                let rel = |p: &Path| {
                    p.strip_prefix(self.repo.workdir())
                        .unwrap_or(p)
                        .display()
                        .to_string()
                };
                let (bundle, patch) = (rel(&files.bundle), rel(&files.patch));
                let mut restore = vec![
                    format!(
                        "git fetch {bundle} {}:commit-back-recovery",
                        files.bundle_ref
                    ),
                    format!("git am --3way {patch}"),
                ];
                // The content behind LFS pointers the server may not have.
                match self.keep_lfs_objects(commit) {
                    Ok(Some(dir)) => restore.push(format!(
                        "mkdir -p \"$(git rev-parse --git-common-dir)/lfs/objects\" && cp -Rn {}/. \"$(git rev-parse --git-common-dir)/lfs/objects/\"",
                        rel(&dir)
                    )),
                    Ok(None) => {}
                    Err(e) => self
                        .log
                        .warning(format!("could not keep the LFS objects: {e:#}")),
                }
                self.report.recovery = Some(report::Recovery {
                    restore,
                    bundle,
                    patch,
                });
            }
            Err(e) => self
                .log
                .warning(format!("could not write the recovery bundle: {e:#}")),
        }
    }

    fn debug_evidence(&self, evidence: &Evidence) {
        if let Some(g) = &evidence.git_error {
            self.log.debug(format!(
                "git error: class={:?} code={:?} message={}",
                g.class, g.code, g.message
            ));
        }
    }

    /// A refusal seen before any commit could be pushed (dry-run access check).
    fn explain(&mut self, evidence: Evidence) {
        self.debug_evidence(&evidence);
        let blockage = classify::classify(&evidence, &self.situation(None));
        self.show(blockage);
    }

    /// Logs the blockage (summary, explanation, remedies) and reports it.
    fn show(&mut self, mut blockage: report::Blockage) {
        for note in self.closing_notes.drain(..) {
            blockage.explanation = format!("{} {note}", blockage.explanation);
        }
        self.report.status = Status::Blocked;
        self.report.summary = blockage.summary.clone();
        self.log_blockage(&blockage);
        self.report.blockage = Some(blockage);
    }

    /// The blockage in the log: summary, explanation, each remedy.
    pub(super) fn log_blockage(&self, blockage: &report::Blockage) {
        let log = self.log;
        log.failure(&blockage.summary);
        log.plain(&blockage.explanation);
        for (i, r) in blockage.remedies.iter().enumerate() {
            log.plain(format!("Fix {}: {}", i + 1, r.title));
            for s in &r.steps {
                log.plain(format!("  - {s}"));
            }
            if let Some(d) = &r.docs {
                log.plain(format!("  Docs: {d}"));
            }
        }
    }
}
