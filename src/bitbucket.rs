//! Bitbucket Cloud REST API 2.0: the few calls commit-back makes, and their
//! wire types (`Bitbucket*`, each mirroring a definition of the published
//! spec, ../shared/bitbucket-openapi.json).
//!
//! One choke point, [`Client::send`], keeps the status and Bitbucket's error
//! message of every failed call. Every call has a timeout; callers treat API
//! failures as information, never as the reason a push failed.

use crate::secret::{Redactor, Secret};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A failed API call: HTTP status (None: no answer) and Bitbucket's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: Option<u16>,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "HTTP {s}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

/// `account` / `user` / `app_user` (GET /user).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct BitbucketAccount {
    #[serde(rename = "type")]
    pub kind: String,
    pub display_name: Option<String>,
    pub uuid: Option<String>,
    pub account_id: Option<String>,
    pub nickname: Option<String>,
}

/// `branchrestriction` (GET /repositories/{workspace}/{repo_slug}/branch-restrictions).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct BitbucketBranchRestriction {
    pub id: Option<i64>,
    pub kind: String,
    #[serde(default)]
    pub branch_match_kind: Option<String>,
    #[serde(default)]
    pub branch_type: Option<String>,
    #[serde(default)]
    pub pattern: String,
    #[serde(default)]
    pub users: Vec<BitbucketAccount>,
    #[serde(default)]
    pub groups: Vec<BitbucketGroup>,
    /// The number a merge check asks for (approvals, successful builds).
    #[serde(default)]
    pub value: Option<i64>,
}

/// `group` (as embedded in a branch restriction).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct BitbucketGroup {
    pub name: Option<String>,
    pub slug: Option<String>,
}

/// `repository_permission`.
#[derive(Debug, Clone, Deserialize)]
pub struct BitbucketRepositoryPermission {
    pub permission: Option<String>,
}

/// `pullrequest`, the fields commit-back reads.
#[derive(Debug, Clone, Deserialize)]
pub struct BitbucketPullRequest {
    pub id: u64,
    pub links: Option<BitbucketPullRequestLinks>,
    /// `OPEN`, `MERGED`, `DECLINED`, `SUPERSEDED`.
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub merge_commit: Option<BitbucketCommitRef>,
}

/// `{hash}`, as `pullrequest.merge_commit` names a commit.
#[derive(Debug, Clone, Deserialize)]
pub struct BitbucketCommitRef {
    pub hash: String,
}

/// What POST …/pullrequests/{id}/merge answered.
#[derive(Debug, Clone)]
pub enum MergeAnswer {
    /// 200: the pull request, merged.
    Merged(BitbucketPullRequest),
    /// 202: the merge runs on; its task status is at this URL (the
    /// Location header).
    Pending(String),
}

