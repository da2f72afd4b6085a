//! Real parts for commit-back's tests, demo and benchmarks: repositories made
//! with the git CLI, a git HTTP server ([`http`]), OpenSSH sshd ([`sshd`]),
//! and a runner that executes the real binary with a cleared environment and
//! checks its output contract.

pub mod api;
pub mod chart;
pub mod demo;
pub mod http;
pub mod lfs;
pub mod openapi;
pub mod showcase;
pub mod sshd;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::Command;

pub use http::{Answer, GitHttpServer};
pub use lfs::LfsServer;
pub use sshd::Sshd;
pub use tls::TlsFront;

/// Bitbucket's texts, verbatim from ../shared/bitbucket-facts.md §1.
pub mod texts {
    pub const BRANCH_RESTRICTION: &str = "Permission denied to update branch {branch}.";
    pub const TWO_STEP: &str = "To access this repository, enable two-step authentication. ";
    pub const IP_ALLOWLIST: &str = "To access this repository, an admin must whitelist your IP. ";
    pub const INVALID_CREDENTIALS: &str = "Invalid credentials";
    pub const NOT_FOUND: &str = "The requested repository either does not exist or you do not have access. If you believe this repository exists and you have access, make sure you're authenticated.";
    pub const SCOPES: &str = "Your credentials lack one or more required privilege scopes.";
    pub const APP_PASSWORD_GONE: &str =
        "App passwords are deprecated and must be replaced with API tokens.";
    pub const SIZE_LIMIT: &str = "Repository is over the size limit (4 GB) and will not accept further additions.\n\nLearn how to reduce your repository size: https://confluence.atlassian.com/x/xgMvEw.";
    pub const READ_ONLY_KEY: &str =
        "repository access denied. access via a deployment key is read-only.";
}

/// Runs git with no user or system configuration, failing loudly.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_command(dir).args(args).output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn git_command(dir: &Path) -> Command {
    let mut c = Command::new("git");
    with_git_env(&mut c, dir);
    c
}

/// `sh -c "set -e; <script>"` in `dir` with the environment [`git_command`]
/// gives git, and fixed dates so that commits made by the script are the
/// same commits wherever it runs; fails loudly.
pub fn shell(dir: &Path, script: &str) {
    let mut c = Command::new("sh");
    with_git_env(&mut c, dir);
    let out = c
        .args(["-c", &format!("set -e\n{script}")])
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000")
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "sh in {}:\n{script}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn with_git_env(c: &mut Command, dir: &Path) {
    c.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR");
}

