//! Network faults against the local server: each ends in a clear report,
//! nothing lost, no hang past the configured bound.

use crate::{Fixture, TOKEN};
use testkit::{Answer, PipeRun, git};

fn died() -> Answer {
    Answer {
        status: 1,
        body: String::new(),
    }
}

fn truncated() -> Answer {
    Answer {
        status: 2,
        body: String::new(),
    }
}

#[test]
fn server_dies_mid_push_then_the_retry_lands() {
    let f = Fixture::new(Some(50));
    f.server.answer_next_for("git-receive-pack", vec![died()]);
    f.write("dist/ids.json", "[1]\n");
    let run = f.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["attempts"], 2);
    f.assert_landed(&run);
    git(&f.bare, &["fsck", "--strict"]);
    run.assert_secret_absent(TOKEN, &f.clone);
}

#[test]
fn server_dying_on_every_attempt_is_a_network_blockage_with_the_commit_kept() {
    let f = Fixture::new(Some(50));
    f.server
        .answer_next_for("git-receive-pack", vec![died(), died(), died()]);
    f.write("dist/ids.json", "[2]\n");
    let before = f.upstream_tip();
    let run = f.run(&[("RETRIES", "2")]);
    assert_eq!(run.code, 9, "{}", run.stderr);
    assert_eq!(run.blockage_kind(), "network");
    assert_eq!(run.report["attempts"], 3);
    assert_eq!(f.upstream_tip(), before);
    let bundle = f
        .clone
        .join(run.report["recovery"]["bundle"].as_str().unwrap());
    git(
        &f.clone,
        &["bundle", "verify", "-q", bundle.to_str().unwrap()],
    );
    run.assert_secret_absent(TOKEN, &f.clone);
}

#[test]
fn truncated_answers_are_retried() {
    // The verdict of a push cut off halfway: the server took the push, the
    // client cannot know; the retry finds the branch already there.
    let f = Fixture::new(Some(50));
    f.server
        .answer_next_for("git-receive-pack", vec![truncated()]);
    f.write("dist/ids.json", "[3]\n");
    let run = f.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["attempts"], 2);
    f.assert_landed(&run);
    // A ref advertisement cut off halfway.
    let f = Fixture::new(Some(50));
    f.server.answer_next_for("info/refs", vec![truncated()]);
    f.write("dist/ids.json", "[4]\n");
    let run = f.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    f.assert_landed(&run);
    run.assert_secret_absent(TOKEN, &f.clone);
}

/// The binary in a private mount namespace whose `/etc/resolv.conf` names
/// only 127.0.0.1: name lookups stay on this machine and fail fast.
fn without_dns(f: &Fixture, env: &[(&str, &str)]) -> Option<PipeRun> {
    let resolv = f.world.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    )
    .unwrap();
    let setup = format!("mount --bind '{}' /etc/resolv.conf", resolv.display());
    crate::namespaced(f, &setup, "", env)
}

#[test]
fn a_name_that_does_not_resolve_is_a_network_blockage() {
    let f = Fixture::new(Some(50));
    f.write("dist/ids.json", "[5]\n");
    let started = std::time::Instant::now();
    let Some(run) = without_dns(
        &f,
        &[
            ("REMOTE_URL", "http://git.nowhere.invalid/ws/repo.git"),
            ("RETRIES", "1"),
            ("NETWORK_TIMEOUT", "5"),
        ],
    ) else {
        eprintln!("skipped: needs root and unshare");
        return;
    };
    assert_eq!(run.code, 9, "{}", run.stderr);
    assert_eq!(run.blockage_kind(), "network");
    assert!(
        run.stderr.contains("git.nowhere.invalid")
            || run.report["blockage"]["explanation"].is_string()
    );
    assert!(!run.report["recovery"].is_null());
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    run.assert_secret_absent(TOKEN, &f.clone);
}

#[test]
fn eight_pipes_pushing_at_once_all_land_exactly_once() {
    crate::races::pipes_at_once(8, &[("RETRIES", "10")]);
}

/// A server that stops reading the upload: the push gives up after
/// NETWORK_TIMEOUT without progress, and the retry lands.
#[test]
fn stalled_upload_is_cut_off_after_network_timeout_then_retried() {
    let f = Fixture::new(Some(50));
    // Incompressible and larger than loopback's socket buffers, so the
    // upload really blocks when the server stops reading.
    let data = testkit::incompressible(24 << 20, 1);
    std::fs::create_dir_all(f.clone.join("dist")).unwrap();
    std::fs::write(f.clone.join("dist/big.bin"), &data).unwrap();
    let stall = Answer {
        status: 3,
        body: String::new(),
    };
    f.server.answer_next_for("git-receive-pack", vec![stall]);
    let started = std::time::Instant::now();
    let run = f.run(&[("NETWORK_TIMEOUT", "2"), ("RETRIES", "1")]);
    let elapsed = started.elapsed();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["attempts"], 2);
    assert!(
        run.stderr.contains("the server read nothing for 2 s"),
        "{}",
        run.stderr
    );
    f.assert_landed(&run);
    assert!(f.server.requests().iter().any(|r| r.status == 3));
    // Two attempts, one of them cut off after 2 s of silence.
    assert!(elapsed < std::time::Duration::from_secs(15), "{elapsed:?}");
    run.assert_secret_absent(TOKEN, &f.clone);
}
