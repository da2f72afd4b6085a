//! Pipe variables -> validated [`Config`].
//!
//! Two layers, as in ripgrep: [`RawVars`] is what envy reads (every field an
//! optional string, so envy itself never fails on a bad value), and
//! [`Config::from_vars`] turns it into typed settings, collecting *every*
//! problem as a [`ConfigError`] naming the variable and the fix. Parsing takes
//! an iterator of pairs, so tests never touch the process environment.
//!
//! Nothing here touches the repository; the only file-system reads are the
//! ones validation needs (pipeline SSH key, symlinks in FILES).

use crate::checkout::{Checkout, RepoName, Target, parse_origin};
pub mod credentials;
use crate::secret::Secret;
pub use crate::terms::{ConfigError, OnRestricted, Transport};
use credentials::Credential;
use serde::Deserialize;

mod signing;
pub use signing::Signing;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_MESSAGE: &str = "Update build artifacts [skip ci]";
pub const DEFAULT_API_URL: &str = "https://api.bitbucket.org/2.0";
pub const DEFAULT_AUTHOR_NAME: &str = "bitbucket-pipelines";
pub const DEFAULT_AUTHOR_EMAIL: &str = "commits-noreply@bitbucket.org";
pub const DEFAULT_RETRIES: u32 = 3;
pub const DEFAULT_NETWORK_TIMEOUT_SECS: u64 = 60;
/// More retries than this only hides a problem and can keep a step running for an hour.
const MAX_RETRIES: u32 = 20;
/// Where Pipelines mounts the step's SSH material (facts §4).
pub const PIPELINES_SSH_DIR: &str = "/opt/atlassian/pipelines/agent/ssh";

/// Every variable commit-back reads, as envy sees it.
/// envy lower-cases variable names, so the fields are the names in lower case.
#[derive(Debug, Default, Deserialize)]
pub struct RawVars {
    pub files: Option<String>,
    pub commit_message: Option<String>,
    pub skip_ci: Option<String>,
    pub branch: Option<String>,
    pub repository: Option<String>,
    pub remote_url: Option<String>,
    pub api_url: Option<String>,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub retries: Option<String>,
    pub include_ignored: Option<String>,
    pub tag: Option<String>,
    pub dry_run: Option<String>,
    pub report_file: Option<String>,
    pub loop_guard: Option<String>,
    pub debug: Option<String>,
    pub progress: Option<String>,
    pub no_color: Option<String>,
    pub network_timeout: Option<String>,
    pub on_restricted: Option<String>,
    pub pr_branch: Option<String>,
    pub code_insights: Option<String>,
    pub merge_strategy: Option<String>,
    // Credentials (names from the Bitbucket pipes ecosystem).
    // Secrets are typed as such from the moment they are read: their Debug
    // shows `Secret(***)`, and only `expose()` reaches the value.
    pub bitbucket_access_token: Option<Secret>,
    pub atlassian_account_email: Option<String>,
    pub atlassian_api_token: Option<Secret>,
    pub bitbucket_username: Option<String>,
    pub bitbucket_app_password: Option<Secret>,
    pub ssh_key: Option<Secret>,
    pub auth: Option<String>,
    pub known_hosts: Option<String>,
    pub pipelines_auth_proxy: Option<String>,
    // Signing (SIGNING_KEY is a private key; SIGN=ssh-key signs with SSH_KEY).
    pub sign: Option<String>,
    pub signing_key: Option<Secret>,
    pub signing_key_passphrase: Option<Secret>,
    // Set by Bitbucket Pipelines.
    pub bitbucket_branch: Option<String>,
    pub bitbucket_repo_full_name: Option<String>,
    pub bitbucket_git_http_origin: Option<String>,
    pub bitbucket_pipe_storage_dir: Option<String>,
    pub bitbucket_commit: Option<String>,
    pub bitbucket_build_number: Option<String>,
    pub bitbucket_ssh_key_file: Option<String>,
    pub bitbucket_pipeline_uuid: Option<String>,
    pub bitbucket_clone_dir: Option<String>,
    pub ci: Option<String>,
}

impl RawVars {
    /// Reads from any iterator of pairs. Empty values count as unset: Pipelines
    /// passes an unset repository variable as an empty string.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let pairs = pairs.into_iter().filter(|(_, v)| !v.trim().is_empty());
        // Every field is Option<String>, so envy cannot fail on values.
        envy::from_iter(pairs).unwrap_or_default()
    }
}

/// Where the push goes, without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub url: String,
    pub transport: Transport,
}

