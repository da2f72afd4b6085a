//! Abuse: hostile input to the parser and the classifier (bounded property
//! tests), file names git finds awkward, huge FILES, a read-only working tree,
//! a full disk. Each gets a clear error or works; nothing changed or lost.

use crate::{Fixture, TOKEN, status};
use commit_back::config::{Config, RawVars};
use commit_back::explain::classify::kind_of;
use commit_back::explain::{ErrorClass, ErrorCode, Evidence, GitErrorInfo};
use commit_back::terms::CredentialKind;
use proptest::prelude::*;
use testkit::git;

const NAMES: &[&str] = &[
    "FILES",
    "COMMIT_MESSAGE",
    "SKIP_CI",
    "BRANCH",
    "REPOSITORY",
    "REMOTE_URL",
    "API_URL",
    "AUTHOR_NAME",
    "AUTHOR_EMAIL",
    "RETRIES",
    "INCLUDE_IGNORED",
    "TAG",
    "DRY_RUN",
    "REPORT_FILE",
    "LOOP_GUARD",
    "DEBUG",
    "NETWORK_TIMEOUT",
    "ON_RESTRICTED",
    "PR_BRANCH",
    "CODE_INSIGHTS",
    "BITBUCKET_ACCESS_TOKEN",
    "ATLASSIAN_ACCOUNT_EMAIL",
    "ATLASSIAN_API_TOKEN",
    "BITBUCKET_USERNAME",
    "BITBUCKET_APP_PASSWORD",
    "SSH_KEY",
    "AUTH",
    "KNOWN_HOSTS",
    "BITBUCKET_BRANCH",
    "BITBUCKET_REPO_FULL_NAME",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// The parser never panics, and every error is one line naming a variable.
    #[test]
    fn config_parser_survives_any_values(pairs in proptest::collection::vec((0..NAMES.len(), ".{0,40}"), 0..12)) {
        let raw = RawVars::from_pairs(pairs.iter().map(|(i, v)| (NAMES[*i].to_string(), v.clone())));
        if let Err((errors, _)) = Config::from_vars(&raw, None, &Default::default()) {
            for e in errors {
                prop_assert!(!e.variable.is_empty());
                prop_assert!(!e.message.contains('\n') && !e.message.contains('\r'), "{:?}", e);
            }
        }
    }

    /// The classifier never panics, keeps the server's words, and ignores case.
    #[test]
    fn classifier_survives_any_evidence(
        status in proptest::option::of(100u16..600),
        lines in proptest::collection::vec(".{0,80}", 0..5),
        ref_status in proptest::option::of(".{0,30}"),
        message in proptest::option::of(".{0,60}"),
        lfs in proptest::option::of("[a-z ]{0,20}"),
    ) {
        let e = Evidence {
            http_status: status,
            remote_lines: lines.clone(),
            ref_status,
            git_error: message.map(|m| GitErrorInfo { class: ErrorClass::Net, code: ErrorCode::Generic, message: m }),
            conflicts: vec![],
            tag_conflict: None,
            lfs,
        };
        let kind = kind_of(&e, CredentialKind::ApiToken);
        let mut upper = e.clone();
        upper.remote_lines = lines.iter().map(|l| l.to_uppercase()).collect();
        prop_assert_eq!(kind_of(&upper, CredentialKind::ApiToken), kind);
        let situation = commit_back::explain::Situation {
            credential: CredentialKind::ApiToken,
            transport: commit_back::config::Transport::Http,
            branch: "main".into(),
            repository: None,
            api: None,
            on_restricted: commit_back::config::OnRestricted::Fail,
            signed_with: None,
            committer_email: "bot@example.com".into(),
        };
        let b = commit_back::explain::classify::classify(&e, &situation);
        prop_assert_eq!(b.remote_messages, lines);
        prop_assert!(!b.remedies.is_empty());
    }
}

