//! Pushes that land over HTTP, and what the report says about them.

use crate::{Fixture, TOKEN, status};
use testkit::git;

#[test]
fn push_lands_with_access_token_from_a_depth_50_clone() {
    let f = Fixture::new(Some(50));
    f.write("dist/ids.json", "{\"id\": 1}\n");
    let run = f.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "pushed");
    let r = &run.report;
    let sha = r["commit"]["sha"].as_str().unwrap();
    assert_eq!(f.upstream_tip(), sha);
    assert_eq!(r["commit"]["files"], serde_json::json!(["dist/ids.json"]));
    assert_eq!(r["credential"]["kind"], "access_token");
    assert_eq!(r["attempts"], 1);
    assert_eq!(r["branch"], "main");
    assert_eq!(r["repository"], "ws/repo");
    assert_eq!(r["remote"], f.server.url("ws/repo.git"));
    assert!(r["blockage"].is_null() && r["recovery"].is_null());
    let message = git(&f.bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.starts_with("Update build artifacts [skip ci]"),
        "{message}"
    );
    assert!(message.contains("Commit-Back-Artifact: "), "{message}");
    assert_eq!(
        git(&f.bare, &["log", "-1", "--format=%an <%ae>", "main"]),
        "bitbucket-pipelines <commits-noreply@bitbucket.org>"
    );
    git(&f.bare, &["fsck", "--strict"]);
    // The clone is left on the pushed commit, clean.
    assert_eq!(git(&f.clone, &["rev-parse", "HEAD"]), sha);
    assert_eq!(status(&f.clone), "");
    assert!(run.stderr.contains("✔ Pushed"), "{}", run.stderr);
    run.assert_secret_absent(TOKEN, &f.clone);
    run.assert_secret_absent(TOKEN, &f.bare);
    // The token went over the wire as Basic x-token-auth, as Bitbucket wants.
    assert!(
        f.server.requests().iter().any(
            |r| r.user.as_deref() == Some("token-user") && r.path.ends_with("git-receive-pack")
        )
    );
}