/// `merge_strategy` of the pull request merge (ON_RESTRICTED=merge), as the
/// spec's `pullrequest_merge_parameters` enumerates them.
pub const MERGE_STRATEGIES: &[&str] = &[
    "fast_forward",
    "merge_commit",
    "squash",
    "squash_fast_forward",
    "rebase_fast_forward",
    "rebase_merge",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    Push,
    DryRun,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub files: Vec<String>,
    pub message: String,
    pub branch: String,
    pub repository: Option<String>,
    pub remote: Remote,
    pub api_url: String,
    pub author_name: String,
    pub author_email: String,
    pub retries: u32,
    pub include_ignored: bool,
    pub tag: Option<String>,
    pub mode: RunMode,
    pub loop_guard: bool,
    pub credential: Credential,
    /// Extra known_hosts lines (pipeline known_hosts file, KNOWN_HOSTS).
    pub known_hosts: Vec<String>,
    /// The Pipelines auth proxy: git for the pipeline credential, Code Insights.
    pub auth_proxy: String,
    pub build_commit: Option<String>,
    pub build_number: Option<String>,
    pub network_timeout: Duration,
    pub on_restricted: OnRestricted,
    /// PR_BRANCH, or None for the default (needs the artifact commit's sha).
    pub pr_branch: Option<String>,
    /// MERGE_STRATEGY (ON_RESTRICTED=merge): one of [`MERGE_STRATEGIES`].
    pub merge_strategy: String,
    /// In Pipelines with CODE_INSIGHTS on: post a Code Insights report.
    pub code_insights: bool,
    /// Running inside Bitbucket Pipelines (CI and BITBUCKET_PIPELINE_UUID set).
    pub in_pipelines: bool,
    /// Pipelines variables (or PIPELINES_AUTH_PROXY) present: see `pipelines_detected`.
    pub pipelines_detected: bool,
    /// Warnings about accepted input (e.g. a user name removed from REMOTE_URL).
    pub notices: Vec<String>,
    /// The checked-out branch, another branch, or another repository.
    pub target: Target,
    /// The repository the build runs in (BITBUCKET_REPO_FULL_NAME): Code
    /// Insights reports go there, whatever the push's target.
    pub build_repository: Option<String>,
    /// SIGN / SIGNING_KEY: every commit and tag is signed by this key.
    pub signing: Option<Signing>,
}

/// What the report can say even when the configuration is invalid.
#[derive(Debug, Default, Clone)]
pub struct PartialConfig {
    pub repository: Option<String>,
    pub branch: Option<String>,
    pub remote: Option<String>,
}

/// Settings that must be known before the configuration is validated (the log
/// needs them to report validation errors).
pub struct LogSettings {
    pub debug: bool,
    pub color: bool,
    /// Progress lines for long phases (PROGRESS; DEBUG does not change it).
    pub progress: bool,
}

pub fn log_settings(raw: &RawVars) -> LogSettings {
    LogSettings {
        debug: parse_bool(raw.debug.as_deref(), "DEBUG", false).unwrap_or(false),
        color: raw.no_color.is_none(),
        progress: parse_bool(raw.progress.as_deref(), "PROGRESS", true).unwrap_or(true),
    }
}

/// Every problem found, in the order the variables are read: all are
/// reported at once.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn add(&mut self, e: ConfigError) {
        self.0.push(e);
    }

    /// The value, or `default` with the problem noted.
    fn or<T>(&mut self, result: Result<T, ConfigError>, default: T) -> T {
        result.unwrap_or_else(|e| {
            self.add(e);
            default
        })
    }

    /// The value, or `default` with every problem noted.
    fn or_all<T>(&mut self, result: Result<T, Vec<ConfigError>>, default: T) -> T {
        result.unwrap_or_else(|e| {
            self.0.extend(e);
            default
        })
    }

    fn names(&self, variable: &str) -> bool {
        self.0.iter().any(|e| e.variable == variable)
    }

    /// A yes/no variable, `default` when unset or invalid.
    fn flag(&mut self, value: Option<&str>, name: &str, default: bool) -> bool {
        let parsed = parse_bool(value, name, default);
        self.or(parsed, default)
    }
}

/// What is committed: FILES and the commit message (COMMIT_MESSAGE, SKIP_CI).
struct Content {
    files: Vec<String>,
    message: String,
}

impl Content {
    fn parse(raw: &RawVars, workdir: Option<&Path>, p: &mut Problems) -> Content {
        let files = p.or_all(parse_files(raw.files.as_deref(), workdir), Vec::new());
        let skip_ci = p.flag(raw.skip_ci.as_deref(), "SKIP_CI", true);
        Content {
            files,
            message: build_message(raw.commit_message.as_deref(), skip_ci),
        }
    }
}

/// Where to: BRANCH and REPOSITORY, with what the clone's origin says.
struct Destination {
    branch: Option<String>,
    origin: Option<crate::checkout::Origin>,
    /// REPOSITORY or BITBUCKET_REPO_FULL_NAME, as given.
    explicit_repository: Option<String>,
    repository: Option<String>,
}

