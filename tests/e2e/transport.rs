//! The smart-HTTP transport as git behaves: a repository that redirects is
//! followed (same host only) and pushed at its new home; NETWORK_TIMEOUT
//! bounds silence, not the length of a transfer.

use crate::{Fixture, TOKEN};
use std::time::{Duration, Instant};
use testkit::{Answer, git};

#[test]
fn a_renamed_repository_is_followed_and_the_new_url_reported() {
    let f = Fixture::new(Some(50));
    let renamed = f.world.root().join("ws/renamed.git");
    git(
        f.world.path(),
        &[
            "clone",
            "-q",
            "--bare",
            f.bare.to_str().unwrap(),
            renamed.to_str().unwrap(),
        ],
    );
    git(&renamed, &["config", "http.receivepack", "true"]);
    let new_url = f.server.url("ws/renamed.git");
    f.server.answer_next_for(
        "info/refs",
        vec![Answer {
            status: 301,
            body: format!("{new_url}/info/refs?service=git-receive-pack"),
        }],
    );
    let old_tip = f.upstream_tip();
    f.write("dist/ids.json", "[11]\n");
    let run = f.run(&[]);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "pushed");
    assert_eq!(
        git(&renamed, &["rev-parse", "main"]),
        run.report["commit"]["sha"].as_str().unwrap()
    );
    assert_eq!(f.upstream_tip(), old_tip, "nothing went to the old URL");
    assert!(
        run.stderr.contains(&format!("set REMOTE_URL={new_url}")),
        "{}",
        run.stderr
    );
    let requests = f.server.requests();
    let posts: Vec<_> = requests.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1, "{requests:?}");
    assert!(
        posts[0].path.ends_with("ws/renamed.git/git-receive-pack"),
        "{requests:?}"
    );
    assert_eq!(
        posts[0].user.as_deref(),
        Some("token-user"),
        "the credential went along"
    );
    run.assert_secret_absent(TOKEN, &f.clone);
}

#[test]
fn a_redirect_to_another_host_is_not_followed() {
    let f = Fixture::new(Some(50));
    // Same server, but named by another host: the credential must not go.
    let elsewhere = f
        .server
        .url("ws/repo.git")
        .replace("127.0.0.1", "localhost");
    f.server.answer_next_for(
        "info/refs",
        vec![Answer {
            status: 302,
            body: format!("{elsewhere}/info/refs?service=git-receive-pack"),
        }],
    );
    f.write("dist/ids.json", "[12]\n");
    let run = f.run(&[("RETRIES", "0")]);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.status(), "blocked");
    let explanation = run.report["blockage"]["explanation"].as_str().unwrap();
    assert!(explanation.contains("another host"), "{explanation}");
    assert!(explanation.contains("set REMOTE_URL"), "{explanation}");
    assert_eq!(
        f.server.requests().len(),
        1,
        "the redirect was not followed"
    );
    assert!(run.report["recovery"].is_object());
    run.assert_secret_absent(TOKEN, &f.clone);
}

/// A steady 1 MB/s upload that lasts more than ten times NETWORK_TIMEOUT
/// lands in one attempt: the timeout bounds silence, not duration.
#[test]
fn a_slow_steady_upload_is_never_a_timeout() {
    let f = Fixture::new(Some(50));
    f.server.throttle_uploads(1_000_000);
    let big = testkit::incompressible(21 * 1000 * 1000, 11);
    std::fs::create_dir_all(f.clone.join("dist")).unwrap();
    std::fs::write(f.clone.join("dist/big.bin"), &big).unwrap();
    let started = Instant::now();
    let run = f.run(&[("NETWORK_TIMEOUT", "2"), ("RETRIES", "0")]);
    run.assert_secret_absent(TOKEN, &f.clone);
    let elapsed = started.elapsed();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["attempts"], 1);
    f.assert_landed(&run);
    // The premise: the upload took longer than 10 × NETWORK_TIMEOUT.
    assert!(elapsed > Duration::from_secs(20), "{elapsed:?}");
}

/// A server that accepts and then says nothing is given up after
/// NETWORK_TIMEOUT, before and after the upload.
#[test]
fn a_silent_server_is_dropped_within_the_timeout() {
    for (path, what) in [
        ("info/refs", "the ref advertisement"),
        ("git-receive-pack", "the answer to the upload"),
    ] {
        let f = Fixture::new(Some(50));
        f.server.answer_next_for(
            path,
            vec![Answer {
                status: 0,
                body: String::new(),
            }],
        );
        f.write("dist/ids.json", "[13]\n");
        let started = Instant::now();
        let run = f.run(&[("NETWORK_TIMEOUT", "2"), ("RETRIES", "0")]);
        run.assert_secret_absent(TOKEN, &f.clone);
        let elapsed = started.elapsed();
        assert_eq!(run.code, 9, "{what}: {}", run.stderr);
        assert_eq!(run.blockage_kind(), "network", "{what}");
        let detail = run.report["attempt_outcomes"][0]["detail"]
            .as_str()
            .unwrap_or_default();
        assert!(detail.contains("sent nothing for 2 s"), "{what}: {detail}");
        assert!(elapsed < Duration::from_secs(4), "{what}: {elapsed:?}");
        assert!(run.report["recovery"].is_object(), "{what}");
    }
}
