//! The linux/arm64 binary (scripts/build-image.sh cross-builds it), run
//! under `qemu-aarch64-static` (a static binary needs no binfmt
//! registration) against the same local servers as the native one: a push
//! lands, a refusal is explained, nothing to commit, an invalid
//! configuration. Needs COMMIT_BACK_ARM64_BIN (scripts/test.sh sets it); in
//! CI its absence is a failure, not a skip.

use crate::{Fixture, TOKEN, merge};
use std::path::{Path, PathBuf};
use testkit::{PipeRun, git, run_pipe};

/// A wrapper that runs the arm64 binary under qemu, or None outside CI
/// when it was not built.
fn arm64(dir: &Path) -> Option<PathBuf> {
    let bin = match std::env::var("COMMIT_BACK_ARM64_BIN") {
        Ok(b) if !b.is_empty() => b,
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the arm64 tests: set COMMIT_BACK_ARM64_BIN (scripts/test.sh does)"
            );
            eprintln!(
                "skipped: COMMIT_BACK_ARM64_BIN is not set (scripts/build-image.sh builds it)"
            );
            return None;
        }
    };
    let qemu = ["/usr/bin/qemu-aarch64-static", "/usr/bin/qemu-aarch64"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("qemu-aarch64-static (Debian qemu-user-static; scripts/test.sh installs it)");
    let file = std::process::Command::new("file")
        .arg(&bin)
        .output()
        .unwrap();
    let kind = String::from_utf8_lossy(&file.stdout);
    assert!(
        kind.contains("aarch64") && kind.contains("static"),
        "{bin} is not a static aarch64 binary: {kind}"
    );
    let wrapper = dir.join("commit-back-arm64");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec '{qemu}' '{bin}' \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    Some(wrapper)
}

fn run(f: &Fixture, bin: &Path, extra: &[(&str, &str)]) -> PipeRun {
    let env = merge(f.env(), extra);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_pipe(bin, &f.clone, &pairs)
}

#[test]
fn arm64_push_lands() {
    let f = Fixture::new(Some(50));
    let Some(bin) = arm64(f.world.path()) else {
        return;
    };
    f.write("dist/ids.json", "[64]\n");
    let r = run(&f, &bin, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.status(), "pushed");
    f.assert_landed(&r);
    assert_eq!(git(&f.bare, &["show", "main:dist/ids.json"]), "[64]");
    git(&f.bare, &["fsck", "--strict"]);
    r.assert_secret_absent(TOKEN, &f.clone);
}

#[test]
fn arm64_refusal_is_explained() {
    let f = Fixture::new(Some(50));
    let Some(bin) = arm64(f.world.path()) else {
        return;
    };
    f.world.restrict_branch(&f.bare, "main", &["release-bot"]);
    f.write("dist/ids.json", "[64]\n");
    let before = f.upstream_tip();
    let r = run(&f, &bin, &[]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(r.blockage_kind(), "branch_restriction");
    assert!(
        r.stderr
            .contains("remote: Permission denied to update branch main.")
    );
    assert!(r.report["recovery"].is_object());
    assert_eq!(f.upstream_tip(), before);
}

#[test]
fn arm64_nothing_to_commit_and_invalid_configuration() {
    let f = Fixture::new(Some(50));
    let Some(bin) = arm64(f.world.path()) else {
        return;
    };
    let r = run(&f, &bin, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.status(), "nothing_to_commit");
    let r = run(&f, &bin, &[("RETRIES", "lots")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.status(), "invalid_configuration");
    assert_eq!(r.report["errors"][0]["variable"], "RETRIES");
}
