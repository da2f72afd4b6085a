//! End-to-end tests: the real binary, a cleared environment, real git servers
//! (git http-backend over HTTP, OpenSSH sshd) on 127.0.0.1, real clones made
//! the way Pipelines makes them. Every test that uses a secret checks that it
//! appears nowhere.

mod abuse;
mod api;
mod arm64;
mod config_errors;
mod container;
mod docs;
mod faults;
mod http_push;
mod large_files;
mod lfs;
mod lost_answers;
mod merge;
mod outside;
mod parity;
mod progress;
mod races;
mod refusals;
mod signing;
mod ssh;
mod targets;
mod transport;

use std::path::{Path, PathBuf};
use testkit::{GitHttpServer, PipeRun, World, git, run_pipe};

pub const BIN: &str = env!("CARGO_BIN_EXE_commit-back");
pub const TOKEN: &str = "ATCTT3xFfGN0-access-token-secret-4711";

pub struct Fixture {
    pub world: World,
    pub server: GitHttpServer,
    pub bare: PathBuf,
    pub clone: PathBuf,
}

impl Fixture {
    /// ws/repo with 3 commits on main, served over HTTP; an access token that
    /// pushes as "token-user"; a Pipelines-style clone of depth `depth`.
    pub fn new(depth: Option<u32>) -> Fixture {
        let world = World::new();
        let bare = world.upstream("ws/repo", 3);
        let server = GitHttpServer::start(&world.root());
        server.account("x-token-auth", TOKEN, "token-user");
        let clone =
            world.pipelines_clone(&bare, "clone", "main", depth, &server.url("ws/repo.git"));
        Fixture {
            world,
            server,
            bare,
            clone,
        }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("BITBUCKET_BRANCH", "main".to_string()),
            ("BITBUCKET_REPO_FULL_NAME", "ws/repo".to_string()),
            ("REMOTE_URL", self.server.url("ws/repo.git")),
            ("BITBUCKET_ACCESS_TOKEN", TOKEN.to_string()),
            ("NO_COLOR", "1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Runs in the clone with the base environment plus `extra` (which
    /// overrides; an empty value removes the variable).
    pub fn run(&self, extra: &[(&str, &str)]) -> PipeRun {
        self.run_in(&self.clone, extra)
    }

    pub fn run_in(&self, dir: &Path, extra: &[(&str, &str)]) -> PipeRun {
        let env = merge(self.env(), extra);
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_pipe(Path::new(BIN), dir, &pairs)
    }

    pub fn write(&self, rel: &str, content: &str) {
        write_file(&self.clone, rel, content);
    }

    pub fn upstream_tip(&self) -> String {
        git(&self.bare, &["rev-parse", "main"])
    }

    /// The commit the report names is the upstream branch's tip.
    pub fn assert_landed(&self, run: &PipeRun) {
        assert_eq!(
            self.upstream_tip(),
            run.report["commit"]["sha"].as_str().unwrap(),
            "{}",
            run.stderr
        );
    }
}

pub fn merge(mut env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    for (k, v) in extra {
        env.retain(|(kk, _)| kk != k);
        if !v.is_empty() {
            env.push((k.to_string(), v.to_string()));
        }
    }
    env
}

pub fn write_file(dir: &Path, rel: &str, content: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// `git status --porcelain` of a working tree (used to prove nothing changed).
pub fn status(dir: &Path) -> String {
    git(dir, &["status", "--porcelain", "--untracked-files=all"])
}

/// Runs the binary after `setup` (shell) in a private mount namespace, then
/// `after`; root and unshare(1) needed, else None. Variables for the scripts:
/// BIN, CLONE, WORLD. stdout is the binary's alone.
pub fn namespaced(f: &Fixture, setup: &str, after: &str, env: &[(&str, &str)]) -> Option<PipeRun> {
    let unshare = ["/usr/bin/unshare", "/bin/unshare"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    if !root {
        return None;
    }
    let mut all = merge(f.env(), env);
    all.push(("PATH".into(), std::env::var("PATH").unwrap_or_default()));
    all.push(("BIN".into(), BIN.into()));
    all.push(("CLONE".into(), f.clone.display().to_string()));
    all.push(("WORLD".into(), f.world.path().display().to_string()));
    let script = format!("set -e\n{setup}\nset +e\n\"$BIN\"\ncode=$?\n{after}\nexit $code\n");
    let out = std::process::Command::new(unshare)
        .args(["--mount", "sh", "-c", &script])
        .current_dir(&f.clone)
        .env_clear()
        .envs(all)
        .output()
        .unwrap();
    Some(PipeRun::from_output(out))
}
