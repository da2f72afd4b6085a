//! The push state machine's invariants, against the real git server: another
//! repository or branch as the target leaves the build's clone byte for byte
//! as it was; a dirty file outside FILES never breaks a pushable run; every
//! failure after the commit keeps it; a remote tag is never moved.

use crate::{Fixture, TOKEN, status, write_file};
use testkit::{Answer, git, shell};

/// Everything of the clone a run could touch: HEAD, every ref, the index's
/// bytes and the working tree's files with their contents (`.git` aside).
fn snapshot(dir: &std::path::Path) -> String {
    let mut out = String::new();
    out.push_str(&std::fs::read_to_string(dir.join(".git/HEAD")).unwrap());
    out.push_str(&git(
        dir,
        &["for-each-ref", "--format=%(refname) %(objectname)"],
    ));
    let index = std::fs::read(dir.join(".git/index")).unwrap();
    out.push_str(&format!(
        "\nindex {} bytes {:?}\n",
        index.len(),
        sha(&index)
    ));
    let mut files: Vec<_> = testkit::walk(dir)
        .into_iter()
        .filter(|p| {
            let rel = p.strip_prefix(dir).unwrap();
            !rel.starts_with(".git") && !rel.starts_with("commit-back-recovery")
        })
        .collect();
    files.sort();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        out.push_str(&format!(
            "{} {}\n",
            f.strip_prefix(dir).unwrap().display(),
            sha(&bytes)
        ));
    }
    out
}

/// Someone else pushes `script`'s commit to main while the build runs.
fn upstream_moves(f: &Fixture, script: &str) {
    let other = f
        .world
        .pipelines_clone(&f.bare, "other", "main", None, f.bare.to_str().unwrap());
    shell(&other, &format!("{script} && git push -q origin main"));
}

/// The oracle for a copy into another repository: git in a twin clone of
/// `bare` at `tip` runs `script` (with BUILD naming the build's clone), then
/// `git add -A -- FILES` and `git commit`; the tree it made.
fn tree_git_makes(
    f: &Fixture,
    bare: &std::path::Path,
    tip: &str,
    script: &str,
    files: &str,
) -> String {
    let twin = f.world.path().join(format!("twin-{}", &tip[..12]));
    git(
        f.world.path(),
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            twin.to_str().unwrap(),
        ],
    );
    git(&twin, &["checkout", "-q", tip]);
    shell(
        &twin,
        &format!(
            "BUILD='{}'\n{script}\ngit add -A -- {files}\ngit commit -qm copy",
            f.clone.display()
        ),
    );
    git(&twin, &["rev-parse", "HEAD^{tree}"])
}

fn sha(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

#[test]
fn another_repository_gets_a_copy_and_the_clone_stays_as_the_build_left_it() {
    let f = Fixture::new(Some(50));
    let docs = f.world.upstream("ws/docs", 2);
    let docs_tip = git(&docs, &["rev-parse", "main"]);
    f.write("dist/api.json", "{\"v\": 2}\n");
    f.write("dist/sub/extra.txt", "extra\n");
    f.write("untracked-elsewhere.txt", "not in FILES\n");
    let before = snapshot(&f.clone);
    // RETRIES=0: building on the other repository's tip is no race.
    let env = [
        ("REMOTE_URL", f.server.url("ws/docs.git")),
        ("FILES", "dist/".into()),
        ("RETRIES", "0".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = f.run(&env);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "pushed");
    assert_eq!(snapshot(&f.clone), before, "the build's clone was touched");
    let tip = git(&docs, &["rev-parse", "main"]);
    assert_eq!(run.report["commit"]["sha"], tip.as_str());
    assert_eq!(git(&docs, &["rev-parse", "main~1"]), docs_tip);
    assert_eq!(
        git(&docs, &["diff", "--name-status", &docs_tip, "main"]),
        "A\tdist/api.json\nA\tdist/sub/extra.txt"
    );
    assert_eq!(git(&docs, &["show", "main:dist/api.json"]), "{\"v\": 2}");
    assert_eq!(
        git(&docs, &["rev-parse", "main^{tree}"]),
        tree_git_makes(&f, &docs, &docs_tip, "cp -r \"$BUILD/dist\" .", "dist/"),
        "the tree git makes of the same copy"
    );
    // Only the new objects travelled: none of the build repository's history.
    assert_eq!(git(&docs, &["rev-list", "--count", "main"]), "3");
    git(&docs, &["fsck", "--strict"]);

    // A rerun finds the copy there already.
    let again = f.run(&env);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.status(), "nothing_to_commit", "{}", again.stderr);
    assert_eq!(git(&docs, &["rev-parse", "main"]), tip);
    assert_eq!(snapshot(&f.clone), before);
    again.assert_secret_absent(TOKEN, &f.clone);
}

#[test]
fn another_repository_needs_the_files_named() {
    let f = Fixture::new(Some(50));
    f.world.upstream("ws/docs", 1);
    f.write("dist/api.json", "{}\n");
    let before = snapshot(&f.clone);
    let run = f.run(&[
        ("REPOSITORY", "ws/docs"),
        ("REMOTE_URL", &f.server.url("ws/docs.git")),
    ]);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.status(), "invalid_configuration");
    assert!(
        run.stderr.contains("ERROR: FILES: ") && run.stderr.contains("name the files to copy"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&f.clone), before);
}

