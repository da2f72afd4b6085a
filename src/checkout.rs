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

/// Where the push goes, as seen from this clone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// The branch checked out here, in this clone's repository: the clone
    /// follows what lands.
    #[default]
    Checkout,
    /// A detached HEAD (a CI checkout of one commit, a tag or custom
    /// pipeline) in this clone's repository: the artifacts' changes go onto
    /// the branch's tip; the clone follows only when that tip was HEAD
    /// (never are commits between the tip and HEAD pushed with them).
    Detached,
    /// Another branch of this clone's repository: the artifacts' changes are
    /// replayed onto its tip; the clone is left as the build left it.
    OtherBranch,
    /// Another repository: the FILES paths are copied onto its branch; the
    /// clone is left as the build left it.
    OtherRepository,
}

/// What a repository is called, for telling two apart: the last two
/// segments of its URL's path (`workspace/repo_slug` on Bitbucket Cloud,
/// `project/repo` on Bitbucket Server, whether `/scm/…` over HTTPS or
/// `:7999/…` over SSH), lower-case, without `.git`. Hosts are not compared:
/// an SSH host alias or a proxy names the same repository differently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoName(pub Option<String>);

impl RepoName {
    pub fn of_url(url: &str) -> RepoName {
        let Some(o) = parse_origin(url) else {
            return RepoName(None);
        };
        let path = match o.url.split_once("://") {
            Some((_, rest)) => rest.find('/').map(|i| rest[i..].to_owned()),
            None => o.url.split_once(':').map(|(_, p)| p.to_owned()),
        };
        RepoName(path.and_then(|p| last_two(&p)))
    }

    pub fn of_full_name(name: &str) -> RepoName {
        RepoName(last_two(name))
    }

    /// Different only when both can be named and the names differ; a
    /// repository that cannot be named (origin a local path) is taken to
    /// be the same.
    pub fn differs_from(&self, other: &RepoName) -> bool {
        matches!((&self.0, &other.0), (Some(a), Some(b)) if a != b)
    }
}

fn last_two(path: &str) -> Option<String> {
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let mut parts = path.rsplit('/').filter(|p| !p.is_empty());
    let (repo, owner) = (parts.next()?, parts.next()?);
    Some(format!("{owner}/{repo}").to_ascii_lowercase())
}

/// Which [`Target`] a push of `branch` to `target` is, from this checkout
/// (`clone` names its repository).
pub fn target_of(checkout: &Checkout, clone: &RepoName, target: &RepoName, branch: &str) -> Target {
    if clone.differs_from(target) {
        Target::OtherRepository
    } else if checkout.detached {
        Target::Detached
    } else if checkout.branch.as_deref() == Some(branch) {
        Target::Checkout
    } else {
        Target::OtherBranch
    }
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
    fn targets() {
        let on = |b: &str| Checkout {
            branch: Some(b.into()),
            detached: false,
            origin_url: None,
        };
        let detached = Checkout {
            branch: None,
            detached: true,
            origin_url: None,
        };
        let url = RepoName::of_url;
        let this = url("http://bitbucket.org/acme/site");
        for (checkout, clone, target, branch, expected) in [
            (
                on("main"),
                &this,
                url("git@bitbucket.org:acme/site.git"),
                "main",
                Target::Checkout,
            ),
            (
                on("main"),
                &this,
                url("https://bitbucket.org/ACME/Site.git"),
                "main",
                Target::Checkout,
            ),
            (
                on("main"),
                &this,
                RepoName::of_full_name("acme/site"),
                "main",
                Target::Checkout,
            ),
            (
                on("main"),
                &this,
                url("https://bitbucket.org/acme/site.git"),
                "release",
                Target::OtherBranch,
            ),
            (
                detached.clone(),
                &this,
                url("https://bitbucket.org/acme/site.git"),
                "main",
                Target::Detached,
            ),
            (
                on("main"),
                &this,
                url("https://bitbucket.org/acme/docs.git"),
                "main",
                Target::OtherRepository,
            ),
            (
                on("main"),
                &this,
                RepoName::of_full_name("acme/docs"),
                "main",
                Target::OtherRepository,
            ),
            (
                detached,
                &this,
                url("ssh://git@bitbucket.org/other/site.git"),
                "main",
                Target::OtherRepository,
            ),
            // Bitbucket Server: `/scm/project/repo` over HTTPS, `/project/repo` over SSH.
            (
                on("main"),
                &url("https://git.example.com/scm/p/a.git"),
                url("https://git.example.com/scm/p/b.git"),
                "main",
                Target::OtherRepository,
            ),
            (
                on("main"),
                &url("https://git.example.com/scm/p/a.git"),
                url("ssh://git@git.example.com:7999/p/a.git"),
                "main",
                Target::Checkout,
            ),
            // A clone of a local path cannot be named: taken to be the same.
            (
                on("main"),
                &RepoName::default(),
                url("https://bitbucket.org/acme/docs.git"),
                "main",
                Target::Checkout,
            ),
        ] {
            assert_eq!(
                target_of(&checkout, clone, &target, branch),
                expected,
                "{target:?} {branch}"
            );
        }
    }

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
