//! Large files, and many: a push over HTTP(S) carrying a file of 1 MiB or
//! more, or 1,000 new objects or more, goes
//! in a pack commit-back writes and streams itself (git/sendpack.rs).
//! git is the oracle: the tree that lands is the one `git add -A` makes in
//! a twin clone, the server's `git fsck --strict` accepts every object, and
//! the content read back with git is the file's, byte for byte.

use crate::races::upstream_commit;
use crate::{Fixture, write_file};
use std::path::Path;
use testkit::{PipeRun, git};

/// Text-like content: log lines with varying numbers (compresses about 5:1).
fn log_text(bytes: usize, seed: u64) -> String {
    let mut out = String::with_capacity(bytes + 128);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut i = 0u64;
    while out.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(&format!(
            "2026-12-02T12:{:02}:{:02}.{:03}Z INFO id={:08x} path=/api/v1/items/{} status={} latency_ms={}\n",
            i / 60 % 60,
            i % 60,
            x % 1000,
            x as u32,
            x % 99_991,
            [200, 200, 404, 500][(x % 4) as usize],
            x % 5000
        ));
        i += 1;
    }
    out
}

/// The tree `git add -A` makes for `change` in a fresh clone of upstream.
fn tree_by_git(f: &Fixture, name: &str, change: impl Fn(&Path)) -> String {
    let twin = f.world.path().join(name);
    git(
        f.world.path(),
        &[
            "clone",
            "-q",
            f.bare.to_str().unwrap(),
            twin.to_str().unwrap(),
        ],
    );
    change(&twin);
    git(&twin, &["add", "-A"]);
    git(&twin, &["write-tree"])
}

fn streamed(run: &PipeRun) -> bool {
    run.report["sizes"]["pack"] == "streamed"
}

#[test]
fn large_files_stream_their_pack_and_land_as_git_commits_them() {
    let f = Fixture::new(Some(50));
    let binary = testkit::incompressible(3 * 1024 * 1024 + 17, 5);
    let text = log_text(2 * 1024 * 1024, 7);
    let change = |dir: &Path| {
        std::fs::create_dir_all(dir.join("dist/deep/er")).unwrap();
        std::fs::write(dir.join("dist/app.bin"), &binary).unwrap();
        std::fs::write(dir.join("dist/deep/er/build.log"), &text).unwrap();
        // The same content twice, and small files beside: one object each.
        std::fs::write(dir.join("dist/copy.bin"), &binary).unwrap();
        write_file(dir, "dist/ids.json", "[1, 2]\n");
        write_file(dir, "README.md", "changed beside the artifacts\n");
    };
    let expected = tree_by_git(&f, "twin", change);
    change(&f.clone);
    let run = f.run(&[]);
    assert_eq!(run.status(), "pushed", "{}\n{}", run.stderr, run.stdout);
    assert!(streamed(&run), "{}", run.stdout);
    f.assert_landed(&run);
    assert_eq!(git(&f.bare, &["rev-parse", "main^{tree}"]), expected);
    git(&f.bare, &["fsck", "--strict", "--no-dangling"]);
    let read_back = testkit::git_command(&f.bare)
        .args(["cat-file", "blob", "main:dist/app.bin"])
        .output()
        .unwrap();
    assert!(read_back.stdout == binary, "the binary read back differs");
    assert_eq!(
        git(&f.bare, &["cat-file", "-s", "main:dist/deep/er/build.log"]),
        text.len().to_string()
    );
    // Fit to the data: the binary stored once (its copy is the same
    // object), the text compressed.
    let sent = run.report["sizes"]["bytes_sent"].as_u64().unwrap();
    let first_push_at_least = binary.len() as u64;
    assert!(
        sent > first_push_at_least && sent < first_push_at_least + text.len() as u64 / 2,
        "sent {sent}\n{}",
        run.stdout
    );
    assert_eq!(crate::status(&f.clone), "");

    // A second push changes the text only: the binary is on the server
    // (in the parent commit) and is not sent again.
    let more = log_text(1024 * 1024 + 3, 8);
    let change2 = |dir: &Path| {
        let path = dir.join("dist/deep/er/build.log");
        let mut t = std::fs::read_to_string(&path).unwrap_or_default();
        t.push_str(&more);
        std::fs::write(path, t).unwrap();
    };
    let expected = tree_by_git(&f, "twin2", change2);
    change2(&f.clone);
    let run = f.run(&[]);
    assert_eq!(run.status(), "pushed", "{}\n{}", run.stderr, run.stdout);
    assert!(streamed(&run), "{}", run.stdout);
    assert_eq!(git(&f.bare, &["rev-parse", "main^{tree}"]), expected);
    git(&f.bare, &["fsck", "--strict", "--no-dangling"]);
    let sent = run.report["sizes"]["bytes_sent"].as_u64().unwrap();
    assert!(sent < binary.len() as u64, "sent {sent}\n{}", run.stdout);
}