#[test]
fn another_branch_gets_the_changes_and_the_clone_stays_as_the_build_left_it() {
    let f = Fixture::new(Some(50));
    git(&f.bare, &["branch", "release", "main~1"]);
    let release_before = git(&f.bare, &["rev-parse", "release"]);
    let main_before = f.upstream_tip();
    f.write("dist/ids.json", "[7]\n");
    let before = snapshot(&f.clone);
    let run = f.run(&[("BRANCH", "release"), ("RETRIES", "0")]);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "pushed");
    assert_eq!(snapshot(&f.clone), before, "the build's clone was touched");
    assert_eq!(
        run.report["commit"]["sha"],
        git(&f.bare, &["rev-parse", "release"]).as_str()
    );
    assert_eq!(git(&f.bare, &["rev-parse", "release~1"]), release_before);
    assert_eq!(
        git(&f.bare, &["diff", "--name-only", "release~1", "release"]),
        "dist/ids.json"
    );
    assert_eq!(f.upstream_tip(), main_before, "main untouched");
    assert_eq!(
        git(&f.bare, &["rev-parse", "release^{tree}"]),
        tree_git_makes(
            &f,
            &f.bare,
            &release_before,
            "mkdir -p dist\ncp \"$BUILD/dist/ids.json\" dist/",
            "dist/"
        ),
        "the tree git makes of the same change on release"
    );

    // A branch that does not exist yet is created from the build's commit.
    let run = f.run(&[("BRANCH", "generated/ids")]);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        git(&f.bare, &["rev-parse", "generated/ids~1"]),
        git(&f.clone, &["rev-parse", "HEAD"])
    );
    assert_eq!(snapshot(&f.clone), before);
}

#[test]
fn a_dirty_file_outside_files_never_breaks_a_pushable_run() {
    let f = Fixture::new(Some(50));
    // Upstream changes history/1.txt; the build has its own edit of it.
    upstream_moves(
        &f,
        "echo upstream > history/1.txt && git commit -qam 'upstream edit'",
    );
    write_file(&f.clone, "history/1.txt", "the build's own edit\n");
    f.write("dist/ids.json", "[8]\n");
    let before = snapshot(&f.clone);
    let run = f.run(&[("FILES", "dist/")]);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    f.assert_landed(&run);
    assert_eq!(git(&f.bare, &["show", "main:history/1.txt"]), "upstream");
    assert_eq!(git(&f.bare, &["show", "main:dist/ids.json"]), "[8]");
    assert!(run.stderr.contains("could not follow"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(f.clone.join("history/1.txt")).unwrap(),
        "the build's own edit\n",
        "a local modification is never overwritten"
    );
    // The clone that could not follow is as the build left it.
    assert_eq!(snapshot(&f.clone), before);
    assert!(run.report["recovery"].is_null());
}

#[test]
fn the_clone_follows_a_replayed_push_on_the_checked_out_branch() {
    let f = Fixture::new(Some(50));
    upstream_moves(
        &f,
        "echo upstream > history/2.txt && git commit -qam 'upstream edit'",
    );
    f.write("dist/ids.json", "[9]\n");
    let run = f.run(&[]);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.code, 0, "{}", run.stderr);
    f.assert_landed(&run);
    // As after `git commit` and `git pull --rebase`: HEAD is upstream's tip,
    // the working tree and index match it.
    assert_eq!(git(&f.clone, &["rev-parse", "HEAD"]), f.upstream_tip());
    assert_eq!(status(&f.clone), "");
    assert_eq!(
        std::fs::read_to_string(f.clone.join("history/2.txt")).unwrap(),
        "upstream\n"
    );
}