#[test]
fn push_lands_from_a_depth_1_clone_with_a_detached_head() {
    let f = Fixture::new(Some(1));
    let head = git(&f.clone, &["rev-parse", "HEAD"]);
    git(&f.clone, &["checkout", "-q", "--detach", &head]);
    f.write("version.txt", "1.2.3\n");
    let run = f.run(&[("BITBUCKET_BRANCH", ""), ("BRANCH", "main")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    f.assert_landed(&run);
    assert_eq!(run.report["commit"]["parent"].as_str().unwrap(), head);
    git(&f.bare, &["fsck", "--strict"]);
}

#[test]
fn nothing_to_commit_changes_nothing() {
    let f = Fixture::new(Some(50));
    let before = f.upstream_tip();
    let run = f.run(&[]);
    assert_eq!(run.code, 0);
    assert_eq!(run.status(), "nothing_to_commit");
    assert!(run.report["commit"].is_null());
    assert_eq!(f.upstream_tip(), before);
    assert!(f.server.requests().is_empty(), "no contact with the server");
}

#[test]
fn files_selects_paths_and_globs_and_ignored_files_on_request() {
    let f = Fixture::new(Some(50));
    std::fs::write(f.clone.join(".gitignore"), "build/\n").unwrap();
    git(&f.clone, &["add", ".gitignore"]);
    git(&f.clone, &["commit", "-qm", "ignore build"]);
    f.write("build/out.lock", "lock\n");
    f.write("gen/a.txt", "a\n");
    f.write("gen/b.json", "b\n");
    f.write("notes.txt", "not selected\n");
    // Without INCLUDE_IGNORED the ignored lock file stays out.
    let run = f.run(&[("FILES", "gen/*.txt build/out.lock")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.report["commit"]["files"],
        serde_json::json!(["gen/a.txt"])
    );
    let run = f.run(&[
        ("FILES", "build/out.lock\ngen/b.json"),
        ("INCLUDE_IGNORED", "true"),
        ("COMMIT_MESSAGE", "Lock files"),
        ("SKIP_CI", "false"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.report["commit"]["files"],
        serde_json::json!(["build/out.lock", "gen/b.json"])
    );
    assert_eq!(
        git(&f.bare, &["log", "-1", "--format=%s", "main"]),
        "Lock files"
    );
    assert!(
        status(&f.clone).contains("?? notes.txt"),
        "unselected files are left alone"
    );
}

#[test]
fn deletions_are_committed_and_author_is_configurable() {
    let f = Fixture::new(Some(50));
    std::fs::remove_file(f.clone.join("history/0.txt")).unwrap();
    let run = f.run(&[
        ("AUTHOR_NAME", "Release Bot"),
        ("AUTHOR_EMAIL", "bot@example.com"),
        ("COMMIT_MESSAGE", "Prune"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.report["commit"]["files"],
        serde_json::json!(["history/0.txt"])
    );
    assert_eq!(
        git(&f.bare, &["log", "-1", "--format=%an <%ae>|%s", "main"]),
        "Release Bot <bot@example.com>|Prune [skip ci]"
    );
}

#[test]
fn annotated_tag_is_pushed_with_the_commit() {
    let f = Fixture::new(Some(50));
    f.write("version.txt", "2.0.0\n");
    let run = f.run(&[("TAG", "v2.0.0")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["tag"], "v2.0.0");
    assert_eq!(git(&f.bare, &["cat-file", "-t", "v2.0.0"]), "tag");
    assert_eq!(
        git(&f.bare, &["rev-parse", "v2.0.0^{commit}"]),
        f.upstream_tip()
    );
}

#[test]
fn dry_run_checks_access_and_changes_nothing() {
    let f = Fixture::new(Some(50));
    f.write("dist/ids.json", "[]\n");
    let before_head = git(&f.clone, &["rev-parse", "HEAD"]);
    let before_status = status(&f.clone);
    let objects_before = testkit::walk(&f.clone.join(".git")).len();
    let run = f.run(&[("DRY_RUN", "true")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "dry_run");
    assert_eq!(
        run.report["commit"]["files"],
        serde_json::json!(["dist/ids.json"])
    );
    assert_eq!(git(&f.clone, &["rev-parse", "HEAD"]), before_head);
    assert_eq!(status(&f.clone), before_status);
    assert_eq!(
        testkit::walk(&f.clone.join(".git")).len(),
        objects_before,
        "no object written"
    );
    assert_ne!(
        f.upstream_tip(),
        run.report["commit"]["sha"].as_str().unwrap()
    );
    let reqs = f.server.requests();
    assert!(
        reqs.iter().all(|r| r.method == "GET"),
        "only the ref advertisement: {reqs:?}"
    );
    run.assert_secret_absent(TOKEN, &f.clone);
}

#[test]
fn report_file_gets_a_copy_and_pipe_storage_is_the_default() {
    let f = Fixture::new(Some(50));
    f.write("a.txt", "a\n");
    let storage = f
        .clone
        .join(".bitbucket/pipelines/generated/pipeline/pipes/x/commit-back");
    let run = f.run(&[("BITBUCKET_PIPE_STORAGE_DIR", storage.to_str().unwrap())]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let copy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(storage.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(copy["commit"], run.report["commit"]);
    // The pipes' storage is never committed, even when everything is staged.
    assert_eq!(run.report["commit"]["files"], serde_json::json!(["a.txt"]));
    f.write("b.txt", "b\n");
    let explicit = f.world.path().join("out/r.json");
    let run = f.run(&[
        ("REPORT_FILE", explicit.to_str().unwrap()),
        ("INCLUDE_IGNORED", "true"),
        ("BITBUCKET_PIPE_STORAGE_DIR", storage.to_str().unwrap()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["commit"]["files"], serde_json::json!(["b.txt"]));
    assert!(explicit.exists());
}

#[test]
fn loop_guard_skips_builds_started_by_our_own_commit() {
    let f = Fixture::new(Some(50));
    f.write("a.txt", "1\n");
    let first = f.run(&[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let ours = first.report["commit"]["sha"].as_str().unwrap().to_owned();
    // The next build runs on that commit (BITBUCKET_COMMIT may be a short hash).
    f.write("a.txt", "2\n");
    let run = f.run(&[("BITBUCKET_COMMIT", &ours[..12])]);
    assert_eq!(run.code, 0);
    assert_eq!(run.status(), "nothing_to_commit");
    assert!(
        run.report["summary"]
            .as_str()
            .unwrap()
            .contains("Loop guard")
    );
    assert_eq!(f.upstream_tip(), ours);
    let run = f.run(&[("BITBUCKET_COMMIT", &ours), ("LOOP_GUARD", "false")]);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
}

#[test]
fn api_token_and_app_password_use_their_git_usernames() {
    let f = Fixture::new(Some(50));
    f.server
        .account("x-bitbucket-api-token-auth", "api-secret-123456", "bot");
    f.server
        .account("botuser", "app-secret-123456", "bot-legacy");
    f.write("a.txt", "1\n");
    let run = f.run(&[
        ("BITBUCKET_ACCESS_TOKEN", ""),
        ("ATLASSIAN_ACCOUNT_EMAIL", "bot@example.com"),
        ("ATLASSIAN_API_TOKEN", "api-secret-123456"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["credential"]["kind"], "api_token");
    run.assert_secret_absent("api-secret-123456", &f.clone);
    f.write("a.txt", "2\n");
    let run = f.run(&[
        ("BITBUCKET_ACCESS_TOKEN", ""),
        ("BITBUCKET_USERNAME", "botuser"),
        ("BITBUCKET_APP_PASSWORD", "app-secret-123456"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["credential"]["kind"], "app_password");
    assert!(
        run.stderr.contains("WARNING: App password is deprecated"),
        "{}",
        run.stderr
    );
    run.assert_secret_absent("app-secret-123456", &f.clone);
    let users: Vec<_> = f
        .server
        .requests()
        .into_iter()
        .filter_map(|r| r.user)
        .collect();
    assert!(
        users.contains(&"bot".to_string()) && users.contains(&"bot-legacy".to_string()),
        "{users:?}"
    );
}

#[test]
fn pipeline_credential_goes_through_the_auth_proxy() {
    let f = Fixture::new(Some(50));
    f.server.proxy_as("pipeline-user");
    // The clone's origin as Pipelines sets it: http://bitbucket.org/<repo>, no .git.
    f.write("a.txt", "1\n");
    let run = f.run(&[
        ("BITBUCKET_ACCESS_TOKEN", ""),
        ("REMOTE_URL", ""),
        ("BITBUCKET_GIT_HTTP_ORIGIN", "http://bitbucket.org/ws/repo"),
        ("PIPELINES_AUTH_PROXY", &f.server.proxy_url()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["credential"]["kind"], "pipeline");
    assert!(
        run.stderr.contains("pushing as the pipeline itself"),
        "{}",
        run.stderr
    );
    let reqs = f.server.requests();
    assert!(
        !reqs.is_empty()
            && reqs
                .iter()
                .all(|r| r.proxied && r.user.as_deref() == Some("pipeline-user")),
        "{reqs:?}"
    );
    f.assert_landed(&run);
}

#[test]
fn debug_log_is_verbose_and_still_secret_free() {
    let f = Fixture::new(Some(50));
    f.server.refuse(TOKEN, 403, testkit::texts::TWO_STEP);
    f.write("a.txt", "1\n");
    let run = f.run(&[("DEBUG", "true")]);
    assert!(run.stderr.contains("DEBUG: remote "), "{}", run.stderr);
    assert!(
        run.stderr.contains("DEBUG: git error: class="),
        "{}",
        run.stderr
    );
    run.assert_secret_absent(TOKEN, &f.clone);
    // Base64 of the Basic credential is what would leak from a header dump.
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-token-auth:{TOKEN}"));
    run.assert_secret_absent(&basic, &f.clone);
}

#[test]
fn working_tree_owned_by_another_uid_works() {
    // Pipelines mounts the clone owned by another uid than the pipe's user.
    // libgit2 refuses such repositories unless its ownership check is off.
    if unsafe { libc_geteuid() } != 0 {
        eprintln!("skipped: needs root to chown the clone");
        return;
    }
    let f = Fixture::new(Some(50));
    f.write("a.txt", "1\n");
    let chown = std::process::Command::new("chown")
        .args(["-R", "4242:4242"])
        .arg(&f.clone)
        .status()
        .unwrap();
    assert!(chown.success());
    let run = f.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    f.assert_landed(&run);
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[test]
fn corrupt_repository_is_an_unexpected_failure_with_exit_1() {
    let f = Fixture::new(Some(50));
    f.write("a.txt", "1\n");
    std::fs::write(f.clone.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(
        f.clone.join(".git/refs/heads/main"),
        "0123456789012345678901234567890123456789\n",
    )
    .unwrap();
    let run = f.run(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.status(), "failed");
    assert!(
        run.report["summary"]
            .as_str()
            .unwrap()
            .starts_with("Unexpected error")
    );
}

#[test]
fn the_readme_demo_runs_end_to_end() {
    assert!(
        testkit::demo::run(std::path::Path::new(crate::BIN)),
        "the README's first set-up command must succeed"
    );
}

#[test]
fn files_entries_that_name_nothing_are_warned_about() {
    let f = Fixture::new(Some(50));
    f.write("dist/ids.json", "[1]\n");
    let run = f.run(&[(
        "FILES",
        "dist/ids.json dist/missing.json build/*.lock history/0.txt",
    )]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("WARNING: FILES entry 'dist/missing.json' matches no file"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("'build/*.lock'"),
        "globs may match nothing"
    );
    assert!(
        !run.stderr.contains("'history/0.txt'"),
        "tracked files are matches"
    );
    assert_eq!(
        run.report["commit"]["files"],
        serde_json::json!(["dist/ids.json"])
    );
}

/// Many files and one of several megabytes, with duplicate contents: staged
/// through commit-back's own pack, they arrive byte for byte and the server's
/// repository passes fsck.
#[test]
fn many_files_and_a_large_one_arrive_intact() {
    let f = Fixture::new(Some(50));
    let large = testkit::incompressible(5 << 20, 2);
    std::fs::create_dir_all(f.clone.join("dist/many")).unwrap();
    std::fs::write(f.clone.join("dist/large.bin"), &large).unwrap();
    for i in 0..300 {
        // Every tenth file repeats another's content.
        let content = format!("{{\"id\": {}}}\n", if i % 10 == 0 { 0 } else { i });
        f.write(&format!("dist/many/{i:03}.json"), &content);
    }
    let run = f.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["commit"]["files"].as_array().unwrap().len(), 301);
    git(&f.bare, &["fsck", "--strict"]);
    let pushed = |path: &str| git(&f.bare, &["rev-parse", &format!("main:{path}")]);
    let expected = |path: &str| git(&f.clone, &["hash-object", path]);
    for path in ["dist/large.bin", "dist/many/000.json", "dist/many/299.json"] {
        assert_eq!(pushed(path), expected(path), "{path}");
    }
    assert_eq!(status(&f.clone), "");
    run.assert_secret_absent(TOKEN, &f.clone);
}

/// HTTPS for real: OpenSSL terminates TLS in front of the git server and the
/// pipe verifies its certificate, trusted through SSL_CERT_FILE as a
/// company CA would be.
#[test]
fn push_lands_over_https_with_a_trusted_certificate() {
    let f = Fixture::new(Some(50));
    let tls = testkit::TlsFront::start(f.server.port());
    f.write("dist/ids.json", "[7]\n");
    let url = tls.url("ws/repo.git");
    let run = f.run(&[
        ("REMOTE_URL", &url),
        ("SSL_CERT_FILE", tls.certificate().to_str().unwrap()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    f.assert_landed(&run);
    assert_eq!(run.report["remote"], url.as_str());
    run.assert_secret_absent(TOKEN, &f.clone);
}

/// A certificate nobody vouches for: not retried as a network failure,
/// nothing reaches the server, the commit is kept and the report says what
/// failed and what to do.
#[test]
fn untrusted_certificate_is_refused_and_the_commit_kept() {
    let f = Fixture::new(Some(50));
    let tls = testkit::TlsFront::start(f.server.port());
    f.write("dist/ids.json", "[8]\n");
    let before = f.upstream_tip();
    let run = f.run(&[("REMOTE_URL", &tls.url("ws/repo.git"))]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.blockage_kind(), "unknown");
    assert_eq!(
        run.report["attempts"], 1,
        "a certificate problem is not retried"
    );
    let blockage = &run.report["blockage"];
    assert_eq!(
        blockage["summary"],
        "The git server's TLS certificate could not be verified."
    );
    assert!(
        blockage["explanation"]
            .as_str()
            .unwrap()
            .contains("certificate verify failed"),
        "{blockage}"
    );
    assert!(
        blockage["remedies"][0]["steps"][0]
            .as_str()
            .unwrap()
            .contains("SSL_CERT_FILE"),
        "{blockage}"
    );
    assert_eq!(f.upstream_tip(), before);
    assert!(!run.report["recovery"].is_null());
    assert!(f.server.requests().is_empty(), "nothing reached the server");
    run.assert_secret_absent(TOKEN, &f.clone);
}

/// A redirect to another origin is not followed: the credential (and the
/// push) never reach the other server, and nothing lands.
#[test]
fn a_redirect_to_another_origin_is_not_followed() {
    let f = Fixture::new(Some(50));
    let elsewhere = testkit::GitHttpServer::start(&f.world.root());
    elsewhere.account("x-token-auth", TOKEN, "token-user");
    let before = f.upstream_tip();
    f.server.answer_next_for(
        "info/refs",
        vec![testkit::Answer {
            status: 302,
            body: format!(
                "{}/info/refs?service=git-receive-pack",
                elsewhere.url("ws/repo.git")
            ),
        }],
    );
    f.write("dist/ids.json", "[1]\n");
    let run = f.run(&[("RETRIES", "0")]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        elsewhere.requests().is_empty(),
        "followed to another origin: {:?}",
        elsewhere.requests()
    );
    assert_eq!(f.upstream_tip(), before);
    assert!(!run.report["recovery"].is_null(), "the commit is kept");
}
