//! One run of the pipe, start to finish: variables -> config -> commit ->
//! push with retries -> report. Data flows one way; the decisions about *why*
//! a push was refused belong to `classify`, the git mechanics to `git`.

use crate::bitbucket::Client;
use crate::classify::{self, Evidence, Situation};
use crate::config::{self, Config, ConfigError, OnRestricted, RawVars, RunMode, Transport};
use crate::credentials::Credential;
use crate::enrich::{self, ApiContext, Prediction};
use crate::git::remote::{BranchTip, Endpoint, PushOutcome};
use crate::git::ssh::KnownHosts;
use crate::git::{
    self, ArtifactCommit, CommitOutcome, CommitRequest, RebaseOutcome, Repo, WriteMode,
};
use crate::log::Logger;
use crate::report::{self, BlockageKind, Report, Status};
use crate::secret::{Redactor, Secret};
use crate::{insights, pull_request};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// API calls are information, never the point: they may not hold a run up long.
const API_TIMEOUT_SECS: u64 = 20;

/// What the process needs from the outside world, passed in so tests and the
/// binary share one entry point.
pub struct Environment {
    pub vars: Vec<(String, String)>,
    /// Command-line arguments after the program name: none are accepted.
    pub args: Vec<String>,
    pub cwd: PathBuf,
}

pub struct Finished {
    pub report: Report,
    /// The report as JSON, secrets removed.
    pub json: String,
}

pub fn run(env: Environment) -> Finished {
    let started = Instant::now();
    let raw = RawVars::from_pairs(env.vars);
    let redactor = Redactor::new();
    // Registered before anything is logged, even if the configuration is invalid.
    for value in [
        &raw.bitbucket_access_token,
        &raw.atlassian_api_token,
        &raw.bitbucket_app_password,
        &raw.ssh_key,
    ]
    .into_iter()
    .flatten()
    {
        redactor.add(value);
    }
    let settings = config::log_settings(&raw);
    let log = Logger::new(settings.color, settings.debug, redactor.clone());

    let mut report = if env.args.is_empty() {
        execute(&raw, &env.cwd, &log, &redactor)
    } else {
        // Environment variables are the one way to configure a run.
        let errors: Vec<ConfigError> = env
            .args
            .iter()
            .map(|a| ConfigError::new("ARGUMENTS", format!("unknown argument '{a}': commit-back is configured by environment variables only; see commit-back --help")))
            .collect();
        invalid(errors, Default::default(), &log)
    };
    report.duration_ms = started.elapsed().as_millis() as u64;
    let json = redactor.redact(&report.to_json());
    if let Some(path) = config::report_file(&raw) {
        if let Err(e) = write_report_file(&path, &json) {
            log.warning(format!(
                "could not write the report copy to {}: {e}",
                path.display()
            ));
        } else {
            log.debug(format!("report copied to {}", path.display()));
        }
    }
    Finished { report, json }
}

fn write_report_file(path: &Path, json: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, format!("{json}\n"))
}

fn execute(raw: &RawVars, cwd: &Path, log: &Logger, redactor: &Redactor) -> Report {
    let dry_run = config::parse_bool(raw.dry_run.as_deref(), "DRY_RUN", false).unwrap_or(true);
    let mode = if dry_run {
        WriteMode::InMemory
    } else {
        WriteMode::Disk
    };
    let repo = Repo::open(cwd, mode);
    let workdir = repo.as_ref().ok().map(|r| r.workdir().to_path_buf());
    let checkout = repo.as_ref().map(|r| r.checkout()).unwrap_or_default();
    if let Some(secret) = checkout
        .origin_url
        .as_deref()
        .and_then(crate::checkout::parse_origin)
        .and_then(|o| o.embedded_secret)
    {
        // A credential inside origin's URL (common in Jenkins) is never used or shown.
        redactor.add(&secret);
    }
    let config = Config::from_vars(raw, workdir.as_deref(), &checkout);
    let (repo, config) = match (repo, config) {
        (Ok(repo), Ok(config)) => (repo, config),
        (repo, config) => {
            let (mut errors, partial) = match config {
                Ok(_) => (Vec::new(), Default::default()),
                Err(e) => e,
            };
            if let Err(e) = repo {
                errors.insert(
                    0,
                    ConfigError::new(
                        "BITBUCKET_CLONE_DIR",
                        format!("{e:#}; run the pipe in the repository's working tree (Pipelines mounts it as the working directory)"),
                    ),
                );
            }
            return invalid(errors, partial, log);
        }
    };
    for secret in config.secrets() {
        redactor.add(secret.expose());
    }
    let mut report = Report::new(Status::Failed, "");
    report.repository = config.repository.clone();
    report.remote = Some(config.remote.url.clone());
    report.branch = Some(config.branch.clone());
    report.credential = Some(report::Credential {
        kind: config.credential.kind(),
    });
    report.tag = config.tag.clone();

    let mut push = Pusher {
        repo: &repo,
        config: &config,
        log,
        report,
        tag_oid: None,
    };
    match push.go() {
        Ok(()) => {}
        Err(e) => {
            push.report.status = Status::Failed;
            push.report.summary = format!("Unexpected error: {e:#}");
            log.failure(&push.report.summary);
        }
    }
    push.post_code_insights();
    push.report
}

