//! Nothing is lost: when the artifact commit cannot be pushed, a git bundle and
//! a patch of it are written inside the clone (so Pipelines can keep them as
//! artifacts), in a directory that is never staged.

use super::Repo;
use anyhow::{Context as _, Result};
use git2::Oid;
use std::io::Write as _;
use std::path::PathBuf;

/// Relative to the working tree root.
pub const DIR: &str = "commit-back-recovery";

pub struct RecoveryFiles {
    pub bundle: PathBuf,
    pub patch: PathBuf,
    /// The ref the bundle carries.
    pub bundle_ref: String,
}

impl Repo {
    /// Writes `<DIR>/commit-back-<sha12>.bundle` and `.patch` for `commit`
    /// (and `tag`, if any) and lists the directory in .git/info/exclude.
    /// The patch's mail headers and message pass through `redact` (the
    /// diff is the artifacts' own bytes, kept exact so the patch applies).
    pub fn write_recovery(
        &self,
        commit: Oid,
        tag: Option<(&str, Oid)>,
        branch: &str,
        redact: &dyn Fn(&str) -> String,
    ) -> Result<RecoveryFiles> {
        let repo = self.raw();
        let dir = self.workdir().join(DIR);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        self.exclude_recovery_dir();
        let short = &commit.to_string()[..12];
        let bundle = dir.join(format!("commit-back-{short}.bundle"));
        let patch = dir.join(format!("commit-back-{short}.patch"));
        let bundle_ref = format!("refs/heads/{branch}");

        // Bundle v2: prerequisites (the parent: every receiver has it), refs, pack.
        let c = repo.find_commit(commit)?;
        let mut header = String::from("# v2 git bundle\n");
        for p in c.parent_ids() {
            header.push_str(&format!(
                "-{p} {}\n",
                String::from_utf8_lossy(c.summary_bytes().unwrap_or_default()).replace('\n', " ")
            ));
        }
        header.push_str(&format!("{commit} {bundle_ref}\n"));
        if let Some((name, tag_oid)) = tag {
            header.push_str(&format!("{tag_oid} refs/tags/{name}\n"));
        }
        header.push('\n');
        let mut walk = repo.revwalk()?;
        walk.push(commit)?;
        for p in c.parent_ids() {
            walk.hide(p)?;
        }
        let mut pack = repo.packbuilder()?;
        pack.insert_walk(&mut walk)?;
        if let Some((_, tag_oid)) = tag {
            pack.insert_object(tag_oid, None)?;
        }
        let mut buf = git2::Buf::new();
        pack.write_buf(&mut buf)?;
        let mut f = std::fs::File::create(&bundle)
            .with_context(|| format!("creating {}", bundle.display()))?;
        f.write_all(header.as_bytes())?;
        f.write_all(&buf)?;
        f.sync_all()?;

        let mut opts = git2::EmailCreateOptions::new();
        opts.diff_options().show_binary(true);
        let email = git2::Email::from_commit(&c, &mut opts)?;
        let email = email.as_slice();
        // The diff starts at the first `diff --git` line; a `---` line may
        // stand inside the message, so that is not where to cut.
        let split = email
            .windows(12)
            .position(|w| w == b"\ndiff --git ")
            .map_or(email.len(), |i| i + 1);
        let (head, diff) = email.split_at(split);
        let mut text = redact(&String::from_utf8_lossy(head)).into_bytes();
        text.extend_from_slice(diff);
        std::fs::write(&patch, text).with_context(|| format!("writing {}", patch.display()))?;
        Ok(RecoveryFiles {
            bundle,
            patch,
            bundle_ref,
        })
    }

    /// Best effort: a later `git add .` by the user should not pick them up.
    fn exclude_recovery_dir(&self) {
        let path = self.raw().path().join("info").join("exclude");
        let existing = std::fs::read_to_string(&path).unwrap_or_default();
        let line = format!("/{DIR}/");
        if existing.lines().any(|l| l.trim() == line) {
            return;
        }
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(self.raw().path()));
        let mut text = existing;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
        text.push('\n');
        let _ = std::fs::write(&path, text);
    }
}
