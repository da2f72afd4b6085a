//! The linux/arm64 binary (scripts/build-image.sh cross-builds it), run
//! under `qemu-aarch64-static` (a static binary needs no binfmt
//! registration) against the same local servers as the native one: a push
//! lands, over HTTP, HTTPS and SSH with each kind of key (the OpenSSL
//! scripts/build-openssl.sh trims, on its aarch64 code), a refusal is
//! explained, nothing to commit, an invalid configuration. Needs
//! COMMIT_BACK_ARM64_BIN (scripts/test.sh sets it); in CI its absence is a
//! failure, not a skip.

use crate::{Fixture, TOKEN, merge};
use base64::Engine as _;
use std::path::{Path, PathBuf};
use testkit::sshd::{Sshd, USER_KEY_KINDS, keygen_user_kinds};
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

/// TLS through the trimmed OpenSSL: the certificate of OpenSSL's own
/// server verified against SSL_CERT_FILE, the push carried over it.
#[test]
fn arm64_push_lands_over_https() {
    let f = Fixture::new(Some(50));
    let Some(bin) = arm64(f.world.path()) else {
        return;
    };
    let tls = testkit::TlsFront::start(f.server.port());
    f.write("dist/ids.json", "[65]\n");
    let url = tls.url("ws/repo.git");
    let certificate = tls.certificate().to_str().unwrap();
    let r = run(
        &f,
        &bin,
        &[("REMOTE_URL", &url), ("SSL_CERT_FILE", certificate)],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    f.assert_landed(&r);
    assert_eq!(r.report["remote"], url.as_str());
    r.assert_secret_absent(TOKEN, &f.clone);
    // The same server, no trust in its certificate: refused, not pushed.
    f.write("dist/ids.json", "[66]\n");
    let before = f.upstream_tip();
    let r = run(&f, &bin, &[("REMOTE_URL", &url)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        f.upstream_tip(),
        before,
        "nothing reaches an untrusted server"
    );
    assert_eq!(
        r.report["blockage"]["summary"],
        "The git server's TLS certificate could not be verified."
    );
}

/// SSH with the keys users bring: the PEM RSA key Pipelines generates (read
/// by OpenSSL's PEM decoder), ECDSA and Ed25519, each signing libssh2's
/// authentication on the trimmed OpenSSL.
#[test]
fn arm64_pushes_over_ssh_with_rsa_ecdsa_and_ed25519_keys() {
    let f = Fixture::new(Some(50));
    let Some(bin) = arm64(f.world.path()) else {
        return;
    };
    let dir = f.world.path().join("ssh");
    std::fs::create_dir_all(&dir).unwrap();
    let keys = keygen_user_kinds(&dir);
    let lines: Vec<String> = keys.iter().map(|k| k.public_line.clone()).collect();
    let sshd = Sshd::start(&dir.join("sshd"), &lines);
    let url = sshd.url(&f.bare);
    for (i, key) in keys.iter().enumerate() {
        let private = std::fs::read_to_string(&key.private).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&private);
        f.write("dist/ids.json", &format!("[{i}]\n"));
        let r = run(
            &f,
            &bin,
            &[
                ("BITBUCKET_ACCESS_TOKEN", ""),
                ("SSH_KEY", &b64),
                ("REMOTE_URL", &url),
                ("KNOWN_HOSTS", &sshd.known_hosts_line),
            ],
        );
        assert_eq!(r.code, 0, "{}: {}", USER_KEY_KINDS[i].0, r.stderr);
        assert_eq!(r.report["credential"]["kind"], "ssh_key");
        f.assert_landed(&r);
        for line in private.lines().filter(|l| !l.starts_with("-----")) {
            r.assert_secret_absent(line, &f.clone);
        }
    }
    git(&f.bare, &["fsck", "--strict"]);
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
