//! Git LFS end to end: a real LFS server (giftless) behind the git server,
//! pointers held to what git with git-lfs commits in a twin clone, and what
//! was uploaded checked by the real git-lfs client (`git lfs pull`, `git lfs
//! fsck`) in a fresh clone.

use crate::{BIN, TOKEN, merge};
use std::path::{Path, PathBuf};
use testkit::{GitHttpServer, LfsServer, PipeRun, World, git, run_pipe, shell};

const ATTRIBUTES: &str = "*.bin filter=lfs diff=lfs merge=lfs -text\n";

pub struct Lfs {
    pub world: World,
    pub server: GitHttpServer,
    pub lfs: LfsServer,
    pub bare: PathBuf,
    pub clone: PathBuf,
}

/// ws/repo whose .gitattributes puts `*.bin` in LFS, pushed by a developer
/// with git and git-lfs (with `existing` as assets/existing.bin when
/// given); the LFS server behind the git server; a Pipelines clone (LFS
/// files checked out as pointers, as `GIT_LFS_SKIP_SMUDGE=1` leaves them).
pub fn fixture(existing: Option<&[u8]>) -> Lfs {
    let world = World::new();
    let bare = world.upstream("ws/repo", 3);
    let lfs = LfsServer::start(&world.path().join("lfs"));
    let server = GitHttpServer::start(&world.root());
    server.account("x-token-auth", TOKEN, "token-user");
    server.serve_lfs(&lfs);
    let dev = git_lfs_clone(&world, &lfs, &bare, "dev");
    std::fs::write(dev.join(".gitattributes"), ATTRIBUTES).unwrap();
    if let Some(bytes) = existing {
        std::fs::create_dir_all(dev.join("assets")).unwrap();
        std::fs::write(dev.join("assets/existing.bin"), bytes).unwrap();
    }
    shell(
        &dev,
        "git add -A && git commit -qm 'LFS for *.bin' && git push -q origin main",
    );
    let clone = world.pipelines_clone(&bare, "clone", "main", None, &server.url("ws/repo.git"));
    Lfs {
        world,
        server,
        lfs,
        bare,
        clone,
    }
}

/// A clone of `bare` with git-lfs installed in it, talking to giftless
/// directly (the developer's and the checker's view).
fn git_lfs_clone(world: &World, lfs: &LfsServer, bare: &Path, name: &str) -> PathBuf {
    let dir = world.path().join(name);
    let url = lfs.direct_url("ws", "repo");
    shell(
        world.path(),
        &format!(
            "GIT_LFS_SKIP_SMUDGE=1 git clone -q 'file://{}' {name}\ncd {name}\ngit lfs install --local >/dev/null\ngit config lfs.url {url}\ngit config lfs.{url}.locksverify false\ngit lfs pull",
            bare.display()
        ),
    );
    dir
}

impl Lfs {
    fn env(&self) -> Vec<(String, String)> {
        [
            ("BITBUCKET_BRANCH", "main"),
            ("BITBUCKET_REPO_FULL_NAME", "ws/repo"),
            ("BITBUCKET_ACCESS_TOKEN", TOKEN),
            ("NO_COLOR", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("REMOTE_URL".to_string(), self.server.url("ws/repo.git"))])
        .collect()
    }

    fn run(&self, extra: &[(&str, &str)]) -> PipeRun {
        let env = merge(self.env(), extra);
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_pipe(Path::new(BIN), &self.clone, &pairs)
    }

    pub fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.clone.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    /// What git with git-lfs commits for the same files: a twin clone at
    /// the commit the run built on, the same bytes written, `git add -A`.
    fn tree_git_makes(&self, base: &str, files: &[(&str, &[u8])], specs: &str) -> String {
        let twin = git_lfs_clone(
            &self.world,
            &self.lfs,
            &self.bare,
            &format!("twin-{}", &base[..8]),
        );
        git(&twin, &["checkout", "-f", "-q", base]);
        for (rel, bytes) in files {
            let p = twin.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        shell(&twin, &format!("git add -A -- {specs}"));
        git(&twin, &["write-tree"])
    }

    /// The real client's check of the upload: a fresh clone, `git lfs
    /// pull` from the LFS server, the file's bytes, `git lfs fsck` clean.
    pub fn fetched_by_git_lfs(&self, rel: &str) -> Vec<u8> {
        self.fetched_by_git_lfs_checking(rel, &["lfs", "fsck"])
    }

    fn fetched_by_git_lfs_checking(&self, rel: &str, fsck: &[&str]) -> Vec<u8> {
        let name = format!("check-{}", fastrand_name());
        let check = git_lfs_clone(&self.world, &self.lfs, &self.bare, &name);
        let fsck = git(&check, fsck);
        assert!(fsck.contains("Git LFS fsck OK"), "{fsck}");
        std::fs::read(check.join(rel)).unwrap()
    }

    fn requests(&self, method: &str, suffix: &str) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .count()
    }