#[test]
fn awkward_file_names_are_committed_exactly() {
    let f = Fixture::new(Some(50));
    let names = [
        "gen/with space.txt",
        "gen/-leading-dash",
        "gen/new\nline",
        "gen/ünïcödé-数据.json",
        &format!("gen/{}", "long".repeat(50)),
    ];
    for n in &names {
        f.write(n, "x\n");
    }
    let run = f.run(&[("FILES", "gen/")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut reported: Vec<String> = run.report["commit"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    reported.sort();
    let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(reported, expected);
    let tree = git(&f.bare, &["ls-tree", "-r", "-z", "--name-only", "main"]);
    for n in &names {
        assert!(tree.split('\0').any(|p| p == *n), "{n:?} missing upstream");
    }
    // A FILES entry that starts with a dash is a path, never an option.
    f.write("-rf", "not an option\n");
    let run = f.run(&[("FILES", "-rf")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["commit"]["files"], serde_json::json!(["-rf"]));
}

#[test]
fn files_with_tens_of_thousands_of_entries() {
    // One environment string may hold at most 128 KiB on Linux (MAX_ARG_STRLEN),
    // which caps FILES near 60,000 one-character entries.
    let f = Fixture::new(Some(50));
    f.write("a", "1\n");
    let files = vec!["a"; 60_000].join(" ");
    let run = f.run(&[("FILES", &files)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["commit"]["files"], serde_json::json!(["a"]));
    run.assert_secret_absent(TOKEN, &f.clone);
}

#[test]
fn read_only_working_tree_is_a_clear_failure_and_changes_nothing() {
    let f = Fixture::new(Some(50));
    f.write("dist/ids.json", "[1]\n");
    let (head, st) = (git(&f.clone, &["rev-parse", "HEAD"]), status(&f.clone));
    let setup =
        "mount --bind \"$CLONE\" \"$CLONE\"\nmount -o remount,bind,ro \"$CLONE\"\ncd \"$CLONE\"";
    let Some(run) = crate::namespaced(&f, setup, "", &[]) else {
        eprintln!("skipped: needs root and unshare");
        return;
    };
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.status(), "failed");
    assert!(
        run.report["summary"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("read-only"),
        "{}",
        run.report["summary"]
    );
    assert_eq!(
        (git(&f.clone, &["rev-parse", "HEAD"]), status(&f.clone)),
        (head, st)
    );
    assert!(f.server.requests().is_empty());
    run.assert_secret_absent(TOKEN, &f.clone);
}

#[test]
fn full_disk_is_a_clear_failure_and_loses_nothing() {
    let f = Fixture::new(Some(50));
    f.write("dist/ids.json", "[\"generated\"]\n");
    // A 4 MiB disk holding the clone, then filled to the last byte.
    let setup = "T=\"$WORLD/small-disk\"\nmkdir -p \"$T\"\nmount -t tmpfs -o size=4m tmpfs \"$T\"\ncp -a \"$CLONE\" \"$T/repo\"\ndd if=/dev/zero of=\"$T/filler\" bs=4k 2>/dev/null || true\ncd \"$T/repo\"";
    let after =
        "echo \"HEAD=$(git rev-parse HEAD)\" >&2\necho \"ARTIFACT=$(cat dist/ids.json)\" >&2";
    let head = git(&f.clone, &["rev-parse", "HEAD"]);
    let Some(run) = crate::namespaced(&f, setup, after, &[("FILES", "dist/")]) else {
        eprintln!("skipped: needs root and unshare");
        return;
    };
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.status(), "failed");
    let summary = run.report["summary"].as_str().unwrap().to_lowercase();
    assert!(
        summary.contains("no space") || summary.contains("space left"),
        "{summary}"
    );
    assert!(
        run.stderr.contains(&format!("HEAD={head}")),
        "HEAD unchanged: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("ARTIFACT=[\"generated\"]"),
        "the artifact is still there: {}",
        run.stderr
    );
    assert!(f.server.requests().is_empty());
}
