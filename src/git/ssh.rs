//! SSH: host-key verification and the one-shot key credential.
//!
//! libgit2 would look for `$HOME/.ssh/known_hosts`, which a scratch container
//! does not have, so the host key is checked here, in `certificate_check`,
//! against Bitbucket's published keys, the pipeline's known_hosts and
//! KNOWN_HOSTS. Unknown or changed keys are refused: never trust on first use.

use base64::Engine as _;
use hmac::{Hmac, Mac};

/// Bitbucket Cloud's published host keys (https://bitbucket.org/site/ssh).
pub const BITBUCKET_HOST_KEYS: &[&str] = &[
    "bitbucket.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIazEu89wgQZ4bqs3d63QSMzYVa0MuJ2e2gKTKqu+UUO",
    "bitbucket.org ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPIQmuzMBuKdWeF4+a2sjSSpBK0iqitSQ+5BM9KhpexuGt20JpTVM7u5BDZngncgrqDMbWdxMWWOGtZ9UgbqgZE=",
    "bitbucket.org ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQDQeJzhupRu0u0cdegZIa8e86EG2qOCsIsD1Xw0xSeiPDlCr7kq97NLmMbpKTX6Esc30NuoqEEHCuc7yWtwp8dI76EEEB1VqY9QJq6vk+aySyboD5QF61I/1WeTwu+deCbgKMGbUijeXhtfbxSxm6JwGrXrhBdofTsbKRUsrN1WoNgUa8uqN1Vx6WAJw1JHPhglEGGHea6QICwJOAr/6mrui/oB7pkaWKHj3z7d1IC4KWLtY47elvjbaTlkN04Kc/5LFEirorGYVbt15kAUlqGM65pk6ZBxtaO3+30LVlORZkxOh+LKL/BvbZ/iRNhItLqNyieoQj/uh/7Iv4uyH/cV/0b4WDSd3DptigWq84lJubb9t/DnZlrJazxyDCulTmKdOR7vs9gMTo+uoIrPSb8ScTtvw65+odKAlBj59dhnVp9zd7QUojOpXlL62Aw56U4oO+FALuevvMjiWeavKhJqlR7i5n9srYcrNV7ttmDw7kf/97P5zauIhxcjX+xHv4M=",
];

/// A parsed known_hosts file.
#[derive(Debug, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    marker: Marker,
    patterns: Vec<String>,
    key: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// A host key.
    None,
    /// `@revoked`: this key must never be accepted for the matching hosts.
    Revoked,
    /// `@cert-authority`: host certificates are not supported; such a line
    /// never makes a key trusted, and is named when a host key is unknown.
    CertAuthority,
}

/// The outcome of checking a host key.
#[derive(Debug, PartialEq, Eq)]
pub enum HostKeyCheck {
    Trusted,
    Unknown,
    /// Unknown, and a `@cert-authority` line names the host: the server
    /// probably presents a certificate, which is not supported.
    UnknownCertificateAuthority,
    Mismatch,
    Revoked,
}

impl HostKeyCheck {
    /// Why the key of `host:port` is not trusted, as the error says it;
    /// None when it is trusted.
    pub fn problem(&self, host: &str, port: u16) -> Option<String> {
        let problem = match self {
            HostKeyCheck::Trusted => return None,
            HostKeyCheck::Unknown => {
                "is not known: add it to KNOWN_HOSTS (ssh-keyscan output) or the pipeline's known hosts"
            }
            HostKeyCheck::Mismatch => {
                "does not match the known key: refusing to connect (possible man-in-the-middle, or the server's key changed)"
            }
            HostKeyCheck::UnknownCertificateAuthority => {
                "is not known: known_hosts trusts it only through an @cert-authority line, and host certificates are not supported; add the host key itself to KNOWN_HOSTS (ssh-keyscan output)"
            }
            HostKeyCheck::Revoked => {
                "is revoked in known_hosts (an @revoked line names it): refusing to connect"
            }
        };
        Some(format!("the SSH host key of {host}:{port} {problem}"))
    }
}

