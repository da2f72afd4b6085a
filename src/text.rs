//! Small text helpers shared by the HTTP clients and the matchers: an error
//! with all its causes on one line, and `*`/`?` glob matching.

/// "error sending request" alone says nothing: the causes are appended.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Which wildcards a pattern language has.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wildcards {
    /// `*` only (Bitbucket branch restriction patterns).
    Star,
    /// `*` and `?` (OpenSSH host patterns).
    StarAndQuestion,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Sensitive,
    Insensitive,
}

/// `*` matches any run of characters (`/` included), `?` one character.
pub fn glob_matches(pattern: &str, text: &str, wildcards: Wildcards, case: Case) -> bool {
    let fold = |s: &str| {
        if case == Case::Insensitive {
            s.to_lowercase()
        } else {
            s.to_owned()
        }
    };
    let p: Vec<char> = fold(pattern).chars().collect();
    let t: Vec<char> = fold(text).chars().collect();
    let any_one = |c: char| wildcards == Wildcards::StarAndQuestion && c == '?';
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && (any_one(p[pi]) || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        use Case::*;
        use Wildcards::*;
        assert!(glob_matches("release/*", "release/a/b", Star, Sensitive));
        assert!(!glob_matches("rel?ase", "release", Star, Sensitive));
        assert!(glob_matches(
            "rel?ase",
            "release",
            StarAndQuestion,
            Sensitive
        ));
        assert!(glob_matches(
            "*.EXAMPLE.com",
            "git.example.COM",
            StarAndQuestion,
            Insensitive
        ));
        assert!(!glob_matches("Main", "main", Star, Sensitive));
    }
}