impl Destination {
    fn parse(raw: &RawVars, checkout: &Checkout, p: &mut Problems) -> Destination {
        let branch = raw
            .branch
            .clone()
            .or_else(|| raw.bitbucket_branch.clone())
            .or_else(|| checkout.branch.clone());
        let branch = match branch {
            None => {
                p.add(ConfigError::new(
                    "BRANCH",
                    if checkout.detached {
                        "BRANCH is required: HEAD is detached (a tag or custom pipeline, or a CI checkout of a commit) and BITBUCKET_BRANCH is empty; set BRANCH to the branch to push to, e.g. BRANCH=main (Jenkins: BRANCH=${GIT_BRANCH#origin/})"
                    } else {
                        "BRANCH is required: BITBUCKET_BRANCH is empty (tag or custom pipeline, or not in Pipelines); set BRANCH to the branch to push to, e.g. BRANCH=main"
                    },
                ));
                None
            }
            Some(b) => branch_name(&b, "BRANCH", "use a name like main or release/1.2", p),
        };
        let origin = checkout.origin_url.as_deref().and_then(parse_origin);
        let explicit_repository = raw
            .repository
            .clone()
            .or_else(|| raw.bitbucket_repo_full_name.clone());
        let repository = explicit_repository
            .clone()
            .or_else(|| origin.as_ref().and_then(|o| o.full_name.clone()));
        if let Some(r) = &repository
            && !is_repo_full_name(r)
        {
            p.add(ConfigError::new(
                "REPOSITORY",
                format!(
                    "'{r}' is not of the form workspace/repo_slug; set REPOSITORY=myworkspace/my-repo"
                ),
            ));
        }
        Destination {
            branch,
            origin,
            explicit_repository,
            repository,
        }
    }
}

/// A branch name variable, checked as git checks it.
fn branch_name(name: &str, variable: &str, example: &str, p: &mut Problems) -> Option<String> {
    match validate_ref_name(name, "heads") {
        Ok(()) => Some(name.to_owned()),
        Err(why) => {
            p.add(ConfigError::new(
                variable,
                format!("'{name}' is not a valid branch name ({why}); {example}"),
            ));
            None
        }
    }
}

/// How the run behaves: TAG, RETRIES, NETWORK_TIMEOUT, the yes/no switches,
/// ON_RESTRICTED and what it needs (MERGE_STRATEGY, PR_BRANCH).
struct Behaviour {
    tag: Option<String>,
    retries: u32,
    network_timeout: Duration,
    include_ignored: bool,
    dry_run: bool,
    loop_guard: bool,
    code_insights: bool,
    on_restricted: OnRestricted,
    merge_strategy: String,
    pr_branch: Option<String>,
}

impl Behaviour {
    fn parse(raw: &RawVars, p: &mut Problems) -> Behaviour {
        let tag = raw
            .tag
            .as_ref()
            .and_then(|t| match validate_ref_name(t, "tags") {
                Ok(()) => Some(t.clone()),
                Err(why) => {
                    p.add(ConfigError::new(
                        "TAG",
                        format!("'{t}' is not a valid tag name ({why}); use a name like v1.2.3"),
                    ));
                    None
                }
            });
        let retries = match raw.retries.as_deref() {
            None => DEFAULT_RETRIES,
            Some(s) => match s.trim().parse::<u32>() {
                Ok(n) if n <= MAX_RETRIES => n,
                _ => {
                    p.add(ConfigError::new(
                        "RETRIES",
                        format!(
                            "'{s}' is not a whole number from 0 to {MAX_RETRIES}; e.g. RETRIES=3"
                        ),
                    ));
                    DEFAULT_RETRIES
                }
            },
        };
        let network_timeout = match raw.network_timeout.as_deref() {
            None => Duration::from_secs(DEFAULT_NETWORK_TIMEOUT_SECS),
            Some(s) => match s.trim().parse::<u64>() {
                Ok(n) if (1..=3600).contains(&n) => Duration::from_secs(n),
                _ => {
                    p.add(ConfigError::new(
                        "NETWORK_TIMEOUT",
                        format!(
                            "'{s}' is not a number of seconds from 1 to 3600; e.g. NETWORK_TIMEOUT=60"
                        ),
                    ));
                    Duration::from_secs(DEFAULT_NETWORK_TIMEOUT_SECS)
                }
            },
        };
        let include_ignored = p.flag(raw.include_ignored.as_deref(), "INCLUDE_IGNORED", false);
        let dry_run = p.flag(raw.dry_run.as_deref(), "DRY_RUN", false);
        let loop_guard = p.flag(raw.loop_guard.as_deref(), "LOOP_GUARD", true);
        // Read before validation for the log (log_settings); checked here.
        p.flag(raw.debug.as_deref(), "DEBUG", false);
        p.flag(raw.progress.as_deref(), "PROGRESS", true);
        let code_insights = p.flag(raw.code_insights.as_deref(), "CODE_INSIGHTS", true);
        let on_restricted = match raw
            .on_restricted
            .as_deref()
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => OnRestricted::Fail,
            Some(v) if v == "fail" => OnRestricted::Fail,
            Some(v) if v == "pull-request" || v == "pull_request" => OnRestricted::PullRequest,
            Some(v) if v == "merge" => OnRestricted::Merge,
            Some(v) => {
                p.add(ConfigError::new(
                    "ON_RESTRICTED",
                    format!(
                        "'{v}' is not supported; use ON_RESTRICTED=fail, ON_RESTRICTED=pull-request or ON_RESTRICTED=merge"
                    ),
                ));
                OnRestricted::Fail
            }
        };
        let merge_strategy = match raw
            .merge_strategy
            .as_deref()
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => MERGE_STRATEGIES[0].to_owned(),
            Some(v) if MERGE_STRATEGIES.contains(&v.as_str()) => v,
            Some(v) => {
                p.add(ConfigError::new(
                    "MERGE_STRATEGY",
                    format!(
                        "'{v}' is not a Bitbucket merge strategy; use one of {} (fast_forward lands the artifact commit itself, with its signature)",
                        MERGE_STRATEGIES.join(", ")
                    ),
                ));
                MERGE_STRATEGIES[0].to_owned()
            }
        };
        let pr_branch = raw
            .pr_branch
            .as_ref()
            .and_then(|b| branch_name(b, "PR_BRANCH", "e.g. PR_BRANCH=commit-back/ids", p));
        Behaviour {
            tag,
            retries,
            network_timeout,
            include_ignored,
            dry_run,
            loop_guard,
            code_insights,
            on_restricted,
            merge_strategy,
            pr_branch,
        }
    }
}

