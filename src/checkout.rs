//! Defaults from the checkout, for use outside Bitbucket Pipelines (Jenkins,
//! other CI, a laptop): the checked-out branch and the `origin` remote. Pure:
//! `run` reads the facts from the repository, `config` uses them only where
//! no variable says otherwise.

/// What the working copy says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkout {
    /// The branch HEAD is on; None on a detached HEAD.
    pub branch: Option<String>,
    pub detached: bool,
    /// `origin`'s URL, exactly as configured (it may hold a credential).
    pub origin_url: Option<String>,
}

/// A parsed origin URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub host: String,
    /// `workspace/repo_slug` when the path has that shape.
    pub full_name: Option<String>,
    /// The URL without any user or password.
    pub url: String,
    /// A password embedded in the URL (to be redacted, never used).
    pub embedded_secret: Option<String>,
}

impl Origin {
    pub fn is_bitbucket_cloud(&self) -> bool {
        self.host.eq_ignore_ascii_case("bitbucket.org")
    }
}

/// Parses the forms Bitbucket clones use: `https://[user[:secret]@]host/ws/repo[.git]`,
/// `http://bitbucket.org/ws/repo` (Pipelines), `git@host:ws/repo.git`,
/// `ssh://git@host[:port]/ws/repo.git`.
pub fn parse_origin(url: &str) -> Option<Origin> {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let (authority, path, clean) = match scheme {
        Some(s @ ("http" | "https" | "ssh")) => {
            let (authority, path) = rest.split_at(rest.find('/')?);
            let (userinfo, host) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, authority),
            };
            let user = userinfo.map(|u| u.split(':').next().unwrap_or(""));
            // Keep an ssh user (git@); drop http credentials entirely.
            let clean = match (s, user) {
                ("ssh", Some(u)) => format!("ssh://{u}@{host}{path}"),
                _ => format!("{s}://{host}{path}"),
            };
            let secret = userinfo
                .and_then(|u| u.split_once(':'))
                .map(|(_, p)| p.to_owned())
                .filter(|p| !p.is_empty());
            return Some(Origin {
                host: host.split(':').next().unwrap_or(host).to_owned(),
                full_name: full_name(path),
                url: clean,
                embedded_secret: secret,
            });
        }
        Some(_) => return None,
        None => {
            let (userhost, path) = rest.split_once(':')?;
            if userhost.contains('/') {
                return None;
            }
            (userhost, path, url.to_owned())
        }
    };
    let host = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    Some(Origin {
        host: host.to_owned(),
        full_name: full_name(path),
        url: clean,
        embedded_secret: None,
    })
}

fn full_name(path: &str) -> Option<String> {
    let trimmed = path.trim_matches('/');
    let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
    let parts: Vec<&str> = trimmed.split('/').collect();
    (parts.len() == 2 && parts.iter().all(|p| !p.is_empty())).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitbucket_url_forms() {
        let cases = [
            (
                "https://bitbucket.org/acme/site.git",
                "bitbucket.org",
                Some("acme/site"),
                "https://bitbucket.org/acme/site.git",
                None,
            ),
            (
                "http://bitbucket.org/acme/site",
                "bitbucket.org",
                Some("acme/site"),
                "http://bitbucket.org/acme/site",
                None,
            ),
            (
                "https://x-token-auth:SECRET123@bitbucket.org/acme/site.git",
                "bitbucket.org",
                Some("acme/site"),
                "https://bitbucket.org/acme/site.git",
                Some("SECRET123"),
            ),
            (
                "https://jane@bitbucket.org/acme/site.git",
                "bitbucket.org",
                Some("acme/site"),
                "https://bitbucket.org/acme/site.git",
                None,
            ),
            (
                "git@bitbucket.org:acme/site.git",
                "bitbucket.org",
                Some("acme/site"),
                "git@bitbucket.org:acme/site.git",
                None,
            ),
            (
                "ssh://git@bitbucket.org/acme/site.git",
                "bitbucket.org",
                Some("acme/site"),
                "ssh://git@bitbucket.org/acme/site.git",
                None,
            ),
            (
                "ssh://git@git.example.com:7999/scm/acme/site.git",
                "git.example.com",
                None,
                "ssh://git@git.example.com:7999/scm/acme/site.git",
                None,
            ),
            (
                "http://127.0.0.1:8080/acme/site.git",
                "127.0.0.1",
                Some("acme/site"),
                "http://127.0.0.1:8080/acme/site.git",
                None,
            ),
        ];
        for (url, host, full, clean, secret) in cases {
            let o = parse_origin(url).unwrap_or_else(|| panic!("{url}"));
            assert_eq!(o.host, host, "{url}");
            assert_eq!(o.full_name.as_deref(), full, "{url}");
            assert_eq!(o.url, clean, "{url}");
            assert_eq!(o.embedded_secret.as_deref(), secret, "{url}");
        }
        assert!(parse_origin("/srv/git/site.git").is_none());
        assert!(parse_origin("file:///srv/git/site.git").is_none());
    }
}
