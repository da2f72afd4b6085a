//! Refusals explained with the REST API: identity, permission and branch
//! restrictions; the dry run's prediction; the pull-request fallback; Code
//! Insights. The API is a local stand-in whose answers, and every body
//! commit-back sends it, are checked against Bitbucket's published spec.

use crate::{Fixture, TOKEN};
use base64::Engine as _;
use testkit::api::ApiServer;
use testkit::git;

const BOT_EMAIL: &str = "ci-bot@example.com";
const BOT_TOKEN: &str = "ATATT3x-bot-api-token-0815";
pub(crate) const RELEASE_UUID: &str = "{0f0f0f0f-0000-4000-8000-00000000r31e}";
const BOT_UUID: &str = "{0b0b0b0b-0000-4000-8000-0000000000b0}";

fn bot_basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{BOT_EMAIL}:{BOT_TOKEN}"))
    )
}

/// main is restricted to "Release Bot"; the CI bot (API token) may write but
/// is not allowed; the access token can do neither.
pub(crate) fn restricted() -> (Fixture, ApiServer) {
    let f = Fixture::new(Some(50));
    f.world.restrict_branch(&f.bare, "main", &["release-bot"]);
    f.server
        .account("x-bitbucket-api-token-auth", BOT_TOKEN, "ci-bot");
    let api = ApiServer::start();
    api.user(&bot_basic(), "CI Bot", BOT_UUID, false, "write");
    api.access_token(TOKEN, "pipeline-token", true);
    api.restrict(7, "main", &[(RELEASE_UUID, "Release Bot")], &[]);
    (f, api)
}

fn as_bot(api_url: &str) -> Vec<(&str, &str)> {
    vec![
        ("BITBUCKET_ACCESS_TOKEN", ""),
        ("ATLASSIAN_ACCOUNT_EMAIL", BOT_EMAIL),
        ("ATLASSIAN_API_TOKEN", BOT_TOKEN),
        ("API_URL", api_url),
    ]
}

