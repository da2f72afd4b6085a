//! OpenSSH `sshd` on 127.0.0.1 with its own configuration, host key and
//! authorized keys, for pushes over SSH with real key authentication. Stops
//! (killed) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA…`, for KNOWN_HOSTS.
    pub known_hosts_line: String,
    pub user: String,
}

/// A key pair made with ssh-keygen (no passphrase).
pub struct KeyPair {
    pub private: PathBuf,
    pub public_line: String,
}

pub fn keygen(dir: &Path, name: &str) -> KeyPair {
    keygen_with(dir, name, &["-t", "ed25519"])
}

/// The kinds of key users bring, each `ssh-keygen` options by name: the
/// PEM RSA key Pipelines generates (read by OpenSSL's PEM decoder), then
/// ECDSA and Ed25519 in OpenSSH form.
pub const USER_KEY_KINDS: [(&str, &[&str]); 3] = [
    ("rsa", &["-t", "rsa", "-b", "3072", "-m", "PEM"]),
    ("ecdsa", &["-t", "ecdsa", "-b", "256"]),
    ("ed25519", &["-t", "ed25519"]),
];

/// One key pair of each of [`USER_KEY_KINDS`] in `dir`, in that order,
/// each named after its kind.
pub fn keygen_user_kinds(dir: &Path) -> Vec<KeyPair> {
    USER_KEY_KINDS
        .iter()
        .map(|(name, kind)| keygen_with(dir, name, kind))
        .collect()
}

/// A key pair of another kind: `ssh-keygen` options such as
/// `["-t", "rsa", "-m", "PEM"]` (the PEM RSA key Pipelines mounts as id_rsa).
pub fn keygen_with(dir: &Path, name: &str, kind: &[&str]) -> KeyPair {
    let private = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q"])
        .args(kind)
        .args(["-N", "", "-C", name, "-f"])
        .arg(&private)
        .stdout(Stdio::null())
        .status()
        .expect("ssh-keygen (openssh-client)");
    assert!(status.success());
    let public_line = std::fs::read_to_string(private.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned();
    KeyPair {
        private,
        public_line,
    }
}

pub fn sshd_path() -> Option<PathBuf> {
    ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Sshd {
    /// `authorized_keys` lines (options allowed, e.g. `command="…" ssh-ed25519 …`).
    pub fn start(dir: &Path, authorized_keys: &[String]) -> Sshd {
        let sshd = sshd_path().expect("sshd not installed: apt-get install openssh-server");
        std::fs::create_dir_all(dir).unwrap();
        let host = keygen(dir, "host_ed25519");
        std::fs::write(
            dir.join("authorized_keys"),
            authorized_keys.join("\n") + "\n",
        )
        .unwrap();
        let user = current_user();
        // Privilege separation directory sshd insists on.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {dir}/sshd.pid\nAuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUsePAM no\nPermitRootLogin prohibit-password\nAllowUsers {user}\nLogLevel ERROR\n",
                hk = host.private.display(),
                dir = dir.display()
            ),
        )
        .unwrap();
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let host_pub: Vec<&str> = host.public_line.split_whitespace().collect();
        let known_hosts_line = format!("[127.0.0.1]:{port} {} {}", host_pub[0], host_pub[1]);
        Sshd {
            child,
            port,
            dir: dir.to_path_buf(),
            known_hosts_line,
            user,
        }
    }

    /// `ssh://user@127.0.0.1:PORT/abs/path`
    pub fn url(&self, bare: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            bare.display()
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A forced command that behaves like a Bitbucket access key: clones work,
/// pushes are refused with Bitbucket's text.
pub fn read_only_key_line(dir: &Path, public_line: &str) -> String {
    let script = dir.join("read-only-key.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$SSH_ORIGINAL_COMMAND\" in\n  git-receive-pack*) echo \"{}\" >&2; exit 128;;\n  *) exec sh -c \"$SSH_ORIGINAL_COMMAND\";;\nesac\n",
            crate::texts::READ_ONLY_KEY
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("command=\"{}\",no-pty {public_line}", script.display())
}

/// A forced command that refuses every git command with `text` on stderr, as
/// Bitbucket's SSH front does for refusals decided before git runs.
pub fn refusing_key_line(dir: &Path, public_line: &str, name: &str, text: &str) -> String {
    let script = dir.join(format!("refuse-{name}.sh"));
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"{text}\" >&2\nexit 128\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("command=\"{}\",no-pty {public_line}", script.display())
}
