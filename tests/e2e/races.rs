//! Races: the branch moves while the pipe works. The artifact commit is
//! fetched-and-rebased and pushed again; real conflicts stop with the files named.

use crate::{Fixture, write_file};
use testkit::{PipeRun, git};

/// Another developer pushes to main after the pipe's clone was made.
pub fn upstream_commit(f: &Fixture, name: &str, rel: &str, content: &str) -> String {
    let other = f
        .world
        .pipelines_clone(&f.bare, name, "main", None, "unused");
    write_file(&other, rel, content);
    git(&other, &["add", "-A"]);
    git(
        &other,
        &["commit", "-qm", &format!("upstream change to {rel}")],
    );
    git(&other, &["push", "-q", f.bare.to_str().unwrap(), "main"]);
    git(&other, &["rev-parse", "HEAD"])
}

#[test]
fn remote_moved_on_is_fetched_rebased_and_pushed() {
    let f = Fixture::new(Some(50));
    let theirs = upstream_commit(&f, "dev", "src/lib.rs", "fn main() {}\n");
    f.write("dist/ids.json", "[1]\n");
    let run = f.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["attempts"], 2);
    assert_eq!(run.report["commit"]["parent"], theirs.as_str());
    assert_eq!(
        run.report["commit"]["files"],
        serde_json::json!(["dist/ids.json"])
    );
    f.assert_landed(&run);
    // The clone follows: it has upstream's file and is clean.
    assert_eq!(
        std::fs::read_to_string(f.clone.join("src/lib.rs")).unwrap(),
        "fn main() {}\n"
    );
    assert_eq!(crate::status(&f.clone), "");
    git(&f.bare, &["fsck", "--strict"]);
}

#[test]
fn remote_moved_on_from_a_depth_1_clone() {
    let f = Fixture::new(Some(1));
    upstream_commit(&f, "dev", "src/lib.rs", "x\n");
    upstream_commit(&f, "dev2", "src/other.rs", "y\n");
    f.write("dist/ids.json", "[1]\n");
    let run = f.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    git(&f.bare, &["fsck", "--strict"]);
}

#[test]
fn same_file_changed_upstream_is_a_rebase_conflict() {
    let f = Fixture::new(Some(50));
    upstream_commit(&f, "dev", "dist/ids.json", "[\"theirs\"]\n");
    f.write("dist/ids.json", "[\"ours\"]\n");
    let before = f.upstream_tip();
    let run = f.run(&[]);
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert_eq!(run.blockage_kind(), "rebase_conflict");
    assert_eq!(
        run.report["blockage"]["files"],
        serde_json::json!(["dist/ids.json"])
    );
    assert!(
        run.report["blockage"]["explanation"]
            .as_str()
            .unwrap()
            .contains("dist/ids.json")
    );
    assert!(!run.report["recovery"].is_null());
    assert_eq!(f.upstream_tip(), before);
}

#[test]
fn identical_change_already_upstream_is_nothing_to_commit() {
    let f = Fixture::new(Some(50));
    upstream_commit(&f, "dev", "dist/ids.json", "[1]\n");
    f.write("dist/ids.json", "[1]\n");
    let run = f.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "nothing_to_commit");
}

#[test]
fn ref_lock_race_answer_is_retried() {
    let f = Fixture::new(Some(50));
    // The first push meets the server-side lock race git reports; later ones pass.
    let marker = f.world.path().join("lock-raced");
    f.world.hook(
        &f.bare,
        "pre-receive",
        &format!(
            "#!/bin/sh\nif [ ! -e {m} ]; then touch {m}; echo \"error: cannot lock ref 'refs/heads/main': is at 1111 but expected 2222\" >&2; exit 1; fi\nexit 0\n",
            m = marker.display()
        ),
    );
    f.write("a.txt", "1\n");
    let run = f.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["attempts"], 2);
}

#[test]
fn retries_zero_reports_non_fast_forward() {
    let f = Fixture::new(Some(50));
    upstream_commit(&f, "dev", "src/lib.rs", "x\n");
    f.write("a.txt", "1\n");
    let run = f.run(&[("RETRIES", "0")]);
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert_eq!(run.blockage_kind(), "non_fast_forward");
}

/// `n` pipes, each in its own clone with its own artifact, pushing to main at
/// once: every run lands, and main holds every artifact commit exactly once.
pub fn pipes_at_once(n: usize, extra: &[(&str, &str)]) {
    let f = Fixture::new(Some(50));
    let clones: Vec<_> = (0..n)
        .map(|i| {
            let c =
                f.world
                    .pipelines_clone(&f.bare, &format!("pipe{i}"), "main", Some(50), "unused");
            write_file(&c, &format!("out/pipe{i}.json"), &format!("{i}\n"));
            c
        })
        .collect();
    let runs: Vec<PipeRun> = std::thread::scope(|s| {
        let handles: Vec<_> = clones
            .iter()
            .map(|c| s.spawn(|| f.run_in(c, extra)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &runs {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.status(), "pushed");
    }
    let log = git(&f.bare, &["log", "--format=%s", "main"]);
    assert_eq!(
        log.matches("Update build artifacts").count(),
        n,
        "each lands exactly once:\n{log}"
    );
    for i in 0..n {
        assert_eq!(
            git(&f.bare, &["show", &format!("main:out/pipe{i}.json")]),
            i.to_string()
        );
    }
    git(&f.bare, &["fsck", "--strict"]);
}

/// A pipe loses a race only when another one lands between its fetch and
/// its push, and each of the others lands once: with RETRIES at one less
/// than the number of pipes every run lands, whatever the timing. (With
/// the default 3, the fifth pipe landing last lost four races once in CI.)
#[test]
fn five_pipes_pushing_at_once_all_land() {
    pipes_at_once(5, &[("RETRIES", "4")]);
}
