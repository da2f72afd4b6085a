//! A push that landed is never reported as failed: the server applies a push
//! and drops the connection before answering (a lost answer), alone or among
//! 503s and other pipes' commits. Each run must end `pushed`, exit 0, with
//! exactly one artifact commit upstream and no recovery files.

use crate::{Fixture, write_file};
use testkit::{Answer, PipeRun, git};

fn answer(status: u16) -> Answer {
    Answer {
        status,
        body: if status == 503 {
            "Service Unavailable\n".into()
        } else {
            String::new()
        },
    }
}

/// Applied, then the connection closes without a byte of answer.
fn lost() -> Answer {
    answer(4)
}

/// Served as usual (lets one request through a queue of faults).
fn pass() -> Answer {
    answer(5)
}

/// The run reports `pushed` for the commit main holds, once, and kept nothing.
fn assert_pushed_once(f: &Fixture, run: &PipeRun) {
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    let sha = run.report["commit"]["sha"].as_str().unwrap();
    let log = git(&f.bare, &["log", "--format=%H %s", "main"]);
    assert_eq!(
        log.matches("Update build artifacts").count(),
        1,
        "exactly one artifact commit upstream:\n{log}"
    );
    assert!(log.contains(sha), "the reported commit is upstream:\n{log}");
    assert!(run.report["recovery"].is_null());
    assert!(!f.clone.join("commit-back-recovery").exists());
    git(&f.bare, &["fsck", "--strict"]);
}

