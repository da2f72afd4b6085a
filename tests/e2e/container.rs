//! The image, run exactly as Pipelines runs a pipe, against the local git
//! servers. Needs COMMIT_BACK_IMAGE (scripts/test.sh builds it with
//! scripts/build-image.sh); in CI its absence is a failure, not a skip.

use crate::{Fixture, TOKEN};
use testkit::sshd::{Sshd, USER_KEY_KINDS, keygen_user_kinds};
use testkit::{PIPELINES_BUILD_DIR, PipeRun, docker_run_pipe, docker_run_pipe_with, git};

fn image() -> Option<String> {
    match std::env::var("COMMIT_BACK_IMAGE") {
        Ok(i) if !i.is_empty() => Some(i),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the container tests: set COMMIT_BACK_IMAGE (scripts/test.sh does)"
            );
            eprintln!("skipped: COMMIT_BACK_IMAGE is not set (scripts/test.sh builds the image)");
            None
        }
    }
}

/// The clone belongs to another uid than the container's user (root).
fn chown_foreign(dir: &std::path::Path) {
    let ok = std::process::Command::new("chown")
        .args(["-R", "4242:4242"])
        .arg(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown needs root");
}

/// The test server's URL as the container reaches it: "localhost", so the
/// static binary resolves a name in an empty root.
fn local_remote(server: &testkit::GitHttpServer) -> String {
    server.url("ws/repo.git").replace("127.0.0.1", "localhost")
}

/// What Pipelines passes to a pipe container (facts §4), trimmed to what matters.
fn pipelines_env(remote: &str) -> Vec<(&str, &str)> {
    vec![
        ("CI", "true"),
        ("BITBUCKET_BRANCH", "main"),
        ("BITBUCKET_REPO_FULL_NAME", "ws/repo"),
        ("BITBUCKET_CLONE_DIR", PIPELINES_BUILD_DIR),
        ("BITBUCKET_BUILD_NUMBER", "7"),
        ("REMOTE_URL", remote),
        ("BITBUCKET_REPO_SLUG", "repo"),
        ("NO_COLOR", "1"),
    ]
}

fn run(
    f: &Fixture,
    image: &str,
    remote: &str,
    extra: &[(&str, &str)],
    ssh: Option<&std::path::Path>,
) -> PipeRun {
    let mut env = pipelines_env(remote);
    env.extend_from_slice(extra);
    docker_run_pipe(image, &f.clone, ssh, &env)
}

#[test]
fn container_push_lands_in_a_foreign_owned_clone() {
    let Some(image) = image() else { return };
    let f = Fixture::new(Some(50));
    f.write("dist/ids.json", "[7]\n");
    chown_foreign(&f.clone);
    let remote = local_remote(&f.server);
    let r = run(
        &f,
        &image,
        &remote,
        &[("BITBUCKET_ACCESS_TOKEN", TOKEN)],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.status(), "pushed");
    f.assert_landed(&r);
    r.assert_secret_absent(TOKEN, &f.clone);
}

#[test]
fn container_branch_restriction_leaves_the_bundle_in_the_mounted_clone() {
    let Some(image) = image() else { return };
    let f = Fixture::new(Some(50));
    f.world.restrict_branch(&f.bare, "main", &["release-bot"]);
    f.write("dist/ids.json", "[8]\n");
    chown_foreign(&f.clone);
    let remote = f.server.url("ws/repo.git");
    let r = run(
        &f,
        &image,
        &remote,
        &[("BITBUCKET_ACCESS_TOKEN", TOKEN)],
        None,
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(r.blockage_kind(), "branch_restriction");
    let bundle = f
        .clone
        .join(r.report["recovery"]["bundle"].as_str().unwrap());
    assert!(bundle.is_file(), "bundle on the host: {}", bundle.display());
    git(
        &f.clone,
        &[
            "-c",
            "safe.directory=*",
            "bundle",
            "verify",
            "-q",
            bundle.to_str().unwrap(),
        ],
    );
    r.assert_secret_absent(TOKEN, &f.clone);
}

#[test]
fn container_ssh_with_the_mounted_pipeline_key_and_known_hosts() {
    let Some(image) = image() else { return };
    let f = Fixture::new(Some(50));
    let keys = f.world.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    // What Pipelines generates first: an RSA key in PEM form, read by
    // OpenSSL's PEM decoder; then ECDSA and Ed25519 keys in OpenSSH form
    // (the image's OpenSSL is trimmed: scripts/build-openssl.sh).
    let pairs = keygen_user_kinds(&keys);
    let lines: Vec<String> = pairs.iter().map(|k| k.public_line.clone()).collect();
    let sshd = Sshd::start(&f.world.path().join("sshd"), &lines);
    let remote = sshd.url(&f.bare);
    for (i, key) in pairs.iter().enumerate() {
        // The directory Pipelines mounts read-only: id_rsa, id_rsa_tmp, known_hosts.
        let ssh_dir = f.world.path().join(format!("agent-ssh-{i}"));
        std::fs::create_dir_all(&ssh_dir).unwrap();
        std::fs::copy(&key.private, ssh_dir.join("id_rsa")).unwrap();
        std::fs::copy(&key.private, ssh_dir.join("id_rsa_tmp")).unwrap();
        std::fs::write(
            ssh_dir.join("known_hosts"),
            format!("{}\n", sshd.known_hosts_line),
        )
        .unwrap();
        f.write("dist/ids.json", &format!("[9, {i}]\n"));
        chown_foreign(&f.clone);
        let r = run(&f, &image, &remote, &[("AUTH", "ssh")], Some(&ssh_dir));
        assert_eq!(r.code, 0, "{}: {}", USER_KEY_KINDS[i].0, r.stderr);
        assert_eq!(r.report["credential"]["kind"], "ssh_key");
        f.assert_landed(&r);
        let private = std::fs::read_to_string(&key.private).unwrap();
        for line in private.lines().filter(|l| !l.starts_with("-----")) {
            r.assert_secret_absent(line, &f.clone);
        }
    }
}

/// HTTPS from the image: TLS on the image's trimmed OpenSSL, the server's
/// certificate verified against a CA file mounted as a company CA would be
/// (SSL_CERT_FILE overrides the image's bundle).
#[test]
fn container_push_lands_over_https_with_a_mounted_ca() {
    let Some(image) = image() else { return };
    let f = Fixture::new(Some(50));
    let tls = testkit::TlsFront::start(f.server.port());
    let ca_dir = f.world.path().join("ca");
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::copy(tls.certificate(), ca_dir.join("company-ca.pem")).unwrap();
    f.write("dist/ids.json", "[10]\n");
    chown_foreign(&f.clone);
    let url = tls.url("ws/repo.git");
    let mut env = pipelines_env(&url);
    env.push(("BITBUCKET_ACCESS_TOKEN", TOKEN));
    env.push(("SSL_CERT_FILE", "/ca/company-ca.pem"));
    let mount = format!("{}:/ca:ro", ca_dir.display());
    let r = docker_run_pipe_with(&image, &f.clone, None, &env, &["-v", &mount]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.status(), "pushed");
    f.assert_landed(&r);
    r.assert_secret_absent(TOKEN, &f.clone);
}

#[test]
fn container_invalid_configuration_still_prints_one_report() {
    let Some(image) = image() else { return };
    let f = Fixture::new(Some(50));
    let r = docker_run_pipe(&image, &f.clone, None, &[("RETRIES", "lots")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.status(), "invalid_configuration");
}

#[test]
fn container_uploads_lfs_objects_before_the_push() {
    let Some(image) = image() else { return };
    let f = crate::lfs::fixture(None);
    let content = testkit::incompressible(200_000, 13);
    f.write("out/app.bin", &content);
    chown_foreign(&f.clone);
    let remote = local_remote(&f.server);
    let mut env = pipelines_env(&remote);
    env.extend([("BITBUCKET_ACCESS_TOKEN", TOKEN), ("FILES", "out")]);
    let r = docker_run_pipe(&image, &f.clone, None, &env);
    assert_eq!(r.status(), "pushed", "{}", r.stderr);
    assert_eq!(r.report["lfs"]["objects"][0]["outcome"], "uploaded");
    assert_eq!(
        git(&f.bare, &["rev-parse", "main"]),
        r.report["commit"]["sha"].as_str().unwrap()
    );
    assert_eq!(f.fetched_by_git_lfs("out/app.bin"), content);
}

#[test]
fn container_signs_with_no_helper_binaries_in_the_image() {
    let Some(image) = image() else { return };
    let f = Fixture::new(Some(50));
    let key = crate::signing::SshKey::new(&f.world.path().join("keys"), "ed25519", None, "");
    f.write("dist/ids.json", "[7]\n");
    chown_foreign(&f.clone);
    let remote = local_remote(&f.server);
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(key.text())
    };
    let r = run(
        &f,
        &image,
        &remote,
        &[
            ("BITBUCKET_ACCESS_TOKEN", TOKEN),
            ("SIGNING_KEY", &encoded),
            ("AUTHOR_EMAIL", "bot@example.com"),
            ("TAG", "v7"),
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    f.assert_landed(&r);
    assert_eq!(r.report["commit"]["signature"]["format"], "ssh");
    let reviewer = crate::signing::fresh_clone(&f, "reviewer");
    let allowed = key.allowed_signers(f.world.path());
    for (what, rev) in [("verify-commit", "main"), ("verify-tag", "v7")] {
        let out = crate::signing::verify_ssh(&reviewer, &allowed, what, rev);
        crate::signing::assert_verified(&out, "Good \"git\" signature for bot@example.com");
    }
    r.assert_secret_absent(&encoded, &f.clone);
    for line in key.text().lines().filter(|l| !l.starts_with("-----")) {
        r.assert_secret_absent(line, &f.clone);
    }
}

/// Pipelines gives a pipe's docker service 1 GB by default: a 2 GiB file is
/// pushed by the image in a quarter of that (no swap to hide in), read from
/// disk in pieces while the pack is staged and streamed.
#[test]
fn container_pushes_a_2_gib_file_in_256_mb_of_memory() {
    let Some(image) = image() else { return };
    let f = Fixture::new(Some(50));
    let size: u64 = 2 << 30;
    std::fs::create_dir_all(f.clone.join("dist")).unwrap();
    // Sparse: no disk for the file itself, a real 2 GiB for commit-back to
    // read, hash, stage and send.
    let file = std::fs::File::create(f.clone.join("dist/disk.img")).unwrap();
    file.set_len(size).unwrap();
    {
        use std::io::{Seek as _, SeekFrom, Write as _};
        let mut file = file;
        file.seek(SeekFrom::Start(size / 2)).unwrap();
        file.write_all(b"something in the middle").unwrap();
    }
    chown_foreign(&f.clone);
    let remote = local_remote(&f.server);
    let mut env = pipelines_env(&remote);
    env.push(("BITBUCKET_ACCESS_TOKEN", TOKEN));
    let r = testkit::docker_run_pipe_with(
        &image,
        &f.clone,
        None,
        &env,
        &["--memory", "256m", "--memory-swap", "256m"],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.stdout);
    assert_eq!(r.status(), "pushed");
    assert_eq!(r.report["sizes"]["pack"], "streamed", "{}", r.stdout);
    f.assert_landed(&r);
    assert_eq!(
        git(&f.bare, &["cat-file", "-s", "main:dist/disk.img"]),
        size.to_string()
    );
    // The id git computes for the file is the one that landed.
    let file = f.clone.join("dist/disk.img");
    let by_git = git(f.world.path(), &["hash-object", file.to_str().unwrap()]);
    assert_eq!(git(&f.bare, &["rev-parse", "main:dist/disk.img"]), by_git);
    r.assert_secret_absent(TOKEN, &f.clone);
}