/// Every concern's part of a valid configuration.
struct Parts {
    branch: String,
    content: Content,
    behaviour: Behaviour,
    author: Author,
    api_url: String,
    credential: Credential,
    signing: Option<Signing>,
    route: Route,
    known_hosts: Vec<String>,
}

impl Parts {
    /// The configuration, with the build's facts read from `raw`.
    fn into_config(self, raw: &RawVars) -> Config {
        let Parts {
            branch,
            content,
            behaviour: b,
            author,
            api_url,
            credential,
            signing,
            route,
            known_hosts,
        } = self;
        Config {
            files: content.files,
            message: content.message,
            branch,
            repository: route.repository,
            remote: route.remote,
            api_url,
            author_name: author.name,
            author_email: author.email,
            retries: b.retries,
            include_ignored: b.include_ignored,
            tag: b.tag,
            mode: if b.dry_run {
                RunMode::DryRun
            } else {
                RunMode::Push
            },
            loop_guard: b.loop_guard,
            credential,
            known_hosts,
            auth_proxy: auth_proxy(raw),
            build_commit: raw.bitbucket_commit.clone(),
            build_number: raw.bitbucket_build_number.clone(),
            network_timeout: b.network_timeout,
            on_restricted: b.on_restricted,
            pr_branch: b.pr_branch,
            merge_strategy: b.merge_strategy,
            code_insights: b.code_insights,
            in_pipelines: raw.ci.is_some() && raw.bitbucket_pipeline_uuid.is_some(),
            pipelines_detected: pipelines_detected(raw),
            notices: route.notices,
            target: route.target,
            build_repository: raw.bitbucket_repo_full_name.clone(),
            signing,
        }
    }
}

/// Who the commit says wrote it: AUTHOR_NAME, AUTHOR_EMAIL.
struct Author {
    name: String,
    email: String,
}

impl Author {
    fn parse(raw: &RawVars, p: &mut Problems) -> Author {
        let name = raw
            .author_name
            .clone()
            .unwrap_or_else(|| DEFAULT_AUTHOR_NAME.to_owned());
        let email = raw
            .author_email
            .clone()
            .unwrap_or_else(|| DEFAULT_AUTHOR_EMAIL.to_owned());
        if name.contains(['<', '>', '\n']) {
            p.add(ConfigError::new(
                "AUTHOR_NAME",
                "must not contain '<', '>' or a line break; e.g. AUTHOR_NAME='Release Bot'",
            ));
        }
        if !is_plausible_email(&email) {
            p.add(ConfigError::new(
                "AUTHOR_EMAIL",
                format!("'{email}' is not an e-mail address; e.g. AUTHOR_EMAIL=bot@example.com"),
            ));
        }
        Author { name, email }
    }
}

