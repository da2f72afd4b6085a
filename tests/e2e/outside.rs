//! Beyond Pipelines: no BITBUCKET_* variables, defaults from the checkout,
//! the command-line face, and the README's examples run for real.

use crate::{BIN, Fixture, TOKEN};
use std::process::Command;
use testkit::git;

fn static_or_debug_binary() -> String {
    std::env::var("COMMIT_BACK_STATIC_BIN")
        .ok()
        .and_then(|p| std::fs::canonicalize(p).ok())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| BIN.to_string())
}

/// A Jenkins-style checkout: detached HEAD, origin URL carrying a credential.
fn jenkins_checkout(f: &Fixture) -> String {
    let origin_secret = "jenkins-origin-secret-31337";
    let origin = f
        .server
        .url("ws/repo.git")
        .replace("http://", &format!("http://x-token-auth:{origin_secret}@"));
    git(&f.clone, &["remote", "set-url", "origin", &origin]);
    let head = git(&f.clone, &["rev-parse", "HEAD"]);
    git(&f.clone, &["checkout", "-q", "--detach", &head]);
    origin_secret.to_string()
}

fn script(f: &Fixture, name: &str, env: &[(&str, &str)]) -> (i32, String, serde_json::Value) {
    let out = Command::new("sh")
        .arg(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR")))
        .current_dir(&f.clone)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(
            std::env::var("DOCKER_HOST")
                .ok()
                .map(|h| ("DOCKER_HOST", h)),
        )
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let report =
        std::fs::read_to_string(f.clone.join("commit-back-report.json")).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report =
        serde_json::from_str(&report).unwrap_or_else(|e| panic!("{e}: {report}\n{stderr}"));
    (out.status.code().unwrap_or(-1), stderr, report)
}

#[test]
fn shell_example_with_the_static_binary_in_a_jenkins_checkout() {
    let f = Fixture::new(Some(50));
    let origin_secret = jenkins_checkout(&f);
    f.write("generated/ids.json", "[1]\n");
    let bin = static_or_debug_binary();
    let (code, stderr, report) = script(
        &f,
        "push-back.sh",
        &[
            ("COMMIT_BACK", &bin),
            ("BITBUCKET_ACCESS_TOKEN", TOKEN),
            ("GIT_BRANCH", "origin/main"),
            ("NO_COLOR", "1"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["status"], "pushed");
    // Remote from origin, without origin's embedded credential.
    assert_eq!(report["remote"], f.server.url("ws/repo.git"));
    assert_eq!(report["repository"], "ws/repo");
    assert_eq!(f.upstream_tip(), report["commit"]["sha"].as_str().unwrap());
    for secret in [TOKEN, origin_secret.as_str()] {
        assert!(
            !stderr.contains(secret) && !report.to_string().contains(secret),
            "{secret} leaked"
        );
    }
}

#[test]
fn laptop_run_takes_branch_and_remote_from_the_checkout() {
    let f = Fixture::new(Some(50));
    f.write("notes/today.md", "done\n");
    let pairs = [
        ("BITBUCKET_ACCESS_TOKEN", TOKEN),
        ("NO_COLOR", "1"),
        ("DEBUG", "true"),
    ];
    let run = testkit::run_pipe(std::path::Path::new(BIN), &f.clone, &pairs);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["branch"], "main");
    assert!(
        run.stderr.contains("DEBUG: Not in Bitbucket Pipelines"),
        "{}",
        run.stderr
    );
    f.assert_landed(&run);
    // Detached and no BRANCH: a clear error naming the variable, exit 2.
    let head = git(&f.clone, &["rev-parse", "HEAD"]);
    git(&f.clone, &["checkout", "-q", "--detach", &head]);
    let run = testkit::run_pipe(std::path::Path::new(BIN), &f.clone, &pairs);
    assert_eq!(run.code, 2);
    assert_eq!(run.report["errors"][0]["variable"], "BRANCH");
    assert!(
        run.report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("detached")
    );
    // No credential outside Pipelines: said plainly, exit 2.
    let run = testkit::run_pipe(std::path::Path::new(BIN), &f.clone, &[("BRANCH", "main")]);
    assert_eq!(run.code, 2);
    assert!(run.stdout.contains("not Bitbucket Pipelines"));
}

#[test]
fn command_line_face() {
    let out = Command::new(BIN)
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for v in commit_back::variables::VARIABLES {
        assert!(help.contains(v.name), "--help lacks {}", v.name);
    }
    assert!(help.contains("branch_restriction      4"));
    let out = Command::new(BIN)
        .arg("--version")
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("commit-back {}", env!("CARGO_PKG_VERSION"))
    );
    // Unknown arguments: a configuration error, with the report on stdout.
    let f = Fixture::new(Some(50));
    f.write("a.txt", "1\n");
    let out = Command::new(BIN)
        .arg("--force")
        .current_dir(&f.clone)
        .env_clear()
        .env("BITBUCKET_ACCESS_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["errors"][0]["variable"], "ARGUMENTS");
    assert!(f.server.requests().is_empty());
    assert_eq!(crate::status(&f.clone), "?? a.txt", "nothing changed");
}

#[test]
fn docker_example_as_jenkins_runs_it() {
    let Ok(image) = std::env::var("COMMIT_BACK_IMAGE") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the container tests"
        );
        eprintln!("skipped: COMMIT_BACK_IMAGE is not set");
        return;
    };
    let f = Fixture::new(Some(50));
    let origin_secret = jenkins_checkout(&f);
    f.write("generated/ids.json", "[2]\n");
    let (code, stderr, report) = script(
        &f,
        "commit-back-docker.sh",
        &[
            ("COMMIT_BACK_IMAGE", &image),
            ("DOCKER_NETWORK", "host"),
            ("BITBUCKET_ACCESS_TOKEN", TOKEN),
            ("GIT_BRANCH", "origin/main"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["status"], "pushed");
    assert_eq!(f.upstream_tip(), report["commit"]["sha"].as_str().unwrap());
    for secret in [TOKEN, origin_secret.as_str()] {
        assert!(
            !stderr.contains(secret) && !report.to_string().contains(secret),
            "{secret} leaked"
        );
    }
}