/// Injects a failure into each step the run passes through: whatever
/// fails, the artifact commit is kept as a bundle and a patch, the clone is
/// as the build left it, and nothing was pushed twice.
#[test]
fn every_failure_after_the_commit_keeps_it() {
    // (step, how to reach it)
    let cases: [(&str, &str); 5] = [
        ("push", "plain"),
        ("wait", "race"),
        ("fetch", "race"),
        ("replay", "race"),
        ("verify", "lost"),
    ];
    for (step, scene) in cases {
        let f = Fixture::new(Some(50));
        if scene == "race" {
            upstream_moves(
                &f,
                "echo x > moved.txt && git add moved.txt && git commit -qm moved",
            );
        }
        if scene == "lost" {
            // Refused after the answer was lost: the verdict asks first.
            f.server.answer_next_for(
                "git-receive-pack",
                vec![Answer {
                    status: 1,
                    body: String::new(),
                }],
            );
        }
        let upstream_before = f.upstream_tip();
        f.write("dist/ids.json", &format!("[\"{step}\"]\n"));
        let before = snapshot(&f.clone);
        let retries = if scene == "lost" { "0" } else { "1" };
        let run = f.run(&[("COMMIT_BACK_TEST_FAIL_AT", step), ("RETRIES", retries)]);
        run.assert_secret_absent(TOKEN, &f.clone);
        assert_eq!(run.code, 1, "{step}: {}", run.stderr);
        assert_eq!(run.status(), "failed", "{step}");
        assert!(
            run.stderr
                .contains(&format!("injected failure at step '{step}'")),
            "{step}: {}",
            run.stderr
        );
        let recovery = &run.report["recovery"];
        assert!(
            recovery.is_object(),
            "{step}: no recovery files: {}",
            run.stderr
        );
        let bundle = f.clone.join(recovery["bundle"].as_str().unwrap());
        let patch = f.clone.join(recovery["patch"].as_str().unwrap());
        assert!(bundle.exists() && patch.exists(), "{step}");
        git(
            &f.clone,
            &["bundle", "verify", "-q", bundle.to_str().unwrap()],
        );
        assert!(
            run.stderr.contains("is kept: bundle"),
            "{step}: {}",
            run.stderr
        );
        assert_eq!(snapshot(&f.clone), before, "{step}: the clone was touched");
        assert_eq!(f.upstream_tip(), upstream_before, "{step}: nothing landed");
        let pushes = f
            .server
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("git-receive-pack"))
            .count();
        // A lost race is seen in the ref advertisement (no POST); the
        // "lost" scene's one push was sent and never answered.
        let expected = usize::from(scene == "lost");
        assert_eq!(pushes, expected, "{step}: pushes sent");
    }
}

#[test]
fn a_failure_to_follow_after_the_push_is_a_warning() {
    let f = Fixture::new(Some(50));
    f.write("dist/ids.json", "[10]\n");
    let run = f.run(&[("COMMIT_BACK_TEST_FAIL_AT", "follow")]);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "pushed");
    f.assert_landed(&run);
    assert!(run.stderr.contains("could not follow"), "{}", run.stderr);
    assert!(run.report["recovery"].is_null());
}

