//! One run of the pipe, start to finish: variables -> config -> commit ->
//! push (the state machine in [`push`]) -> report. Data flows one way; the decisions about *why*
//! a push was refused belong to `classify`, the git mechanics to `git`, and
//! what the run does about a refusal to [`refused`].

use crate::config::credentials::Credential;
use crate::config::{self, Config, ConfigError, RawVars, RunMode, Transport};
use crate::explain::Evidence;
use crate::git::remote::Endpoint;
use crate::git::ssh::KnownHosts;
use crate::git::{self, ArtifactCommit, CommitOutcome, CommitRequest, Repo, WriteMode};
use crate::log::Logger;
use crate::report::{self, BlockageKind, Report, Status};
use crate::secret::{Redactor, Secret};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod lfs;
mod merge;
mod push;
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
        &raw.signing_key,
        &raw.signing_key_passphrase,
    ]
    .into_iter()
    .flatten()
    {
        redactor.add(value.expose());
    }
    let settings = config::log_settings(&raw);
    let log = Logger::new(settings.color, settings.debug, redactor.clone());
    crate::progress::install(settings.progress.then(|| {
        let log = log.clone();
        std::sync::Arc::new(move |line: &str| log.info(line)) as _
    }));

    let mut report = if env.args.is_empty() {
        execute(&raw, &env.cwd, &log, &redactor, started)
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
    report.timings.api_ms = crate::bitbucket::api_time_ms();
    let json = redactor.redact_owned(report.to_json());
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
    let mut file = std::fs::File::create(path)?;
    std::io::Write::write_all(&mut file, json.as_bytes())?;
    std::io::Write::write_all(&mut file, b"\n")
}

