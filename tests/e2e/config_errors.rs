//! Bad input: every problem listed at once, exit 2, one line per problem
//! naming the variable, a report on stdout, and the repository untouched.

use crate::{Fixture, TOKEN, status};
use testkit::git;

fn assert_untouched(f: &Fixture, head: &str, st: &str) {
    assert_eq!(git(&f.clone, &["rev-parse", "HEAD"]), head);
    assert_eq!(status(&f.clone), st);
    assert!(f.server.requests().is_empty(), "no contact with the server");
}

#[test]
fn every_problem_is_listed_and_nothing_changes() {
    let f = Fixture::new(Some(50));
    f.write("a.txt", "1\n");
    let (head, st) = (git(&f.clone, &["rev-parse", "HEAD"]), status(&f.clone));
    let run = f.run(&[
        ("FILES", "../escape /etc/passwd"),
        ("RETRIES", "many"),
        ("DRY_RUN", "perhaps"),
        ("ATLASSIAN_API_TOKEN", "half-given-123"),
    ]);
    assert_eq!(run.code, 2);
    assert_eq!(run.status(), "invalid_configuration");
    let vars: Vec<&str> = run.report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["variable"].as_str().unwrap())
        .collect();
    assert_eq!(
        vars,
        [
            "FILES",
            "FILES",
            "RETRIES",
            "DRY_RUN",
            "ATLASSIAN_ACCOUNT_EMAIL"
        ]
    );
    for v in &vars {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.starts_with(&format!("ERROR: {v}: "))),
            "{v}: {}",
            run.stderr
        );
    }
    assert_eq!(run.report["branch"], "main");
    assert_untouched(&f, &head, &st);
    run.assert_secret_absent("half-given-123", &f.clone);
    run.assert_secret_absent(TOKEN, &f.clone);
}

#[test]
fn symlink_leading_out_of_the_repository_is_refused() {
    let f = Fixture::new(Some(50));
    std::os::unix::fs::symlink("/etc", f.clone.join("outside")).unwrap();
    let (head, st) = (git(&f.clone, &["rev-parse", "HEAD"]), status(&f.clone));
    let run = f.run(&[("FILES", "outside/hostname")]);
    assert_eq!(run.code, 2);
    assert!(
        run.report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("symlink")
    );
    assert_untouched(&f, &head, &st);
}

#[test]
fn not_a_repository_and_missing_branch() {
    let f = Fixture::new(Some(50));
    let empty = f.world.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let run = f.run_in(&empty, &[("BITBUCKET_BRANCH", "")]);
    assert_eq!(run.code, 2);
    let vars: Vec<&str> = run.report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["variable"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["BITBUCKET_CLONE_DIR", "BRANCH"]);
}

#[test]
fn bad_ssh_key_is_a_configuration_error() {
    let f = Fixture::new(Some(50));
    let run = f.run(&[
        ("BITBUCKET_ACCESS_TOKEN", ""),
        (
            "SSH_KEY",
            "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUhlbGxvIHVzZXJAaG9zdA==",
        ),
    ]);
    assert_eq!(run.code, 2);
    assert_eq!(run.report["errors"][0]["variable"], "SSH_KEY");
    assert!(
        run.report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(".pub")
    );
}

#[test]
fn colour_follows_no_color() {
    let f = Fixture::new(Some(50));
    let plain = f.run(&[]);
    assert!(
        !plain.stderr.contains('\x1b'),
        "NO_COLOR set: {}",
        plain.stderr
    );
    let coloured = f.run(&[("NO_COLOR", "")]);
    assert!(coloured.stderr.contains("\x1b[32m✔"), "{}", coloured.stderr);
}

/// A token used as the URL's user name is refused without being echoed; a
/// plain user name (Bitbucket's clone URLs carry one) is removed from the URL
/// with a warning, and no URL shown anywhere carries userinfo.
#[test]
fn remote_url_userinfo() {
    let f = Fixture::new(Some(50));
    f.write("a.txt", "1\n");
    let (head, st) = (git(&f.clone, &["rev-parse", "HEAD"]), status(&f.clone));
    let url = f.server.url("ws/repo.git");
    let port_and_path = url.strip_prefix("http://").unwrap();
    let other_token = "ATCTT3xOtherToken0000-not-the-credential-9";
    for user in [TOKEN, other_token, "AbCdEf0123456789GhIjKl"] {
        let with_user = format!("http://{user}@{port_and_path}");
        let run = f.run(&[("REMOTE_URL", &with_user)]);
        assert_eq!(run.code, 2, "{user}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("ERROR: REMOTE_URL: ")
                || run.stderr.contains("\nERROR: REMOTE_URL: "),
            "{}",
            run.stderr
        );
        run.assert_secret_absent(user, &f.clone);
        assert_untouched(&f, &head, &st);
    }
    let run = f.run(&[("REMOTE_URL", &format!("http://jdoe@{port_and_path}"))]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["remote"], url);
    assert!(!run.stdout.contains("jdoe@") && run.stderr.contains("names a user before '@'"));
    let run = f.run(&[(
        "REMOTE_URL",
        &format!("http://x-token-auth@{port_and_path}"),
    )]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("WARNING"), "{}", run.stderr);
}