fn parse_api_url(raw: &RawVars, p: &mut Problems) -> String {
    let api_url = raw
        .api_url
        .clone()
        .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        p.add(ConfigError::new(
            "API_URL",
            format!(
                "'{api_url}' is not an http(s) URL; e.g. API_URL=https://api.bitbucket.org/2.0"
            ),
        ));
    }
    api_url
}

/// The credential that pushes, and the key that signs (SIGN may name the
/// push's SSH key).
fn parse_credential(raw: &RawVars, p: &mut Problems) -> (Credential, Option<Signing>) {
    let resolved = credentials::resolve(raw);
    let signing = p.or_all(signing::parse(raw, resolved.as_ref().ok()), None);
    let credential = match resolved {
        Ok(Credential::Pipeline) if !pipelines_detected(raw) => {
            p.add(ConfigError::new(
                "BITBUCKET_ACCESS_TOKEN",
                "no credential given, and this is not Bitbucket Pipelines (no auth proxy to push through); set BITBUCKET_ACCESS_TOKEN, or ATLASSIAN_ACCOUNT_EMAIL + ATLASSIAN_API_TOKEN, or SSH_KEY",
            ));
            Credential::Pipeline
        }
        Ok(c) => c,
        Err(e) => p.or_all(Err(e), Credential::Pipeline),
    };
    (credential, signing)
}

/// The way there: the remote URL (REMOTE_URL, or derived), which
/// repository and branch that is relative to this clone, and what the API
/// is asked about.
struct Route {
    remote: Remote,
    target: Target,
    repository: Option<String>,
    notices: Vec<String>,
    /// FILES would copy this whole repository into another: reported only
    /// when the other repository is named validly.
    copy_everything: Option<ConfigError>,
}

impl Route {
    fn parse(
        raw: &RawVars,
        checkout: &Checkout,
        destination: &Destination,
        credential: &Credential,
        files: &[String],
        p: &mut Problems,
    ) -> Route {
        let origin = destination.origin.as_ref();
        let remote = derive_remote(
            raw,
            destination.repository.as_deref(),
            credential,
            origin.filter(|o| destination.explicit_repository.is_none() && !o.is_bitbucket_cloud()),
        );
        let remote = p.or(
            remote,
            Remote {
                url: String::new(),
                transport: Transport::Http,
            },
        );
        let target = destination
            .branch
            .as_deref()
            .map(|b| {
                // In Pipelines the clone is BITBUCKET_REPO_FULL_NAME's.
                let clone_name = match &raw.bitbucket_repo_full_name {
                    Some(n) => RepoName::of_full_name(n),
                    None => checkout
                        .origin_url
                        .as_deref()
                        .map(RepoName::of_url)
                        .unwrap_or_default(),
                };
                let target_name = match (&raw.remote_url, &raw.repository) {
                    (Some(url), _) => RepoName::of_url(url),
                    (None, Some(r)) => RepoName::of_full_name(r),
                    (None, None) => clone_name.clone(),
                };
                crate::checkout::target_of(checkout, &clone_name, &target_name, b)
            })
            .unwrap_or_default();
        let copy_everything = (target == Target::OtherRepository
            && files.iter().any(|f| selects_everything(f)))
        .then(|| ConfigError::new(
            "FILES",
            "REMOTE_URL or REPOSITORY names another repository than this clone's: name the files to copy there, e.g. FILES='dist/api.json docs/generated/' (FILES=. would copy this whole repository's tree)",
        ));
        let mut notices = Vec::new();
        // Another repository named by REMOTE_URL alone: the API (rules,
        // pull requests) must ask about that one, not the build's.
        let repository = match (target, &raw.repository, &raw.remote_url) {
            (Target::OtherRepository, None, Some(url)) => {
                // Only on Bitbucket Cloud or the build's own server: the API
                // there knows that name.
                let same_server = |o: &crate::checkout::Origin| {
                    origin.is_some_and(|b| b.host.eq_ignore_ascii_case(&o.host))
                };
                let named = parse_origin(url)
                    .filter(|o| o.is_bitbucket_cloud() || same_server(o))
                    .and_then(|o| o.full_name)
                    .filter(|n| is_repo_full_name(n));
                if named.is_none() {
                    notices.push("REMOTE_URL names another repository whose workspace/repo_slug cannot be read from it: set REPOSITORY too, or the Bitbucket API (explanations, pull requests) stays unused.".to_owned());
                }
                named
            }
            _ => destination.repository.clone(),
        };
        if let Some(given) = &raw.remote_url
            && let Some((user, _)) = given
                .split_once("://")
                .and_then(|(_, rest)| rest.split('/').next())
                .and_then(|authority| authority.rsplit_once('@'))
            && remote.transport == Transport::Http
            && !DOCUMENTED_GIT_USERS.contains(&user)
            && raw.bitbucket_username.as_deref() != Some(user)
        {
            // The name is not repeated: it could be a secret in disguise.
            notices.push(
                "REMOTE_URL names a user before '@'; it was removed from the URL: the credential variables decide who pushes.".to_owned(),
            );
        }
        Route {
            remote,
            target,
            repository,
            notices,
            copy_everything,
        }
    }
}

