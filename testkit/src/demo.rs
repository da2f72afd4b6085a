//! The pipe end to end on a fresh machine, no Bitbucket account needed.
//!
//! Starts a local stand-in (git http-backend behind an HTTP server that
//! answers like Bitbucket, with a branch restriction on `main` that only lets
//! `release-bot` push, and the REST API stand-in that knows the credentials
//! and the restriction), makes a clone the way Pipelines does, and runs the
//! real commit-back binary twice:
//!   1. as the bot with an API token: the push lands;
//!   2. with a repository access token: Bitbucket refuses, and commit-back
//!      explains why and what to do, and keeps the commit.
//!
//! Run: `cargo run -p testkit --bin demo` (builds commit-back first).

use crate::{GitHttpServer, World, git, run_pipe};
use base64::Engine as _;
use std::path::Path;

/// Runs both scenarios with `bin`, printing to stdout; true when the push
/// landed and the refusal was explained as a branch restriction.
pub fn run(bin: &Path) -> bool {
    let world = World::new();
    let bare = world.upstream("acme/website", 20);
    world.restrict_branch(&bare, "main", &["release-bot"]);
    let server = GitHttpServer::start(&world.root());
    server.account(
        "x-bitbucket-api-token-auth",
        "demo-bot-api-token-5f2c",
        "release-bot",
    );
    server.account(
        "x-token-auth",
        "demo-repo-access-token-9d41",
        "{repository access token}",
    );
    let url = server.url("acme/website.git");
    // The REST API as Bitbucket would answer it: who each credential is and
    // which rule guards main, so the refusal is explained in full.
    let api = crate::api::ApiServer::start();
    let bot_basic = base64::engine::general_purpose::STANDARD
        .encode("release-bot@acme.example:demo-bot-api-token-5f2c");
    api.user(
        &format!("Basic {bot_basic}"),
        "Release Bot",
        "{77777777-0000-4000-8000-000000000777}",
        false,
        "write",
    )
    .access_token("demo-repo-access-token-9d41", "website-ci-token", true)
    .restrict(
        12,
        "main",
        &[("{77777777-0000-4000-8000-000000000777}", "Release Bot")],
        &["Maintainers"],
    );
    let api_url = api.base_url();
    println!(
        "Local stand-in for bitbucket.org: {url} (branch restriction on main: only release-bot may push), its REST API at {api_url}\n"
    );

    let clone = world.pipelines_clone(&bare, "build", "main", Some(50), &url);
    let base = [
        ("BITBUCKET_BRANCH", "main"),
        ("BITBUCKET_REPO_FULL_NAME", "acme/website"),
        ("BITBUCKET_BUILD_NUMBER", "128"),
        ("REMOTE_URL", url.as_str()),
        ("API_URL", api_url.as_str()),
        ("FILES", "generated/"),
    ];
    let color: Vec<(&str, &str)> = std::env::var("NO_COLOR")
        .map(|_| vec![("NO_COLOR", "1")])
        .unwrap_or_default();

    std::fs::create_dir_all(clone.join("generated")).unwrap();
    std::fs::write(clone.join("generated/ids.json"), "{\"next_id\": 1001}\n").unwrap();
    println!(
        "━━ 1. The bot pushes with its API token ━━  $ commit-back   (ATLASSIAN_ACCOUNT_EMAIL, ATLASSIAN_API_TOKEN)\n"
    );
    let mut env: Vec<(&str, &str)> = base.to_vec();
    env.extend([
        ("ATLASSIAN_ACCOUNT_EMAIL", "release-bot@acme.example"),
        ("ATLASSIAN_API_TOKEN", "demo-bot-api-token-5f2c"),
    ]);
    env.extend(color.iter().copied());
    let first = run_pipe(bin, &clone, &env);
    print!("{}", first.stderr);
    println!(
        "\nexit code {} · report on stdout:\n{}\n",
        first.code,
        first.stdout.trim()
    );

    std::fs::write(clone.join("generated/ids.json"), "{\"next_id\": 1002}\n").unwrap();
    println!(
        "━━ 2. The same step with a repository access token ━━  $ commit-back   (BITBUCKET_ACCESS_TOKEN)\n"
    );
    let mut env: Vec<(&str, &str)> = base.to_vec();
    env.push(("BITBUCKET_ACCESS_TOKEN", "demo-repo-access-token-9d41"));
    env.extend(color.iter().copied());
    let second = run_pipe(bin, &clone, &env);
    print!("{}", second.stderr);
    println!(
        "\nexit code {} · report on stdout:\n{}\n",
        second.code,
        second.stdout.trim()
    );

    let landed = git(&bare, &["log", "-1", "--format=%h %s", "main"]);
    println!("Upstream main is now: {landed}");
    // The full explanation: who the token is, and the rule that blocked it.
    let explained = second.report["blockage"]["context"]["rules"]
        .as_array()
        .is_some_and(|r| !r.is_empty());
    let ok = first.status() == "pushed"
        && second.blockage_kind() == "branch_restriction"
        && second.code == 4
        && explained;
    if ok {
        println!(
            "Demo OK: one push landed, one was refused and explained (exit 4), its commit kept in {}.",
            second.report["recovery"]["bundle"]
        );
    } else {
        println!("Demo FAILED: expected a push and a branch-restriction refusal.");
    }
    ok
}