#[test]
fn an_existing_tag_is_never_moved() {
    let f = Fixture::new(Some(50));
    shell(&f.bare, "git tag -a v1.0.0 -m 'the real release' main~1");
    let tag_before = git(&f.bare, &["rev-parse", "v1.0.0"]);
    let tagged = git(&f.bare, &["rev-parse", "v1.0.0^{commit}"]);
    let main_before = f.upstream_tip();
    f.write("version.txt", "1.0.0\n");
    let run = f.run(&[("TAG", "v1.0.0")]);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert_eq!(run.status(), "blocked");
    assert_eq!(run.blockage_kind(), "tag_exists");
    let summary = run.report["blockage"]["summary"].as_str().unwrap();
    assert!(summary.contains(&tagged[..12]), "{summary}");
    let explanation = run.report["blockage"]["explanation"].as_str().unwrap();
    assert!(
        explanation.contains(run.report["commit"]["sha"].as_str().unwrap()),
        "{explanation}"
    );
    assert_eq!(
        git(&f.bare, &["rev-parse", "v1.0.0"]),
        tag_before,
        "the tag moved"
    );
    assert_eq!(f.upstream_tip(), main_before, "nothing pushed");
    assert_eq!(run.report["attempts"], 0);
    assert!(run.report["recovery"].is_object());
    assert!(
        f.server
            .requests()
            .iter()
            .all(|r| !r.path.ends_with("git-receive-pack")),
        "no push was sent"
    );
}