impl KnownHosts {
    /// Built-in Bitbucket keys plus `extra` lines. Unparseable lines are skipped,
    /// as OpenSSH does.
    pub fn with_bitbucket(extra: &[String]) -> Self {
        let mut kh = KnownHosts::default();
        for line in BITBUCKET_HOST_KEYS
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
        {
            if let Some(e) = parse_line(line) {
                kh.entries.push(e);
            }
        }
        kh
    }

    /// `host` as OpenSSH writes it: `name` for port 22, `[name]:port` otherwise.
    /// As OpenSSH does, revocation is checked across every matching entry
    /// (built-in keys, the pipeline's known_hosts and KNOWN_HOSTS alike)
    /// before any match counts: a revoked key is never trusted, wherever
    /// the line that revokes it stands.
    pub fn check(&self, host: &str, port: u16, key: &[u8]) -> HostKeyCheck {
        let name = if port == 22 {
            host.to_owned()
        } else {
            format!("[{host}]:{port}")
        };
        let matching: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| host_matches(&e.patterns, &name))
            .collect();
        let any = |marker: Marker, same_key: bool| {
            matching
                .iter()
                .any(|e| e.marker == marker && (!same_key || e.key == key))
        };
        if any(Marker::Revoked, true) {
            HostKeyCheck::Revoked
        } else if any(Marker::None, true) {
            HostKeyCheck::Trusted
        } else if any(Marker::None, false) {
            HostKeyCheck::Mismatch
        } else if any(Marker::CertAuthority, false) {
            HostKeyCheck::UnknownCertificateAuthority
        } else {
            HostKeyCheck::Unknown
        }
    }

    /// How many `@cert-authority` lines were read (and not trusted).
    pub fn certificate_authorities(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.marker == Marker::CertAuthority)
            .count()
    }
}

fn parse_line(line: &str) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let mut marker = Marker::None;
    if first.starts_with('@') {
        marker = match first {
            "@revoked" => Marker::Revoked,
            "@cert-authority" => Marker::CertAuthority,
            _ => return None, // OpenSSH ignores unknown markers' lines too
        };
        first = fields.next()?;
    }
    let _key_type = fields.next()?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(fields.next()?)
        .ok()?;
    Some(Entry {
        marker,
        patterns: first.split(',').map(str::to_owned).collect(),
        key,
    })
}

fn host_matches(patterns: &[String], name: &str) -> bool {
    let mut matched = false;
    for p in patterns {
        if let Some(hashed) = p.strip_prefix("|1|") {
            if hashed_matches(hashed, name) {
                matched = true;
            }
        } else if let Some(neg) = p.strip_prefix('!') {
            if wildcard(neg, name) {
                return false;
            }
        } else if wildcard(p, name) {
            matched = true;
        }
    }
    matched
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, host))`, as `ssh-keygen -H` writes.
fn hashed_matches(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// OpenSSH pattern: `*` any run, `?` one character, case-insensitive.
fn wildcard(pattern: &str, text: &str) -> bool {
    use crate::text::{Case, Wildcards, glob_matches};
    glob_matches(pattern, text, Wildcards::StarAndQuestion, Case::Insensitive)
}

/// Host and port of an SSH URL (`ssh://user@host:port/path` or `user@host:path`).
/// What `git-lfs-authenticate` answers: where the LFS API is, and the
/// headers that authorise a request there.
#[derive(Debug, serde::Deserialize)]
pub struct LfsAuthentication {
    pub href: String,
    #[serde(default)]
    pub header: std::collections::HashMap<String, crate::secret::Secret>,
}

