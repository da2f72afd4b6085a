//! A real Git LFS server: giftless (PyPI) with its local-storage backend,
//! served by waitress on 127.0.0.1, started by the test and killed when
//! dropped. [`crate::GitHttpServer::serve_lfs`] puts it behind the git
//! server, at `<repository>.git/info/lfs`, where Bitbucket has its LFS API.
//!
//! The test script installs giftless into `target/giftless-venv`
//! (scripts/test.sh); `GIFTLESS_VENV` names another. A missing giftless is
//! a failure, never a skipped test.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct LfsServer {
    child: Child,
    pub port: u16,
    /// Objects are stored at `<storage>/<org>/<repo>/<oid>`.
    pub storage: PathBuf,
}

/// The virtual environment giftless is installed in.
pub fn giftless_venv() -> PathBuf {
    match std::env::var_os("GIFTLESS_VENV") {
        Some(v) => PathBuf::from(v),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace")
            .join("target/giftless-venv"),
    }
}

impl LfsServer {
    /// giftless with anonymous read-write (the git server in front of it
    /// authenticates, as Bitbucket's does), basic transfers with verify
    /// actions, objects under `dir/storage`.
    pub fn start(dir: &Path) -> LfsServer {
        let serve = giftless_venv().join("bin/waitress-serve");
        assert!(
            serve.exists(),
            "giftless is not installed at {} (scripts/test.sh installs it)",
            serve.display()
        );
        std::fs::create_dir_all(dir).unwrap();
        let storage = dir.join("storage");
        let config = dir.join("giftless.yaml");
        // The JWT provider is what authorises the upload/verify hrefs even
        // for anonymous users (without it, PUT answers 403); its lifetime
        // must cover the test.
        std::fs::write(
            &config,
            format!(
                "AUTH_PROVIDERS:\n  - giftless.auth.allow_anon:read_write\nTRANSFER_ADAPTERS:\n  basic:\n    factory: giftless.transfer.basic_streaming:factory\n    options:\n      storage_class: giftless.storage.local_storage:LocalStorage\n      storage_options: {{path: {}}}\n      action_lifetime: 900\nPRE_AUTHORIZED_ACTION_PROVIDER:\n  factory: giftless.auth.jwt:factory\n  options: {{algorithm: HS256, private_key: test-key-not-a-secret, default_lifetime: 900}}\nLEGACY_ENDPOINTS: false\n",
                storage.display()
            ),
        )
        .unwrap();
        let mut child = Command::new(&serve)
            // waitress refuses bodies of 1 GiB and more by default.
            .args([
                "--listen=127.0.0.1:0",
                "--max-request-body-size=68719476736",
                "giftless.wsgi_entrypoint:app",
            ])
            .current_dir(dir)
            .env("GIFTLESS_CONFIG_FILE", &config)
            .env("PYTHONWARNINGS", "ignore")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start giftless (waitress-serve)");
        // waitress says "Serving on http://127.0.0.1:PORT" on stderr.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent
                    && let Some(port) = line
                        .split("Serving on http://127.0.0.1:")
                        .nth(1)
                        .and_then(|p| p.trim().parse::<u16>().ok())
                {
                    let _ = tx.send(port);
                    sent = true;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Ok(p) = rx.recv_timeout(Duration::from_millis(100)) {
                break p;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("giftless exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "giftless did not start in 30 s");
        };
        LfsServer {
            child,
            port,
            storage,
        }
    }

    /// `http://127.0.0.1:PORT/<org>/<repo>.git/info/lfs`: giftless itself,
    /// without the git server's authentication (for the git-lfs client
    /// that checks what was uploaded).
    pub fn direct_url(&self, org: &str, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{org}/{repo}.git/info/lfs", self.port)
    }

    /// Where giftless keeps an object of `org/repo`.
    pub fn object(&self, org: &str, repo: &str, oid: &str) -> PathBuf {
        self.storage.join(org).join(repo).join(oid)
    }
}

impl Drop for LfsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
