//! The human log on stderr, in the Bitbucket pipes' style.
//!
//! The pipes toolkit prints `INFO: …` in blue, `✔ …` in green on success and
//! `✖ …` in red on failure, and keeps colour without a TTY (Pipelines' log
//! viewer renders it). We do the same and honour `NO_COLOR`
//! (<https://no-color.org>). Every line goes through the [`Redactor`].

use crate::secret::Redactor;
use std::io::Write as _;

#[derive(Clone)]
pub struct Logger {
    color: bool,
    debug: bool,
    redactor: Redactor,
}

const BLUE: &str = "\x1b[34m";
const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const GRAY: &str = "\x1b[90m";
const RESET: &str = "\x1b[0m";

impl Logger {
    pub fn new(color: bool, debug: bool, redactor: Redactor) -> Self {
        Logger {
            color,
            debug,
            redactor,
        }
    }

    fn line(&self, color: &str, text: &str) {
        let text = self.redactor.redact(text);
        let mut err = std::io::stderr().lock();
        for line in text.lines() {
            let _ = if self.color && !color.is_empty() {
                writeln!(err, "{color}{line}{RESET}")
            } else {
                writeln!(err, "{line}")
            };
        }
    }

    pub fn info(&self, msg: impl AsRef<str>) {
        self.line(BLUE, &format!("INFO: {}", msg.as_ref()));
    }

    pub fn warning(&self, msg: impl AsRef<str>) {
        self.line(YELLOW, &format!("WARNING: {}", msg.as_ref()));
    }

    pub fn debug(&self, msg: impl AsRef<str>) {
        if self.debug {
            self.line(GRAY, &format!("DEBUG: {}", msg.as_ref()));
        }
    }

    /// A line the server sent, quoted the way git quotes it (escape
    /// sequences removed here too, whoever forgot to).
    pub fn remote(&self, msg: impl AsRef<str>) {
        self.line(
            "",
            &format!("remote: {}", crate::text::untrusted(msg.as_ref())),
        );
    }

    /// The redactor every line passes through, for text sent elsewhere.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Unstyled text (explanations, remedy steps).
    pub fn plain(&self, msg: impl AsRef<str>) {
        self.line("", msg.as_ref());
    }

    pub fn success(&self, msg: impl AsRef<str>) {
        self.line(GREEN, &format!("✔ {}", msg.as_ref()));
    }

    pub fn failure(&self, msg: impl AsRef<str>) {
        self.line(RED, &format!("✖ {}", msg.as_ref()));
    }
}
