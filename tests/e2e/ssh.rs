//! SSH with real key authentication against OpenSSH sshd on 127.0.0.1.

use crate::Fixture;
use base64::Engine as _;
use testkit::sshd::{Sshd, keygen, read_only_key_line};
use testkit::{PipeRun, git};

pub(crate) struct SshFixture {
    pub(crate) f: Fixture,
    sshd: Sshd,
    pub(crate) key: testkit::sshd::KeyPair,
}

pub(crate) fn fixture(read_only: bool, register: bool) -> SshFixture {
    let f = Fixture::new(Some(50));
    let dir = f.world.path().join("ssh");
    std::fs::create_dir_all(&dir).unwrap();
    let key = keygen(&dir, "bot_key");
    let other = keygen(&dir, "someone_else");
    let line = match (register, read_only) {
        (false, _) => other.public_line.clone(),
        (true, false) => key.public_line.clone(),
        (true, true) => read_only_key_line(&dir, &key.public_line),
    };
    let sshd = Sshd::start(&dir.join("sshd"), &[line]);
    SshFixture { f, sshd, key }
}

impl SshFixture {
    fn private_key(&self) -> String {
        std::fs::read_to_string(&self.key.private).unwrap()
    }

    pub(crate) fn run(&self, extra: &[(&str, &str)]) -> PipeRun {
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.private_key());
        let url = self.sshd.url(&self.f.bare);
        let mut env = vec![
            ("BITBUCKET_ACCESS_TOKEN", ""),
            ("SSH_KEY", b64.as_str()),
            ("REMOTE_URL", url.as_str()),
            ("KNOWN_HOSTS", self.sshd.known_hosts_line.as_str()),
        ];
        env.extend_from_slice(extra);
        self.f
            .write("dist/ids.json", &format!("{}\n", std::process::id()));
        let run = self.f.run(&env);
        // No line of the private key may leak.
        for line in self
            .private_key()
            .lines()
            .filter(|l| !l.starts_with("-----"))
        {
            run.assert_secret_absent(line, &self.f.clone);
        }
        run.assert_secret_absent(&b64, &self.f.clone);
        run
    }
}

#[test]
fn ssh_key_variable_pushes() {
    let s = fixture(false, true);
    let run = s.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["credential"]["kind"], "ssh_key");
    s.f.assert_landed(&run);
    git(&s.f.bare, &["fsck", "--strict"]);
}

