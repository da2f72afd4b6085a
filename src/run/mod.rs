//! One run of the pipe, start to finish: variables -> config -> commit ->
//! push with retries -> report. Data flows one way; the decisions about *why*
//! a push was refused belong to `classify`, the git mechanics to `git`, and
//! what the run does about a refusal to [`refused`].

use crate::classify::{self, Evidence};
use crate::config::{self, Config, ConfigError, RawVars, RunMode, Transport};
use crate::credentials::Credential;
use crate::git::remote::{BranchTip, Endpoint, PushOutcome};
use crate::git::ssh::KnownHosts;
use crate::git::{
    self, ArtifactCommit, CommitOutcome, CommitRequest, RebaseOutcome, Repo, WriteMode,
};
use crate::log::Logger;
use crate::report::{self, BlockageKind, Report, Status};
use crate::secret::{Redactor, Secret};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod refused;
mod verdict;

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
        redactor.add(value.expose());
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
        sent: Vec::new(),
        closing_notes: Vec::new(),
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
    /// Every artifact commit a push was attempted with (the original and
    /// each rebased copy): any of them may have landed unanswered.
    sent: Vec<ArtifactCommit>,
    /// Sentences added to the blockage's explanation (what the attempts
    /// were, whether the push may have landed).
    closing_notes: Vec<String>,
}

impl Pusher<'_> {
    fn go(&mut self) -> anyhow::Result<()> {
        let (config, log, repo) = (self.config, self.log, self.repo);
        self.announce_credential();
        for notice in &config.notices {
            log.warning(notice);
        }
        let authorities = KnownHosts::with_bitbucket(&config.known_hosts).certificate_authorities();
        if config.remote.transport == Transport::Ssh && authorities > 0 {
            log.warning(format!(
                "{authorities} @cert-authority line(s) in known_hosts: host certificates are not supported, so those lines trust no key."
            ));
        }
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
            CommitOutcome::Unstageable(problems) => {
                let errors: Vec<ConfigError> = problems
                    .into_iter()
                    .map(|p| ConfigError::new("FILES", p))
                    .collect();
                for e in &errors {
                    log.plain(format!("ERROR: {}: {}", e.variable, e.message));
                }
                self.report.status = Status::InvalidConfiguration;
                self.report.summary = format!(
                    "Not committed: git would stage FILES differently than commit-back can ({} problem(s)); nothing was changed.",
                    errors.len()
                );
                self.report.errors = errors;
                log.failure(&self.report.summary);
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
            if !self.sent.iter().any(|c| c.oid == current.oid) {
                self.sent.push(current.clone());
            }
            let evidence = match endpoint.push(repo, &refspecs) {
                PushOutcome::Accepted(transcript) => {
                    self.record_attempt(&current, None);
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
            self.record_attempt(&current, Some((kind, &evidence)));
            if !kind.is_transient() || self.report.attempts > config.retries {
                return self.verdict(&endpoint, evidence, &current);
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
            let fetched = endpoint.fetch_branch(repo, &config.branch);
            if let Ok(BranchTip::At(tip)) = &fetched
                && let Ok(Some(landed)) = self.landed_in(*tip)
            {
                // An earlier attempt landed though its answer was lost.
                return self.landed(&endpoint, landed);
            }
            match fetched {
                Err(fetch_evidence) => {
                    fetch_evidence
                        .remote_lines
                        .iter()
                        .for_each(|l| log.remote(l));
                    if !classify::kind_of(&fetch_evidence, config.credential.kind()).is_transient()
                    {
                        return self.verdict(&endpoint, fetch_evidence, &current);
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
                        // The fetched tip was just asked: none of ours is in it.
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

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            url: self.config.remote.url.clone(),
            transport: self.config.remote.transport,
            ssh_key: ssh_key(&self.config.credential),
            known_hosts: KnownHosts::with_bitbucket(&self.config.known_hosts),
            host_key_problem: Default::default(),
        }
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