/// The task status of an asynchronous merge. Its shape is not in the
/// published spec (the 200 answer has no schema): `task_status` `PENDING`
/// or `SUCCESS`, and with SUCCESS `merge_result`, the pull request, as
/// Atlassian's API reference describes it in prose. Read loosely.
#[derive(Debug, Clone, Deserialize)]
struct BitbucketMergeTask {
    task_status: Option<String>,
    merge_result: Option<BitbucketPullRequest>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BitbucketPullRequestLinks {
    pub html: Option<BitbucketLink>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BitbucketLink {
    pub href: String,
}

/// Every `paginated_*` definition: `values` and an optional `next` URL.
#[derive(Debug, Deserialize)]
struct BitbucketPage<T> {
    #[serde(default = "Vec::new")]
    values: Vec<T>,
    next: Option<String>,
}

/// `error`: `{"type": "error", "error": {"message": …}}`.
#[derive(Debug, Deserialize)]
struct BitbucketError {
    error: BitbucketErrorBody,
}

#[derive(Debug, Deserialize)]
struct BitbucketErrorBody {
    message: String,
    detail: Option<serde_json::Value>,
}

/// A list read page by page.
#[derive(Debug)]
pub struct Paged<T> {
    pub values: Vec<T>,
    /// The origin of a `next` page that was not followed (not API_URL's).
    pub stopped_at: Option<String>,
}

/// Pages followed at most, so a huge list cannot keep a pipe busy.
const MAX_PAGES: usize = 10;

pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
    authorization: Option<Secret>,
    /// Every body sent passes through it: pull-request descriptions and
    /// Code Insights reports quote server text, and are public to the
    /// repository's readers.
    redactor: Redactor,
    /// Requests go through the Pipelines auth proxy.
    proxied: bool,
}

impl Client {
    /// `base` like `https://api.bitbucket.org/2.0`; `proxy` for the Pipelines
    /// auth proxy, which authenticates requests itself.
    pub fn new(
        base: &str,
        authorization: Option<Secret>,
        proxy: Option<&str>,
        timeout: Duration,
        redactor: Redactor,
    ) -> Result<Client, ApiError> {
        let mut builder = reqwest::blocking::Client::builder()
            .user_agent(concat!("commit-back/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(crate::origin::redirect_policy());
        if let Some(p) = proxy {
            let proxy = reqwest::Proxy::all(p).map_err(|e| ApiError {
                status: None,
                message: format!("proxy {p}: {e}"),
            })?;
            builder = builder.proxy(proxy);
        }
        let http = builder.build().map_err(|e| ApiError {
            status: None,
            message: e.to_string(),
        })?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            authorization,
            redactor,
            proxied: proxy.is_some(),
        })
    }

    /// GET /user: who the credential is (`user`, or `app_user` for access tokens).
    pub fn current_user(&self) -> Result<BitbucketAccount, ApiError> {
        self.get_json(&format!("{}/user", self.base))
    }

    /// The caller's permission on the repository (read, write, admin), from
    /// GET /user/workspaces/{workspace}/permissions/repositories.
    pub fn repository_permission(&self, full_name: &str) -> Result<Option<String>, ApiError> {
        let (workspace, slug) = split(full_name);
        let q = format!("repository.full_name=\"{workspace}/{slug}\"");
        let url = format!(
            "{}/user/workspaces/{workspace}/permissions/repositories?q={}",
            self.base,
            encode(&q)
        );
        let page: BitbucketPage<BitbucketRepositoryPermission> = self.get_json(&url)?;
        Ok(page.values.into_iter().next().and_then(|p| p.permission))
    }

    /// Every branch restriction of the repository (needs admin access).
    pub fn branch_restrictions(
        &self,
        full_name: &str,
    ) -> Result<Paged<BitbucketBranchRestriction>, ApiError> {
        let (workspace, slug) = split(full_name);
        self.get_all(format!(
            "{}/repositories/{workspace}/{slug}/branch-restrictions?pagelen=100",
            self.base
        ))
    }

    /// The open pull request from `source` to `destination`, if any.
    pub fn open_pull_request(
        &self,
        full_name: &str,
        source: &str,
        destination: &str,
    ) -> Result<Option<BitbucketPullRequest>, ApiError> {
        let (workspace, slug) = split(full_name);
        let q = format!(
            "source.branch.name=\"{source}\" AND destination.branch.name=\"{destination}\" AND state=\"OPEN\""
        );
        let url = format!(
            "{}/repositories/{workspace}/{slug}/pullrequests?q={}",
            self.base,
            encode(&q)
        );
        let page: BitbucketPage<BitbucketPullRequest> = self.get_json(&url)?;
        Ok(page.values.into_iter().next())
    }

    /// POST /repositories/{workspace}/{repo_slug}/pullrequests.
    pub fn create_pull_request(
        &self,
        full_name: &str,
        body: &serde_json::Value,
    ) -> Result<BitbucketPullRequest, ApiError> {
        let (workspace, slug) = split(full_name);
        let url = format!("{}/repositories/{workspace}/{slug}/pullrequests", self.base);
        let text = self.send(self.json(self.http.post(&url), body))?;
        parse(&text)
    }