    fn batch_requests(&self) -> Vec<testkit::http::RequestRecord> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/objects/batch"))
            .collect()
    }

    fn uploads(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.path.contains("/info/lfs/objects/storage/"))
            .count()
    }
}

fn fastrand_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn a_new_lfs_file_is_committed_as_git_lfs_commits_it_and_uploaded() {
    let f = fixture(None);
    let base = git(&f.clone, &["rev-parse", "HEAD"]);
    let content = testkit::incompressible(3 * 1024 * 1024 + 17, 1);
    f.write("out/app.bin", &content);
    f.write("out/notes.txt", b"built\n");
    let run = f.run(&[("FILES", "out")]);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    assert_eq!(run.code, 0);

    // The commit holds the pointer git with git-lfs would commit.
    let landed = git(&f.bare, &["rev-parse", "main"]);
    assert_eq!(landed, run.report["commit"]["sha"].as_str().unwrap());
    let expected = f.tree_git_makes(
        &base,
        &[("out/app.bin", &content), ("out/notes.txt", b"built\n")],
        "out",
    );
    assert_eq!(git(&f.bare, &["rev-parse", "main^{tree}"]), expected);
    let oid = sha256_hex(&content);
    let pointer = git(&f.bare, &["show", "main:out/app.bin"]);
    assert_eq!(
        pointer,
        format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {}",
            content.len()
        )
    );

    // Uploaded before the push, once, byte for byte; the real client agrees.
    let stored = std::fs::read(f.lfs.object("ws", "repo", &oid)).unwrap();
    assert_eq!(sha256_hex(&stored), oid);
    assert_eq!(f.uploads(), 1);
    assert_eq!(f.fetched_by_git_lfs("out/app.bin"), content);
    // The object is in the build's LFS store too, as git-lfs leaves it.
    let local = f.clone.join(format!(
        ".git/lfs/objects/{}/{}/{oid}",
        &oid[..2],
        &oid[2..4]
    ));
    assert_eq!(std::fs::read(local).unwrap(), content);

    let objects = run.report["lfs"]["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 1, "{}", run.stdout);
    assert_eq!(objects[0]["path"], "out/app.bin");
    assert_eq!(objects[0]["oid"], oid.as_str());
    assert_eq!(objects[0]["size"], content.len() as u64);
    assert_eq!(objects[0]["outcome"], "uploaded");
    assert!(
        run.report["lfs"]["endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/ws/repo.git/info/lfs")
    );
    // The batch request carried the credential; the hrefs (on the same
    // origin) carried giftless's own tokens instead.
    let batch = f.batch_requests();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].user.as_deref(), Some("token-user"));
    assert_eq!(f.requests("POST", "/objects/storage/verify"), 1);
    // The clone is where git would leave it: at the landed commit, clean
    // for a git that runs the LFS filter.
    assert_eq!(git(&f.clone, &["rev-parse", "HEAD"]), landed);
    git(&f.clone, &["lfs", "install", "--local"]);
    assert_eq!(crate::status(&f.clone), "");
}

