//! Refusals over HTTP: each Bitbucket text gives its kind, exit code and the
//! server's own words in the report; the commit is kept as bundle and patch.

use crate::{Fixture, TOKEN};
use testkit::{Answer, git, texts};

fn refused(f: &Fixture, extra: &[(&str, &str)]) -> testkit::PipeRun {
    f.write("dist/ids.json", "{\"id\": 42}\n");
    let before = f.upstream_tip();
    let run = f.run(extra);
    assert_eq!(f.upstream_tip(), before, "nothing may land");
    assert_eq!(run.status(), "blocked", "{}", run.stderr);
    run.assert_secret_absent(TOKEN, &f.clone);
    run
}

#[test]
fn branch_restriction_keeps_the_commit_and_explains() {
    let f = Fixture::new(Some(50));
    f.world.restrict_branch(&f.bare, "main", &["release-bot"]);
    let run = refused(&f, &[]);
    assert_eq!(run.code, 4);
    let b = &run.report["blockage"];
    assert_eq!(b["kind"], "branch_restriction");
    assert_eq!(
        b["remote_messages"],
        serde_json::json!(["Permission denied to update branch main."])
    );
    assert_eq!(b["ref_status"], "pre-receive hook declined");
    assert!(
        b["explanation"]
            .as_str()
            .unwrap()
            .contains("Access tokens cannot be added")
    );
    assert!(!b["remedies"].as_array().unwrap().is_empty());
    assert!(
        run.stderr
            .contains("remote: Permission denied to update branch main."),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("✖ A branch restriction"),
        "{}",
        run.stderr
    );
    assert_eq!(run.report["attempts"], 1, "a refusal is not retried");

    // Nothing is lost: the bundle restores the commit, the patch applies.
    let rec = &run.report["recovery"];
    let bundle = f.clone.join(rec["bundle"].as_str().unwrap());
    let patch = f.clone.join(rec["patch"].as_str().unwrap());
    assert!(bundle.starts_with(&f.clone) && patch.starts_with(&f.clone));
    git(
        &f.clone,
        &["bundle", "verify", "-q", bundle.to_str().unwrap()],
    );
    let sha = run.report["commit"]["sha"].as_str().unwrap();
    let restored = f
        .world
        .pipelines_clone(&f.bare, "restore", "main", Some(50), "unused");
    git(
        &restored,
        &[
            "fetch",
            "-q",
            bundle.to_str().unwrap(),
            "refs/heads/main:recovered",
        ],
    );
    assert_eq!(git(&restored, &["rev-parse", "recovered"]), sha);
    git(&restored, &["am", "-q", patch.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(restored.join("dist/ids.json")).unwrap(),
        "{\"id\": 42}\n"
    );
    // The recovery files are never staged by a later run.
    assert!(!crate::status(&f.clone).contains("commit-back-recovery"));
    f.write("dist/ids.json", "{\"id\": 43}\n");
    let again = f.run(&[("INCLUDE_IGNORED", "true")]);
    assert_eq!(
        again.report["commit"]["files"],
        serde_json::json!(["dist/ids.json"])
    );
}

#[test]
fn allowed_user_passes_the_same_restriction() {
    let f = Fixture::new(Some(50));
    f.world.restrict_branch(&f.bare, "main", &["release-bot"]);
    f.server.account(
        "x-bitbucket-api-token-auth",
        "bot-api-token-99",
        "release-bot",
    );
    f.write("a.txt", "1\n");
    let run = f.run(&[
        ("BITBUCKET_ACCESS_TOKEN", ""),
        ("ATLASSIAN_ACCOUNT_EMAIL", "bot@example.com"),
        ("ATLASSIAN_API_TOKEN", "bot-api-token-99"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn http_refusal_bodies_reach_the_report() {
    let cases: &[(u16, &str, &str, i32)] = &[
        (403, texts::TWO_STEP, "two_step_verification", 5),
        (403, texts::IP_ALLOWLIST, "ip_allowlist", 6),
        (401, texts::INVALID_CREDENTIALS, "invalid_credentials", 3),
        (403, texts::SCOPES, "insufficient_scope", 7),
        (403, texts::NOT_FOUND, "repository_not_found", 7),
    ];
    for (status, body, kind, code) in cases {
        let f = Fixture::new(Some(50));
        f.server.refuse(TOKEN, *status, body);
        let run = refused(&f, &[]);
        assert_eq!(run.blockage_kind(), *kind, "{body}: {}", run.stderr);
        assert_eq!(run.code, *code, "{kind}");
        assert_eq!(run.report["blockage"]["http_status"], *status);
        assert_eq!(run.report["blockage"]["remote_messages"][0], body.trim());
        assert!(
            run.stderr.contains(&format!("remote: {}", body.trim())),
            "{}",
            run.stderr
        );
        assert_eq!(run.report["attempts"], 1, "{kind}: fails once, fast");
        assert!(!run.report["recovery"].is_null());
        let pushes = f.server.requests().len();
        assert!(
            pushes <= 2,
            "{kind}: no credential loop ({pushes} requests)"
        );
    }
}

#[test]
fn app_password_removed() {
    let f = Fixture::new(Some(50));
    f.server
        .refuse("app-pw-123456", 410, texts::APP_PASSWORD_GONE);
    let run = refused(
        &f,
        &[
            ("BITBUCKET_ACCESS_TOKEN", ""),
            ("BITBUCKET_USERNAME", "me"),
            ("BITBUCKET_APP_PASSWORD", "app-pw-123456"),
        ],
    );
    assert_eq!(run.blockage_kind(), "app_password_removed");
    assert_eq!(run.code, 3);
    run.assert_secret_absent("app-pw-123456", &f.clone);
}

#[test]
fn size_limit_from_a_hook() {
    let f = Fixture::new(Some(50));
    let text = texts::SIZE_LIMIT
        .lines()
        .map(|l| format!("echo '{l}' >&2\n"))
        .collect::<String>();
    f.world.hook(
        &f.bare,
        "pre-receive",
        &format!("#!/bin/sh\n{text}exit 1\n"),
    );
    let run = refused(&f, &[]);
    assert_eq!(run.blockage_kind(), "repository_size_limit");
    assert_eq!(run.code, 10);
    assert_eq!(
        run.report["blockage"]["remote_messages"][0],
        "Repository is over the size limit (4 GB) and will not accept further additions."
    );
}

#[test]
fn unknown_hook_refusal_is_kept_verbatim() {
    let f = Fixture::new(Some(50));
    f.world.hook(
        &f.bare,
        "pre-receive",
        "#!/bin/sh\necho 'Custom policy: commit messages must name a JIRA issue' >&2\nexit 1\n",
    );
    let run = refused(&f, &[]);
    assert_eq!(run.blockage_kind(), "hook_rejected");
    assert_eq!(run.code, 1);
    assert_eq!(
        run.report["blockage"]["remote_messages"],
        serde_json::json!(["Custom policy: commit messages must name a JIRA issue"])
    );
}

#[test]
fn server_errors_are_retried_then_land() {
    let f = Fixture::new(Some(50));
    f.server.answer_next(vec![
        Answer {
            status: 500,
            body: "Internal Server Error".into(),
        },
        Answer {
            status: 503,
            body: "Service Unavailable".into(),
        },
        Answer {
            status: 502,
            body: "Bad Gateway".into(),
        },
    ]);
    f.write("a.txt", "1\n");
    let run = f.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["attempts"], 4);
    f.assert_landed(&run);
}

#[test]
fn network_failure_is_reported_after_retries() {
    let f = Fixture::new(Some(50));
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    f.write("a.txt", "1\n");
    let run = f.run(&[
        (
            "REMOTE_URL",
            &format!("http://127.0.0.1:{port}/ws/repo.git"),
        ),
        ("RETRIES", "1"),
    ]);
    assert_eq!(run.blockage_kind(), "network", "{}", run.stderr);
    assert_eq!(run.code, 9);
    assert_eq!(run.report["attempts"], 2);
    assert!(!run.report["recovery"].is_null());
}

#[test]
fn dry_run_predicts_a_refused_credential() {
    let f = Fixture::new(Some(50));
    f.server.refuse(TOKEN, 403, texts::TWO_STEP);
    f.write("a.txt", "1\n");
    let run = f.run(&[("DRY_RUN", "true")]);
    assert_eq!(run.blockage_kind(), "two_step_verification");
    assert_eq!(run.code, 5);
    assert!(run.report["recovery"].is_null(), "a dry run writes nothing");
    assert!(!f.clone.join("commit-back-recovery").exists());
}

#[test]
fn hung_server_is_bounded_by_network_timeout() {
    let f = Fixture::new(Some(50));
    let hang = || Answer {
        status: 0,
        body: String::new(),
    };
    f.server.answer_next(vec![hang(), hang()]);
    f.write("a.txt", "1\n");
    let started = std::time::Instant::now();
    let run = f.run(&[("NETWORK_TIMEOUT", "1"), ("RETRIES", "1")]);
    assert_eq!(run.blockage_kind(), "network", "{}", run.stderr);
    assert_eq!(run.code, 9);
    assert_eq!(run.report["attempts"], 2);
    // Two attempts of ~1 s plus one backoff: far below the server's 30 s hang.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(!run.report["recovery"].is_null());
}

/// The gallery's runs (docs/refusals.md, and the first in the README):
/// each still gives its kind and the exit code of the contract, and the
/// gallery shows each kind.
#[test]
fn readme_refusal_examples_are_real_and_complete() {
    let shown = testkit::showcase::all(std::path::Path::new(crate::BIN));
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/refusals.md")).unwrap();
    let front = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        front.contains("<summary><code>branch_restriction</code>"),
        "the README shows one refused run in full"
    );
    let kinds = [
        "branch_restriction",
        "two_step_verification",
        "ip_allowlist",
        "invalid_credentials",
        "app_password_removed",
        "insufficient_scope",
        "read_only_key",
        "repository_not_found",
        "repository_size_limit",
        "lfs_refused",
        "lfs_storage_quota",
        "non_fast_forward",
        "rebase_conflict",
        "tag_exists",
        "network",
        "signature_required",
        "hook_rejected",
        "unknown",
    ];
    assert_eq!(shown.iter().map(|s| s.kind).collect::<Vec<_>>(), kinds);
    for s in &shown {
        assert_eq!(s.run.blockage_kind(), s.kind, "{}", s.run.stderr);
        assert!(
            s.run.report["recovery"].is_object(),
            "{}: commit kept",
            s.kind
        );
        assert!(
            readme.contains(&format!("<summary><code>{}</code>", s.kind)),
            "README lacks the {} example",
            s.kind
        );
        assert!(readme.contains(&format!("(exit {})</summary>", s.run.code)));
    }
}