#[test]
fn pipeline_key_file_and_its_known_hosts() {
    let s = fixture(false, true);
    // The layout Pipelines mounts: id_rsa and known_hosts side by side.
    let mount = s.f.world.path().join("agent-ssh");
    std::fs::create_dir_all(&mount).unwrap();
    std::fs::copy(&s.key.private, mount.join("id_rsa")).unwrap();
    std::fs::write(
        mount.join("known_hosts"),
        format!("{}\n", s.sshd.known_hosts_line),
    )
    .unwrap();
    let key_file = mount.join("id_rsa");
    let run = s.run(&[
        ("SSH_KEY", ""),
        ("KNOWN_HOSTS", ""),
        ("AUTH", "ssh"),
        ("BITBUCKET_SSH_KEY_FILE", key_file.to_str().unwrap()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["credential"]["kind"], "ssh_key");
}

#[test]
fn unknown_host_key_is_refused() {
    let s = fixture(false, true);
    let run = s.run(&[("KNOWN_HOSTS", "")]);
    assert_ne!(run.code, 0);
    assert_eq!(run.status(), "blocked");
    assert!(run.stderr.contains("is not known"), "{}", run.stderr);
    assert!(!run.report["recovery"].is_null());
}

#[test]
fn tag_follows_the_branch_over_ssh() {
    let s = fixture(false, true);
    let run = s.run(&[("TAG", "v9")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        git(&s.f.bare, &["rev-parse", "v9^{commit}"]),
        s.f.upstream_tip()
    );
}

/// Over SSH the tag follows the branch in a second push: when the branch
/// lands and the tag is refused, the run says exactly that.
#[test]
fn branch_landed_tag_refused_over_ssh() {
    let s = fixture(false, true);
    s.f.world.hook(
        &s.f.bare,
        "pre-receive",
        "#!/bin/sh\nwhile read old new ref; do case $ref in refs/tags/*) echo \"Tags are created by the release team.\" >&2; exit 1;; esac; done\n",
    );
    let run = s.run(&[("TAG", "v10")]);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    assert_eq!(run.blockage_kind(), "hook_rejected");
    assert_eq!(run.code, 1, "the tag's refusal decides the exit code");
    s.f.assert_landed(&run);
    assert!(git(&s.f.bare, &["tag", "-l", "v10"]).is_empty());
    let summary = run.report["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("Pushed ") && summary.contains("The tag v10 was not pushed"),
        "{summary}"
    );
    let refs = run.report["refs"].as_array().unwrap();
    assert_eq!(refs[0]["name"], "refs/heads/main");
    assert_eq!(refs[0]["status"], "updated");
    assert_eq!(refs[1]["name"], "refs/tags/v10");
    assert_eq!(refs[1]["status"], "rejected");
    assert!(run.report["recovery"].is_null(), "the commit is upstream");
}

#[test]
fn unregistered_key_fails_once_as_invalid_credentials() {
    let s = fixture(false, false);
    let run = s.run(&[]);
    assert_eq!(run.blockage_kind(), "invalid_credentials", "{}", run.stderr);
    assert_eq!(run.code, 3);
    assert_eq!(run.report["attempts"], 1);
}

#[test]
fn read_only_access_key() {
    let s = fixture(true, true);
    let run = s.run(&[]);
    assert_eq!(run.blockage_kind(), "read_only_key", "{}", run.stderr);
    assert_eq!(run.code, 7);
    assert_eq!(
        run.report["blockage"]["remote_messages"][0],
        testkit::texts::READ_ONLY_KEY
    );
}

#[test]
fn branch_restriction_over_ssh() {
    let s = fixture(false, true);
    s.f.world.hook(
        &s.f.bare,
        "pre-receive",
        "#!/bin/sh\necho 'Permission denied to update branch main.' >&2\nexit 1\n",
    );
    let run = s.run(&[]);
    assert_eq!(run.blockage_kind(), "branch_restriction", "{}", run.stderr);
    assert_eq!(run.code, 4);
}

/// Refusals Bitbucket's SSH front makes before git runs. Only the repository
/// text is captured for SSH (facts §1(h), older `conq:` form); the 2SV and IP
/// allowlist forms over SSH are NOT CONFIRMED, so these use the HTTPS wording
/// to show the loose match holds on this path too.
#[test]
fn refusals_before_git_runs_over_ssh() {
    let cases = [
        (
            "not-found",
            "conq: repository does not exist.",
            "repository_not_found",
            7,
        ),
        (
            "two-step",
            "To access this repository, enable two-step authentication.",
            "two_step_verification",
            5,
        ),
        (
            "ip",
            "To access this repository, an admin must whitelist your IP.",
            "ip_allowlist",
            6,
        ),
    ];
    for (name, text, kind, code) in cases {
        let f = Fixture::new(Some(50));
        let dir = f.world.path().join("ssh");
        std::fs::create_dir_all(&dir).unwrap();
        let key = keygen(&dir, "bot_key");
        let line = testkit::sshd::refusing_key_line(&dir, &key.public_line, name, text);
        let sshd = Sshd::start(&dir.join("sshd"), &[line]);
        let s = SshFixture { f, sshd, key };
        let run = s.run(&[]);
        assert_eq!(run.blockage_kind(), kind, "{name}: {}", run.stderr);
        assert_eq!(run.code, code, "{name}");
        assert_eq!(run.report["blockage"]["remote_messages"][0], text, "{name}");
    }
}

#[test]
fn size_limit_and_unknown_hook_over_ssh() {
    for (hook, kind) in [
        (
            "Repository is over the size limit (4 GB) and will not accept further additions.",
            "repository_size_limit",
        ),
        ("Commits must be signed.", "signature_required"),
        ("Commit messages must name a JIRA issue.", "hook_rejected"),
    ] {
        let s = fixture(false, true);
        s.f.world.hook(
            &s.f.bare,
            "pre-receive",
            &format!("#!/bin/sh\necho '{hook}' >&2\nexit 1\n"),
        );
        let run = s.run(&[]);
        assert_eq!(run.blockage_kind(), kind, "{}", run.stderr);
        assert_eq!(
            run.report["blockage"]["ref_status"],
            "pre-receive hook declined"
        );
    }
}

/// What OpenSSH's `ssh` decides for the same known_hosts lines: true when it
/// would connect to the test server, and its first complaint otherwise.
fn openssh_decides(s: &SshFixture, known_hosts: &str) -> (bool, String) {
    let file = s.f.world.path().join("openssh_known_hosts");
    std::fs::write(&file, known_hosts).unwrap();
    let out = std::process::Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", file.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null", "-i"])
        .arg(&s.key.private)
        .args(["-p", &s.sshd.port.to_string()])
        .arg(format!("{}@127.0.0.1", s.sshd.user))
        .arg("true")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `host K` followed by `@revoked host K` (and the reverse, and a wildcard
/// revocation): OpenSSH refuses the key wherever the revoking line stands,
/// and so does commit-back; nothing is pushed.
#[test]
fn revoked_host_key_is_refused_as_openssh_refuses_it() {
    let s = fixture(false, true);
    let line = s.sshd.known_hosts_line.clone();
    let key_part = line.split_once(' ').unwrap().1;
    let before = s.f.upstream_tip();
    for (i, known_hosts) in [
        format!("{line}\n@revoked {line}\n"),
        format!("@revoked {line}\n{line}\n"),
        format!("{line}\n@revoked * {key_part}\n"),
    ]
    .into_iter()
    .enumerate()
    {
        s.f.write(&format!("dist/run-{i}.txt"), "new\n");
        let (connects, said) = openssh_decides(&s, &known_hosts);
        assert!(!connects, "OpenSSH accepted {known_hosts}");
        assert!(said.contains("REVOKED HOST KEY"), "{said}");
        let run = s.run(&[("KNOWN_HOSTS", known_hosts.as_str())]);
        assert_eq!(run.status(), "blocked", "{known_hosts}\n{}", run.stderr);
        assert!(run.stderr.contains("is revoked"), "{}", run.stderr);
        assert_eq!(s.f.upstream_tip(), before);
    }
    // The control: the plain line alone is trusted by both.
    let (connects, said) = openssh_decides(&s, &format!("{line}\n"));
    assert!(connects, "{said}");
    s.f.write("dist/run-control.txt", "new\n");
    let run = s.run(&[("KNOWN_HOSTS", line.as_str())]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// A `@cert-authority` line never makes a host key trusted (the server here
/// presents a plain key, signed by no one), and the refusal says why.
#[test]
fn cert_authority_lines_are_not_trusted() {
    let s = fixture(false, true);
    let key_part = s.sshd.known_hosts_line.split_once(' ').unwrap().1;
    let known_hosts = format!("@cert-authority [127.0.0.1]:{} {key_part}\n", s.sshd.port);
    let (connects, _) = openssh_decides(&s, &known_hosts);
    assert!(!connects);
    let run = s.run(&[("KNOWN_HOSTS", known_hosts.as_str())]);
    assert_eq!(run.status(), "blocked", "{}", run.stderr);
    assert!(run.stderr.contains("@cert-authority"), "{}", run.stderr);
}