#[test]
fn a_modified_lfs_file_replaces_its_pointer_and_an_unchanged_one_is_left_alone() {
    let old = testkit::incompressible(600_000, 2);
    let f = fixture(Some(&old));
    // Checked out as a pointer (Pipelines clones with GIT_LFS_SKIP_SMUDGE=1):
    // unchanged, even touched, nothing to commit or upload.
    let pointer = std::fs::read(f.clone.join("assets/existing.bin")).unwrap();
    assert!(pointer.starts_with(b"version https://git-lfs.github.com/spec/v1\n"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    f.write("assets/existing.bin", &pointer);
    let run = f.run(&[("FILES", "assets")]);
    assert_eq!(run.status(), "nothing_to_commit", "{}", run.stderr);
    assert_eq!(f.requests("POST", "/objects/batch"), 0);

    // Modified: the new content's pointer, uploaded; parity with git-lfs.
    let base = git(&f.clone, &["rev-parse", "HEAD"]);
    let new = testkit::incompressible(700_000, 3);
    f.write("assets/existing.bin", &new);
    let run = f.run(&[("FILES", "assets")]);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    let expected = f.tree_git_makes(&base, &[("assets/existing.bin", &new)], "assets");
    assert_eq!(git(&f.bare, &["rev-parse", "main^{tree}"]), expected);
    assert_eq!(f.fetched_by_git_lfs("assets/existing.bin"), new);
    assert_eq!(run.report["lfs"]["objects"][0]["outcome"], "uploaded");
}

#[test]
fn a_smudged_lfs_file_that_was_only_touched_is_not_committed() {
    let content = testkit::incompressible(500_000, 4);
    let f = fixture(Some(&content));
    // `clone: lfs: true`: the content is checked out.
    let url = f.lfs.direct_url("ws", "repo");
    shell(
        &f.clone,
        &format!(
            "git lfs install --local >/dev/null\ngit config lfs.url {url}\ngit config lfs.{url}.locksverify false\ngit lfs pull"
        ),
    );
    assert_eq!(
        std::fs::read(f.clone.join("assets/existing.bin")).unwrap(),
        content
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    f.write("assets/existing.bin", &content);
    f.write("assets/other.txt", b"x\n");
    let run = f.run(&[("FILES", "assets")]);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    assert_eq!(
        run.report["commit"]["files"],
        serde_json::json!(["assets/other.txt"])
    );
    assert!(run.report["lfs"].is_null(), "{}", run.stdout);
    assert_eq!(f.requests("POST", "/objects/batch"), 0);
}

#[test]
fn an_object_the_server_has_is_not_uploaded_again() {
    let content = testkit::incompressible(400_000, 5);
    let f = fixture(Some(&content));
    f.write("out/copy.bin", &content);
    let run = f.run(&[("FILES", "out")]);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    assert_eq!(
        run.report["lfs"]["objects"][0]["outcome"],
        "already_present"
    );
    assert_eq!(f.uploads(), 0);
    assert_eq!(f.fetched_by_git_lfs("out/copy.bin"), content);
}

#[test]
fn a_file_holding_a_pointer_passes_through_as_git_lfs_passes_it() {
    let content = testkit::incompressible(300_000, 9);
    let f = fixture(Some(&content));
    let base = git(&f.clone, &["rev-parse", "HEAD"]);
    // The clone holds pointers (GIT_LFS_SKIP_SMUDGE=1); a build copies one,
    // with a trailing blank line git-lfs also reads as a pointer.
    let mut pointer = std::fs::read(f.clone.join("assets/existing.bin")).unwrap();
    pointer.extend_from_slice(b"\n");
    f.write("out/copy.bin", &pointer);
    let run = f.run(&[("FILES", "out")]);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    let expected = f.tree_git_makes(&base, &[("out/copy.bin", &pointer)], "out");
    assert_eq!(git(&f.bare, &["rev-parse", "main^{tree}"]), expected);
    assert_eq!(
        run.report["lfs"]["objects"][0]["outcome"],
        "already_present"
    );
    assert_eq!(f.uploads(), 0);
    // git-lfs's fsck finds the pointer it committed itself non-canonical:
    // only the objects are checked.
    assert_eq!(
        f.fetched_by_git_lfs_checking("out/copy.bin", &["lfs", "fsck", "--objects"]),
        content
    );
}

#[test]
fn a_refused_upload_is_explained_and_nothing_is_pushed() {
    let f = fixture(None);
    let before = git(&f.bare, &["rev-parse", "main"]);
    f.server.answer_next_for(
        "/objects/batch",
        vec![testkit::Answer {
            status: 403,
            body: r#"{"message":"Forbidden"}"#.into(),
        }],
    );
    let content = testkit::incompressible(100_000, 6);
    f.write("out/app.bin", &content);
    let run = f.run(&[("FILES", "out")]);
    assert_eq!(run.status(), "blocked", "{}", run.stderr);
    assert_eq!(run.blockage_kind(), "lfs_refused");
    assert_eq!(run.code, 7);
    // A refused run ends with its numbers too: nothing of the push was sent.
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("INFO: 1 file, 97.7 KiB committed, ")),
        "{}",
        run.stderr
    );
    assert_eq!(run.report["blockage"]["http_status"], 403);
    assert!(run.stderr.contains("Forbidden"), "{}", run.stderr);
    // No git push was sent; the commit is kept for recovery.
    assert_eq!(f.requests("POST", "/git-receive-pack"), 0);
    assert_eq!(git(&f.bare, &["rev-parse", "main"]), before);
    let recovery = run.report["recovery"]["bundle"].as_str().unwrap();
    assert!(f.clone.join(recovery).exists(), "{}", run.stdout);
    assert_eq!(run.report["lfs"]["objects"][0]["outcome"], "pending");
    // The content behind the pointer is kept beside the bundle, in the
    // store's layout, and the restore steps say how to put it back.
    let oid = run.report["lfs"]["objects"][0]["oid"].as_str().unwrap();
    let kept = f.clone.join(format!(
        "commit-back-recovery/lfs/objects/{}/{}/{oid}",
        &oid[..2],
        &oid[2..4]
    ));
    assert_eq!(std::fs::read(kept).unwrap(), content);
    // Restored elsewhere from the recovery files alone (as a user would from
    // the step's artifacts), then pushed by git with git-lfs: nothing lost.
    let restore: Vec<String> = run.report["recovery"]["restore"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert!(
        restore[2].contains("commit-back-recovery/lfs/objects/."),
        "{restore:?}"
    );
    let elsewhere = git_lfs_clone(&f.world, &f.lfs, &f.bare, "elsewhere");
    shell(
        f.world.path(),
        &format!(
            "cp -R '{}/commit-back-recovery' elsewhere/",
            f.clone.display()
        ),
    );
    shell(
        &elsewhere,
        &format!(
            "{}\n{}\ngit checkout -q commit-back-recovery\ngit push -q origin HEAD:main",
            restore[0], restore[2]
        ),
    );
    assert_eq!(f.fetched_by_git_lfs("out/app.bin"), content);
}

#[test]
fn two_step_verification_from_the_lfs_server_is_recognised() {
    let f = fixture(None);
    f.server.answer_next_for(
        "/objects/batch",
        vec![testkit::Answer {
            status: 403,
            // Community 787619, the LFS batch API's words.
            body: r#"{"type": "error", "error": {"message": "To access this repository, enable two-step verification."}}"#.into(),
        }],
    );
    f.write("out/app.bin", b"\x00binary\x01");
    let run = f.run(&[("FILES", "out")]);
    assert_eq!(
        run.blockage_kind(),
        "two_step_verification",
        "{}",
        run.stderr
    );
    assert_eq!(run.code, 5);
}

#[test]
fn dry_run_asks_the_lfs_server_and_uploads_nothing() {
    let existing = testkit::incompressible(300_000, 7);
    let f = fixture(Some(&existing));
    f.write("out/new.bin", &testkit::incompressible(200_000, 8));
    f.write("out/same.bin", &existing);
    let run = f.run(&[("FILES", "out"), ("DRY_RUN", "true")]);
    assert_eq!(run.status(), "dry_run", "{}", run.stderr);
    let outcomes: Vec<(String, String)> = run.report["lfs"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["path"].as_str().unwrap().to_owned(),
                o["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("out/new.bin".to_owned(), "would_upload".to_owned()),
            ("out/same.bin".to_owned(), "already_present".to_owned())
        ]
    );
    assert!(
        run.report["summary"]
            .as_str()
            .unwrap()
            .contains("1 Git LFS object(s) to upload"),
        "{}",
        run.stdout
    );
    assert_eq!(f.uploads(), 0);
    assert_eq!(f.requests("POST", "/git-receive-pack"), 0);
    // Nothing stored locally either.
    assert!(
        !f.clone.join(".git/lfs/objects").exists()
            || testkit::walk(&f.clone.join(".git/lfs/objects")).is_empty()
    );

    // The credential is checked: a refused one is predicted.
    f.server.answer_next_for(
        "/objects/batch",
        vec![testkit::Answer {
            status: 401,
            body: r#"{"message":"Credentials needed"}"#.into(),
        }],
    );
    let run = f.run(&[("FILES", "out"), ("DRY_RUN", "true")]);
    assert_eq!(run.blockage_kind(), "invalid_credentials", "{}", run.stderr);
}

#[test]
fn a_file_over_100_mb_outside_lfs_is_warned_about_before_the_push() {
    let f = fixture(None);
    let big = f.clone.join("dist/bundle.tar");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(101 * 1000 * 1000).unwrap();
    let run = f.run(&[("FILES", "dist"), ("DRY_RUN", "true")]);
    assert!(
        run.stderr
            .contains("`/dist/bundle.tar filter=lfs diff=lfs merge=lfs -text`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("refuses files over 100 MB"),
        "{}",
        run.stderr
    );
}

#[test]
fn over_ssh_git_lfs_authenticate_names_the_endpoint_and_its_header() {
    use base64::Engine as _;
    let f = fixture(None);
    let dir = f.world.path().join("ssh");
    std::fs::create_dir_all(&dir).unwrap();
    let key = testkit::sshd::keygen(&dir, "bot_key");
    // The server's answer to `git-lfs-authenticate <path> upload`, as
    // Bitbucket's SSH front gives it: the LFS API and a token for it.
    let token = "RemoteAuth lfs-token-5f2c9e1d7a";
    f.server.accept_authorization(token, "ssh-bot");
    let href = f.server.url("ws/repo.git/info/lfs");
    let log = dir.join("lfs-authenticate.log");
    let script = dir.join("forced.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$SSH_ORIGINAL_COMMAND\" in\n  git-lfs-authenticate*) echo \"$SSH_ORIGINAL_COMMAND\" >> {log}; echo '{{\"href\":\"{href}\",\"header\":{{\"Authorization\":\"{token}\"}},\"expires_in\":3600}}';;\n  *) exec sh -c \"$SSH_ORIGINAL_COMMAND\";;\nesac\n",
            log = log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let line = format!(
        "command=\"{}\",no-pty {}",
        script.display(),
        key.public_line
    );
    let sshd = testkit::Sshd::start(&dir.join("sshd"), &[line]);

    let content = testkit::incompressible(250_000, 10);
    f.write("out/app.bin", &content);
    let private = std::fs::read_to_string(&key.private).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&private);
    let url = sshd.url(&f.bare);
    let run = f.run(&[
        ("FILES", "out"),
        ("BITBUCKET_ACCESS_TOKEN", ""),
        ("SSH_KEY", &b64),
        ("REMOTE_URL", &url),
        ("KNOWN_HOSTS", &sshd.known_hosts_line),
    ]);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    assert_eq!(run.report["lfs"]["objects"][0]["outcome"], "uploaded");
    // Asked once, for the repository's path, as git-lfs asks.
    let asked = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        asked.trim(),
        format!("git-lfs-authenticate {} upload", f.bare.display())
    );
    // The batch request went with the server's token, as the SSH user.
    let batch = f.batch_requests();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].user.as_deref(), Some("ssh-bot"));
    assert_eq!(f.fetched_by_git_lfs("out/app.bin"), content);
    // The token is a secret too.
    run.assert_secret_absent("lfs-token-5f2c9e1d7a", &f.clone);
}

