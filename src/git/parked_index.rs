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
        // A build's index kept by a run that was killed in the instant it
        // was set aside (in the image every run is pid 1): never removed
        // here; the index stays in memory, as when it cannot be parked.
        if kept.symlink_metadata().is_ok() {
            anyhow::bail!("{} exists", kept.display());
        }
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
            // When nothing replaced `.git/index` (the write failed first),
            // both names are the one file, and rename leaves both.
            use std::os::unix::fs::MetadataExt as _;
            let inode = |p: &std::path::Path| p.metadata().map(|m| (m.dev(), m.ino())).ok();
            if inode(&kept).is_some() && inode(&kept) == inode(&live) {
                let _ = std::fs::remove_file(&kept);
            }
        } else if written.is_err() {
            let _ = std::fs::remove_file(&live);
        }
        written?;
        forget_index(repo);
        Ok(parked)
    }

    /// Calls `each` with every entry of the parked file, in order, read in
    /// pieces (libgit2 reads an index whole, then builds every entry: 23 MB
    /// for 100,000 files). `each` returns false to stop. Ok(false) when
    /// the file is not one this reads (index version 4, whose paths are
    /// compressed; libgit2 writes 2, or 3 for extended flags).
    pub(super) fn for_each_entry(
        &self,
        mut each: impl FnMut(usize, &git2::IndexEntry) -> bool,
    ) -> Result<bool> {
        let file = std::fs::File::open(&self.path).context("reading the staged index")?;
        read_entries(
            std::io::BufReader::with_capacity(64 * 1024, file),
            &mut each,
        )
        .context("reading the staged index")
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

/// gitformat-index, versions 2 and 3: a header, then each entry's stat
/// fields, id, flags (extended flags in version 3 when flagged) and
/// NUL-padded path.
fn read_entries(
    mut from: impl std::io::Read,
    each: &mut impl FnMut(usize, &git2::IndexEntry) -> bool,
) -> std::io::Result<bool> {
    let mut header = [0u8; 12];
    from.read_exact(&mut header)?;
    let word = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let version = word(&header, 4);
    if &header[..4] != b"DIRC" || !(version == 2 || version == 3) {
        return Ok(false);
    }
    let mut fixed = [0u8; 62];
    let mut entry = git2::IndexEntry {
        ctime: git2::IndexTime::new(0, 0),
        mtime: git2::IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: 0,
        uid: 0,
        gid: 0,
        file_size: 0,
        id: git2::Oid::ZERO_SHA1,
        flags: 0,
        flags_extended: 0,
        path: Vec::new(),
    };
    for position in 0..word(&header, 8) as usize {
        from.read_exact(&mut fixed)?;
        let time = |at| git2::IndexTime::new(word(&fixed, at) as i32, word(&fixed, at + 4));
        entry.ctime = time(0);
        entry.mtime = time(8);
        entry.dev = word(&fixed, 16);
        entry.ino = word(&fixed, 20);
        entry.mode = word(&fixed, 24);
        entry.uid = word(&fixed, 28);
        entry.gid = word(&fixed, 32);
        entry.file_size = word(&fixed, 36);
        entry.id = git2::Oid::from_bytes(&fixed[40..60]).expect("20 bytes");
        entry.flags = u16::from_be_bytes([fixed[60], fixed[61]]);
        let mut length = 62;
        entry.flags_extended = 0;
        if entry.flags & 0x4000 != 0 {
            let mut extended = [0u8; 2];
            from.read_exact(&mut extended)?;
            entry.flags_extended = u16::from_be_bytes(extended);
            length += 2;
        }
        // The path and its NUL padding: the entry's length is a multiple
        // of 8 with at least one NUL.
        entry.path.clear();
        let mut byte = [0u8; 1];
        loop {
            from.read_exact(&mut byte)?;
            if byte[0] == 0 {
                break;
            }
            entry.path.push(byte[0]);
        }
        length += entry.path.len() + 1;
        let padding = (8 - length % 8) % 8;
        let mut pad = [0u8; 8];
        from.read_exact(&mut pad[..padding])?;
        if !each(position, &entry) {
            break;
        }
    }
    Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry as libgit2 reads it, from indexes git writes: version 2,
    /// version 3 (an extended flag), a path of 3,800 bytes;
    /// version 4 is declined.
    #[test]
    fn entries_read_in_pieces_are_libgit2s() {
        let dir = std::env::temp_dir().join(format!("cb-index-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let git = |args: &[&str]| {
            crate::git::stage::tests::git(&dir, args);
        };
        git(&["init", "-q"]);
        let long = vec!["d".repeat(200); 19].join("/");
        for (i, path) in ["a", "b/c.txt", "ünï", "x/y/z/w", &format!("{long}/f")]
            .iter()
            .enumerate()
        {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x".repeat(i)).unwrap();
        }
        git(&["add", "-A"]);
        let fields = |e: &git2::IndexEntry| {
            format!(
                "{} {:?} {:?} {} {} {} {} {} {} {} {} {} {}",
                String::from_utf8_lossy(&e.path),
                (e.ctime.seconds(), e.ctime.nanoseconds()),
                (e.mtime.seconds(), e.mtime.nanoseconds()),
                e.dev,
                e.ino,
                e.mode,
                e.uid,
                e.gid,
                e.file_size,
                e.id,
                e.flags,
                e.flags_extended,
                e.path.len()
            )
        };
        let read = |expect_read: bool| {
            let index_path = dir.join(".git/index");
            let by_libgit2: Vec<String> = Index::open(&index_path)
                .unwrap()
                .iter()
                .map(|e| fields(&e))
                .collect();
            let mut ours = Vec::new();
            let file = std::fs::File::open(&index_path).unwrap();
            let understood = read_entries(file, &mut |position, e| {
                assert_eq!(position, ours.len());
                ours.push(fields(e));
                true
            })
            .unwrap();
            assert_eq!(understood, expect_read);
            if expect_read {
                assert_eq!(ours, by_libgit2);
                assert_eq!(ours.len(), 5);
            }
        };
        read(true);
        git(&["update-index", "--skip-worktree", "b/c.txt"]);
        assert_eq!(std::fs::read(dir.join(".git/index")).unwrap()[7], 3);
        read(true);
        git(&["update-index", "--index-version", "4"]);
        read(false);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
