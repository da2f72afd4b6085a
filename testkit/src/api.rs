//! A stateful stand-in for the Bitbucket REST API 2.0 on 127.0.0.1: the
//! endpoints commit-back calls, answering in the shapes of the published spec
//! (every answer and every JSON body it receives is recorded so tests can
//! check both against the spec with [`ApiServer::check_against_spec`]). Like
//! the git server it also acts as the Pipelines auth proxy: absolute-form
//! requests (`PUT http://api.bitbucket.org/2.0/…`) without credentials are
//! authenticated as the pipeline. Stops when dropped.

use crate::http::{read_request, respond};
use crate::openapi::Spec;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::BufReader;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Who a credential is to the API.
#[derive(Clone)]
pub struct ApiAccount {
    pub json: Value,
    /// May read branch restrictions (repository admin).
    pub admin: bool,
    /// Repository permission (`read`, `write`, `admin`); None for access tokens.
    pub permission: Option<String>,
}

/// One request the stand-in answered.
#[derive(Clone, Debug)]
pub struct ApiRecord {
    pub method: String,
    /// Below `/2.0`.
    pub path: String,
    pub query: String,
    pub proxied_host: Option<String>,
    pub authorization: Option<String>,
    pub body: Option<Value>,
    pub status: u16,
    pub response: Value,
}

#[derive(Default)]
struct State {
    /// Authorization header value -> account.
    accounts: HashMap<String, ApiAccount>,
    /// Key into `accounts` for proxied requests without credentials.
    proxy_account: Option<String>,
    restrictions: Vec<Value>,
    /// `next` of the branch-restrictions page (pagination tests).
    restrictions_next: Option<String>,
    pull_requests: Vec<Value>,
    /// Refuse pull-request creation with this status and message.
    refuse_pull_requests: Option<(u16, String)>,
    /// Answer report uploads with this status.
    fail_reports: Option<u16>,
    /// `workspace/slug` -> the bare repository a merge applies to.
    repositories: HashMap<String, PathBuf>,
    /// Approvals and successful builds every pull request has (merge checks).
    approvals: i64,
    builds: i64,
    /// Merge strategies the repository allows (None: all).
    strategies: Option<Vec<String>>,
    /// Answer merges with 202 and a task to poll.
    async_merges: bool,
    /// Task id -> (polls still answered PENDING, the merged pull request).
    tasks: HashMap<String, (u32, Value)>,
    /// Commits someone pushes to the destination just before the next merges.
    destination_moves: u32,
    /// Refuse an impossible fast-forward with words that say nothing of it.
    neutral_refusals: bool,
    /// Answer the next merges 555 (timed out); `true`: after merging anyway.
    time_outs: (u32, bool),
    /// A Location header for the answer being built.
    location: Option<String>,
    log: Vec<ApiRecord>,
}