/// A temporary world: bare repositories under `root`, clones beside them.
pub struct World {
    pub dir: tempfile::TempDir,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub fn new() -> World {
        World {
            dir: tempfile::Builder::new()
                .prefix("commit-back-test")
                .tempdir()
                .expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bare repositories live here; this is the HTTP server's root.
    pub fn root(&self) -> PathBuf {
        let r = self.path().join("srv");
        std::fs::create_dir_all(&r).unwrap();
        r
    }

    /// `srv/<name>.git` on branch main with `commits` commits (each adds a file).
    pub fn upstream(&self, name: &str, commits: usize) -> PathBuf {
        let bare = self.root().join(format!("{name}.git"));
        std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
        git(
            self.path(),
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        );
        git(&bare, &["config", "http.receivepack", "true"]);
        // Bitbucket serves a repository with and without ".git".
        std::os::unix::fs::symlink(
            format!("{}.git", name.rsplit('/').next().unwrap()),
            self.root().join(name),
        )
        .unwrap();
        let seed = self.path().join(format!("seed-{}", name.replace('/', "-")));
        git(
            self.path(),
            &["init", "-q", "-b", "main", seed.to_str().unwrap()],
        );
        if commits > 0 {
            // fast-import: thousands of commits in well under a second.
            let mut stream = String::new();
            for i in 0..commits {
                let message = format!("commit {i}");
                let content = format!("line {i}\n");
                stream.push_str(&format!(
                    "commit refs/heads/main\ncommitter Dev <dev@example.com> {} +0000\n",
                    1_700_000_000 + i
                ));
                stream.push_str(&format!("data {}\n{message}\n", message.len()));
                stream.push_str(&format!(
                    "M 100644 inline history/{}.txt\ndata {}\n{content}\n",
                    i % 100,
                    content.len()
                ));
            }
            let mut child = git_command(&seed)
                .args(["fast-import", "--quiet"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write as _;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stream.as_bytes())
                .unwrap();
            assert!(child.wait().unwrap().success(), "fast-import");
            git(&seed, &["reset", "-q", "--hard", "main"]);
            git(&seed, &["push", "-q", bare.to_str().unwrap(), "main"]);
        }
        bare
    }

    /// A clone as Pipelines makes it: `git clone --branch <b> --depth <n>`,
    /// identity configured, origin set to `origin_url`.
    pub fn pipelines_clone(
        &self,
        bare: &Path,
        name: &str,
        branch: &str,
        depth: Option<u32>,
        origin_url: &str,
    ) -> PathBuf {
        let dest = self.path().join(name);
        let src = format!("file://{}", bare.display());
        let mut args = vec!["clone", "-q", "--branch", branch];
        let depth_s;
        if let Some(d) = depth {
            depth_s = d.to_string();
            args.extend(["--depth", &depth_s]);
        }
        args.extend([src.as_str(), dest.to_str().unwrap()]);
        git(self.path(), &args);
        git(&dest, &["config", "user.name", "bitbucket-pipelines"]);
        git(
            &dest,
            &["config", "user.email", "commits-noreply@bitbucket.org"],
        );
        git(&dest, &["remote", "set-url", "origin", origin_url]);
        std::fs::write(
            dest.join(".git/info/exclude"),
            ".bitbucket/pipelines/generated\n",
        )
        .unwrap();
        dest
    }

    /// Installs an executable hook script in a bare repository.
    pub fn hook(&self, bare: &Path, name: &str, script: &str) {
        let path = bare.join("hooks").join(name);
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A pre-receive hook that refuses updates of `branch` unless REMOTE_USER
    /// is in `allowed`, with Bitbucket's text (community 2249496).
    pub fn restrict_branch(&self, bare: &Path, branch: &str, allowed: &[&str]) {
        let allowed = allowed.join(" ");
        let msg = texts::BRANCH_RESTRICTION.replace("{branch}", branch);
        self.hook(
            bare,
            "pre-receive",
            &format!(
                "#!/bin/sh\nwhile read old new ref; do\n  if [ \"$ref\" = \"refs/heads/{branch}\" ]; then\n    case \" {allowed} \" in *\" $REMOTE_USER \"*) ;; *) echo \"{msg}        \" >&2; exit 1;; esac\n  fi\ndone\nexit 0\n"
            ),
        );
    }
}

/// One run of the real binary.
#[derive(Debug)]
pub struct PipeRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub report: serde_json::Value,
}

/// Runs `bin` in `cwd` with exactly `env` (plus PATH), and checks the output
/// contract: stdout is exactly one JSON document.
pub fn run_pipe(bin: &Path, cwd: &Path, env: &[(&str, &str)]) -> PipeRun {
    let out = Command::new(bin)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("run commit-back");
    let run = PipeRun::from_output(out);
    run.assert_no_given_secret(env, cwd);
    run
}

/// The variables whose values are secrets.
pub const SECRET_VARIABLES: &[&str] = &[
    "BITBUCKET_ACCESS_TOKEN",
    "ATLASSIAN_API_TOKEN",
    "BITBUCKET_APP_PASSWORD",
    "SSH_KEY",
    "SIGNING_KEY",
    "SIGNING_KEY_PASSPHRASE",
];

impl PipeRun {
    /// Every run of the harness checks that no secret it was given appears on
    /// stdout, stderr, in the report or in any file of the repository (a
    /// base64 SSH_KEY or SIGNING_KEY is checked decoded too, line by line).
    pub fn assert_no_given_secret(&self, env: &[(&str, &str)], repo: &Path) {
        use base64::Engine as _;
        for (name, value) in env
            .iter()
            .filter(|(k, v)| SECRET_VARIABLES.contains(k) && v.len() >= 4)
        {
            self.assert_secret_absent(value, repo);
            if (*name == "SSH_KEY" || *name == "SIGNING_KEY")
                && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(value)
            {
                for line in String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
                {
                    self.assert_secret_absent(line, repo);
                }
            }
        }
    }

    /// Checks the output contract: stdout is exactly one JSON document.
    pub fn from_output(out: std::process::Output) -> PipeRun {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("stdout is not one JSON document ({e}):\n{stdout}\nstderr:\n{stderr}")
        });
        PipeRun {
            code: out.status.code().unwrap_or(-1),
            stdout,
            stderr,
            report,
        }
    }

    /// The secret appears nowhere: stdout, stderr, report, or any file under
    /// `repo` (its .git and the recovery files included).
    pub fn assert_secret_absent(&self, secret: &str, repo: &Path) {
        assert!(!secret.is_empty());
        assert!(!self.stdout.contains(secret), "secret on stdout");
        assert!(
            !self.stderr.contains(secret),
            "secret on stderr:\n{}",
            self.stderr
        );
        for file in walk(repo) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "secret written to {}",
                file.display()
            );
        }
    }

    pub fn status(&self) -> &str {
        self.report["status"].as_str().unwrap_or("")
    }

    pub fn blockage_kind(&self) -> &str {
        self.report["blockage"]["kind"].as_str().unwrap_or("")
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file below `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out
}

/// COMMIT_BACK_BIN, else the workspace's binary, built now with cargo
/// (`release` for benchmarks).
pub fn commit_back_binary(release: bool) -> Result<PathBuf, String> {
    if let Ok(b) = std::env::var("COMMIT_BACK_BIN") {
        return std::fs::canonicalize(&b).map_err(|e| format!("COMMIT_BACK_BIN={b}: {e}"));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "-q", "--bin", "commit-back", "--manifest-path"])
        .arg(root.join("Cargo.toml"));
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build --bin commit-back failed".into());
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    Ok(target
        .join(if release { "release" } else { "debug" })
        .join("commit-back"))
}

/// `len` bytes that no compressor can shrink (xorshift64 from `seed`): for
/// packs and uploads that really are as big as the file.
pub fn incompressible(len: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15 ^ seed;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    data
}

/// Where Pipelines mounts the clone and the step's SSH material in a pipe container.
pub const PIPELINES_BUILD_DIR: &str = "/opt/atlassian/pipelines/agent/build";
pub const PIPELINES_SSH_DIR: &str = "/opt/atlassian/pipelines/agent/ssh";

/// Runs the image the way Pipelines runs a pipe (facts §4): the clone mounted
/// read-write at the build dir and as working directory, the SSH dir mounted
/// read-only, variables as `-e`. `--network host` reaches the test servers on
/// 127.0.0.1.
pub fn docker_run_pipe(
    image: &str,
    clone: &Path,
    ssh_dir: Option<&Path>,
    env: &[(&str, &str)],
) -> PipeRun {
    docker_run_pipe_with(image, clone, ssh_dir, env, &[])
}

/// [`docker_run_pipe`] with more `docker run` options (say, `--memory 256m`).
pub fn docker_run_pipe_with(
    image: &str,
    clone: &Path,
    ssh_dir: Option<&Path>,
    env: &[(&str, &str)],
    options: &[&str],
) -> PipeRun {
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--network", "host"])
        .args(options)
        .arg("-v")
        .arg(format!("{}:{PIPELINES_BUILD_DIR}", clone.display()))
        .args(["-w", PIPELINES_BUILD_DIR]);
    if let Some(ssh) = ssh_dir {
        cmd.arg("-v")
            .arg(format!("{}:{PIPELINES_SSH_DIR}:ro", ssh.display()));
    }
    for (k, v) in env {
        cmd.arg("-e").arg(format!("{k}={v}"));
    }
    cmd.arg(image);
    let out = cmd.output().expect("docker run");
    let run = PipeRun::from_output(out);
    run.assert_no_given_secret(env, clone);
    run
}