/// From a pipe container the Pipelines auth proxy is on the host (facts §3, §4).
fn auth_proxy(raw: &RawVars) -> String {
    raw.pipelines_auth_proxy.clone().unwrap_or_else(|| {
        if raw.bitbucket_pipe_storage_dir.is_some() {
            "http://host.docker.internal:29418"
        } else {
            "http://localhost:29418"
        }
        .to_owned()
    })
}

impl Config {
    /// Validates everything. `workdir` is the repository's working tree (None
    /// when the current directory is not a repository: that is reported by the
    /// caller, and FILES is then checked only syntactically). Each concern is
    /// parsed on its own, in the order the problems are listed.
    pub fn from_vars(
        raw: &RawVars,
        workdir: Option<&Path>,
        checkout: &Checkout,
    ) -> Result<Config, (Vec<ConfigError>, PartialConfig)> {
        let mut problems = Problems::default();
        let p = &mut problems;
        let content = Content::parse(raw, workdir, p);
        let destination = Destination::parse(raw, checkout, p);
        let behaviour = Behaviour::parse(raw, p);
        let author = Author::parse(raw, p);
        let api_url = parse_api_url(raw, p);
        let (credential, signing) = parse_credential(raw, p);
        let route = Route::parse(raw, checkout, &destination, &credential, &content.files, p);
        let known_hosts = p.or(credentials::known_hosts_lines(raw), Vec::new());
        // Only when the other repository is named validly.
        if let Some(e) = route.copy_everything.clone()
            && !p.names("REMOTE_URL")
            && !p.names("REPOSITORY")
        {
            p.add(e);
        }
        if !problems.0.is_empty() {
            let partial = PartialConfig {
                repository: route.repository,
                branch: destination.branch,
                remote: (!route.remote.url.is_empty()).then_some(route.remote.url),
            };
            return Err((problems.0, partial));
        }
        Ok(Parts {
            branch: destination.branch.expect("branch validated"),
            content,
            behaviour,
            author,
            api_url,
            credential,
            signing,
            route,
            known_hosts,
        }
        .into_config(raw))
    }

    /// The secrets this configuration holds, for the redactor.
    pub fn secrets(&self) -> Vec<Secret> {
        let mut all = self.credential.secrets();
        if let Some(signing) = &self.signing {
            all.extend(signing.secrets().iter().cloned());
        }
        all
    }
}

/// REPORT_FILE, else `report.json` in the pipe's storage directory. Read
/// from the raw variables: the report is copied even when the rest of the
/// configuration is invalid.
pub fn report_file(raw: &RawVars) -> Option<PathBuf> {
    raw.report_file.as_ref().map(PathBuf::from).or_else(|| {
        raw.bitbucket_pipe_storage_dir
            .as_ref()
            .map(|d| Path::new(d).join("report.json"))
    })
}

/// Whether this looks like a Bitbucket Pipelines step (or a pipe container of
/// one), where the auth proxy exists. PIPELINES_AUTH_PROXY says so explicitly.
pub fn pipelines_detected(raw: &RawVars) -> bool {
    raw.pipelines_auth_proxy.is_some()
        || raw.bitbucket_pipeline_uuid.is_some()
        || raw.bitbucket_build_number.is_some()
        || raw.bitbucket_repo_full_name.is_some()
        || raw.bitbucket_clone_dir.is_some()
}

/// A FILES entry that selects the whole tree: `.`, `*`, `**`, `**/*`,
/// `./`, `./**` and the like (every path component `.`, `*` or `**`).
fn selects_everything(spec: &str) -> bool {
    spec.split('/')
        .filter(|c| !c.is_empty())
        .all(|c| matches!(c, "." | "*" | "**"))
}

pub fn parse_bool(value: Option<&str>, name: &str, default: bool) -> Result<bool, ConfigError> {
    match value.map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) => match v.as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::new(
                name,
                format!("'{v}' is not a boolean; use {name}=true or {name}=false"),
            )),
        },
    }
}

/// Appends `[skip ci]` unless the message already carries one of the two labels
/// Pipelines accepts (KB "skip CI label": only `[skip ci]` and `[ci skip]`).
pub fn build_message(message: Option<&str>, skip_ci: bool) -> String {
    let mut msg = message.unwrap_or(DEFAULT_MESSAGE).trim_end().to_owned();
    if skip_ci {
        let lower = msg.to_ascii_lowercase();
        if !lower.contains("[skip ci]") && !lower.contains("[ci skip]") {
            msg = match msg.split_once('\n') {
                Some((subject, body)) => format!("{subject} [skip ci]\n{body}"),
                None => format!("{msg} [skip ci]"),
            };
        }
    }
    msg
}