    /// POST /repositories/{workspace}/{repo_slug}/pullrequests/{id}/merge.
    /// `message` is the artifact commit's: a strategy that makes a commit
    /// of its own (merge_commit, squash, rebase_*) keeps `[skip ci]` and the
    /// trailer LOOP_GUARD reads.
    pub fn merge_pull_request(
        &self,
        full_name: &str,
        id: u64,
        strategy: &str,
        message: &str,
    ) -> Result<MergeAnswer, ApiError> {
        let (workspace, slug) = split(full_name);
        let url = format!(
            "{}/repositories/{workspace}/{slug}/pullrequests/{id}/merge",
            self.base
        );
        let body = serde_json::json!({
            "type": "pullrequest_merge_parameters",
            "merge_strategy": strategy,
            "close_source_branch": true,
            "message": message,
        });
        let (status, location, text) = self.send_full(self.json(self.http.post(&url), &body))?;
        if status == 202 {
            // The Location may be relative: resolved against the request.
            let task = location
                .and_then(|l| reqwest::Url::parse(&url).ok()?.join(&l).ok())
                .map(|l| self.through_proxy(l.to_string()))
                .filter(|l| crate::origin::same_origin(l, &self.base))
                .ok_or_else(|| ApiError {
                    status: None,
                    message: "the merge was accepted to run later, but its task status is not at an address on API_URL's origin (the credential goes only there)".into(),
                })?;
            return Ok(MergeAnswer::Pending(task));
        }
        parse(&text).map(MergeAnswer::Merged)
    }

    /// GET /repositories/{workspace}/{repo_slug}/pullrequests/{id}.
    pub fn pull_request(&self, full_name: &str, id: u64) -> Result<BitbucketPullRequest, ApiError> {
        let (workspace, slug) = split(full_name);
        self.get_json(&format!(
            "{}/repositories/{workspace}/{slug}/pullrequests/{id}",
            self.base
        ))
    }

    /// GET of a merge's task status: the merged pull request, or None while
    /// it is pending.
    pub fn merge_task(&self, url: &str) -> Result<Option<BitbucketPullRequest>, ApiError> {
        let task: BitbucketMergeTask = self.get_json(url)?;
        match (task.task_status.as_deref(), task.merge_result) {
            (Some("SUCCESS"), Some(pr)) => Ok(Some(pr)),
            (Some("SUCCESS"), None) => Err(ApiError {
                status: None,
                message: "the merge task succeeded without naming the merged pull request".into(),
            }),
            _ => Ok(None),
        }
    }

    /// PUT /repositories/{workspace}/{repo_slug}/commit/{commit}/reports/{reportId}.
    pub fn put_report(
        &self,
        full_name: &str,
        commit: &str,
        report_id: &str,
        body: &serde_json::Value,
    ) -> Result<(), ApiError> {
        let (workspace, slug) = split(full_name);
        let url = format!(
            "{}/repositories/{workspace}/{slug}/commit/{commit}/reports/{report_id}",
            self.base
        );
        self.send(self.json(self.http.put(&url), body)).map(|_| ())
    }

    /// Through the auth proxy the API is asked over plain http (the proxy
    /// authenticates it), while Bitbucket's `next` links say https: the
    /// same API, asked the way this client asks it.
    fn through_proxy(&self, next: String) -> String {
        if self.proxied
            && let Some(rest) = next.strip_prefix("https://")
            && crate::origin::same_origin(&format!("http://{rest}"), &self.base)
        {
            return format!("http://{rest}");
        }
        next
    }

