//! Signed artifact commits and tags (SIGNING_KEY, SIGN), checked by git
//! itself: `git verify-commit` / `verify-tag` with an allowed-signers file
//! (ssh-keygen -Y verify) for SSH keys, and with gpg in a throwaway home for
//! OpenPGP keys. Where the signature is deterministic (ed25519, RSA), the
//! commit and tag are also the very objects `git commit-tree -S` and
//! `git tag -s` make from the same parts.

use crate::{Fixture, status, write_file};
use base64::Engine as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use testkit::{PipeRun, git, git_command};

const BOT_EMAIL: &str = "bot@example.com";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// An SSH key made by ssh-keygen: `kind` as `-t`, `bits` as `-b`.
pub(crate) struct SshKey {
    pub(crate) private: PathBuf,
    public_line: String,
}

impl SshKey {
    pub(crate) fn new(dir: &Path, kind: &str, bits: Option<&str>, passphrase: &str) -> SshKey {
        std::fs::create_dir_all(dir).unwrap();
        let private = dir.join(format!("signing_{kind}_{}", bits.unwrap_or("")));
        let mut c = Command::new("ssh-keygen");
        c.args(["-q", "-t", kind, "-N", passphrase, "-C", BOT_EMAIL, "-f"])
            .arg(&private);
        if let Some(b) = bits {
            c.args(["-b", b]);
        }
        assert!(c.status().expect("ssh-keygen").success());
        let public_line = std::fs::read_to_string(private.with_extension("pub"))
            .unwrap_or_else(|_| {
                std::fs::read_to_string(format!("{}.pub", private.display())).unwrap()
            })
            .trim()
            .to_owned();
        SshKey {
            private,
            public_line,
        }
    }