fn execute(
    raw: &RawVars,
    cwd: &Path,
    log: &Logger,
    redactor: &Redactor,
    started: Instant,
) -> Report {
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
    let mut repo = repo;
    if let Some(signing) = &config.signing {
        repo.sign_with(signing.signer.clone());
    }
    let mut report = Report::new(Status::Failed, "");
    report.timings.config_ms = started.elapsed().as_millis() as u64;
    report.repository = config.repository.clone();
    report.remote = Some(config.remote.url.clone());
    report.branch = Some(config.branch.clone());
    report.credential = Some(report::Credential {
        kind: config.credential.kind(),
    });
    report.tag = config.tag.clone();

    let trailer = trailer_value(&config);
    let mut push = Pusher {
        repo: &repo,
        config: &config,
        log,
        report,
        request: CommitRequest {
            specs: &config.files,
            include_ignored: config.include_ignored,
            message: &config.message,
            author_name: &config.author_name,
            author_email: &config.author_email,
            trailer_value: &trailer,
            keep_unchanged: config.target == crate::checkout::Target::OtherRepository,
        },
        tag_oid: None,
        sent: Vec::new(),
        current: None,
        closing_notes: Vec::new(),
        started,
        committed_bytes: 0,
        ssh_bytes: 0,
        pushed_objects: 0,
        pack_writer: None,
    };
    match push.commit_and_push() {
        Ok(()) => {}
        Err(e) => {
            push.report.status = Status::Failed;
            push.report.summary = format!("Unexpected error: {e:#}");
            log.failure(&push.report.summary);
            // Whatever failed, an artifact commit that is not upstream is kept.
            if config.mode == RunMode::Push
                && let Some(current) = push.current.clone()
            {
                push.keep_commit(&current);
                push.announce_recovery(&current);
            }
        }
    }
    push.record_sizes();
    // Every run that committed ends with its numbers (a push says them in
    // its closing line).
    if push.report.status != Status::Pushed
        && let Some(commit) = &push.report.commit
    {
        log.info(format!(
            "{}.",
            capitalise(&push.numbers(commit.files.len()))
        ));
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
    request: CommitRequest<'a>,
    /// The tag object for the current commit (never a ref until it landed).
    tag_oid: Option<crate::git::Oid>,
    /// Every artifact commit a push was attempted with (the original and
    /// each rebased copy): any of them may have landed unanswered.
    sent: Vec<ArtifactCommit>,
    /// The artifact commit as of the last step: kept if the run fails.
    current: Option<ArtifactCommit>,
    /// Sentences added to the blockage's explanation (what the attempts
    /// were, whether the push may have landed).
    closing_notes: Vec<String>,
    /// When the run started (the closing line's time).
    started: Instant,
    /// The artifacts' size (report `sizes.bytes_committed`).
    committed_bytes: u64,
    /// Bytes of the packs pushed over SSH (HTTP counts its own).
    ssh_bytes: u64,
    /// Objects in the last pack sent.
    pushed_objects: u64,
    /// Who wrote it (report `sizes.pack`).
    pack_writer: Option<&'static str>,
}

impl Pusher<'_> {
    /// Checks, commits, then hands the commit to the push machine ([`push`]).
    fn commit_and_push(&mut self) -> anyhow::Result<()> {
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
        let artifact = match repo.commit_artifacts(&self.request, mode)? {
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
        self.current = Some(artifact.clone());
        let times = repo.commit_times();
        self.report.timings.stage_ms = times.stage_ms;
        self.report.timings.commit_ms = times.commit_ms;
        // Sizes for the report and files over Bitbucket's limit, from one
        // walk; when it fails, neither is known.
        let committed = git::lfs::committed(repo.raw(), artifact.oid, lfs::BITBUCKET_FILE_LIMIT);
        self.committed_bytes = committed.as_ref().map_or(0, |c| c.bytes);
        log.info(format!(
            "Committed {} file(s) as {} on top of {}.",
            artifact.files.len(),
            short(artifact.oid),
            artifact
                .parent
                .map(short)
                .unwrap_or_else(|| "nothing".into())
        ));
        if let Some(signing) = &config.signing {
            log.info(format!(
                "Signed with the {} ({}); every replay and tag is signed with it too.",
                signing.signer.describe(),
                signing.source
            ));
        }
        for f in artifact.files.iter().take(50) {
            log.debug(format!("  {f}"));
        }
        self.set_commit(&artifact);
        self.warn_large_files(&committed.map(|c| c.large).unwrap_or_default());
        self.make_tag(artifact.oid)?;

        install_http(config)?;
        let endpoint = self.endpoint();

        let result = if config.mode == RunMode::DryRun {
            self.dry_run(&endpoint, &artifact)
        } else {
            self.deliver(&endpoint, &artifact)
        };
        if let Some((given, new)) = git::http::take_moved() {
            log.warning(format!(
                "The repository redirected from {given} to {new}, and this run used the new URL; set REMOTE_URL={new} (or REPOSITORY to its new name) so the next run goes there directly."
            ));
        }
        result
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

    /// The tag object for `target` (TAG set); the ref is written only
    /// once it landed.
    fn make_tag(&mut self, target: crate::git::Oid) -> anyhow::Result<()> {
        let Some(name) = &self.config.tag else {
            return Ok(());
        };
        self.tag_oid = Some(self.repo.create_tag(name, target, &self.request)?);
        self.log
            .debug(format!("annotated tag {name} -> {}", short(target)));
        Ok(())
    }

    fn set_commit(&mut self, artifact: &ArtifactCommit) {
        self.report.commit = Some(report::Commit {
            sha: artifact.oid.to_string(),
            parent: artifact.parent.map(|p| p.to_string()),
            message: artifact.message.clone(),
            files: artifact.files.clone(),
            // Read off the object: a commit written unsigned says so.
            signature: self
                .config
                .signing
                .as_ref()
                .filter(|_| self.repo.is_signed(artifact.oid))
                .map(|s| report::Signature {
                    format: s.signer.format(),
                    key_type: s.signer.algorithm().to_owned(),
                    fingerprint: s.signer.fingerprint().to_owned(),
                }),
        });
    }

    /// The report's `sizes`, once a commit was made.
    fn record_sizes(&mut self) {
        let Some(commit) = &self.report.commit else {
            return;
        };
        self.report.sizes = Some(report::Sizes {
            files: commit.files.len(),
            bytes_committed: self.committed_bytes,
            objects: self.pushed_objects,
            bytes_sent: self.bytes_sent(),
            pack: self.pack_writer,
        });
    }

    fn bytes_sent(&self) -> u64 {
        git::http::bytes_sent() + self.ssh_bytes
    }

    /// `1 file, 60.0 MiB committed, 60.1 MiB sent in 11.8 s`.
    fn numbers(&self, files: usize) -> String {
        format!(
            "{files} file{}, {} committed, {} sent in {:.1} s",
            if files == 1 { "" } else { "s" },
            crate::progress::size(self.committed_bytes),
            crate::progress::size(self.bytes_sent()),
            self.started.elapsed().as_secs_f64()
        )
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

/// The artifact commit's trailer: the version, the build, and an id of
/// this run, by which a landed commit is recognised upstream.
fn trailer_value(config: &Config) -> String {
    let run = format!("{:016x}", fastrand::u64(..));
    match &config.build_number {
        Some(n) => format!("{VERSION} build {n} run {run}"),
        None => format!("{VERSION} run {run}"),
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

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn short(oid: crate::git::Oid) -> String {
    oid.to_string()[..12].to_owned()
}