/// Runs `git-lfs-authenticate <path> upload` on the SSH server of `url`,
/// as git-lfs does before an upload over SSH (docs/api/server-discovery.md):
/// a session of its own, with the push's key, the host key checked as for
/// the push. Errors are one sentence; the server's stderr is kept.
pub fn lfs_authenticate(
    url: &str,
    path: &str,
    key: &crate::secret::Secret,
    known_hosts: &KnownHosts,
    timeout: std::time::Duration,
) -> Result<LfsAuthentication, (String, Vec<String>)> {
    use std::io::Read as _;
    use std::net::ToSocketAddrs as _;
    let plain = |s: String| (s, Vec::new());
    let (host, port) =
        host_and_port(url).ok_or_else(|| plain(format!("'{url}' is not an SSH URL")))?;
    let user = ssh_user(url).unwrap_or("git");
    let address = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| plain(format!("failed to resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| plain(format!("failed to resolve {host}")))?;
    let tcp = std::net::TcpStream::connect_timeout(&address, timeout)
        .map_err(|e| plain(format!("failed to connect to {host}:{port}: {e}")))?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let mut session = ssh2::Session::new().map_err(|e| plain(format!("SSH: {e}")))?;
    session.set_timeout(timeout.as_millis().min(u32::MAX as u128) as u32);
    session.set_tcp_stream(tcp);
    session
        .handshake()
        .map_err(|e| plain(format!("SSH handshake with {host}:{port}: {}", e.message())))?;
    let (hostkey, _) = session
        .host_key()
        .ok_or_else(|| plain("the SSH server sent no host key".into()))?;
    if let Some(problem) = known_hosts.check(&host, port, hostkey).problem(&host, port) {
        return Err(plain(problem));
    }
    session
        .userauth_pubkey_memory(user, None, key.expose(), None)
        .map_err(|_| {
            plain("the server refused the SSH key: Permission denied (publickey)".into())
        })?;
    let mut channel = session
        .channel_session()
        .map_err(|e| plain(format!("SSH: {}", e.message())))?;
    // As git-lfs sends it (unquoted), unless the path needs quoting.
    let safe = |c: char| c.is_ascii_alphanumeric() || "._/~-+@".contains(c);
    let shown = if !path.is_empty() && path.chars().all(safe) {
        path.to_owned()
    } else {
        format!("'{}'", path.replace('\'', "'\\''"))
    };
    let command = format!("git-lfs-authenticate {shown} upload");
    channel.exec(&command).map_err(|e| {
        plain(format!(
            "SSH: running git-lfs-authenticate: {}",
            e.message()
        ))
    })?;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let read = (&mut channel).take(1 << 20).read_to_end(&mut stdout);
    let _ = channel.stderr().take(64 * 1024).read_to_end(&mut stderr);
    let _ = channel.wait_close();
    let status = channel.exit_status().unwrap_or(-1);
    let lines = crate::text::split_lines(&String::from_utf8_lossy(&stderr));
    if let Err(e) = read {
        return Err((
            format!("SSH: reading git-lfs-authenticate's answer: {e}"),
            lines,
        ));
    }
    if status != 0 {
        return Err((
            format!("git-lfs-authenticate exited with status {status}"),
            lines,
        ));
    }
    serde_json::from_slice(&stdout).map_err(|e| {
        (
            format!("git-lfs-authenticate's answer is not the JSON git-lfs expects ({e})"),
            lines,
        )
    })
}

/// The user of an SSH URL (`git@host:path`, `ssh://git@host/path`).
fn ssh_user(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("ssh://").unwrap_or(url);
    let authority = rest.split(['/', ':']).next()?;
    authority.rsplit_once('@').map(|(u, _)| u)
}

pub fn host_and_port(url: &str) -> Option<(String, u16)> {
    if let Some(rest) = url.strip_prefix("ssh://") {
        let authority = rest.split('/').next()?;
        let hostport = authority
            .rsplit_once('@')
            .map(|(_, h)| h)
            .unwrap_or(authority);
        if let Some(inner) = hostport.strip_prefix('[') {
            let (host, after) = inner.split_once(']')?;
            let port = after
                .strip_prefix(':')
                .map(|p| p.parse().ok())
                .unwrap_or(Some(22))?;
            return Some((host.to_owned(), port));
        }
        return match hostport.rsplit_once(':') {
            Some((h, p)) => Some((h.to_owned(), p.parse().ok()?)),
            None => Some((hostport.to_owned(), 22)),
        };
    }
    let (userhost, _) = url.split_once(':')?;
    Some((
        userhost
            .rsplit_once('@')
            .map(|(_, h)| h)
            .unwrap_or(userhost)
            .to_owned(),
        22,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_B64: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIIazEu89wgQZ4bqs3d63QSMzYVa0MuJ2e2gKTKqu+UUO";

    fn key() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(KEY_B64)
            .unwrap()
    }

    #[test]
    fn bitbucket_keys_are_built_in() {
        let kh = KnownHosts::with_bitbucket(&[]);
        assert_eq!(kh.check("bitbucket.org", 22, &key()), HostKeyCheck::Trusted);
        assert_eq!(
            kh.check("bitbucket.org", 22, b"other"),
            HostKeyCheck::Mismatch
        );
        assert_eq!(kh.check("evil.example", 22, &key()), HostKeyCheck::Unknown);
        assert_eq!(
            kh.check("bitbucket.org", 2222, &key()),
            HostKeyCheck::Unknown
        );
    }

    #[test]
    fn ports_patterns_negation_hashes_and_revocation() {
        let extra = vec![
            format!("[127.0.0.1]:2222 ssh-ed25519 {KEY_B64}"),
            format!("*.example.com,!bad.example.com ssh-ed25519 {KEY_B64}"),
            // `ssh-keygen -H` form of "hashed.example" with salt "salt".
            format!("|1|c2FsdA==|{} ssh-ed25519 {KEY_B64}", {
                let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"salt").unwrap();
                mac.update(b"hashed.example");
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
            }),
            format!("@revoked revoked.example ssh-ed25519 {KEY_B64}"),
            format!("@cert-authority *.corp.example ssh-ed25519 {KEY_B64}"),
        ];
        let kh = KnownHosts::with_bitbucket(&extra);
        assert_eq!(kh.check("127.0.0.1", 2222, &key()), HostKeyCheck::Trusted);
        assert_eq!(kh.check("127.0.0.1", 22, &key()), HostKeyCheck::Unknown);
        assert_eq!(
            kh.check("git.example.com", 22, &key()),
            HostKeyCheck::Trusted
        );
        assert_eq!(
            kh.check("bad.example.com", 22, &key()),
            HostKeyCheck::Unknown
        );
        assert_eq!(
            kh.check("hashed.example", 22, &key()),
            HostKeyCheck::Trusted
        );
        assert_eq!(
            kh.check("revoked.example", 22, &key()),
            HostKeyCheck::Revoked
        );
        // A certificate authority's key is not a host key.
        assert_eq!(
            kh.check("git.corp.example", 22, &key()),
            HostKeyCheck::UnknownCertificateAuthority
        );
        assert_eq!(kh.certificate_authorities(), 1);
    }

    /// `host K` then `@revoked host K`, either order, and a built-in
    /// Bitbucket key revoked through KNOWN_HOSTS: OpenSSH refuses all three.
    #[test]
    fn revocation_wins_wherever_it_stands() {
        for lines in [
            [
                format!("h.example ssh-ed25519 {KEY_B64}"),
                format!("@revoked h.example ssh-ed25519 {KEY_B64}"),
            ],
            [
                format!("@revoked * ssh-ed25519 {KEY_B64}"),
                format!("h.example ssh-ed25519 {KEY_B64}"),
            ],
        ] {
            let kh = KnownHosts::with_bitbucket(&lines);
            assert_eq!(kh.check("h.example", 22, &key()), HostKeyCheck::Revoked);
        }
        let kh =
            KnownHosts::with_bitbucket(&[format!("@revoked bitbucket.org ssh-ed25519 {KEY_B64}")]);
        assert_eq!(kh.check("bitbucket.org", 22, &key()), HostKeyCheck::Revoked);
    }

    #[test]
    fn urls() {
        assert_eq!(
            host_and_port("git@bitbucket.org:ws/r.git"),
            Some(("bitbucket.org".into(), 22))
        );
        assert_eq!(
            host_and_port("ssh://git@127.0.0.1:2222/srv/r.git"),
            Some(("127.0.0.1".into(), 2222))
        );
        assert_eq!(
            host_and_port("ssh://[::1]:2200/r.git"),
            Some(("::1".into(), 2200))
        );
        assert_eq!(host_and_port("ssh://host/r.git"), Some(("host".into(), 22)));
    }
}
