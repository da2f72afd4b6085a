//! Small text helpers shared by the HTTP clients and the matchers: an error
//! with all its causes on one line, and `*`/`?` glob matching.

/// Text a server sent (remote lines, HTTP and API error bodies, ref status),
/// made safe to print and to post: terminal escape sequences (CSI such as
/// colours, cursor movement and screen clearing; OSC such as OSC 8 links and
/// window titles; any other ESC sequence) are removed, tabs become spaces,
/// and every other control character is shown as `\xNN`. A hostile or
/// broken server can then neither repaint the Pipelines log nor hide text.
pub fn untrusted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => skip_csi(&mut chars),
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\t' => out.push(' '),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            // Bidirectional overrides and invisible characters can make the
            // log show other text than the server sent: dropped.
            '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// CSI: parameter and intermediate bytes, then one final byte; anything
/// else ends the sequence and is kept (text is never swallowed).
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(&c) = chars.peek() {
        if ('\u{20}'..='\u{3f}').contains(&c) {
            chars.next();
        } else {
            if ('\u{40}'..='\u{7e}').contains(&c) {
                chars.next();
            }
            return;
        }
    }
}

/// OSC and the other string sequences: up to BEL, ST (`ESC \`) or C1 ST.
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => break,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                break;
            }
            _ => {}
        }
    }
}

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

/// Sideband text arrives in chunks, mixed with `\r` progress and padded with
/// spaces (facts §1.0): split, trim, drop empties and repeats.
pub fn split_lines(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.split(['\n', '\r']) {
        let line = untrusted(line.trim());
        let line = line.trim();
        if !line.is_empty() && out.last().map(String::as_str) != Some(line) {
            out.push(line.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_loses_its_escape_sequences() {
        for (given, shown) in [
            ("plain words", "plain words"),
            ("\u{1b}[31mred\u{1b}[0m", "red"),
            ("\u{1b}[2J\u{1b}[1;1Hclear", "clear"),
            (
                "\u{1b}]8;;https://evil.example\u{7}link\u{1b}]8;;\u{7}",
                "link",
            ),
            ("\u{1b}]0;title\u{1b}\\after", "after"),
            ("\u{9b}31mC1\u{9b}0m", "C1"),
            (
                "bell\u{7} nul\u{0} del\u{7f}",
                "bell\\x07 nul\\x00 del\\x7f",
            ),
            ("a\tb", "a b"),
            ("unterminated \u{1b}]8;;x", "unterminated "),
            ("umlaut ü stays", "umlaut ü stays"),
            ("\u{1b}[1;ümlaut", "ümlaut"),
            ("evil\u{202e}txt.exe\u{200b}", "eviltxt.exe"),
        ] {
            assert_eq!(untrusted(given), shown, "{given:?}");
        }
    }

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