#[test]
fn access_token_refusal_names_the_rule_and_the_app_user() {
    let (f, api) = restricted();
    f.write("dist/ids.json", "[1]\n");
    let url = api.base_url();
    let run = f.run(&[("API_URL", &url)]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let b = &run.report["blockage"];
    assert_eq!(b["kind"], "branch_restriction");
    assert_eq!(b["context"]["identity"]["kind"], "app_user");
    assert_eq!(b["context"]["rules"][0]["pattern"], "main");
    assert_eq!(
        b["context"]["rules"][0]["users"],
        serde_json::json!(["Release Bot"])
    );
    let explanation = b["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("access token 'pipeline-token'")
            && explanation.contains("Matching rule #7"),
        "{explanation}"
    );
    assert!(
        b["remedies"][0]["steps"][0]
            .as_str()
            .unwrap()
            .contains("ON_RESTRICTED=pull-request")
    );
    // Access tokens are Bearer on the API; nothing asked of the permissions API.
    let reqs = api.requests();
    assert!(
        reqs.iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {TOKEN}") as &str))
    );
    assert!(!reqs.iter().any(|r| r.path.contains("/permissions/")));
    api.check_against_spec();
    run.assert_secret_absent(TOKEN, &f.clone);
}

#[test]
fn user_credential_without_admin_is_told_why_rules_are_unreadable() {
    let (f, api) = restricted();
    f.write("dist/ids.json", "[2]\n");
    let url = api.base_url();
    let run = f.run(&as_bot(&url));
    assert_eq!(run.code, 4, "{}", run.stderr);
    let b = &run.report["blockage"];
    assert_eq!(b["context"]["identity"]["display_name"], "CI Bot");
    assert_eq!(b["context"]["permission"], "write");
    assert!(b["context"]["rules"].is_null());
    let remedy = b["remedies"][0]["steps"].to_string();
    assert!(
        remedy.contains("could not be read") && remedy.contains("admin"),
        "{remedy}"
    );
    assert!(remedy.contains("'CI Bot'"), "{remedy}");
    api.check_against_spec();
    run.assert_secret_absent(BOT_TOKEN, &f.clone);
}

#[test]
fn admin_credential_sees_who_may_push() {
    let (f, api) = restricted();
    api.user(&bot_basic(), "CI Bot", BOT_UUID, true, "admin");
    f.write("dist/ids.json", "[3]\n");
    let url = api.base_url();
    let run = f.run(&as_bot(&url));
    assert_eq!(run.code, 4);
    let steps = run.report["blockage"]["remedies"][0]["steps"].to_string();
    assert!(
        steps.contains("Rule #7 (push on 'main'): only users Release Bot may push"),
        "{steps}"
    );
    api.check_against_spec();
}

#[test]
fn api_unreachable_never_masks_the_refusal() {
    let (f, _api) = restricted();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    f.write("dist/ids.json", "[4]\n");
    let url = format!("http://127.0.0.1:{port}/2.0");
    let started = std::time::Instant::now();
    let run = f.run(&[("API_URL", &url)]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(run.blockage_kind(), "branch_restriction");
    assert!(
        run.report["blockage"]["context"]["notes"]
            .to_string()
            .contains("could not be read")
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn dry_run_predicts_the_branch_restriction() {
    let (f, api) = restricted();
    f.write("dist/ids.json", "[5]\n");
    let before = (git(&f.clone, &["rev-parse", "HEAD"]), f.upstream_tip());
    let url = api.base_url();
    let run = f.run(&[("API_URL", &url), ("DRY_RUN", "true")]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(run.report["dry_run"], true);
    assert_eq!(run.status(), "blocked");
    assert_eq!(run.blockage_kind(), "branch_restriction");
    assert!(
        run.report["summary"]
            .as_str()
            .unwrap()
            .starts_with("Dry run: the push would be refused")
    );
    assert_eq!(
        (git(&f.clone, &["rev-parse", "HEAD"]), f.upstream_tip()),
        before,
        "nothing changed"
    );
    assert!(f.server.requests().iter().all(|r| r.method == "GET"));
    api.check_against_spec();
}

#[test]
fn dry_run_for_an_allowed_bot_passes() {
    let (f, api) = restricted();
    api.user(&bot_basic(), "Release Bot", RELEASE_UUID, true, "admin");
    f.write("dist/ids.json", "[6]\n");
    let url = api.base_url();
    let mut env = as_bot(&url);
    env.push(("DRY_RUN", "true"));
    let run = f.run(&env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "dry_run");
    assert!(
        run.report["summary"]
            .as_str()
            .unwrap()
            .contains("no branch restriction stops it")
    );
}

#[test]
fn pull_request_fallback_opens_then_reuses() {
    let (f, api) = restricted();
    f.write("dist/ids.json", "[7]\n");
    let url = api.base_url();
    let env = [
        ("API_URL", url.as_str()),
        ("ON_RESTRICTED", "pull-request"),
        ("BITBUCKET_BUILD_NUMBER", "41"),
    ];
    let run = f.run(&env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "pull_request");
    let pr = &run.report["pull_request"];
    assert_eq!(pr["id"], 1);
    assert_eq!(pr["source_branch"], "commit-back/main-41");
    assert_eq!(pr["destination_branch"], "main");
    assert_eq!(pr["reused"], false);
    assert!(pr["url"].as_str().unwrap().ends_with("/pull-requests/1"));
    assert_eq!(
        run.report["blockage"]["kind"], "branch_restriction",
        "the reason stays in the report"
    );
    assert!(run.report["recovery"].is_null());
    // The commit is on the side branch; main is untouched.
    let sha = run.report["commit"]["sha"].as_str().unwrap();
    assert_eq!(git(&f.bare, &["rev-parse", "commit-back/main-41"]), sha);
    assert_ne!(f.upstream_tip(), sha);
    let posted = api
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap()
        .body
        .unwrap();
    assert_eq!(posted["title"], "Update build artifacts [skip ci]");
    assert_eq!(posted["destination"]["branch"]["name"], "main");
    assert_eq!(posted["close_source_branch"], true);
    assert!(
        posted["description"]
            .as_str()
            .unwrap()
            .contains("Permission denied to update branch main.")
    );

    // A rerun of the same build updates the branch and reuses the open pull request.
    f.write("dist/ids.json", "[8]\n");
    let again = f.run(&env);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.report["pull_request"]["reused"], true);
    assert_eq!(again.report["pull_request"]["id"], 1);
    assert_eq!(api.pull_requests().len(), 1);
    assert_eq!(
        git(&f.bare, &["rev-parse", "commit-back/main-41"]),
        again.report["commit"]["sha"].as_str().unwrap()
    );
    api.check_against_spec();
    again.assert_secret_absent(TOKEN, &f.clone);
}

#[test]
fn pull_request_fallback_failing_reports_both_refusals() {
    let (f, api) = restricted();
    api.refuse_pull_requests(
        403,
        "Your credentials lack one or more required privilege scopes.",
    );
    f.write("dist/ids.json", "[9]\n");
    let url = api.base_url();
    let run = f.run(&[("API_URL", &url), ("ON_RESTRICTED", "pull-request")]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(run.blockage_kind(), "branch_restriction");
    let pr_error = run.report["pull_request_error"].as_str().unwrap();
    assert!(
        pr_error.contains("HTTP 403") && pr_error.contains("privilege scopes"),
        "{pr_error}"
    );
    assert!(!run.report["recovery"].is_null(), "the commit is kept");
    api.check_against_spec();
}

#[test]
fn code_insights_report_goes_through_the_auth_proxy() {
    let f = Fixture::new(Some(50));
    let api = ApiServer::start();
    api.access_token("pipeline-proxy", "pipeline", false)
        .proxy_as("Bearer pipeline-proxy");
    let build_commit = git(&f.clone, &["rev-parse", "HEAD"]);
    f.write("dist/ids.json", "[10]\n");
    let proxy = api.proxy_url();
    let pipelines = [
        ("CI", "true"),
        ("BITBUCKET_PIPELINE_UUID", "{p1}"),
        ("BITBUCKET_COMMIT", &build_commit[..12]),
        ("PIPELINES_AUTH_PROXY", proxy.as_str()),
        ("DEBUG", "true"),
    ];
    let run = f.run(&pipelines);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let reqs = api.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?} {}", run.stderr);
    let put = &reqs[0];
    assert_eq!(put.method, "PUT");
    assert_eq!(
        put.path,
        format!("/repositories/ws/repo/commit/{build_commit}/reports/commit-back"),
        "full sha, from the short one"
    );
    assert_eq!(
        put.proxied_host.as_deref(),
        Some("api.bitbucket.org"),
        "plain http to api.bitbucket.org through the proxy"
    );
    assert!(put.authorization.is_none(), "the proxy authenticates");
    assert_eq!(put.body.as_ref().unwrap()["result"], "PASSED");

    // A refusal shows as FAILED with the explanation.
    f.world.restrict_branch(&f.bare, "main", &["nobody"]);
    f.write("dist/ids.json", "[11]\n");
    let refused = f.run(&pipelines);
    assert_eq!(refused.code, 4);
    let put = api
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PUT")
        .unwrap();
    let body = put.body.unwrap();
    assert_eq!(body["result"], "FAILED");
    assert!(
        body["details"]
            .as_str()
            .unwrap()
            .contains("branch restriction")
    );
    api.check_against_spec();

    // CODE_INSIGHTS=false: nothing is sent.
    let count = api.requests().len();
    f.write("dist/ids.json", "[12]\n");
    let off = f.run(&[pipelines.as_slice(), &[("CODE_INSIGHTS", "false")]].concat());
    assert_eq!(off.code, 4);
    assert_eq!(api.requests().len(), count);
}

#[test]
fn code_insights_failure_is_only_a_warning() {
    let f = Fixture::new(Some(50));
    let api = ApiServer::start();
    api.access_token("pipeline-proxy", "pipeline", false)
        .proxy_as("Bearer pipeline-proxy")
        .fail_reports(500);
    f.write("dist/ids.json", "[13]\n");
    let proxy = api.proxy_url();
    let head = git(&f.clone, &["rev-parse", "HEAD"]);
    let run = f.run(&[
        ("CI", "true"),
        ("BITBUCKET_PIPELINE_UUID", "{p1}"),
        ("BITBUCKET_COMMIT", &head),
        ("PIPELINES_AUTH_PROXY", &proxy),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "pushed");
    assert!(
        run.stderr
            .contains("WARNING: could not post the Code Insights report"),
        "{}",
        run.stderr
    );
}

/// A `next` page on another origin is not followed: the credential goes
/// only to API_URL. The list stops there and the report says so.
#[test]
fn pagination_never_leaves_the_api_origin() {
    let (f, api) = restricted();
    let elsewhere = ApiServer::start();
    elsewhere.access_token(TOKEN, "pipeline-token", true);
    api.restrictions_next(&format!(
        "{}/repositories/ws/repo/branch-restrictions?page=2",
        elsewhere.base_url()
    ));
    f.write("dist/ids.json", "[1]\n");
    let run = f.run(&[("API_URL", &api.base_url())]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        elsewhere.requests().is_empty(),
        "the credential left API_URL"
    );
    let b = &run.report["blockage"];
    assert_eq!(b["context"]["rules"][0]["pattern"], "main");
    let notes = b["context"]["notes"].to_string();
    assert!(notes.contains("outside API_URL"), "{notes}");
    // The same origin is followed as before.
    let same = format!(
        "{}/repositories/ws/repo/branch-restrictions?page=2",
        api.base_url()
    );
    api.restrictions_next(&same);
    f.write("dist/ids.json", "[2]\n");
    let run = f.run(&[("API_URL", &api.base_url())]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(api.requests().iter().any(|r| r.query.contains("page=2")));
}

/// A server that echoes the credential (raw, base64 and URL-encoded) in its
/// refusal and in its API errors, and decorates its text with terminal
/// escape sequences: neither reaches any channel that leaves the process
/// (stdout, stderr, files in the clone, the pull request and the Code
/// Insights report the stand-in received).
#[test]
fn echoed_secrets_and_escape_sequences_leave_by_no_channel() {
    let f = Fixture::new(Some(50));
    let b64 = base64::engine::general_purpose::STANDARD.encode(TOKEN);
    let url_encoded: String = TOKEN
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let escapes = r"\033[2J\033[31m\033]8;;https://evil.example\007click here\033]8;;\007\033[0m";
    f.world.hook(
        &f.bare,
        "pre-receive",
        &format!(
            "#!/bin/sh\nwhile read old new ref; do\n  if [ \"$ref\" = refs/heads/main ]; then\n    printf 'Permission denied to update branch main.\\n' >&2\n    printf '%b token %s b64 %s url %s\\n' '{escapes}' '{TOKEN}' '{b64}' '{url_encoded}' >&2\n    exit 1\n  fi\ndone\n"
        ),
    );
    let api = ApiServer::start();
    api.access_token(TOKEN, "pipeline-token", true)
        .proxy_as(&format!("Bearer {TOKEN}"));
    api.refuse_pull_requests(400, &format!("\u{1b}[31mno pull request for {TOKEN}\u{7}"));
    let build_commit = git(&f.clone, &["rev-parse", "HEAD"]);
    f.write("dist/ids.json", "[13]\n");
    let (url, proxy) = (api.base_url(), api.proxy_url());
    let run = f.run(&[
        ("API_URL", url.as_str()),
        ("ON_RESTRICTED", "pull-request"),
        ("CI", "true"),
        ("BITBUCKET_PIPELINE_UUID", "{p1}"),
        ("BITBUCKET_COMMIT", build_commit.as_str()),
        ("PIPELINES_AUTH_PROXY", proxy.as_str()),
    ]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(run.blockage_kind(), "branch_restriction");
    let reqs = api.requests();
    assert!(reqs.iter().any(|r| r.method == "POST"), "{reqs:?}");
    assert!(reqs.iter().any(|r| r.method == "PUT"), "{reqs:?}");
    let sent: Vec<String> = reqs
        .iter()
        .filter_map(|r| r.body.as_ref().map(|b| b.to_string()))
        .collect();
    for needle in [TOKEN, b64.as_str(), url_encoded.as_str()] {
        run.assert_secret_absent(needle, &f.clone);
        for body in &sent {
            assert!(!body.contains(needle), "sent to the API: {body}");
        }
    }
    // The server's words are still quoted, without their escape sequences.
    assert!(run.stderr.contains("click here"), "{}", run.stderr);
    for text in [&run.stderr, &run.stdout].into_iter().chain(sent.iter()) {
        for bad in ["\u{1b}", "\u{7}", "\\u001b", "\\u0007"] {
            assert!(!text.contains(bad), "{bad:?} in {text}");
        }
    }
}