    /// A JSON body, every string in it redacted before it is serialised
    /// (after, a secret holding `"` or a backslash would be escaped past
    /// the redactor).
    fn json(
        &self,
        req: reqwest::blocking::RequestBuilder,
        body: &serde_json::Value,
    ) -> reqwest::blocking::RequestBuilder {
        req.header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(redact_strings(&self.redactor, body).to_string())
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, ApiError> {
        let text = self.send(self.http.get(url))?;
        parse(&text)
    }

    /// Follows `next` links, but only within API_URL's origin: the
    /// credential goes with every request, so a `next` elsewhere (another
    /// host, scheme or port) ends the list, and the caller says so.
    fn get_all<T: serde::de::DeserializeOwned>(&self, first: String) -> Result<Paged<T>, ApiError> {
        let mut paged = Paged {
            values: Vec::new(),
            stopped_at: None,
        };
        let mut next = Some(first);
        for _ in 0..MAX_PAGES {
            let Some(url) = next.take() else { break };
            let page: BitbucketPage<T> = self.get_json(&url)?;
            paged.values.extend(page.values);
            match page.next.map(|n| self.through_proxy(n)) {
                Some(n) if !crate::origin::same_origin(&n, &self.base) => {
                    paged.stopped_at = Some(
                        crate::origin::origin(&n).unwrap_or_else(|| "an unreadable URL".into()),
                    );
                }
                n => next = n,
            }
        }
        Ok(paged)
    }

    /// The choke point: auth header (marked sensitive), status and error text kept.
    fn send(&self, req: reqwest::blocking::RequestBuilder) -> Result<String, ApiError> {
        self.send_full(req).map(|(_, _, text)| text)
    }

    /// [`Client::send`], with the status and the Location header of a success.
    fn send_full(
        &self,
        req: reqwest::blocking::RequestBuilder,
    ) -> Result<(u16, Option<String>, String), ApiError> {
        let started = std::time::Instant::now();
        let result = self.send_timed(req);
        API_TIME_MS.fetch_add(
            started.elapsed().as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        result
    }

    fn send_timed(
        &self,
        mut req: reqwest::blocking::RequestBuilder,
    ) -> Result<(u16, Option<String>, String), ApiError> {
        req = req.header("Accept", "application/json");
        if let Some(auth) = &self.authorization {
            let mut value =
                reqwest::header::HeaderValue::from_str(auth.expose()).map_err(|_| ApiError {
                    status: None,
                    message: "the credential is not a valid header value".into(),
                })?;
            value.set_sensitive(true);
            req = req.header(reqwest::header::AUTHORIZATION, value);
        }
        let resp = req.send().map_err(|e| ApiError {
            status: None,
            message: crate::text::error_chain(&e.without_url()),
        })?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().unwrap_or_default();
        if status.is_success() {
            return Ok((status.as_u16(), location, text));
        }
        let message = match serde_json::from_str::<BitbucketError>(&text) {
            Ok(e) => match e.error.detail {
                Some(d) => format!("{} ({d})", e.error.message),
                None => e.error.message,
            },
            Err(_) => text
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(300)
                .collect(),
        };
        Err(ApiError {
            status: Some(status.as_u16()),
            message: crate::text::untrusted(&message),
        })
    }
}

/// Milliseconds spent in REST API calls, for the report's timings.
static API_TIME_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn api_time_ms() -> u64 {
    API_TIME_MS.load(std::sync::atomic::Ordering::Relaxed)
}

fn redact_strings(redactor: &Redactor, value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(redactor.redact(s)),
        Value::Array(items) => items.iter().map(|v| redact_strings(redactor, v)).collect(),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (redactor.redact(k), redact_strings(redactor, v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError {
        status: None,
        message: format!("unexpected answer from the API: {e}"),
    })
}

fn split(full_name: &str) -> (&str, &str) {
    full_name.split_once('/').unwrap_or((full_name, ""))
}

/// Percent-encodes a query value (BBQL contains spaces, quotes and `=`).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Bitbucket's glob for restriction patterns: `*` matches any run of
/// characters, `/` included (spec: "'*' … will expand to match zero or more
/// characters").
pub fn pattern_matches(pattern: &str, branch: &str) -> bool {
    use crate::text::{Case, Wildcards, glob_matches};
    glob_matches(pattern, branch, Wildcards::Star, Case::Sensitive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        for (p, b, m) in [
            ("main", "main", true),
            ("main", "mainline", false),
            ("release/*", "release/1.2", true),
            ("release/*", "release/a/b", true),
            ("*", "anything/at/all", true),
            ("feature-*-x", "feature-1-x", true),
            ("feature-*-x", "feature-1-y", false),
        ] {
            assert_eq!(pattern_matches(p, b), m, "{p} {b}");
        }
    }

    #[test]
    fn query_encoding() {
        assert_eq!(encode("a=\"b c\""), "a%3D%22b%20c%22");
    }
}