fn outcomes(run: &PipeRun) -> Vec<String> {
    run.report["attempt_outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn lost_answer_on_the_last_attempt() {
    let f = Fixture::new(Some(50));
    f.server.answer_next_for(
        "git-receive-pack",
        vec![answer(503), answer(503), answer(503), lost()],
    );
    f.write("dist/ids.json", "[1]\n");
    let run = f.run(&[("RETRIES", "3")]);
    assert_pushed_once(&f, &run);
    f.assert_landed(&run);
    assert_eq!(
        outcomes(&run),
        ["network", "network", "network", "answer_lost"]
    );
    assert!(
        run.stderr
            .contains("4 attempts: 3 failed on the network (HTTP 503), 1 lost its answer"),
        "{}",
        run.stderr
    );
    assert!(
        run.report["summary"]
            .as_str()
            .unwrap()
            .contains("attempt 4 was lost")
    );
}

#[test]
fn lost_answer_with_retries_zero() {
    let f = Fixture::new(Some(50));
    f.server.answer_next_for("git-receive-pack", vec![lost()]);
    f.write("dist/ids.json", "[2]\n");
    let run = f.run(&[("RETRIES", "0")]);
    assert_pushed_once(&f, &run);
    f.assert_landed(&run);
    assert_eq!(outcomes(&run), ["answer_lost"]);
}

#[test]
fn lost_answer_then_503s() {
    let f = Fixture::new(Some(50));
    // Attempt 1 reaches receive-pack and loses its answer; the ref
    // advertisements of attempts 2-4 answer 503.
    f.server.answer_next_for("git-receive-pack", vec![lost()]);
    f.server.answer_next_for(
        "info/refs",
        vec![pass(), answer(503), answer(503), answer(503)],
    );
    f.write("dist/ids.json", "[3]\n");
    let run = f.run(&[("RETRIES", "3")]);
    assert_pushed_once(&f, &run);
    f.assert_landed(&run);
    assert_eq!(outcomes(&run)[0], "answer_lost");
}

/// Right after the first push is applied (and its answer lost), another
/// pipe lands a commit on top of it.
fn someone_else_commits_on_top_of_the_first_push(f: &Fixture) {
    f.world.hook(
        &f.bare,
        "post-receive",
        "#!/bin/sh\n[ -e other-done ] && exit 0\ntouch other-done\nread old new ref\n\
         c=$(echo 'someone else' | GIT_AUTHOR_NAME=o GIT_AUTHOR_EMAIL=o@x GIT_COMMITTER_NAME=o \
         GIT_COMMITTER_EMAIL=o@x git commit-tree \"$new^{tree}\" -p \"$new\")\n\
         git update-ref refs/heads/main \"$c\"\n",
    );
}

#[test]
fn lost_answer_then_someone_else_commits_on_top() {
    let f = Fixture::new(Some(50));
    someone_else_commits_on_top_of_the_first_push(&f);
    f.server.answer_next_for("git-receive-pack", vec![lost()]);
    f.write("dist/ids.json", "[4]\n");
    let run = f.run(&[("RETRIES", "1")]);
    assert_pushed_once(&f, &run);
    let sha = run.report["commit"]["sha"].as_str().unwrap();
    assert_eq!(
        git(&f.bare, &["rev-parse", "main^"]),
        sha,
        "ours, under theirs"
    );
    assert_eq!(outcomes(&run)[0], "answer_lost");
}

/// Before rebasing after a race, a commit of ours already upstream is found:
/// no replay, no duplicate.
#[test]
fn lost_answer_found_before_rebasing() {
    let f = Fixture::new(Some(50));
    someone_else_commits_on_top_of_the_first_push(&f);
    f.server.answer_next_for("git-receive-pack", vec![lost()]);
    f.write("dist/ids.json", "[6]\n");
    let run = f.run(&[("RETRIES", "3")]);
    assert_pushed_once(&f, &run);
    assert!(!run.stderr.contains("replayed"), "{}", run.stderr);
    assert_eq!(outcomes(&run), ["answer_lost", "non_fast_forward"]);
}

#[test]
fn a_server_that_cannot_be_asked_leaves_the_verdict_open() {
    let f = Fixture::new(Some(50));
    // The push is applied and its answer lost; every request after it
    // fails, so whether it landed cannot be known.
    f.server.answer_next_for("git-receive-pack", vec![lost()]);
    f.server
        .answer_next_for("info/refs", [vec![pass()], vec![answer(1); 8]].concat());
    f.write("dist/ids.json", "[5]\n");
    let run = f.run(&[("RETRIES", "1")]);
    assert_eq!(run.code, 9, "{}", run.stderr);
    assert_eq!(
        f.upstream_tip(),
        run.report["commit"]["sha"].as_str().unwrap()
    );
    let explanation = run.report["blockage"]["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("the push may have landed; check main before rerunning"),
        "{explanation}"
    );
    assert!(!run.report["recovery"].is_null(), "the commit is kept");
}

/// Several pipes, several rounds, against a server that answers 503, loses
/// answers after applying pushes, stops reading an upload (cut off after
/// NETWORK_TIMEOUT) and lets other commits land: every artifact is upstream
/// exactly once and every report agrees with the server.
#[test]
fn pipes_among_faults_land_exactly_once_and_say_so() {
    let f = Fixture::new(Some(50));
    let (pipes, rounds) = (4, 3);
    for round in 0..rounds {
        // A mix of faults for whichever pushes come next.
        f.server.answer_next_for(
            "git-receive-pack",
            vec![
                lost(),
                answer(503),
                answer(3), // reads the request's head, then stalls the upload
                lost(),
                pass(),
                lost(),
                answer(503),
            ],
        );
        if round == 1 {
            crate::races::upstream_commit(&f, "other", "other/change.txt", "theirs\n");
        }
        let clones: Vec<_> = (0..pipes)
            .map(|i| {
                let name = format!("r{round}p{i}");
                let c = f
                    .world
                    .pipelines_clone(&f.bare, &name, "main", Some(50), "unused");
                write_file(&c, &format!("out/{name}.json"), &format!("{name}\n"));
                c
            })
            .collect();
        let runs: Vec<PipeRun> = std::thread::scope(|s| {
            let handles: Vec<_> = clones
                .iter()
                .map(|c| s.spawn(|| f.run_in(c, &[("RETRIES", "10"), ("NETWORK_TIMEOUT", "2")])))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, r) in runs.iter().enumerate() {
            assert_eq!(r.code, 0, "round {round} pipe {i}: {}", r.stderr);
            assert_eq!(r.status(), "pushed");
            assert!(r.report["recovery"].is_null());
            let sha = r.report["commit"]["sha"].as_str().unwrap();
            assert_eq!(
                git(&f.bare, &["merge-base", "--is-ancestor", sha, "main"]),
                "",
                "the reported commit is upstream"
            );
        }
    }
    // The faults were met: every round's first push was applied unanswered.
    let lost_served = f
        .server
        .requests()
        .iter()
        .filter(|r| r.user.as_deref() == Some("fault-injected"))
        .count();
    assert!(lost_served >= rounds, "{lost_served} lost answers served");
    let log = git(&f.bare, &["log", "--format=%s", "main"]);
    assert_eq!(
        log.matches("Update build artifacts").count(),
        pipes * rounds,
        "each artifact exactly once:\n{log}"
    );
    for round in 0..rounds {
        for i in 0..pipes {
            let name = format!("r{round}p{i}");
            assert_eq!(
                git(&f.bare, &["show", &format!("main:out/{name}.json")]),
                name
            );
        }
    }
    git(&f.bare, &["fsck", "--strict"]);
}