fn is_repo_full_name(s: &str) -> bool {
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    matches!(s.split_once('/'), Some((w, r)) if ok(w) && ok(r) && !r.contains('/'))
}

fn is_plausible_email(s: &str) -> bool {
    matches!(s.split_once('@'), Some((l, d)) if !l.is_empty() && !d.is_empty() && !s.contains(['<', '>', ' ', '\n']))
}

fn validate_ref_name(name: &str, kind: &str) -> Result<(), &'static str> {
    if name.starts_with("refs/") {
        return Err("give the short name, without refs/");
    }
    if crate::git::is_valid_ref_name(&format!("refs/{kind}/{name}")) {
        Ok(())
    } else {
        Err("git does not accept it as a ref name")
    }
}

/// Splits FILES and rejects anything that would reach outside the repository.
pub fn parse_files(
    value: Option<&str>,
    workdir: Option<&Path>,
) -> Result<Vec<String>, Vec<ConfigError>> {
    let specs: Vec<String> = match value {
        None => vec![".".to_owned()],
        Some(v) => v.split_whitespace().map(str::to_owned).collect(),
    };
    let errors: Vec<ConfigError> = specs
        .iter()
        .filter_map(|spec| check_pathspec(spec, workdir).err())
        .map(|why| ConfigError::new("FILES", why))
        .collect();
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(errors)
    }
}

const GLOB_CHARS: &[char] = &['*', '?', '[', '{'];

fn check_pathspec(spec: &str, workdir: Option<&Path>) -> Result<(), String> {
    let fix = "give paths relative to the repository root, e.g. FILES='dist/ids.json build/*.lock'";
    if spec.starts_with(':') {
        return Err(format!(
            "'{spec}': git pathspec magic is not supported; {fix}"
        ));
    }
    let path = Path::new(spec);
    if path.is_absolute() || spec.starts_with('~') {
        return Err(format!(
            "'{spec}' is an absolute path, outside the repository; {fix}"
        ));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "'{spec}' leads out of the repository with '..'; {fix}"
        ));
    }
    let Some(root) = workdir else { return Ok(()) };
    // The literal part before the first glob character must stay inside the
    // repository once symlinks are resolved.
    let literal: PathBuf = path
        .components()
        .take_while(|c| !c.as_os_str().to_string_lossy().contains(GLOB_CHARS))
        .collect();
    let root = root
        .canonicalize()
        .map_err(|e| format!("cannot resolve the repository root: {e}"))?;
    let mut probe = root.clone();
    for component in literal.components() {
        probe.push(component);
        if probe.symlink_metadata().is_err() {
            break; // does not exist (yet): nothing to follow
        }
        if let Ok(resolved) = probe.canonicalize() {
            if !resolved.starts_with(&root) {
                return Err(format!(
                    "'{spec}' goes through a symlink that leads out of the repository (to {}); {fix}",
                    resolved.display()
                ));
            }
        } else if probe
            .symlink_metadata()
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
        {
            // A dangling symlink: git would commit the link itself, which is fine,
            // unless further components must be followed through it.
            continue;
        }
    }
    Ok(())
}

/// The push URL: REMOTE_URL, else derived from REPOSITORY and the credential.
fn derive_remote(
    raw: &RawVars,
    repository: Option<&str>,
    credential: &Credential,
    foreign_origin: Option<&crate::checkout::Origin>,
) -> Result<Remote, ConfigError> {
    // Outside Pipelines, an origin that is not bitbucket.org (a compatible
    // server) is pushed to as it is, without the credential it may embed.
    let origin_url = foreign_origin.map(|o| o.url.clone());
    if let Some(url) = raw.remote_url.as_ref().or(origin_url.as_ref()) {
        let remote = parse_remote_url(url)?;
        match (remote.transport, credential.is_ssh()) {
            (Transport::Http, true) => Err(ConfigError::new(
                "REMOTE_URL",
                "is an http(s) URL but the credential is an SSH key; give an SSH URL (git@bitbucket.org:workspace/repo.git) or an HTTP credential",
            )),
            (Transport::Ssh, false) => Err(ConfigError::new(
                "REMOTE_URL",
                format!(
                    "is an SSH URL but the credential is {}; give an https URL or set SSH_KEY (or AUTH=ssh)",
                    credential.kind().describe()
                ),
            )),
            _ => Ok(remote),
        }
    } else if let Some(repo) = repository {
        Ok(match credential {
            c if c.is_ssh() => Remote {
                url: format!("git@bitbucket.org:{repo}.git"),
                transport: Transport::Ssh,
            },
            Credential::Pipeline => {
                // The clone's own origin form (facts §4): http, through the auth proxy.
                let origin = raw
                    .bitbucket_git_http_origin
                    .clone()
                    .filter(|_| raw.bitbucket_repo_full_name.as_deref() == Some(repo))
                    .unwrap_or_else(|| format!("http://bitbucket.org/{repo}"));
                Remote {
                    url: origin,
                    transport: Transport::Http,
                }
            }
            _ => Remote {
                url: format!("https://bitbucket.org/{repo}.git"),
                transport: Transport::Http,
            },
        })
    } else {
        Err(ConfigError::new(
            "REPOSITORY",
            "REPOSITORY is required: BITBUCKET_REPO_FULL_NAME is empty (not in Pipelines); set REPOSITORY=workspace/repo_slug or REMOTE_URL",
        ))
    }
}

