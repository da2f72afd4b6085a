//! Where a credential may go: to the scheme, host and port it was configured
//! for (the git remote, API_URL, the auth proxy), and nowhere else.
//!
//! Owns the comparison of origins and the redirect policy every HTTP client
//! of commit-back uses. It must never decide that two URLs share an origin
//! on anything weaker than scheme, host and port (default ports made explicit).

use reqwest::Url;

/// `scheme://host:port` of a URL, with the scheme's default port filled in.
pub fn origin(url: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    Some(format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default()?
    ))
}

pub fn same_origin(a: &str, b: &str) -> bool {
    matches!((origin(a), origin(b)), (Some(x), Some(y)) if x == y)
}

/// Redirects followed: same origin only, a handful of hops. A redirect that
/// leaves the origin is not followed (the 3xx answer comes back as the
/// result), so the Authorization header never reaches another host.
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(Url::as_str).unwrap_or("");
        if attempt.previous().len() > 5 || !same_origin(first, attempt.url().as_str()) {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// Whether a git remote's redirect from `from` to `to` may take the
/// credential along: the same host, and the same scheme and port, or an
/// upgrade from http to https (default ports). Never another host.
pub fn may_follow_with_credentials(from: &str, to: &str) -> bool {
    if same_origin(from, to) {
        return true;
    }
    let (Ok(a), Ok(b)) = (Url::parse(from), Url::parse(to)) else {
        return false;
    };
    let host = |u: &Url| u.host_str().map(str::to_ascii_lowercase);
    host(&a).is_some()
        && host(&a) == host(&b)
        && a.scheme() == "http"
        && b.scheme() == "https"
        && a.port().is_none()
        && b.port().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_that_keep_the_credential() {
        for (from, to, ok) in [
            (
                "https://bitbucket.org/a/b.git/info/refs",
                "https://bitbucket.org/a/c.git/info/refs",
                true,
            ),
            (
                "http://bitbucket.org/a/b/info/refs",
                "https://bitbucket.org/a/b/info/refs",
                true,
            ),
            (
                "https://bitbucket.org/a/b/info/refs",
                "http://bitbucket.org/a/b/info/refs",
                false,
            ),
            (
                "https://bitbucket.org/a/b",
                "https://evil.example/a/b",
                false,
            ),
            ("http://127.0.0.1:8080/a", "http://127.0.0.1:8081/a", false),
            ("http://127.0.0.1:8080/a", "http://localhost:8080/a", false),
            ("http://127.0.0.1:8080/a", "https://127.0.0.1:8443/a", false),
        ] {
            assert_eq!(may_follow_with_credentials(from, to), ok, "{from} -> {to}");
        }
    }

    #[test]
    fn origins() {
        for (a, b, same) in [
            (
                "https://api.bitbucket.org/2.0/x",
                "https://api.bitbucket.org:443/y",
                true,
            ),
            (
                "https://API.bitbucket.org/2.0",
                "https://api.bitbucket.org/2.0",
                true,
            ),
            (
                "https://api.bitbucket.org/2.0",
                "http://api.bitbucket.org/2.0",
                false,
            ),
            (
                "https://api.bitbucket.org/2.0",
                "https://api.bitbucket.org.evil/2.0",
                false,
            ),
            ("http://127.0.0.1:8080/a", "http://127.0.0.1:8081/a", false),
            (
                "https://api.bitbucket.org/2.0",
                "https://user@evil.example/2.0",
                false,
            ),
            ("https://api.bitbucket.org/2.0", "not a url", false),
        ] {
            assert_eq!(same_origin(a, b), same, "{a} {b}");
        }
    }
}