/// The report for an invalid configuration: every problem, one line each.
fn invalid(errors: Vec<ConfigError>, partial: config::PartialConfig, log: &Logger) -> Report {
    for e in &errors {
        log.plain(format!("ERROR: {}: {}", e.variable, e.message));
    }
    let mut report = Report::new(
        Status::InvalidConfiguration,
        format!(
            "Invalid configuration: {} problem(s); nothing was changed.",
            errors.len()
        ),
    );
    report.errors = errors;
    report.repository = partial.repository;
    report.branch = partial.branch;
    report.remote = partial.remote;
    log.failure(&report.summary);
    report
}

struct Pusher<'a> {
    repo: &'a Repo,
    config: &'a Config,
    log: &'a Logger,
    report: Report,
    tag_oid: Option<git2::Oid>,
}

impl Pusher<'_> {
    fn go(&mut self) -> anyhow::Result<()> {
        let (config, log, repo) = (self.config, self.log, self.repo);
        self.announce_credential();
        log.debug(format!(
            "remote {} ({:?}), branch {}, files {:?}, retries {}, shallow clone: {}",
            config.remote.url,
            config.remote.transport,
            config.branch,
            config.files,
            config.retries,
            repo.is_shallow()
        ));

        if !config.pipelines_detected {
            log.debug("Not in Bitbucket Pipelines: the auth proxy, Code Insights and the pipe storage report copy are off; BRANCH, REPOSITORY and the remote default to the checkout.");
        }
        if config.loop_guard && self.loop_guard_applies() {
            return Ok(());
        }

        let mode = match config.mode {
            RunMode::DryRun => WriteMode::InMemory,
            RunMode::Push => WriteMode::Disk,
        };
        let request = CommitRequest {
            specs: &config.files,
            include_ignored: config.include_ignored,
            message: &config.message,
            author_name: &config.author_name,
            author_email: &config.author_email,
            trailer_value: &trailer_value(config),
        };
        // A literal FILES entry that names nothing usually means the build did
        // not produce what was expected: say so (globs may rightly match nothing).
        let missing = repo.missing_paths(&config.files);
        for m in missing.iter().take(10) {
            log.warning(format!(
                "FILES entry '{m}' matches no file in the working tree or in HEAD."
            ));
        }
        if missing.len() > 10 {
            log.warning(format!(
                "… and {} more FILES entries that match nothing.",
                missing.len() - 10
            ));
        }
        let artifact = match repo.commit_artifacts(&request, mode)? {
            CommitOutcome::NothingToCommit => {
                self.report.status = Status::NothingToCommit;
                self.report.summary = format!(
                    "Nothing to commit: FILES ({}) has no changes.",
                    config.files.join(" ")
                );
                log.success(&self.report.summary);
                return Ok(());
            }
            CommitOutcome::Created(c) => c,
        };
        log.info(format!(
            "Committed {} file(s) as {} on top of {}.",
            artifact.files.len(),
            short(artifact.oid),
            artifact
                .parent
                .map(short)
                .unwrap_or_else(|| "nothing".into())
        ));
        for f in artifact.files.iter().take(50) {
            log.debug(format!("  {f}"));
        }
        self.set_commit(&artifact, artifact.oid);
        self.make_tag(artifact.oid, &request, mode)?;

        install_http(config)?;
        let endpoint = self.endpoint();

        if config.mode == RunMode::DryRun {
            return self.dry_run(&endpoint, &artifact);
        }

        let mut current = artifact.clone();
        loop {
            self.report.attempts += 1;
            let refspecs = self.refspecs(current.oid);
            log.info(format!(
                "Pushing {} to {} (attempt {}).",
                short(current.oid),
                config.branch,
                self.report.attempts
            ));
            log.debug(format!("refspecs: {refspecs:?}"));
            let evidence = match endpoint.push(repo, &refspecs) {
                PushOutcome::Accepted(transcript) => {
                    transcript.remote_lines.iter().for_each(|l| log.remote(l));
                    if config.remote.transport == Transport::Ssh
                        && let Some(e) = self.push_tag_separately(&endpoint)
                    {
                        return self.refused(e, &current);
                    }
                    self.report.status = Status::Pushed;
                    self.report.summary =
                        format!("Pushed {} to {}.", short(current.oid), config.branch);
                    log.success(&self.report.summary);
                    return Ok(());
                }
                PushOutcome::Refused(evidence) => evidence,
            };
            evidence.remote_lines.iter().for_each(|l| log.remote(l));
            let kind = classify::kind_of(&evidence, config.credential.kind());
            if !kind.is_transient() || self.report.attempts > config.retries {
                return self.refused(evidence, &current);
            }
            let pause = backoff(self.report.attempts);
            log.info(format!(
                "{} — retrying in {} ms.",
                retry_reason(kind, &evidence),
                pause.as_millis()
            ));
            std::thread::sleep(pause);
            if kind != BlockageKind::NonFastForward {
                continue;
            }
            match endpoint.fetch_branch(repo, &config.branch) {
                Err(fetch_evidence) => {
                    fetch_evidence
                        .remote_lines
                        .iter()
                        .for_each(|l| log.remote(l));
                    if !classify::kind_of(&fetch_evidence, config.credential.kind()).is_transient()
                    {
                        return self.refused(fetch_evidence, &current);
                    }
                }
                Ok(BranchTip::Missing) => {}
                Ok(BranchTip::At(tip)) => match repo.rebase(current.oid, tip)? {
                    RebaseOutcome::Rebased(new) => {
                        log.info(format!(
                            "{} moved to {}; replayed the artifact commit as {}.",
                            config.branch,
                            short(tip),
                            short(new)
                        ));
                        repo.advance_head(new)?;
                        current = ArtifactCommit {
                            oid: new,
                            parent: Some(tip),
                            message: current.message.clone(),
                            files: repo.files_between(Some(tip), new)?,
                        };
                        self.set_commit(&current, new);
                        self.make_tag(new, &request, mode)?;
                    }
                    RebaseOutcome::AlreadyUpstream => {
                        repo.advance_head(tip)?;
                        self.report.status = Status::NothingToCommit;
                        self.report.commit = None;
                        self.report.summary = format!(
                            "Nothing to push: {} already holds these changes (at {}).",
                            config.branch,
                            short(tip)
                        );
                        log.success(&self.report.summary);
                        return Ok(());
                    }
                    RebaseOutcome::Conflict(files) => {
                        let evidence = Evidence {
                            conflicts: files,
                            ..Default::default()
                        };
                        return self.refused(evidence, &current);
                    }
                },
            }
        }
    }

    fn announce_credential(&self) {
        let (config, log) = (self.config, self.log);
        match &config.credential {
            Credential::Pipeline => log.info(format!(
                "No credential given: pushing as the pipeline itself, through the Pipelines auth proxy ({}). Branch restrictions apply to these pushes.",
                config.auth_proxy
            )),
            Credential::AppPassword { .. } => {
                log.warning("App password is deprecated: Bitbucket Cloud removed app passwords on 2026-07-28. Use ATLASSIAN_ACCOUNT_EMAIL + ATLASSIAN_API_TOKEN.");
                log.info(format!("Using {}.", config.credential.kind().describe()));
            }
            c => log.info(format!("Using {}.", c.kind().describe())),
        }
    }

    /// LOOP_GUARD: the build was started by our own artifact commit. Only a
    /// CI-given build commit counts: on a laptop HEAD is often our last commit,
    /// and that must not stop the next run.
    fn loop_guard_applies(&mut self) -> bool {
        let Some(rev) = self.config.build_commit.clone() else {
            self.log
                .debug("loop guard: no BITBUCKET_COMMIT, not applied");
            return false;
        };
        let Some(message) = self.repo.message_of(&rev) else {
            self.log.debug(format!(
                "loop guard: commit {rev} not found locally; not applied"
            ));
            return false;
        };
        if !Repo::has_trailer(&message) {
            return false;
        }
        self.report.status = Status::NothingToCommit;
        self.report.summary = format!(
            "Loop guard: this build was started by commit-back's own artifact commit ({rev}, trailer {}); nothing done. Set LOOP_GUARD=false to run anyway.",
            git::TRAILER
        );
        self.log.success(&self.report.summary);
        true
    }

    fn make_tag(
        &mut self,
        target: git2::Oid,
        request: &CommitRequest<'_>,
        mode: WriteMode,
    ) -> anyhow::Result<()> {
        let Some(name) = &self.config.tag else {
            return Ok(());
        };
        self.tag_oid = Some(self.repo.create_tag(name, target, request, mode)?);
        self.log
            .debug(format!("annotated tag {name} -> {}", short(target)));
        Ok(())
    }

    fn refspecs(&self, commit: git2::Oid) -> Vec<String> {
        let mut specs = vec![format!("{commit}:refs/heads/{}", self.config.branch)];
        // Over HTTP the tag travels in the same, atomic, request. Over SSH
        // libgit2 cannot ask for atomic, so the tag follows the branch.
        if let (Some(tag), Transport::Http) = (&self.config.tag, self.config.remote.transport) {
            specs.push(format!("+refs/tags/{tag}:refs/tags/{tag}"));
        }
        specs
    }

    fn push_tag_separately(&self, endpoint: &Endpoint) -> Option<Evidence> {
        let tag = self.config.tag.as_ref()?;
        self.log.info(format!("Pushing tag {tag}."));
        match endpoint.push(self.repo, &[format!("+refs/tags/{tag}:refs/tags/{tag}")]) {
            PushOutcome::Accepted(_) => None,
            PushOutcome::Refused(e) => Some(e),
        }
    }

    fn set_commit(&mut self, artifact: &ArtifactCommit, oid: git2::Oid) {
        self.report.commit = Some(report::Commit {
            sha: oid.to_string(),
            parent: artifact.parent.map(|p| p.to_string()),
            message: artifact.message.clone(),
            files: artifact.files.clone(),
        });
    }

    fn situation(&self, api: Option<ApiContext>) -> Situation {
        Situation {
            credential: self.config.credential.kind(),
            transport: self.config.remote.transport,
            branch: self.config.branch.clone(),
            repository: self.config.repository.clone(),
            api,
            on_restricted: self.config.on_restricted,
        }
    }

    /// A REST client for this credential, or why there is none.
    fn api_client(&self) -> Result<Client, String> {
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
            )
            .map_err(|e| e.to_string()),
            c => Client::new(&config.api_url, c.rest_authorization(), None, timeout)
                .map_err(|e| e.to_string()),
        }
    }

    /// Asks the API about identity, permission and the branch's rules.
    fn enrich(&self) -> Option<ApiContext> {
        let repository = self.config.repository.as_deref()?;
        match self.api_client() {
            Ok(client) => {
                self.log
                    .info("Asking the Bitbucket API who this credential is and which rules apply…");
                let ctx = enrich::gather(
                    &client,
                    repository,
                    &self.config.branch,
                    self.config.credential.kind(),
                );
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

    fn dry_run(&mut self, endpoint: &Endpoint, artifact: &ArtifactCommit) -> anyhow::Result<()> {
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
                let ctx = self.enrich();
                let prediction = ctx
                    .as_ref()
                    .map(|c| enrich::predict(c, self.config.credential.kind()))
                    .unwrap_or(Prediction::Unknown);
                let rules_note = match &prediction {
                    Prediction::Refused(_) => {
                        let situation = self.situation(ctx);
                        let mut blockage = classify::blockage_for(
                            BlockageKind::BranchRestriction,
                            &Evidence::default(),
                            &situation,
                        );
                        blockage.summary =
                            format!("Dry run: the push would be refused. {}", blockage.summary);
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
                    "Dry run: would push {} file(s) to {}; access granted, {upstream}; {rules_note}.",
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
    fn refused(&mut self, evidence: Evidence, commit: &ArtifactCommit) -> anyhow::Result<()> {
        self.debug_evidence(&evidence);
        let kind = classify::kind_of(&evidence, self.config.credential.kind());
        let api = (kind == BlockageKind::BranchRestriction)
            .then(|| self.enrich())
            .flatten();
        let blockage = classify::classify(&evidence, &self.situation(api));
        if kind == BlockageKind::BranchRestriction
            && self.config.on_restricted == OnRestricted::PullRequest
        {
            match self.open_pull_request(commit, &blockage) {
                Ok(pr) => {
                    self.log.plain(format!(
                        "The push to {} was refused: {}",
                        self.config.branch, blockage.summary
                    ));
                    self.report.status = Status::PullRequest;
                    self.report.summary = format!(
                        "{} pull request #{} from {} to {}: {}",
                        if pr.reused { "Updated" } else { "Opened" },
                        pr.id,
                        pr.source_branch,
                        pr.destination_branch,
                        pr.url
                    );
                    self.report.blockage = Some(blockage);
                    self.log.success(&self.report.summary);
                    self.report.pull_request = Some(pr);
                    return Ok(());
                }
                Err(why) => {
                    self.log
                        .warning(format!("ON_RESTRICTED=pull-request: {why}"));
                    self.report.pull_request_error = Some(why);
                }
            }
        }
        self.keep_commit(commit);
        self.show(blockage);
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
        }
        Ok(())
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
            "ON_RESTRICTED=pull-request: pushing {} to {source}.",
            short(commit.oid)
        ));
        let endpoint = self.endpoint();
        if let PushOutcome::Refused(e) =
            endpoint.push(self.repo, &[format!("+{}:refs/heads/{source}", commit.oid)])
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
        })
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            url: self.config.remote.url.clone(),
            transport: self.config.remote.transport,
            ssh_key: ssh_key(&self.config.credential),
            known_hosts: KnownHosts::with_bitbucket(&self.config.known_hosts),
            host_key_problem: Default::default(),
        }
    }

    /// CODE_INSIGHTS: a report on the commit that started the build. Failing
    /// to post is a warning, never a failure.
    fn post_code_insights(&self) {
        let config = self.config;
        if !config.in_pipelines || !config.code_insights || config.mode == RunMode::DryRun {
            self.log
                .debug("Code Insights: off (not in Pipelines, CODE_INSIGHTS=false, or a dry run)");
            return;
        }
        let (Some(repository), Some(rev)) =
            (config.repository.as_deref(), config.build_commit.as_deref())
        else {
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
    fn keep_commit(&mut self, commit: &ArtifactCommit) {
        let tag = self.config.tag.as_deref().zip(self.tag_oid);
        match self
            .repo
            .write_recovery(commit.oid, tag, &self.config.branch)
        {
            Ok(files) => {
                let rel = |p: &Path| {
                    p.strip_prefix(self.repo.workdir())
                        .unwrap_or(p)
                        .display()
                        .to_string()
                };
                let (bundle, patch) = (rel(&files.bundle), rel(&files.patch));
                self.report.recovery = Some(report::Recovery {
                    restore: vec![
                        format!(
                            "git fetch {bundle} {}:commit-back-recovery",
                            files.bundle_ref
                        ),
                        format!("git am --3way {patch}"),
                    ],
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
                "git error: class={} code={} message={}",
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
    fn show(&mut self, blockage: report::Blockage) {
        let log = self.log;
        self.report.status = Status::Blocked;
        self.report.summary = blockage.summary.clone();
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
        self.report.blockage = Some(blockage);
    }
}

fn trailer_value(config: &Config) -> String {
    match &config.build_number {
        Some(n) => format!("{VERSION} build {n}"),
        None => VERSION.to_owned(),
    }
}

fn ssh_key(credential: &Credential) -> Option<Secret> {
    match credential {
        Credential::SshKey { private_key, .. } => Some(private_key.clone()),
        _ => None,
    }
}

fn install_http(config: &Config) -> anyhow::Result<()> {
    let authorization = config.credential.git_http_authorization();
    git::http::install(git::http::HttpSettings {
        authorization,
        proxy: matches!(config.credential, Credential::Pipeline).then(|| config.auth_proxy.clone()),
        timeout: config.network_timeout,
        atomic: config.tag.is_some(),
        user_agent: format!("git/2.0 (commit-back {VERSION})"),
    })
}

/// Exponential backoff with full jitter: spreads racing pipes apart.
fn backoff(attempt: u32) -> Duration {
    let base = 250u64.saturating_mul(1 << attempt.min(5)).min(4000);
    Duration::from_millis(base / 2 + fastrand::u64(0..=base))
}

/// Why a push is retried; for a network failure the server's lines (logged
/// just before) or else the error itself say what failed.
fn retry_reason(kind: BlockageKind, evidence: &Evidence) -> String {
    match kind {
        BlockageKind::NonFastForward => {
            "The branch moved while we pushed (lost a race); fetching and rebasing".into()
        }
        _ => match &evidence.git_error {
            Some(e) if evidence.remote_lines.is_empty() => {
                let first = e.message.lines().next().unwrap_or_default().trim();
                format!("The network failed ({first})")
            }
            _ => "The network failed".into(),
        },
    }
}

fn short(oid: git2::Oid) -> String {
    oid.to_string()[..12].to_owned()
}
