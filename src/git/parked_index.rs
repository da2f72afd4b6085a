//! The staged index between the artifact commit and an accepted push: in a
//! file of its own beside `.git/index`, not in memory.
//!
//! `git commit` would have written it to `.git/index` at once; commit-back
//! writes it there only once the push is accepted (a refused run leaves the
//! clone's index as the build left it). Held in memory through the push, it
//! was the largest thing there (13 MB of libgit2's entries for 100,000
//! files, where git's own processes each hold one index at a time).
//!
//! Owns the parked file (removed when dropped, whatever became of the run)
//! and the moment `.git/index` is replaced. Never changes `.git/index`
//! while parking: the build's file is put back as it was (same inode, bytes
//! and timestamps, which the racy-git check reads).

use anyhow::{Context as _, Result};
use git2::{Binding as _, Index, Repository};
use std::path::PathBuf;

pub(super) struct ParkedIndex {
    path: PathBuf,
}

impl ParkedIndex {
    /// Writes `index`, the repository's own, to a file of its own and
    /// drops the repository's hold on it (the repository reads
    /// `.git/index` again if anything asks for its index): freed once the
    /// caller drops `index`.
    /// On failure `.git/index` is as it was, and `index` still whole.
    pub(super) fn park(repo: &Repository, index: &mut Index) -> Result<ParkedIndex> {
        let git_dir = repo.path();
        let live = git_dir.join("index");
        let pid = std::process::id();
        let kept = git_dir.join(format!("commit-back-index.build.{pid}"));
        let parked = ParkedIndex {
            path: git_dir.join(format!("commit-back-index.staged.{pid}")),
        };
        let _ = std::fs::remove_file(&kept);
        let _ = std::fs::remove_file(&parked.path);
        // libgit2 writes an index only to its own path, by rename: a hard
        // link keeps the build's file while the staged one is written there.
        let had_index = match std::fs::hard_link(&live, &kept) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e).context("keeping the index while the staged one is written"),
        };
        // Setting the repository's own index on it leaves it without an
        // owner, and libgit2 then does not smudge racy entries as it writes
        // (by the nanosecond, through a full diff): ours does, by the second
        // as git does, when the index is put in place.
        let written = repo
            .set_index(index)
            .and_then(|()| index.write())
            .context("writing the staged index")
            .and_then(|()| {
                std::fs::rename(&live, &parked.path).context("moving the staged index aside")
            });
        if had_index {
            std::fs::rename(&kept, &live).context("putting the build's index back")?;
        } else if written.is_err() {
            let _ = std::fs::remove_file(&live);
        }
        written?;
        forget_index(repo);
        Ok(parked)
    }

    /// The staged index, read back, bound to its own file.
    pub(super) fn open(&self) -> Result<Index> {
        Index::open(&self.path).context("reading the staged index")
    }

    /// Makes the parked file (as [`ParkedIndex::open`]'s index last wrote
    /// it) the repository's index, under git's lock: the move is refused
    /// while another git process holds `index.lock`. The repository reads
    /// it from there when next asked for its index.
    pub(super) fn put_in_place(self, repo: &Repository) -> Result<()> {
        let live = repo.path().join("index");
        let lock = repo.path().join("index.lock");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
            .with_context(|| format!("locking the index ({} exists?)", lock.display()))?;
        let moved = std::fs::rename(&self.path, &live).context("writing the index");
        let _ = std::fs::remove_file(&lock);
        moved?;
        forget_index(repo);
        Ok(())
    }
}

impl Drop for ParkedIndex {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Drops the repository's cached index: the next use reads `.git/index`.
/// (git2 has no call for it; libgit2 documents a null index as this.)
fn forget_index(repo: &Repository) {
    // SAFETY: `repo` is a live repository; a null index is accepted and
    // releases the cached one, which no `Index` of ours refers to any more.
    unsafe {
        libgit2_sys::git_repository_set_index(repo.raw(), std::ptr::null_mut());
    }
}