#[test]
fn many_small_files_stream_their_pack_and_land_as_git_commits_them() {
    // 1,200 files in 30 directories (1,231 new trees and blobs), some
    // with the same content, one empty, one executable, one modified.
    let f = Fixture::new(Some(50));
    let change = |dir: &Path| {
        for i in 0..1200 {
            let text = match i % 7 {
                0 => "same for every seventh\n".to_owned(),
                _ => format!("{{\"id\": {i}}}\n"),
            };
            write_file(dir, &format!("gen/{:02}/{i}.json", i % 30), &text);
        }
        write_file(dir, "gen/empty", "");
        let tool = dir.join("gen/tool.sh");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("history/1.txt"), "changed\n").unwrap();
    };
    let expected = tree_by_git(&f, "twin", change);
    change(&f.clone);
    let run = f.run(&[]);
    assert_eq!(run.status(), "pushed", "{}\n{}", run.stderr, run.stdout);
    assert!(streamed(&run), "{}", run.stdout);
    assert_eq!(git(&f.bare, &["rev-parse", "main^{tree}"]), expected);
    git(&f.bare, &["fsck", "--strict", "--no-dangling"]);
    assert_eq!(crate::status(&f.clone), "");
}

#[test]
fn a_small_push_stays_with_libgit2() {
    let f = Fixture::new(Some(50));
    f.write("dist/ids.json", "[1]\n");
    let run = f.run(&[]);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    assert_eq!(run.report["sizes"]["pack"], "libgit2", "{}", run.stdout);
}

#[test]
fn a_streamed_push_that_loses_the_race_is_rebased_and_streamed_again() {
    let f = Fixture::new(Some(50));
    let theirs = upstream_commit(&f, "dev", "src/lib.rs", "fn main() {}\n");
    let binary = testkit::incompressible(2 * 1024 * 1024, 9);
    std::fs::create_dir_all(f.clone.join("dist")).unwrap();
    std::fs::write(f.clone.join("dist/app.bin"), &binary).unwrap();
    let run = f.run(&[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    assert!(streamed(&run), "{}", run.stdout);
    assert_eq!(run.report["attempts"], 2, "{}", run.stdout);
    assert_eq!(run.report["commit"]["parent"], theirs.as_str());
    f.assert_landed(&run);
    git(&f.bare, &["fsck", "--strict", "--no-dangling"]);
    assert_eq!(
        git(&f.bare, &["rev-parse", "main:dist/app.bin"]),
        git(&f.clone, &["rev-parse", "HEAD:dist/app.bin"])
    );
}

#[test]
fn a_streamed_push_refused_by_the_server_is_explained_and_kept() {
    let f = Fixture::new(Some(50));
    f.world.restrict_branch(&f.bare, "main", &["release-bot"]);
    let binary = testkit::incompressible(2 * 1024 * 1024, 11);
    std::fs::create_dir_all(f.clone.join("dist")).unwrap();
    std::fs::write(f.clone.join("dist/app.bin"), &binary).unwrap();
    let before = f.upstream_tip();
    let run = f.run(&[]);
    assert_eq!(run.code, 4, "{}\n{}", run.stderr, run.stdout);
    // The same evidence as a push through libgit2 (refusals.rs).
    let b = &run.report["blockage"];
    assert_eq!(b["kind"], "branch_restriction", "{}", run.stdout);
    assert_eq!(
        b["remote_messages"],
        serde_json::json!(["Permission denied to update branch main."])
    );
    assert_eq!(b["ref_status"], "pre-receive hook declined");
    assert!(
        run.stderr
            .contains("remote: Permission denied to update branch main."),
        "{}",
        run.stderr
    );
    assert!(streamed(&run), "{}", run.stdout);
    run.assert_secret_absent(crate::TOKEN, &f.clone);
    assert_eq!(f.upstream_tip(), before);
    assert!(f.clone.join("commit-back-recovery").exists());
}