#[test]
fn a_tag_whose_answer_was_lost_is_found_and_not_pushed_again() {
    let f = Fixture::new(Some(50));
    f.server.answer_next_for(
        "git-receive-pack",
        vec![Answer {
            status: 4,
            body: String::new(),
        }],
    );
    f.write("version.txt", "3.0.0\n");
    let run = f.run(&[("TAG", "v3.0.0"), ("RETRIES", "0")]);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    f.assert_landed(&run);
    assert_eq!(
        git(&f.bare, &["rev-parse", "v3.0.0^{commit}"]),
        f.upstream_tip()
    );
    let pushes = f
        .server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("git-receive-pack"))
        .count();
    assert_eq!(pushes, 1, "nothing pushed twice");
    assert!(
        run.stderr.contains("already on the remote"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_report_says_what_became_of_each_ref() {
    let f = Fixture::new(Some(50));
    let old = f.upstream_tip();
    f.write("version.txt", "4.0.0\n");
    let run = f.run(&[("TAG", "v4.0.0")]);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let refs = run.report["refs"].as_array().unwrap();
    assert_eq!(refs.len(), 2, "{refs:?}");
    assert_eq!(refs[0]["name"], "refs/heads/main");
    assert_eq!(refs[0]["old"], old.as_str());
    assert_eq!(refs[0]["new"], f.upstream_tip().as_str());
    assert_eq!(refs[0]["status"], "updated");
    assert_eq!(refs[1]["name"], "refs/tags/v4.0.0");
    assert!(refs[1]["old"].is_null());
    assert_eq!(
        refs[1]["new"],
        git(&f.bare, &["rev-parse", "v4.0.0"]).as_str()
    );
    assert_eq!(refs[1]["status"], "updated");
    // The clone has the tag too, as after `git tag` + `git push`.
    assert_eq!(
        git(&f.clone, &["rev-parse", "v4.0.0"]),
        git(&f.bare, &["rev-parse", "v4.0.0"])
    );
}

/// Another repository named by REMOTE_URL alone: the report and the API
/// name that repository; FILES that this clone's HEAD already holds are
/// copied all the same; a file there where the build has a directory is
/// replaced, as `git add` would.
#[test]
fn a_copy_names_its_repository_and_copies_unchanged_files_too() {
    let f = Fixture::new(Some(50));
    let docs = f.world.upstream("ws/docs", 1);
    // docs has a file `api` where the build has a directory `api/`.
    let seed = f
        .world
        .pipelines_clone(&docs, "docs-seed", "main", None, docs.to_str().unwrap());
    shell(
        &seed,
        "echo old > api && git add api && git commit -qm api && git push -q origin main",
    );
    // The build's FILES are committed and unchanged in its own HEAD.
    shell(
        &f.clone,
        "mkdir api && echo spec > api/spec.json && git add api && git commit -qm spec",
    );
    let before = snapshot(&f.clone);
    let docs_tip = git(&docs, &["rev-parse", "main"]);
    let url = f.server.url("ws/docs.git");
    let run = f.run(&[("REMOTE_URL", &url), ("FILES", "api/")]);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    assert_eq!(run.report["repository"], "ws/docs");
    assert_eq!(git(&docs, &["show", "main:api/spec.json"]), "spec");
    assert_eq!(
        git(&docs, &["ls-tree", "--name-only", "main"]),
        "api\nhistory"
    );
    assert_eq!(
        git(&docs, &["rev-parse", "main^{tree}"]),
        tree_git_makes(
            &f,
            &docs,
            &docs_tip,
            "rm api\ncp -r \"$BUILD/api\" .",
            "api/"
        ),
        "the tree git makes of the same copy"
    );
    assert_eq!(snapshot(&f.clone), before);
}

/// A detached HEAD (a CI checkout of one commit) ahead of main: only the
/// artifacts' changes go onto main, never the commits between, and the
/// clone is left alone; at main's tip, the clone follows.
#[test]
fn a_detached_head_never_pushes_the_commits_between() {
    let f = Fixture::new(Some(50));
    let main_before = f.upstream_tip();
    shell(
        &f.clone,
        "echo feature > feature.txt && git add feature.txt && git commit -qm 'unreviewed feature' && git checkout -q --detach",
    );
    f.write("dist/ids.json", "[14]\n");
    let before = snapshot(&f.clone);
    let run = f.run(&[]);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "pushed");
    assert_eq!(git(&f.bare, &["rev-parse", "main~1"]), main_before);
    assert_eq!(
        git(&f.bare, &["diff", "--name-only", "main~1", "main"]),
        "dist/ids.json"
    );
    assert_eq!(snapshot(&f.clone), before, "the clone was touched");

    // Detached at main's tip (the usual CI checkout): the clone follows.
    let g = Fixture::new(Some(50));
    shell(&g.clone, "git checkout -q --detach");
    g.write("dist/ids.json", "[15]\n");
    let run = g.run(&[]);
    run.assert_secret_absent(TOKEN, &g.clone);
    assert_eq!(run.code, 0, "{}", run.stderr);
    g.assert_landed(&run);
    assert_eq!(git(&g.clone, &["rev-parse", "HEAD"]), g.upstream_tip());
    assert_eq!(status(&g.clone), "");
}

/// A server without atomic pushes takes the tag and refuses the branch:
/// the run fails, and the tag it created is withdrawn.
#[test]
fn a_tag_landed_without_its_branch_is_withdrawn() {
    let f = Fixture::new(Some(50));
    git(&f.bare, &["config", "receive.advertiseAtomic", "false"]);
    f.world.hook(
        &f.bare,
        "update",
        "#!/bin/sh\ncase \"$1\" in refs/heads/main) echo 'Permission denied to update branch main.' >&2; exit 1;; esac\nexit 0\n",
    );
    f.write("version.txt", "5.0.0\n");
    let run = f.run(&[("TAG", "v5.0.0")]);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(run.blockage_kind(), "branch_restriction");
    assert!(
        git(&f.bare, &["tag", "-l", "v5.0.0"]).is_empty(),
        "the tag was left behind"
    );
    let refs = run.report["refs"].as_array().unwrap();
    assert_eq!(refs[1]["name"], "refs/tags/v5.0.0");
    assert_eq!(refs[1]["status"], "deleted", "{refs:?}");
    assert!(
        run.report["blockage"]["explanation"]
            .as_str()
            .unwrap()
            .contains("deleted again")
    );
    assert!(run.report["recovery"].is_object());
}

/// Over HTTP the branch and the tag travel atomically: a refused tag
/// refuses both, and the report names the tag's reason too.
#[test]
fn an_atomic_push_refused_for_its_tag_says_why() {
    let f = Fixture::new(Some(50));
    f.world.hook(
        &f.bare,
        "update",
        "#!/bin/sh\ncase \"$1\" in refs/tags/*) echo 'Tags are created by the release team.' >&2; exit 1;; esac\nexit 0\n",
    );
    let before = f.upstream_tip();
    f.write("version.txt", "6.0.0\n");
    let run = f.run(&[("TAG", "v6.0.0")]);
    run.assert_secret_absent(TOKEN, &f.clone);
    assert_eq!(run.status(), "blocked", "{}", run.stderr);
    assert_eq!(f.upstream_tip(), before, "atomic: the branch did not move");
    let ref_status = run.report["blockage"]["ref_status"].as_str().unwrap();
    assert!(ref_status.contains("hook declined"), "{ref_status}");
    let refs = run.report["refs"].as_array().unwrap();
    assert!(refs.iter().all(|r| r["status"] == "rejected"), "{refs:?}");
    assert!(run.report["recovery"].is_object());
}