#[test]
fn through_the_pipelines_auth_proxy() {
    let f = fixture(None);
    f.server.proxy_as("pipeline-user");
    let content = testkit::incompressible(150_000, 11);
    f.write("out/app.bin", &content);
    let run = f.run(&[
        ("FILES", "out"),
        ("BITBUCKET_ACCESS_TOKEN", ""),
        ("REMOTE_URL", ""),
        ("BITBUCKET_GIT_HTTP_ORIGIN", "http://bitbucket.org/ws/repo"),
        ("PIPELINES_AUTH_PROXY", &f.server.proxy_url()),
    ]);
    if run.status() != "pushed" {
        panic!("{}\n{}", run.stderr, run.stdout);
    }
    let batch = f.batch_requests();
    assert_eq!(batch.len(), 1);
    assert!(batch[0].proxied);
    assert_eq!(batch[0].user.as_deref(), Some("pipeline-user"));
    assert_eq!(f.fetched_by_git_lfs("out/app.bin"), content);
}

#[test]
fn a_failing_lfs_server_is_tried_again_and_a_race_does_not_upload_twice() {
    let f = fixture(None);
    // Three 503s: the request's own tries run out, and the push machine
    // tries the attempt again (RETRIES), without pushing in between.
    let unavailable = || testkit::Answer {
        status: 503,
        body: "Service Unavailable".into(),
    };
    f.server.answer_next_for(
        "/objects/batch",
        vec![unavailable(), unavailable(), unavailable()],
    );
    // Someone pushes while the build runs: the replay brings the same
    // pointer, which is not asked about again.
    let other = f.world.path().join("other");
    git(
        f.world.path(),
        &[
            "clone",
            "-q",
            f.bare.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    shell(
        &other,
        "echo x > someone.txt && git add someone.txt && git commit -qm other && git push -q --no-verify origin main",
    );
    let content = testkit::incompressible(120_000, 12);
    f.write("out/app.bin", &content);
    let run = f.run(&[("FILES", "out")]);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    assert_eq!(
        f.requests("POST", "/objects/batch"),
        4,
        "3 × 503, then served"
    );
    assert_eq!(f.uploads(), 1);
    let outcomes: Vec<&str> = run.report["attempt_outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    // The LFS failure, then the race lost, then the replay accepted.
    assert_eq!(
        outcomes,
        ["network", "non_fast_forward", "accepted"],
        "{}",
        run.stdout
    );
    assert!(
        run.report["attempt_outcomes"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("Git LFS upload"),
        "{}",
        run.stdout
    );
    assert_eq!(git(&f.bare, &["show", "main:someone.txt"]), "x");
    assert_eq!(f.fetched_by_git_lfs("out/app.bin"), content);
}

#[test]
fn an_lfs_url_on_another_origin_never_gets_the_credential() {
    let f = fixture(None);
    // `.lfsconfig` (the repository's content) names another server.
    let elsewhere = GitHttpServer::start(&f.world.root());
    std::fs::write(
        f.clone.join(".lfsconfig"),
        format!("[lfs]\n\turl = {}\n", elsewhere.url("ws/repo.git/info/lfs")),
    )
    .unwrap();
    f.write("out/app.bin", &testkit::incompressible(50_000, 14));
    let run = f.run(&[("FILES", "out")]);
    assert_eq!(run.blockage_kind(), "invalid_credentials", "{}", run.stderr);
    assert!(
        run.stderr.contains("is not on the push's origin"),
        "{}",
        run.stderr
    );
    let asked = elsewhere.requests();
    assert!(!asked.is_empty());
    assert!(asked.iter().all(|r| !r.authorization), "{asked:?}");
    // Nothing was pushed anywhere.
    assert_eq!(f.requests("POST", "/git-receive-pack"), 0);
}

#[test]
fn lfs_objects_of_a_commit_an_earlier_step_made_are_uploaded_too() {
    let f = fixture(None);
    // A script step committed an LFS file with git and git-lfs, unpushed.
    let earlier = testkit::incompressible(90_000, 15);
    shell(
        &f.clone,
        "git lfs install --local >/dev/null\nmkdir -p docs",
    );
    std::fs::write(f.clone.join("docs/manual.bin"), &earlier).unwrap();
    shell(
        &f.clone,
        "git add docs && git commit -qm 'docs from a script step'",
    );
    let artifact = testkit::incompressible(80_000, 16);
    f.write("out/app.bin", &artifact);
    let run = f.run(&[("FILES", "out")]);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    let paths: Vec<&str> = run.report["lfs"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 2, "{}", run.stdout);
    assert!(paths.contains(&"docs/manual.bin") && paths.contains(&"out/app.bin"));
    assert_eq!(f.uploads(), 2);
    assert_eq!(f.fetched_by_git_lfs("docs/manual.bin"), earlier);
    assert_eq!(f.fetched_by_git_lfs("out/app.bin"), artifact);
}

#[test]
fn a_slow_lfs_upload_shows_progress_with_the_time_left() {
    let f = fixture(None);
    // 24 MiB read by the server at 2 MiB/s: the loopback buffers take a
    // few MiB at once, the rest moves at the server's pace.
    let content = testkit::incompressible(24 * 1024 * 1024, 17);
    f.write("out/app.bin", &content);
    f.server.throttle_uploads(2 * 1024 * 1024);
    let run = f.run(&[("FILES", "out")]);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("INFO: Uploading to Git LFS: ") && !l.contains(": done, "))
        .collect();
    assert!(lines.len() >= 2, "{}", run.stderr);
    assert!(
        lines.iter().all(|l| l.contains(" of 24.0 MiB (")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("/s, about ") && l.ends_with(" left.")),
        "{lines:?}"
    );
    assert!(
        run.stderr
            .contains("INFO: Uploading to Git LFS: done, 24.0 MiB in ")
    );
    assert_eq!(f.fetched_by_git_lfs("out/app.bin"), content);
}
