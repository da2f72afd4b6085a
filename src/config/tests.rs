//! Configuration parsing: every variable, every way it can be wrong.

use super::*;
use crate::checkout::Target;

fn vars(pairs: &[(&str, &str)]) -> RawVars {
    RawVars::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn ok(pairs: &[(&str, &str)]) -> Config {
    Config::from_vars(&vars(pairs), None, &Checkout::default())
        .unwrap_or_else(|(e, _)| panic!("unexpected errors: {e:?}"))
}

fn errs(pairs: &[(&str, &str)]) -> Vec<ConfigError> {
    match Config::from_vars(&vars(pairs), None, &Checkout::default()) {
        Ok(_) => panic!("expected errors for {pairs:?}"),
        Err((e, _)) => e,
    }
}

const BASE: &[(&str, &str)] = &[
    ("BITBUCKET_BRANCH", "main"),
    ("BITBUCKET_REPO_FULL_NAME", "ws/repo"),
    ("BITBUCKET_ACCESS_TOKEN", "tok-123456"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<_> = BASE.to_vec();
    for (k, val) in extra {
        v.retain(|(kk, _)| kk != k);
        v.push((k, val));
    }
    v
}

#[test]
fn defaults() {
    let c = ok(BASE);
    assert_eq!(c.files, vec!["."]);
    assert_eq!(c.message, DEFAULT_MESSAGE);
    assert_eq!(c.branch, "main");
    assert_eq!(c.remote.url, "https://bitbucket.org/ws/repo.git");
    assert_eq!(c.api_url, DEFAULT_API_URL);
    assert_eq!(
        (c.author_name.as_str(), c.author_email.as_str()),
        (DEFAULT_AUTHOR_NAME, DEFAULT_AUTHOR_EMAIL)
    );
    assert_eq!(c.retries, 3);
    assert!(!c.include_ignored && c.loop_guard && c.tag.is_none());
    assert!(report_file(&vars(BASE)).is_none());
    assert_eq!(c.mode, RunMode::Push);
}

#[test]
fn table_of_single_variable_errors() {
    let cases: &[(&str, &str, &str)] = &[
        ("RETRIES", "lots", "RETRIES"),
        ("RETRIES", "999", "RETRIES"),
        ("DRY_RUN", "maybe", "DRY_RUN"),
        ("SKIP_CI", "2", "SKIP_CI"),
        ("INCLUDE_IGNORED", "yep", "INCLUDE_IGNORED"),
        ("LOOP_GUARD", "x", "LOOP_GUARD"),
        ("DEBUG", "loud", "DEBUG"),
        ("PROGRESS", "sometimes", "PROGRESS"),
        ("BRANCH", "bad..name", "BRANCH"),
        ("BRANCH", "refs/heads/main", "BRANCH"),
        ("TAG", "v1 .0~", "TAG"),
        ("REPOSITORY", "just-a-repo", "REPOSITORY"),
        ("REMOTE_URL", "ftp://x/y", "REMOTE_URL"),
        (
            "REMOTE_URL",
            "https://user:pass@bitbucket.org/ws/r.git",
            "REMOTE_URL",
        ),
        ("REMOTE_URL", "git@bitbucket.org:ws/r.git", "REMOTE_URL"),
        ("API_URL", "api.bitbucket.org", "API_URL"),
        ("AUTHOR_EMAIL", "nobody", "AUTHOR_EMAIL"),
        ("AUTHOR_NAME", "a <b>", "AUTHOR_NAME"),
        ("FILES", "/etc/passwd", "FILES"),
        ("FILES", "../other", "FILES"),
        ("FILES", "dist/../../x", "FILES"),
        ("FILES", ":(glob)x", "FILES"),
        ("NETWORK_TIMEOUT", "0", "NETWORK_TIMEOUT"),
        ("ON_RESTRICTED", "squash", "ON_RESTRICTED"),
        ("MERGE_STRATEGY", "octopus", "MERGE_STRATEGY"),
        ("PR_BRANCH", "a..b", "PR_BRANCH"),
        ("CODE_INSIGHTS", "sometimes", "CODE_INSIGHTS"),
        ("ATLASSIAN_API_TOKEN", "abcdef", "ATLASSIAN_ACCOUNT_EMAIL"),
        (
            "ATLASSIAN_ACCOUNT_EMAIL",
            "bot@example.com",
            "ATLASSIAN_API_TOKEN",
        ),
        ("BITBUCKET_APP_PASSWORD", "abcdef", "BITBUCKET_USERNAME"),
        ("SSH_KEY", "not base64 !!", "SSH_KEY"),
        ("AUTH", "magic", "AUTH"),
        ("KNOWN_HOSTS", "garbage", "KNOWN_HOSTS"),
    ];
    for (name, value, expected) in cases {
        let e = errs(&with(&[(name, value)]));
        assert_eq!(e.len(), 1, "{name}={value}: {e:?}");
        assert_eq!(e[0].variable, *expected, "{name}={value}: {e:?}");
        assert!(!e[0].message.contains('\n'), "one line: {e:?}");
    }
}

#[test]
fn all_problems_are_listed_at_once() {
    let e = errs(&[("RETRIES", "x"), ("DRY_RUN", "x"), ("FILES", "/abs")]);
    let names: Vec<_> = e.iter().map(|e| e.variable.as_str()).collect();
    assert_eq!(
        names,
        [
            "FILES",
            "BRANCH",
            "RETRIES",
            "DRY_RUN",
            "BITBUCKET_ACCESS_TOKEN",
            "REPOSITORY"
        ]
    );
}

fn with_checkout(pairs: &[(&str, &str)], checkout: Checkout) -> Result<Config, Vec<ConfigError>> {
    Config::from_vars(&vars(pairs), None, &checkout).map_err(|(e, _)| e)
}

#[test]
fn another_repository_needs_the_files_named() {
    let checkout = Checkout {
        branch: Some("main".into()),
        detached: false,
        origin_url: Some("https://bitbucket.org/acme/site.git".into()),
    };
    let token = ("BITBUCKET_ACCESS_TOKEN", "tok-123456");
    for (vars, target, error) in [
        (vec![token], Target::Checkout, None),
        (
            vec![token, ("BRANCH", "gh-pages")],
            Target::OtherBranch,
            None,
        ),
        (
            vec![token, ("REPOSITORY", "acme/docs"), ("FILES", "api.json")],
            Target::OtherRepository,
            None,
        ),
        (
            vec![token, ("REPOSITORY", "acme/docs")],
            Target::OtherRepository,
            Some("FILES"),
        ),
        (
            vec![
                token,
                ("REMOTE_URL", "https://bitbucket.org/acme/docs.git"),
                ("FILES", "."),
            ],
            Target::OtherRepository,
            Some("FILES"),
        ),
        (
            vec![token, ("REMOTE_URL", "https://bitbucket.org/ACME/site")],
            Target::Checkout,
            None,
        ),
    ] {
        match (with_checkout(&vars, checkout.clone()), error) {
            (Ok(c), None) => assert_eq!(c.target, target, "{vars:?}"),
            (Err(e), Some(var)) => {
                assert_eq!(e.len(), 1, "{e:?}");
                assert_eq!(e[0].variable, var);
                assert!(e[0].message.contains("name the files to copy"), "{e:?}");
            }
            (r, _) => panic!("{vars:?}: {:?}", r.map(|c| c.target)),
        }
    }
    for everything in ["**/*", "./.", "./", "*/**", "./**/*"] {
        let e = with_checkout(
            &[token, ("REPOSITORY", "acme/docs"), ("FILES", everything)],
            checkout.clone(),
        )
        .map(|_| ())
        .unwrap_err();
        assert_eq!(e[0].variable, "FILES", "{everything}");
    }
    // REMOTE_URL alone names the other repository for the API too.
    let c = with_checkout(
        &[
            token,
            ("REMOTE_URL", "https://bitbucket.org/acme/docs.git"),
            ("FILES", "api/"),
        ],
        checkout.clone(),
    )
    .unwrap();
    assert_eq!(c.repository.as_deref(), Some("acme/docs"));
}

#[test]
fn outside_pipelines_the_checkout_gives_branch_repository_and_remote() {
    let token = [("BITBUCKET_ACCESS_TOKEN", "tok-123456")];
    let checkout = |branch: Option<&str>, origin: &str| Checkout {
        branch: branch.map(str::to_owned),
        detached: branch.is_none(),
        origin_url: Some(origin.to_owned()),
    };
    // An ssh origin on bitbucket.org with an HTTP credential: https derived.
    let c = with_checkout(
        &token,
        checkout(Some("develop"), "git@bitbucket.org:acme/site.git"),
    )
    .unwrap();
    assert_eq!(
        (
            c.branch.as_str(),
            c.repository.as_deref(),
            c.remote.url.as_str()
        ),
        (
            "develop",
            Some("acme/site"),
            "https://bitbucket.org/acme/site.git"
        )
    );
    // Jenkins-style origin with an embedded token: never reused, stripped.
    let c = with_checkout(
        &token,
        checkout(
            Some("main"),
            "https://x-token-auth:SECRET@bitbucket.org/acme/site.git",
        ),
    )
    .unwrap();
    assert_eq!(c.remote.url, "https://bitbucket.org/acme/site.git");
    // A compatible server: its own URL, credentials stripped.
    let c = with_checkout(
        &token,
        checkout(Some("main"), "http://u:p@127.0.0.1:8080/acme/site.git"),
    )
    .unwrap();
    assert_eq!(c.remote.url, "http://127.0.0.1:8080/acme/site.git");
    // Variables win over the checkout.
    let c = with_checkout(
        &[
            token[0],
            ("BRANCH", "release"),
            ("REPOSITORY", "acme/other"),
            ("FILES", "dist/"),
        ],
        checkout(Some("main"), "git@bitbucket.org:acme/site.git"),
    )
    .unwrap();
    assert_eq!(
        (c.branch.as_str(), c.remote.url.as_str()),
        ("release", "https://bitbucket.org/acme/other.git")
    );
    // Detached HEAD: a clear error naming BRANCH.
    let e = with_checkout(&token, checkout(None, "git@bitbucket.org:acme/site.git")).unwrap_err();
    assert_eq!(e[0].variable, "BRANCH");
    assert!(e[0].message.contains("detached"));
    // No credential outside Pipelines: no auth proxy to fall back to.
    let e = with_checkout(
        &[],
        checkout(Some("main"), "git@bitbucket.org:acme/site.git"),
    )
    .unwrap_err();
    assert!(
        e.iter()
            .any(|e| e.message.contains("not Bitbucket Pipelines")),
        "{e:?}"
    );
}

#[test]
fn branch_falls_back_and_is_required() {
    assert_eq!(ok(&with(&[("BRANCH", "release/1")])).branch, "release/1");
    let e = errs(&[
        ("BITBUCKET_REPO_FULL_NAME", "ws/r"),
        ("BITBUCKET_ACCESS_TOKEN", "tok-123456"),
    ]);
    assert_eq!(e[0].variable, "BRANCH");
}

#[test]
fn skip_ci_label() {
    assert_eq!(build_message(Some("Bump"), true), "Bump [skip ci]");
    assert_eq!(
        build_message(Some("Bump [CI SKIP]"), true),
        "Bump [CI SKIP]"
    );
    assert_eq!(
        build_message(Some("Bump\n\nbody"), true),
        "Bump [skip ci]\n\nbody"
    );
    assert_eq!(build_message(Some("Bump"), false), "Bump");
    assert_eq!(
        ok(&with(&[("COMMIT_MESSAGE", "Ids"), ("SKIP_CI", "false")])).message,
        "Ids"
    );
}

#[test]
fn booleans() {
    for (v, b) in [
        ("true", true),
        ("TRUE", true),
        ("1", true),
        ("yes", true),
        ("false", false),
        ("0", false),
        ("No", false),
    ] {
        assert_eq!(parse_bool(Some(v), "X", !b).unwrap(), b, "{v}");
    }
    let c = ok(&with(&[
        ("DRY_RUN", "true"),
        ("INCLUDE_IGNORED", "true"),
        ("LOOP_GUARD", "false"),
        ("RETRIES", "0"),
    ]));
    assert_eq!(c.mode, RunMode::DryRun);
    assert!(c.include_ignored && !c.loop_guard);
    assert_eq!(c.retries, 0);
}

#[test]
fn empty_values_count_as_unset() {
    let c = ok(&with(&[("TAG", ""), ("FILES", "  "), ("RETRIES", "")]));
    assert_eq!(c.files, ["."]);
    assert!(c.tag.is_none());
}

#[test]
fn files_split_on_whitespace_and_newlines() {
    let c = ok(&with(&[("FILES", "dist/ids.json\n build/*.lock\tgen/")]));
    assert_eq!(c.files, ["dist/ids.json", "build/*.lock", "gen/"]);
}

#[test]
fn files_symlink_out_of_repo_is_rejected() {
    let dir = std::env::temp_dir().join(format!("cb-cfg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("repo/inside")).unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("repo/out")).unwrap();
    std::os::unix::fs::symlink("inside", dir.join("repo/in")).unwrap();
    let root = dir.join("repo");
    assert!(parse_files(Some("out/passwd"), Some(&root)).is_err());
    assert!(parse_files(Some("out/*.conf"), Some(&root)).is_err());
    assert!(parse_files(Some("in/x inside/* new/dir/file"), Some(&root)).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn remote_url_forms() {
    for (url, t) in [
        ("https://bitbucket.org/ws/r.git", Transport::Http),
        ("http://127.0.0.1:8080/ws/r.git", Transport::Http),
        (
            "https://x-token-auth@bitbucket.org/ws/r.git",
            Transport::Http,
        ),
        ("ssh://git@bitbucket.org/ws/r.git", Transport::Ssh),
        ("git@bitbucket.org:ws/r.git", Transport::Ssh),
    ] {
        assert_eq!(parse_remote_url(url).unwrap().transport, t, "{url}");
    }
    for url in [
        "bitbucket.org/ws/r",
        "https://bitbucket.org",
        "file:///tmp/x",
        "/tmp/x",
    ] {
        assert!(parse_remote_url(url).is_err(), "{url}");
    }
}

#[test]
fn pipeline_credential_uses_http_origin_and_proxy() {
    let c = ok(&[
        ("BITBUCKET_BRANCH", "main"),
        ("BITBUCKET_REPO_FULL_NAME", "ws/repo"),
        ("BITBUCKET_GIT_HTTP_ORIGIN", "http://bitbucket.org/ws/repo"),
    ]);
    assert!(matches!(c.credential, Credential::Pipeline));
    assert_eq!(c.remote.url, "http://bitbucket.org/ws/repo");
    assert_eq!(c.auth_proxy, "http://localhost:29418");
    let c = ok(&[
        ("BITBUCKET_BRANCH", "main"),
        ("BITBUCKET_REPO_FULL_NAME", "ws/repo"),
        ("BITBUCKET_PIPE_STORAGE_DIR", "/x"),
    ]);
    assert_eq!(c.auth_proxy, "http://host.docker.internal:29418");
    assert_eq!(
        report_file(&vars(&[("BITBUCKET_PIPE_STORAGE_DIR", "/x")])).as_deref(),
        Some(Path::new("/x/report.json"))
    );
    assert_eq!(
        report_file(&vars(&[
            ("BITBUCKET_PIPE_STORAGE_DIR", "/x"),
            ("REPORT_FILE", "r.json")
        ]))
        .as_deref(),
        Some(Path::new("r.json"))
    );
}

/// Secrets are secrets from the moment they are read: no `{:?}` of the raw
/// variables shows them.
#[test]
fn raw_secrets_never_show_in_debug() {
    let raw = vars(&[
        ("BITBUCKET_ACCESS_TOKEN", "tok-1111-aaaa"),
        ("ATLASSIAN_API_TOKEN", "tok-2222-bbbb"),
        ("BITBUCKET_APP_PASSWORD", "tok-3333-cccc"),
        ("SSH_KEY", "tok-4444-dddd"),
    ]);
    let shown = format!("{raw:?} {raw:#?}");
    for secret in ["tok-1111", "tok-2222", "tok-3333", "tok-4444"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert_eq!(
        raw.bitbucket_access_token.as_ref().map(|s| s.expose()),
        Some("tok-1111-aaaa")
    );
}

/// REMOTE_URL: a password or a token before '@' is refused without being
/// echoed; a user name alone is dropped from the URL.
#[test]
fn remote_url_userinfo() {
    for url in [
        "https://user:pass@bitbucket.org/ws/r.git",
        "https://ATCTT3xFfGN0abc@bitbucket.org/ws/r.git",
        "https://AbCdEf0123456789GhIjKl@bitbucket.org/ws/r.git",
        "https://0123456789abcdef0123456789abcdef01@bitbucket.org/ws/r.git",
    ] {
        let e = parse_remote_url(url).unwrap_err();
        assert_eq!(e.variable, "REMOTE_URL");
        let user = &url[8..url.find('@').unwrap()];
        assert!(!e.message.contains(user), "{}", e.message);
    }
    for (url, kept) in [
        (
            "https://jdoe@bitbucket.org/ws/r.git",
            "https://bitbucket.org/ws/r.git",
        ),
        (
            "https://x-token-auth@bitbucket.org/ws/r.git",
            "https://bitbucket.org/ws/r.git",
        ),
        (
            "http://127.0.0.1:8080/ws/r.git",
            "http://127.0.0.1:8080/ws/r.git",
        ),
    ] {
        assert_eq!(parse_remote_url(url).unwrap().url, kept);
    }
    for (url, secret) in [
        (
            "git+https://ATCTT3xFfGN0secret@host/r",
            "ATCTT3xFfGN0secret",
        ),
        (
            "x-token-auth:hunter2secret@bitbucket.org/ws/r",
            "hunter2secret",
        ),
        ("ssh://git:hunter2secret@host/ws/r", "hunter2secret"),
        ("https://bob%3Ahunter2@host/ws/r", "hunter2"),
    ] {
        let e = parse_remote_url(url).unwrap_err();
        assert!(!e.message.contains(secret), "{url}: {}", e.message);
    }
}