pub struct ApiServer {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Default for ApiServer {
    fn default() -> Self {
        Self::start()
    }
}

impl ApiServer {
    pub fn start() -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (state2, stop2) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let state = state2.clone();
                std::thread::spawn(move || {
                    let _ = handle(conn, &state);
                });
            }
        });
        ApiServer {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// API_URL for commit-back: `http://127.0.0.1:PORT/2.0`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/2.0", self.addr.port())
    }

    /// PIPELINES_AUTH_PROXY: this server, acting as the proxy.
    pub fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// A user (`type: user`) reached with `authorization` (the full header value).
    pub fn user(
        &self,
        authorization: &str,
        display_name: &str,
        uuid: &str,
        admin: bool,
        permission: &str,
    ) -> &Self {
        let json = json!({
            "type": "user", "display_name": display_name, "uuid": uuid, "account_id": format!("5f{}", uuid.trim_matches(['{', '}'])),
            "nickname": display_name.to_lowercase().replace(' ', "-"), "has_2fa_enabled": true, "account_status": "active",
            "links": {"html": {"href": format!("https://bitbucket.org/{}/", uuid)}}
        });
        self.state.lock().unwrap().accounts.insert(
            authorization.to_owned(),
            ApiAccount {
                json,
                admin,
                permission: Some(permission.into()),
            },
        );
        self
    }

    /// An access token (`type: app_user`), never an admin of permissions APIs.
    pub fn access_token(&self, token: &str, name: &str, admin: bool) -> &Self {
        let json = json!({"type": "app_user", "display_name": name, "uuid": "{a0a0a0a0-0000-4000-8000-000000000001}", "account_id": "app-1", "account_status": "active", "kind": "repository_access_token"});
        self.state.lock().unwrap().accounts.insert(
            format!("Bearer {token}"),
            ApiAccount {
                json,
                admin,
                permission: None,
            },
        );
        self
    }

    /// Proxied requests without credentials act as the account behind `authorization`.
    pub fn proxy_as(&self, authorization: &str) -> &Self {
        self.state.lock().unwrap().proxy_account = Some(authorization.to_owned());
        self
    }

    /// A push restriction (kind `push`) on `pattern`, allowing these users (uuid, name).
    pub fn restrict(
        &self,
        id: i64,
        pattern: &str,
        users: &[(&str, &str)],
        groups: &[&str],
    ) -> &Self {
        let users: Vec<Value> = users
            .iter()
            .map(|(uuid, name)| json!({"type": "user", "uuid": uuid, "display_name": name}))
            .collect();
        let groups: Vec<Value> = groups
            .iter()
            .map(|g| json!({"type": "group", "name": g, "slug": g.to_lowercase()}))
            .collect();
        self.state.lock().unwrap().restrictions.push(json!({
            "type": "branchrestriction", "id": id, "kind": "push", "branch_match_kind": "glob", "pattern": pattern,
            "users": users, "groups": groups,
            "links": {"self": {"href": format!("https://api.bitbucket.org/2.0/repositories/ws/repo/branch-restrictions/{id}")}}
        }));
        self
    }

    /// The branch-restrictions page names this `next` page.
    pub fn restrictions_next(&self, url: &str) -> &Self {
        self.state.lock().unwrap().restrictions_next = Some(url.to_owned());
        self
    }

    /// Any branch restriction (`restrict_merges`, `require_approvals_to_merge`,
    /// `require_passing_builds_to_merge`, …) on `pattern`, with its users
    /// (uuid, name) and `value`.
    pub fn rule(
        &self,
        id: i64,
        kind: &str,
        pattern: &str,
        users: &[(&str, &str)],
        value: Option<i64>,
    ) -> &Self {
        let users: Vec<Value> = users
            .iter()
            .map(|(uuid, name)| json!({"type": "user", "uuid": uuid, "display_name": name}))
            .collect();
        let mut rule = json!({
            "type": "branchrestriction", "id": id, "kind": kind, "branch_match_kind": "glob", "pattern": pattern,
            "users": users, "groups": [],
            "links": {"self": {"href": format!("https://api.bitbucket.org/2.0/repositories/ws/repo/branch-restrictions/{id}")}}
        });
        if let Some(v) = value {
            rule["value"] = json!(v);
        }
        self.state.lock().unwrap().restrictions.push(rule);
        self
    }

    /// Merges of `full_name`'s pull requests apply to this bare repository.
    pub fn repository(&self, full_name: &str, bare: &Path) -> &Self {
        self.state
            .lock()
            .unwrap()
            .repositories
            .insert(full_name.to_owned(), bare.to_owned());
        self
    }

    /// Every pull request has this many approvals and successful builds.
    pub fn checks_met(&self, approvals: i64, builds: i64) -> &Self {
        let mut st = self.state.lock().unwrap();
        st.approvals = approvals;
        st.builds = builds;
        self
    }

    /// Only these merge strategies are allowed.
    pub fn allow_strategies(&self, strategies: &[&str]) -> &Self {
        self.state.lock().unwrap().strategies =
            Some(strategies.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Merges answer 202 with a task that is PENDING for `polls` polls.
    pub fn async_merges(&self) -> &Self {
        self.state.lock().unwrap().async_merges = true;
        self
    }

    /// Refusals of an impossible fast-forward say only "Bad request".
    pub fn neutral_merge_refusals(&self) -> &Self {
        self.state.lock().unwrap().neutral_refusals = true;
        self
    }

    /// The next `times` merges answer 555 (timed out), having merged
    /// (`merged_anyway`) or not.
    pub fn time_out_merges(&self, times: u32, merged_anyway: bool) -> &Self {
        self.state.lock().unwrap().time_outs = (times, merged_anyway);
        self
    }

    /// Before each of the next `times` merges, someone pushes to the destination.
    pub fn move_destination_before_merges(&self, times: u32) -> &Self {
        self.state.lock().unwrap().destination_moves = times;
        self
    }

    pub fn refuse_pull_requests(&self, status: u16, message: &str) -> &Self {
        self.state.lock().unwrap().refuse_pull_requests = Some((status, message.into()));
        self
    }

    pub fn fail_reports(&self, status: u16) -> &Self {
        self.state.lock().unwrap().fail_reports = Some(status);
        self
    }

    pub fn requests(&self) -> Vec<ApiRecord> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn pull_requests(&self) -> Vec<Value> {
        self.state.lock().unwrap().pull_requests.clone()
    }

    /// Every JSON body received and every answer given, checked against the spec.
    pub fn check_against_spec(&self) {
        let spec = Spec::get();
        for r in self.requests() {
            if let Some(body) = &r.body {
                spec.check_request(&r.method, &r.path, body)
                    .unwrap_or_else(|e| {
                        panic!(
                            "request {} {} does not follow the spec: {e:?}\n{body}",
                            r.method, r.path
                        )
                    });
            }
            spec.check_response(&r.method, &r.path, r.status, &r.response)
                .unwrap_or_else(|e| {
                    panic!(
                        "stand-in answer to {} {} ({}) does not follow the spec: {e:?}",
                        r.method, r.path, r.status
                    )
                });
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn error(status: u16, message: &str) -> (u16, Value) {
    (
        status,
        json!({"type": "error", "error": {"message": message}}),
    )
}

fn page(values: Vec<Value>) -> Value {
    json!({"size": values.len(), "page": 1, "pagelen": 100, "values": values})
}

/// `q=source.branch.name="x" AND …`: the quoted value after `key=`.
fn bbql_value(query: &str, key: &str) -> Option<String> {
    let decoded = percent_decode(query);
    let start = decoded.find(&format!("{key}=\""))? + key.len() + 2;
    let end = decoded[start..].find('"')? + start;
    Some(decoded[start..end].to_owned())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| {
                std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .flatten();
        match (hex, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn route(
    st: &mut State,
    method: &str,
    path: &str,
    query: &str,
    account: Option<ApiAccount>,
    body: Option<&Value>,
) -> (u16, Value) {
    let Some(account) = account else {
        return error(
            401,
            "Token is invalid, expired, or not supported for this endpoint.",
        );
    };
    let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, seg.as_slice()) {
        ("GET", ["user"]) => (200, account.json.clone()),
        ("GET", ["user", "workspaces", _ws, "permissions", "repositories"]) => {
            match &account.permission {
                None => error(403, "Access tokens cannot query permissions."),
                Some(p) => {
                    let full = bbql_value(query, "repository.full_name").unwrap_or_default();
                    let (_, slug) = full.split_once('/').unwrap_or(("", &full));
                    (
                        200,
                        page(vec![
                            json!({"type": "repository_permission", "permission": p, "user": account.json, "repository": {"type": "repository", "full_name": full, "name": slug}}),
                        ]),
                    )
                }
            }
        }
        ("GET", ["repositories", _ws, _repo, "branch-restrictions"]) => {
            if account.admin {
                let mut answer = page(st.restrictions.clone());
                if let Some(next) = &st.restrictions_next {
                    answer["next"] = json!(next);
                }
                (200, answer)
            } else {
                error(403, "You do not have admin access to this repository.")
            }
        }
        ("GET", ["repositories", _ws, _repo, "pullrequests"]) => {
            let source = bbql_value(query, "source.branch.name");
            let open: Vec<Value> = st
                .pull_requests
                .iter()
                .filter(|p| {
                    p["state"] == "OPEN"
                        && source
                            .as_deref()
                            .is_none_or(|s| p["source"]["branch"]["name"] == s)
                })
                .cloned()
                .collect();
            (200, page(open))
        }
        ("POST", [_, ws, repo, "pullrequests"]) => {
            if let Some((status, message)) = &st.refuse_pull_requests {
                return error(*status, message);
            }
            let Some(b) = body else {
                return error(400, "no body");
            };
            let id = st.pull_requests.len() as u64 + 1;
            let pr = json!({
                "type": "pullrequest", "id": id, "title": b["title"], "description": b["description"], "state": "OPEN",
                "author": account.json, "close_source_branch": b["close_source_branch"],
                "source": {"branch": {"name": b["source"]["branch"]["name"]}},
                "destination": {"branch": {"name": b["destination"]["branch"]["name"]}},
                "links": {"html": {"href": format!("https://bitbucket.org/{ws}/{repo}/pull-requests/{id}")}}
            });
            st.pull_requests.push(pr.clone());
            (201, pr)
        }
        ("POST", ["repositories", ws, repo, "pullrequests", id, "merge"]) => {
            merge(st, &format!("{ws}/{repo}"), id, &account, body)
        }
        ("GET", ["repositories", _ws, _repo, "pullrequests", id]) => {
            match id
                .parse::<usize>()
                .ok()
                .and_then(|i| st.pull_requests.get(i.wrapping_sub(1)))
            {
                Some(pr) => (200, pr.clone()),
                None => error(404, "Resource not found"),
            }
        }
        (
            "GET",
            [
                "repositories",
                _ws,
                _repo,
                "pullrequests",
                _id,
                "merge",
                "task-status",
                task,
            ],
        ) => match st.tasks.get_mut(*task) {
            None => error(400, "No such merge task"),
            Some((pending, _)) if *pending > 0 => {
                *pending -= 1;
                (200, json!({"task_status": "PENDING"}))
            }
            Some((_, pr)) => (200, json!({"task_status": "SUCCESS", "merge_result": pr})),
        },
        ("PUT", ["repositories", _ws, _repo, "commit", commit, "reports", id]) => {
            if let Some(status) = st.fail_reports {
                return error(status, "Something went wrong");
            }
            let mut report = body.cloned().unwrap_or(json!({}));
            report["uuid"] = json!(format!("{{{id}-{commit}}}"));
            (200, report)
        }
        _ => error(404, "Resource not found"),
    }
}

/// A restriction's glob, as Bitbucket reads it: `*` matches any run.
fn glob(pattern: &str, branch: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == branch,
        Some((head, rest)) => branch
            .strip_prefix(head)
            .is_some_and(|b| (0..=b.len()).any(|i| b.is_char_boundary(i) && glob(rest, &b[i..]))),
    }
}

/// git in `bare`; Err with its stderr.
fn git_in(bare: &Path, args: &[&str]) -> Result<String, String> {
    let out = crate::git_command(bare)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Bitbucket")
        .env("GIT_AUTHOR_EMAIL", "noreply@bitbucket.org")
        .env("GIT_COMMITTER_NAME", "Bitbucket")
        .env("GIT_COMMITTER_EMAIL", "noreply@bitbucket.org")
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// POST …/pullrequests/{id}/merge, applied to the real repository. The
/// refusal texts are this stand-in's own (Bitbucket's are not confirmed);
/// the statuses follow the spec where it names them (409, 555).
fn merge(
    st: &mut State,
    full_name: &str,
    id: &str,
    account: &ApiAccount,
    body: Option<&Value>,
) -> (u16, Value) {
    let Some(index) = id.parse::<usize>().ok().and_then(|i| i.checked_sub(1)) else {
        return error(404, "Resource not found");
    };
    let Some(pr) = st.pull_requests.get(index).cloned() else {
        return error(404, "Resource not found");
    };
    if pr["state"] != "OPEN" {
        return error(400, "The pull request is not open");
    }
    let Some(bare) = st.repositories.get(full_name).cloned() else {
        return error(500, "the stand-in knows no repository for this merge");
    };
    let source = pr["source"]["branch"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let destination = pr["destination"]["branch"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let uuid = account.json["uuid"].as_str().unwrap_or_default().to_owned();
    for rule in st
        .restrictions
        .iter()
        .filter(|r| glob(r["pattern"].as_str().unwrap_or(""), &destination))
    {
        let wanted = rule["value"].as_i64().unwrap_or(1);
        match rule["kind"].as_str().unwrap_or("") {
            "restrict_merges" => {
                let listed = rule["users"]
                    .as_array()
                    .is_some_and(|u| u.iter().any(|u| u["uuid"] == uuid.as_str()));
                if !listed {
                    return error(
                        403,
                        &format!("You are not allowed to merge into {destination}."),
                    );
                }
            }
            "require_approvals_to_merge" if st.approvals < wanted => {
                return error(
                    400,
                    &format!("Merge checks failed: this pull request needs {wanted} approval(s)."),
                );
            }
            "require_passing_builds_to_merge" if st.builds < wanted => {
                return error(
                    400,
                    &format!(
                        "Merge checks failed: this pull request needs {wanted} successful build(s)."
                    ),
                );
            }
            _ => {}
        }
    }
    let strategy = body
        .and_then(|b| b["merge_strategy"].as_str())
        .unwrap_or("merge_commit")
        .to_owned();
    let (time_outs, merged_anyway) = st.time_outs;
    if time_outs > 0 && !merged_anyway {
        st.time_outs.0 -= 1;
        return error(555, "The merge timed out.");
    }
    if st
        .strategies
        .as_ref()
        .is_some_and(|s| !s.contains(&strategy))
    {
        return error(
            400,
            &format!("The merge strategy {strategy} is not allowed for this branch."),
        );
    }
    let dest_ref = format!("refs/heads/{destination}");
    if st.destination_moves > 0 {
        st.destination_moves -= 1;
        let moved = (|| {
            let tip = git_in(&bare, &["rev-parse", &dest_ref])?;
            let commit = git_in(
                &bare,
                &[
                    "commit-tree",
                    &format!("{tip}^{{tree}}"),
                    "-p",
                    &tip,
                    "-m",
                    "Someone else's change",
                ],
            )?;
            git_in(&bare, &["update-ref", &dest_ref, &commit, &tip])
        })();
        if let Err(e) = moved {
            return error(500, &e);
        }
    }
    let neutral = st.neutral_refusals;
    let applied = (|| -> Result<String, (u16, String)> {
        let fail = |e: String| (500, e);
        let src = git_in(&bare, &["rev-parse", &format!("refs/heads/{source}")]).map_err(fail)?;
        let dest = git_in(&bare, &["rev-parse", &dest_ref]).map_err(fail)?;
        let title = pr["title"].as_str().unwrap_or("merge").to_owned();
        let merged = match strategy.as_str() {
            "fast_forward" => {
                if git_in(&bare, &["merge-base", "--is-ancestor", &dest, &src]).is_err() {
                    return Err((
                        400,
                        match neutral {
                            true => "Bad request".to_owned(),
                            false => format!(
                                "Fast-forward merge is not possible: {destination} has moved since the pull request's branch was made."
                            ),
                        },
                    ));
                }
                src.clone()
            }
            _ => {
                let tree = git_in(&bare, &["merge-tree", "--write-tree", &dest, &src])
                    .map_err(|e| (409, format!("Unable to merge: {e}")))?;
                let tree = tree.lines().next().unwrap_or_default().to_owned();
                let message = body
                    .and_then(|b| b["message"].as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        format!("Merged in {source} (pull request #{id})\n\n{title}")
                    });
                let mut args = vec!["commit-tree", tree.as_str(), "-p", dest.as_str()];
                if strategy != "squash" {
                    args.extend(["-p", src.as_str()]);
                }
                args.extend(["-m", message.as_str()]);
                git_in(&bare, &args).map_err(fail)?
            }
        };
        git_in(&bare, &["update-ref", &dest_ref, &merged, &dest]).map_err(|e| (409, e))?;
        if body
            .and_then(|b| b["close_source_branch"].as_bool())
            .unwrap_or(false)
        {
            git_in(
                &bare,
                &["update-ref", "-d", &format!("refs/heads/{source}")],
            )
            .map_err(fail)?;
        }
        Ok(merged)
    })();
    let merged = match applied {
        Ok(m) => m,
        Err((status, message)) => return error(status, &message),
    };
    let pr = {
        let pr = &mut st.pull_requests[index];
        pr["state"] = json!("MERGED");
        pr["merge_commit"] = json!({"hash": merged});
        pr["closed_by"] = account.json.clone();
        pr.clone()
    };
    if st.time_outs.0 > 0 {
        // Merged, but the answer says it timed out.
        st.time_outs.0 -= 1;
        return error(555, "The merge timed out.");
    }
    if st.async_merges {
        let task = format!("task-{id}");
        st.tasks.insert(task.clone(), (1, pr));
        st.location = Some(format!(
            "/2.0/repositories/{full_name}/pullrequests/{id}/merge/task-status/{task}"
        ));
        return (202, json!({}));
    }
    (200, pr)
}

fn handle(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = conn.try_clone()?;
    let req = read_request(&mut BufReader::new(conn))?;
    let path = req
        .path
        .strip_prefix("/2.0")
        .unwrap_or(&req.path)
        .to_owned();
    let authorization = req.headers.get("authorization").cloned();
    let body: Option<Value> = if req.body.is_empty() {
        None
    } else {
        serde_json::from_slice(&req.body).ok()
    };
    let (status, response, location) = {
        let mut st = state.lock().unwrap();
        let key = authorization.clone().or_else(|| {
            if req.proxied {
                st.proxy_account.clone()
            } else {
                None
            }
        });
        let account = key.and_then(|k| st.accounts.get(&k).cloned());
        let (status, response) = route(
            &mut st,
            &req.method,
            &path,
            &req.query,
            account,
            body.as_ref(),
        );
        let location = st.location.take().map(|path| match &req.proxied_host {
            // Through the auth proxy the API is Bitbucket's, on https.
            Some(host) => format!("https://{host}{path}"),
            None => format!(
                "http://{}{path}",
                req.headers.get("host").cloned().unwrap_or_default()
            ),
        });
        st.log.push(ApiRecord {
            method: req.method.clone(),
            path: path.clone(),
            query: req.query.clone(),
            proxied_host: req.proxied_host.clone(),
            authorization,
            body,
            status,
            response: response.clone(),
        });
        (status, response, location)
    };
    let text = serde_json::to_vec(&response).unwrap();
    let mut headers = vec![("Content-Type".into(), "application/json".into())];
    if let Some(l) = location {
        headers.push(("Location".into(), l));
    }
    respond(&mut out, status, &headers, &text)?;
    let _ = out.shutdown(Shutdown::Both);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbql_values_are_found_in_encoded_queries() {
        let q = "q=source.branch.name%3D%22commit-back%2Fmain-1%22%20AND%20state%3D%22OPEN%22";
        assert_eq!(
            bbql_value(q, "source.branch.name").as_deref(),
            Some("commit-back/main-1")
        );
        assert_eq!(bbql_value(q, "state").as_deref(), Some("OPEN"));
    }
}