pub fn parse_remote_url(url: &str) -> Result<Remote, ConfigError> {
    let bad = |why: &str| {
        Err(ConfigError::new(
            "REMOTE_URL",
            format!(
                "{why}; e.g. REMOTE_URL=https://bitbucket.org/workspace/repo.git or git@bitbucket.org:workspace/repo.git"
            ),
        ))
    };
    if url.contains(char::is_whitespace) {
        return bad("must not contain spaces");
    }
    if let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    {
        let authority = rest.split('/').next().unwrap_or("");
        let userinfo = authority.rsplit_once('@').map(|(u, _)| u);
        if userinfo.is_some_and(|u| u.contains(':') || u.to_ascii_lowercase().contains("%3a")) {
            // Never accept a password inside the URL: it would be logged and stored.
            return bad(
                "must not contain a password; put the secret in BITBUCKET_ACCESS_TOKEN or ATLASSIAN_API_TOKEN",
            );
        }
        if userinfo.is_some_and(looks_like_a_token) {
            return bad(
                "has what looks like a token before '@' (not shown here); never put a credential in the URL: remove it and give the token in BITBUCKET_ACCESS_TOKEN or ATLASSIAN_API_TOKEN",
            );
        }
        if authority.is_empty() || rest.len() <= authority.len() + 1 {
            return bad("has no repository path");
        }
        // A user name alone (Bitbucket's clone URLs carry one) is dropped:
        // the credential variables decide who pushes, and no URL shown
        // anywhere carries userinfo.
        return Ok(Remote {
            url: without_userinfo(url),
            transport: Transport::Http,
        });
    }
    if let Some(rest) = url.strip_prefix("ssh://") {
        let authority = rest.split('/').next().unwrap_or("");
        if authority
            .rsplit_once('@')
            .is_some_and(|(u, _)| u.contains(':') || looks_like_a_token(u))
        {
            return bad(
                "must not contain a password or a token; SSH authenticates with SSH_KEY (or AUTH=ssh)",
            );
        }
        if !rest.contains('/') {
            return bad("has no repository path");
        }
        return Ok(Remote {
            url: url.to_owned(),
            transport: Transport::Ssh,
        });
    }
    // scp-like: user@host:path
    if let Some((userhost, path)) = url.split_once(':')
        && userhost.contains('@')
        && !path.is_empty()
        && !userhost.contains('/')
    {
        return Ok(Remote {
            url: url.to_owned(),
            transport: Transport::Ssh,
        });
    }
    // Echoed only when nothing in it could be a credential.
    if url.contains('@') {
        bad("is not an http, https or ssh git URL")
    } else {
        bad(&format!("'{url}' is not an http, https or ssh git URL"))
    }
}

/// `scheme://user[:password]@host/…` without `user[:password]@`.
pub fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{path}"),
        None => url.to_owned(),
    }
}

/// The git user names Bitbucket documents for HTTPS, which carry no secret.
const DOCUMENTED_GIT_USERS: &[&str] = &["x-token-auth", "x-bitbucket-api-token-auth"];

/// Whether the user part of a URL is more likely a credential than a name:
/// Atlassian token prefixes, or long and mixed like a generated secret
/// (Bitbucket user names are short, lower-case words).
fn looks_like_a_token(user: &str) -> bool {
    if DOCUMENTED_GIT_USERS.contains(&user) {
        return false;
    }
    let prefixed = ["ATCTT", "ATATT", "ATBB", "ATCT", "ghp_", "glpat-"]
        .iter()
        .any(|p| user.starts_with(p));
    let has = |f: fn(&char) -> bool| user.chars().any(|c| f(&c));
    let generated = user.len() >= 20
        && has(char::is_ascii_digit)
        && (has(char::is_ascii_uppercase) || user.len() >= 32);
    prefixed || generated
}

#[cfg(test)]
mod tests;