    pub(crate) fn text(&self) -> String {
        std::fs::read_to_string(&self.private).unwrap()
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(format!("{}.pub", self.private.display()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    }

    /// An allowed-signers file naming this key for BOT_EMAIL.
    pub(crate) fn allowed_signers(&self, dir: &Path) -> PathBuf {
        let path = dir.join("allowed_signers");
        std::fs::write(
            &path,
            format!("{BOT_EMAIL} namespaces=\"git\" {}\n", self.public_line),
        )
        .unwrap();
        path
    }
}

/// `git <args>` in `dir` with extra environment, its output whatever it is.
fn git_output(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    git_command(dir)
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap()
}

/// A fresh clone of the upstream: what a reviewer's git sees.
pub(crate) fn fresh_clone(f: &Fixture, name: &str) -> PathBuf {
    let dir = f.world.path().join(name);
    git(
        f.world.path(),
        &[
            "clone",
            "-q",
            f.bare.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    );
    dir
}

pub(crate) fn verify_ssh(dir: &Path, allowed: &Path, what: &str, rev: &str) -> Output {
    let config = format!("gpg.ssh.allowedSignersFile={}", allowed.display());
    git_output(dir, &[], &["-c", &config, what, rev])
}

pub(crate) fn assert_verified(out: &Output, signer: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "not verified:\n{stderr}");
    assert!(stderr.contains(signer), "{stderr}");
}

/// Runs with the signing key and checks that no part of it leaks.
fn run_signed(f: &Fixture, key_text: &str, extra: &[(&str, &str)]) -> PipeRun {
    let encoded = b64(key_text);
    let mut env = vec![
        ("SIGNING_KEY", encoded.as_str()),
        ("AUTHOR_EMAIL", BOT_EMAIL),
        ("AUTHOR_NAME", "Release Bot"),
    ];
    env.extend_from_slice(extra);
    let run = f.run(&env);
    // Files are scanned as they are; git's objects are compressed, so
    // they are read through git too (a key line in a commit or blob).
    let objects = git_output(
        &f.clone,
        &[],
        &["cat-file", "--batch-all-objects", "--batch"],
    );
    let objects = String::from_utf8_lossy(&objects.stdout);
    for line in key_text
        .lines()
        .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
    {
        run.assert_secret_absent(line, &f.clone);
        assert!(!objects.contains(line), "a line of the key is in an object");
    }
    run
}

#[test]
fn ssh_signed_commits_verify_with_git_for_every_key_type() {
    for (kind, bits) in [
        ("ed25519", None),
        ("ecdsa", Some("256")),
        ("ecdsa", Some("384")),
        ("ecdsa", Some("521")),
        ("rsa", Some("3072")),
    ] {
        let f = Fixture::new(Some(50));
        let key = SshKey::new(&f.world.path().join("keys"), kind, bits, "");
        f.write("dist/ids.json", "[1]\n");
        let run = run_signed(&f, &key.text(), &[]);
        assert_eq!(run.code, 0, "{kind} {bits:?}: {}", run.stderr);
        f.assert_landed(&run);
        let signature = &run.report["commit"]["signature"];
        assert_eq!(signature["format"], "ssh");
        assert_eq!(signature["fingerprint"], key.fingerprint().as_str());
        assert!(
            run.stderr.contains(&key.fingerprint()),
            "the log names the key: {}",
            run.stderr
        );
        let sha = run.report["commit"]["sha"].as_str().unwrap();
        let reviewer = fresh_clone(&f, "reviewer");
        let allowed = key.allowed_signers(f.world.path());
        let out = verify_ssh(&reviewer, &allowed, "verify-commit", sha);
        assert_verified(&out, &format!("Good \"git\" signature for {BOT_EMAIL}"));
        git(&f.bare, &["fsck", "--strict"]);
    }
}

#[test]
fn a_tampered_commit_fails_verification() {
    let f = Fixture::new(Some(50));
    let key = SshKey::new(&f.world.path().join("keys"), "ed25519", None, "");
    f.write("dist/ids.json", "[1]\n");
    let run = run_signed(&f, &key.text(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let sha = run.report["commit"]["sha"].as_str().unwrap();
    let reviewer = fresh_clone(&f, "reviewer");
    let allowed = key.allowed_signers(f.world.path());
    // The same object with one word of its message changed, signature kept.
    let raw = git(&reviewer, &["cat-file", "commit", sha]);
    assert!(
        raw.contains("gpgsig -----BEGIN SSH SIGNATURE-----"),
        "{raw}"
    );
    let forged_text = raw.replace("Update build artifacts", "Update build artefacts");
    assert_ne!(forged_text, raw);
    let forged_file = f.world.path().join("forged");
    std::fs::write(&forged_file, format!("{forged_text}\n")).unwrap();
    let forged = git(
        &reviewer,
        &[
            "hash-object",
            "-t",
            "commit",
            "-w",
            forged_file.to_str().unwrap(),
        ],
    );
    let out = verify_ssh(&reviewer, &allowed, "verify-commit", &forged);
    assert!(
        !out.status.success(),
        "a forged commit verified: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And the genuine one still does, with the same file.
    assert!(
        verify_ssh(&reviewer, &allowed, "verify-commit", sha)
            .status
            .success()
    );
}

/// Parts of a commit object, to make the same commit with git.
fn header<'a>(raw: &'a str, name: &str) -> &'a str {
    raw.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {raw}"))
}

/// `Name <email> 1700000000 +0000` -> (name, email, date).
fn identity(line: &str) -> (String, String, String) {
    let (name, rest) = line.split_once(" <").unwrap();
    let (email, date) = rest.split_once("> ").unwrap();
    (name.to_owned(), email.to_owned(), date.to_owned())
}

#[test]
fn signed_commit_and_tag_are_the_objects_git_makes() {
    // ed25519 and RSA (PKCS#1 v1.5) signatures are deterministic: the same
    // key over the same bytes gives the same signature, so git's object and
    // ours must be identical, id included.
    for (kind, bits) in [("ed25519", None), ("rsa", Some("2048"))] {
        let f = Fixture::new(Some(50));
        let key = SshKey::new(&f.world.path().join("keys"), kind, bits, "");
        f.write("dist/ids.json", "[1]\n");
        let run = run_signed(&f, &key.text(), &[("TAG", "v1.0.0")]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let sha = run.report["commit"]["sha"].as_str().unwrap();
        let twin = fresh_clone(&f, "twin");
        let ours = git(&twin, &["cat-file", "commit", sha]);
        let (message_file, body) = (f.world.path().join("message"), {
            let (_, body) = ours.split_once("\n\n").unwrap();
            format!("{body}\n")
        });
        std::fs::write(&message_file, body).unwrap();
        let (an, ae, ad) = identity(header(&ours, "author"));
        let (cn, ce, cd) = identity(header(&ours, "committer"));
        let signing = [
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("user.signingKey={}", key.private.display()),
        ];
        let env = [
            ("GIT_AUTHOR_NAME", an.as_str()),
            ("GIT_AUTHOR_EMAIL", ae.as_str()),
            ("GIT_AUTHOR_DATE", ad.as_str()),
            ("GIT_COMMITTER_NAME", cn.as_str()),
            ("GIT_COMMITTER_EMAIL", ce.as_str()),
            ("GIT_COMMITTER_DATE", cd.as_str()),
        ];
        let mut args: Vec<&str> = signing.to_vec();
        args.extend([
            "commit-tree",
            header(&ours, "tree"),
            "-p",
            header(&ours, "parent"),
            "-S",
            "-F",
            message_file.to_str().unwrap(),
        ]);
        let made = git_output(&twin, &env, &args);
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let git_sha = String::from_utf8_lossy(&made.stdout).trim().to_owned();
        assert_eq!(
            git(&twin, &["cat-file", "commit", &git_sha]),
            ours,
            "{kind}: git's signed commit differs"
        );
        assert_eq!(git_sha, sha);

        // The tag, verified by git, then made again by `git tag -s` with
        // the same tagger at the same second.
        let allowed = key.allowed_signers(f.world.path());
        let out = verify_ssh(&twin, &allowed, "verify-tag", "v1.0.0");
        assert_verified(&out, &format!("Good \"git\" signature for {BOT_EMAIL}"));
        let ours_tag_id = git(&twin, &["rev-parse", "refs/tags/v1.0.0"]);
        let ours_tag = git(&twin, &["cat-file", "tag", &ours_tag_id]);
        assert!(
            ours_tag.contains("-----BEGIN SSH SIGNATURE-----"),
            "{ours_tag}"
        );
        git(&twin, &["tag", "-d", "v1.0.0"]);
        let (tn, te, td) = identity(header(&ours_tag, "tagger"));
        let tag_env = [
            ("GIT_COMMITTER_NAME", tn.as_str()),
            ("GIT_COMMITTER_EMAIL", te.as_str()),
            ("GIT_COMMITTER_DATE", td.as_str()),
        ];
        let mut args: Vec<&str> = signing.to_vec();
        args.extend([
            "tag",
            "-s",
            "-m",
            "Update build artifacts [skip ci]",
            "v1.0.0",
            sha,
        ]);
        let tagged = git_output(&twin, &tag_env, &args);
        assert!(
            tagged.status.success(),
            "{}",
            String::from_utf8_lossy(&tagged.stderr)
        );
        let git_tag_id = git(&twin, &["rev-parse", "refs/tags/v1.0.0"]);
        assert_eq!(
            git(&twin, &["cat-file", "tag", &git_tag_id]),
            ours_tag,
            "{kind}: git's signed tag differs"
        );
        assert_eq!(git_tag_id, ours_tag_id);
    }
}

/// A throwaway GnuPG home; its agent is stopped when dropped.
struct Gpg {
    home: PathBuf,
}

impl Gpg {
    fn new(dir: &Path) -> Gpg {
        let home = dir.join("gnupg");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        Gpg { home }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(&self.home)
            .args(["--batch", "--pinentry-mode", "loopback", "--no-tty"])
            .args(args)
            .output()
            .expect("gpg (gnupg)");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The fingerprints of the secret keys and subkeys, in `gpg -K` order,
    /// each with its capabilities (`s`, `c`, `e`).
    fn fingerprints(&self) -> Vec<(String, String)> {
        let listing = self.run(&["--with-colons", "--list-secret-keys"]);
        let mut out = Vec::new();
        let mut caps = String::new();
        for line in listing.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            match fields[0] {
                "sec" | "ssb" => caps = fields.get(11).unwrap_or(&"").to_string(),
                "fpr" => out.push((fields[9].to_owned(), caps.clone())),
                _ => {}
            }
        }
        out
    }

    fn git_env(&self) -> Vec<(&'static str, String)> {
        vec![("GNUPGHOME", self.home.display().to_string())]
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.home)
            .args(["--kill", "all"])
            .status();
    }
}

fn verify_gpg(dir: &Path, gpg: &Gpg, what: &str, rev: &str) -> Output {
    let env = gpg.git_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    git_output(dir, &env, &[what, "--raw", rev])
}

/// A key pair made by gpg in `gpg`'s home: `shape` picks the key's make-up.
/// Returns the armored secret key and the fingerprint gpg itself signs with.
fn gpg_key(gpg: &Gpg, shape: &str, passphrase: &str) -> (String, String) {
    let with_pass = |args: &[&str]| {
        let mut all = vec!["--passphrase", passphrase];
        all.extend_from_slice(args);
        gpg.run(&all)
    };
    let uid = "Release Bot <bot@example.com>";
    match shape {
        // [SC] primary and a newer [S] subkey: gpg signs with the subkey.
        "ed25519+signing-subkey" => {
            with_pass(&["--quick-gen-key", uid, "ed25519", "sign,cert", "never"]);
            let primary = gpg.fingerprints()[0].0.clone();
            with_pass(&["--quick-add-key", &primary, "ed25519", "sign", "never"]);
        }
        "rsa2048" => {
            with_pass(&["--quick-gen-key", uid, "rsa2048", "sign,cert", "never"]);
        }
        // What `gpg --quick-gen-key` makes by default: [SC] primary and an
        // [E] subkey, which must not be picked.
        "future-default" => {
            with_pass(&["--quick-gen-key", uid, "future-default", "default", "never"]);
        }
        // A signing subkey that expired (key and subkey made in 2020, the
        // subkey for a day): gpg
        // falls back to the primary key, and so must we.
        "expired-signing-subkey" => {
            with_pass(&[
                "--faked-system-time",
                "20200101T000000!",
                "--quick-gen-key",
                uid,
                "ed25519",
                "sign,cert",
                "never",
            ]);
            let primary = gpg.fingerprints()[0].0.clone();
            with_pass(&[
                "--faked-system-time",
                "20200101T000000!",
                "--quick-add-key",
                &primary,
                "ed25519",
                "sign",
                "1d",
            ]);
        }
        other => panic!("no key shape {other}"),
    }
    let secret = with_pass(&["--armor", "--export-secret-keys", BOT_EMAIL]);
    assert!(secret.contains("BEGIN PGP PRIVATE KEY BLOCK"));
    let keys = gpg.fingerprints();
    let expected = match shape {
        "ed25519+signing-subkey" => keys.last().unwrap().0.clone(),
        _ => keys[0].0.clone(),
    };
    (secret, expected)
}

#[test]
fn openpgp_signed_commit_and_tag_verify_with_gpg() {
    for (shape, passphrase) in [
        ("ed25519+signing-subkey", "correct horse battery"),
        ("rsa2048", ""),
        ("future-default", ""),
        ("expired-signing-subkey", ""),
    ] {
        let f = Fixture::new(Some(50));
        let gpg = Gpg::new(f.world.path());
        let (secret, signing_fpr) = gpg_key(&gpg, shape, passphrase);
        f.write("dist/ids.json", "[1]\n");
        let mut extra = vec![("TAG", "v2.0.0")];
        if !passphrase.is_empty() {
            extra.push(("SIGNING_KEY_PASSPHRASE", passphrase));
        }
        let run = run_signed(&f, &secret, &extra);
        assert_eq!(run.code, 0, "{shape}: {}", run.stderr);
        if !passphrase.is_empty() {
            run.assert_secret_absent(passphrase, &f.clone);
        }
        f.assert_landed(&run);
        let signature = &run.report["commit"]["signature"];
        assert_eq!(signature["format"], "openpgp");
        assert_eq!(signature["fingerprint"], signing_fpr.as_str(), "{shape}");
        let sha = run.report["commit"]["sha"].as_str().unwrap();
        let reviewer = fresh_clone(&f, "reviewer");
        let raw = git(&reviewer, &["cat-file", "commit", sha]);
        assert!(
            raw.contains("gpgsig -----BEGIN PGP SIGNATURE-----"),
            "{raw}"
        );
        for (what, rev) in [("verify-commit", sha), ("verify-tag", "v2.0.0")] {
            let out = verify_gpg(&reviewer, &gpg, what, rev);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{shape} {what}: {stderr}");
            assert!(stderr.contains("GOODSIG"), "{stderr}");
            assert!(
                stderr.contains(&format!("VALIDSIG {signing_fpr}")),
                "{shape}: {stderr}"
            );
        }
    }
}

#[test]
fn a_wrong_openpgp_passphrase_is_a_configuration_error() {
    let f = Fixture::new(Some(50));
    let gpg = Gpg::new(f.world.path());
    let (secret, _) = gpg_key(&gpg, "ed25519+signing-subkey", "the right one");
    f.write("dist/ids.json", "[1]\n");
    let before = f.upstream_tip();
    let run = run_signed(&f, &secret, &[("SIGNING_KEY_PASSPHRASE", "the wrong one")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        run.report["errors"][0]["variable"],
        "SIGNING_KEY_PASSPHRASE"
    );
    assert!(run.stderr.contains("wrong passphrase"), "{}", run.stderr);
    assert_eq!(f.upstream_tip(), before);
}

#[test]
fn the_copy_for_another_repository_is_signed() {
    let f = Fixture::new(Some(50));
    let key = SshKey::new(&f.world.path().join("keys"), "ed25519", None, "");
    let docs = f.world.upstream("ws/docs", 2);
    f.write("dist/api.json", "{\"v\": 2}\n");
    let url = f.server.url("ws/docs.git");
    let run = run_signed(
        &f,
        &key.text(),
        &[
            ("REMOTE_URL", url.as_str()),
            ("FILES", "dist/"),
            ("RETRIES", "0"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let tip = git(&docs, &["rev-parse", "main"]);
    assert_eq!(run.report["commit"]["sha"], tip.as_str());
    assert_eq!(run.report["commit"]["signature"]["format"], "ssh");
    let allowed = key.allowed_signers(f.world.path());
    let out = verify_ssh(&docs, &allowed, "verify-commit", "main");
    assert_verified(&out, &format!("Good \"git\" signature for {BOT_EMAIL}"));
}

#[test]
fn a_replay_after_a_lost_race_is_signed_again() {
    let f = Fixture::new(Some(50));
    let key = SshKey::new(&f.world.path().join("keys"), "ed25519", None, "");
    let theirs = crate::races::upstream_commit(&f, "dev", "src/lib.rs", "fn main() {}\n");
    f.write("dist/ids.json", "[1]\n");
    let run = run_signed(&f, &key.text(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["attempts"], 2);
    assert_eq!(run.report["commit"]["parent"], theirs.as_str());
    f.assert_landed(&run);
    let reviewer = fresh_clone(&f, "reviewer");
    let allowed = key.allowed_signers(f.world.path());
    let out = verify_ssh(&reviewer, &allowed, "verify-commit", "main");
    assert_verified(&out, &format!("Good \"git\" signature for {BOT_EMAIL}"));
}

#[test]
fn sign_with_the_ssh_key_that_pushes() {
    let s = crate::ssh::fixture(false, true);
    s.f.write("dist/ids.json", "[1]\n");
    let run = s.run(&[("SIGN", "ssh-key"), ("AUTHOR_EMAIL", BOT_EMAIL)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    s.f.assert_landed(&run);
    assert_eq!(run.report["commit"]["signature"]["format"], "ssh");
    assert!(run.stderr.contains("(SSH_KEY)"), "{}", run.stderr);
    let reviewer = fresh_clone(&s.f, "reviewer");
    let path = s.f.world.path().join("allowed_signers");
    std::fs::write(
        &path,
        format!("{BOT_EMAIL} namespaces=\"git\" {}\n", s.key.public_line),
    )
    .unwrap();
    let out = verify_ssh(&reviewer, &path, "verify-commit", "main");
    assert_verified(&out, &format!("Good \"git\" signature for {BOT_EMAIL}"));
}

#[test]
fn dry_run_signs_in_memory_and_names_the_key() {
    let f = Fixture::new(Some(50));
    let key = SshKey::new(&f.world.path().join("keys"), "ed25519", None, "");
    f.write("dist/ids.json", "[1]\n");
    let before = f.upstream_tip();
    let run = run_signed(&f, &key.text(), &[("DRY_RUN", "true")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "dry_run");
    assert_eq!(
        run.report["commit"]["signature"]["fingerprint"],
        key.fingerprint().as_str()
    );
    assert_eq!(f.upstream_tip(), before);
    let sha = run.report["commit"]["sha"].as_str().unwrap();
    let kept = git_output(&f.clone, &[], &["cat-file", "-e", sha]);
    assert!(!kept.status.success(), "the dry run wrote its commit");
}

#[test]
fn the_pull_request_branch_commit_is_signed() {
    let (f, api) = crate::api::restricted();
    let key = SshKey::new(&f.world.path().join("keys"), "ed25519", None, "");
    f.write("dist/ids.json", "[7]\n");
    let url = api.base_url();
    let run = run_signed(
        &f,
        &key.text(),
        &[
            ("API_URL", url.as_str()),
            ("ON_RESTRICTED", "pull-request"),
            ("BITBUCKET_BUILD_NUMBER", "41"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "pull_request");
    let reviewer = fresh_clone(&f, "reviewer");
    git(&reviewer, &["fetch", "-q", "origin", "commit-back/main-41"]);
    let allowed = key.allowed_signers(f.world.path());
    let out = verify_ssh(&reviewer, &allowed, "verify-commit", "FETCH_HEAD");
    assert_verified(&out, &format!("Good \"git\" signature for {BOT_EMAIL}"));
}

#[test]
fn a_server_that_refuses_signatures_is_explained() {
    let f = Fixture::new(Some(50));
    // Bitbucket's own text is not confirmed; this hook's words stand in.
    f.world.hook(
        &f.bare,
        "pre-receive",
        "#!/bin/sh\necho 'refusing unsigned commit: commits to main must be signed' >&2\nexit 1\n",
    );
    f.write("dist/ids.json", "[1]\n");
    let run = f.run(&[]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(run.blockage_kind(), "signature_required");
    let remedies = run.report["blockage"]["remedies"].to_string();
    assert!(remedies.contains("SIGNING_KEY"), "{remedies}");
    assert!(!run.report["recovery"].is_null());
}

#[test]
fn bad_signing_input_is_one_line_and_changes_nothing() {
    let f = Fixture::new(Some(50));
    let dir = f.world.path().join("keys");
    let locked = SshKey::new(&dir.join("locked"), "ed25519", None, "s3cret-pass-phrase");
    let plain = SshKey::new(&dir.join("plain"), "ed25519", None, "");
    let locked_b64 = b64(&locked.text());
    let public_b64 = b64(&plain.public_line);
    let garbage_b64 =
        b64("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n");
    let pgp_public =
        b64("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ\n-----END PGP PUBLIC KEY BLOCK-----\n");
    let plain_b64 = b64(&plain.text());
    // (variables, the variable the one error names, words of its message)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                ("SIGNING_KEY", &locked_b64),
                ("SIGNING_KEY_PASSPHRASE", "wrong-pass-phrase"),
            ],
            "SIGNING_KEY_PASSPHRASE",
            "wrong passphrase",
        ),
        (
            vec![("SIGNING_KEY", &locked_b64)],
            "SIGNING_KEY_PASSPHRASE",
            "protected by a passphrase",
        ),
        (
            vec![("SIGNING_KEY", &garbage_b64)],
            "SIGNING_KEY",
            "not a readable",
        ),
        (
            vec![("SIGNING_KEY", &public_b64)],
            "SIGNING_KEY",
            "public key",
        ),
        (
            vec![("SIGNING_KEY", &pgp_public)],
            "SIGNING_KEY",
            "OpenPGP public key",
        ),
        (
            vec![("SIGNING_KEY", "%%% not base64 %%%")],
            "SIGNING_KEY",
            "not valid base64",
        ),
        (vec![("SIGN", "true")], "SIGNING_KEY", "SIGN=true needs"),
        (vec![("SIGN", "ssh-key")], "SIGN", "access token"),
        (
            vec![("SIGN", "maybe"), ("SIGNING_KEY", &plain_b64)],
            "SIGN",
            "not supported",
        ),
    ];
    write_file(&f.clone, "dist/ids.json", "[1]\n");
    let before = (
        f.upstream_tip(),
        status(&f.clone),
        git(&f.clone, &["rev-parse", "HEAD"]),
    );
    for (env, variable, words) in cases {
        let run = f.run(&env);
        assert_eq!(run.code, 2, "{env:?}: {}", run.stderr);
        assert_eq!(run.status(), "invalid_configuration");
        let errors = run.report["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{env:?}: {errors:?}");
        assert_eq!(errors[0]["variable"], variable, "{env:?}");
        assert!(
            errors[0]["message"].as_str().unwrap().contains(words),
            "{env:?}: {errors:?}"
        );
        let lines: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("ERROR:"))
            .collect();
        assert_eq!(lines.len(), 1, "{}", run.stderr);
        assert!(
            lines[0].starts_with(&format!("ERROR: {variable}: ")),
            "{}",
            lines[0]
        );
        for (_, value) in &env {
            if value.len() > 8 && *value != "ssh-key" {
                run.assert_secret_absent(value, &f.clone);
            }
        }
        for line in locked.text().lines().filter(|l| !l.starts_with("-----")) {
            run.assert_secret_absent(line, &f.clone);
        }
        assert_eq!(
            (
                f.upstream_tip(),
                status(&f.clone),
                git(&f.clone, &["rev-parse", "HEAD"])
            ),
            before
        );
    }
}

/// The scalar of an unencrypted OpenSSH ECDSA key is shorter than its
/// curve's width (a minimal mpint that lost a leading zero byte).
fn short_scalar(key: &SshKey, width: usize) -> bool {
    fn string<'a>(bytes: &mut &'a [u8]) -> &'a [u8] {
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        let s = &bytes[4..4 + len];
        *bytes = &bytes[4 + len..];
        s
    }
    let body: String = key
        .text()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let mut r = &bytes[b"openssh-key-v1\0".len()..];
    for _ in 0..3 {
        string(&mut r); // cipher, kdf, kdf options
    }
    r = &r[4..]; // number of keys
    string(&mut r); // public key
    let mut private = &string(&mut r)[8..]; // after the check numbers
    for _ in 0..3 {
        string(&mut private); // key type, curve, public point
    }
    string(&mut private).len() < width
}

#[test]
fn ecdsa_keys_whose_scalar_is_short_sign_too() {
    // OpenSSH writes the scalar as a minimal mpint: one P-521 key in two has
    // a shorter one, which ssh-key 0.6.7 alone cannot read. Keys are made
    // until one is short, then used as they are and with a passphrase.
    let world = testkit::World::new();
    let dir = world.path().join("keys");
    let key = (0..64)
        .map(|i| SshKey::new(&dir.join(i.to_string()), "ecdsa", Some("521"), ""))
        .find(|k| short_scalar(k, 66))
        .expect("64 P-521 keys, none with a short scalar");
    let payload = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbe4904\n";
    let allowed = key.allowed_signers(world.path());
    for passphrase in [None, Some("pass phrase")] {
        if let Some(p) = passphrase {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-p", "-N", p, "-f"])
                .arg(&key.private)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let signer = commit_back::signing::Signer::from_private_key(&key.text(), passphrase)
            .unwrap_or_else(|e| panic!("{passphrase:?}: {e:?}"));
        assert_eq!(signer.fingerprint(), key.fingerprint());
        let signature = world.path().join("payload.sig");
        std::fs::write(&signature, signer.sign(payload).unwrap()).unwrap();
        let verify = Command::new("ssh-keygen")
            .args(["-Y", "verify", "-n", "git", "-I", BOT_EMAIL, "-f"])
            .arg(&allowed)
            .arg("-s")
            .arg(&signature)
            .stdin(std::process::Stdio::piped())
            .output_with(payload);
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }
}

trait OutputWith {
    fn output_with(&mut self, input: &[u8]) -> Output;
}

impl OutputWith for Command {
    /// Runs with `input` on stdin.
    fn output_with(&mut self, input: &[u8]) -> Output {
        use std::io::Write as _;
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}
