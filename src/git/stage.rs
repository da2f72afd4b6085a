//! Staging FILES as `git add -A -- FILES` would, and fast.
//!
//! [`for_each_changed_path`] lists the paths that changed, as libgit2's
//! `add_all` does; [`Stager::pick`] decides
//! for each one, before anything is written, what git would do with it:
//! - leave it alone: entries git never updates (`skip-worktree`,
//!   `assume-unchanged`);
//! - clean it as git-lfs would: a path whose attributes say `filter=lfs`
//!   gets its pointer staged, and its content copied into the LFS store
//!   ([`super::lfs`]); an unchanged one (its pointer is the index's) only
//!   has its stat refreshed;
//! - refuse the run: a path whose attributes name another filter driver or
//!   a `working-tree-encoding` (git would run a program or iconv; committing
//!   the working-tree bytes could push a decrypted secret), and a new file
//!   outside a sparse checkout's definition (`git add` refuses it too);
//! - stage it here: plain regular files that no attribute or configuration
//!   could change, written into one pack (below);
//! - hand it to libgit2: everything else (symlinks, gitlinks, deletions,
//!   files under attributes libgit2 applies itself: `text`, `eol`, `ident`).
//!
//! Why a pack of our own: `git add` writes every new file as a loose object:
//! a file and often a directory in `.git/objects` (inode creation dominates
//! 1,000 small files) and a zlib pass over the content (dominates one 200 MB
//! file), which the push then inflates and compresses again. The pack written
//! here holds the content in stored (uncompressed) deflate blocks: two files
//! on disk in all, no compression pass; the push compresses once, as it must.
//! Each file is read twice (page cache): once to name its blob, so that
//! repeated contents and contents the repository already has are left out of
//! the pack, once into the pack.
//!
//! This module must never decide alone what git decides: every rule here is
//! held to `git add` by the differential suite (tests/e2e/parity.rs).

use crate::path_list::PathList;
use crate::progress::{self, Meter, Unit};
use anyhow::{Context as _, Result, bail};
use git2::{AttrValue, Index, IndexEntry, IndexTime, Oid, Repository};
use sha1::{Digest as _, Sha1};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read as _, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// `GIT_INDEX_ENTRY_VALID` (assume-unchanged), in `IndexEntry::flags`.
const ASSUME_UNCHANGED: u16 = 0x8000;
/// `GIT_INDEX_ENTRY_SKIP_WORKTREE`, in `IndexEntry::flags_extended`.
const SKIP_WORKTREE: u16 = 1 << 14;

/// Why the index cannot be staged as git would, found before anything is
/// written: the run refuses with these (one FILES error each).
pub(super) fn refusals_before_staging(repo: &Repository) -> Vec<String> {
    if config_flag(repo, "core.sparseCheckout") && config_flag(repo, "index.sparse") {
        return vec![SPARSE_INDEX.to_owned()];
    }
    Vec::new()
}

const SPARSE_INDEX: &str = "the checkout uses a sparse index (index.sparse=true), which commit-back's \
     git library cannot read; run `git sparse-checkout set --no-sparse-index` (it rewrites the \
     index in full) in the step before commit-back";

/// Calls `each` with every path `git_index_add_all(index, specs, flags)`
/// would stage or remove (`flags`: FORCE with `include_ignored`, else
/// DEFAULT), in its order: what libgit2 does there, without what it costs.
/// `add_all` diffs the index with the whole working tree, then builds a
/// patch for every changed file before it matches the pathspec, and each
/// patch looks up the diff driver of both sides: two walks of every
/// `.gitattributes` up the tree per file (a `realpath` and a `stat` per
/// directory), most of the system calls of a 100,000-file run
/// (BENCHMARKS.md). The diff and the pathspec match here are the ones
/// `add_all` makes (libgit2's index.c, `index_apply_to_wd_diff` and
/// `apply_each_file`); the parity suite holds the result to `git add`.
/// One difference, on purpose: a patch that libgit2 cannot build (an
/// unreadable attribute file, a bad `diff.*.xfuncname`) no longer ends the
/// run here; `git add` does not read diff drivers either, and a file that
/// cannot be read still fails where it is staged.
pub(super) fn for_each_changed_path(
    repo: &Repository,
    index: &Index,
    specs: &[String],
    include_ignored: bool,
    mut each: impl FnMut(&Path),
) -> Result<()> {
    let pathspec = git2::Pathspec::new(specs.iter())?;
    let mut opts = git2::DiffOptions::new();
    opts.include_typechange(true)
        .include_untracked(true)
        .recurse_untracked_dirs(true);
    if include_ignored {
        opts.include_ignored(true).recurse_ignored_dirs(true);
    }
    let diff = repo.diff_index_to_workdir(Some(index), Some(&mut opts))?;
    // The index matches with the case rule the repository gave it.
    let match_flags = if config_flag(repo, "core.ignoreCase") {
        git2::PathspecFlags::IGNORE_CASE
    } else {
        git2::PathspecFlags::DEFAULT
    };
    for delta in diff.deltas() {
        // `git_diff_delta__should_skip` for these options.
        let skipped = match delta.status() {
            git2::Delta::Unmodified | git2::Delta::Unreadable => true,
            git2::Delta::Ignored => !include_ignored,
            _ => false,
        };
        // `add_all` matches (and names) the old side's path.
        let Some(path) = delta.old_file().path() else {
            continue;
        };
        if !skipped && pathspec.matches_path(path, match_flags) {
            each(path);
        }
    }
    Ok(())
}

/// The decisions for one `add_all` pass, and the files claimed for the pack.
pub(super) struct Stager {
    /// Plain files may be packed here (false in a dry run, under
    /// `core.autocrlf`, or when attribute files outside the tree exist).
    fast: bool,
    /// Attribute files outside the working tree apply to every path.
    global_attributes: bool,
    attributes: AttributeFiles,
    /// Index entries git never updates: skip-worktree, assume-unchanged.
    hidden: HashSet<Vec<u8>>,
    sparse: Sparse,
    claimed: PathList,
    /// Their size, as `pick` saw it (for progress lines).
    claimed_bytes: u64,
    /// Untracked nested repositories, staged as gitlinks (libgit2 cannot).
    gitlinks: Vec<(String, Oid, Stat)>,
    /// Files under `filter=lfs`: cleaned in [`Stager::stage`].
    lfs: Vec<(PathBuf, Stat)>,
    /// LFS content is copied into the store (not in a dry run).
    store_lfs: bool,
    /// Paths `add_all` would stage (true) or remove (false) through libgit2.
    by_libgit2: Vec<(PathBuf, bool)>,
    refusals: Vec<String>,
}

impl Stager {
    /// `index` must have no conflicts (the caller refuses those first).
    pub(super) fn new(repo: &Repository, index: &Index, may_write_pack: bool) -> Stager {
        let global_attributes = global_attributes(repo);
        let mut in_index = HashSet::new();
        let mut hidden = HashSet::new();
        let mut refusals = Vec::new();
        for entry in index.iter() {
            // A sparse directory entry: the index on disk is sparse whatever
            // the configuration says now.
            if entry.mode == 0o040000 && refusals.is_empty() {
                refusals.push(SPARSE_INDEX.to_owned());
            }
            if entry.flags & ASSUME_UNCHANGED != 0 || entry.flags_extended & SKIP_WORKTREE != 0 {
                hidden.insert(entry.path.clone());
            }
            if entry.path.ends_with(b".gitattributes") {
                in_index.insert(entry.path);
            }
        }
        Stager {
            fast: may_write_pack && !autocrlf(repo) && !global_attributes,
            global_attributes,
            attributes: AttributeFiles::new(in_index),
            hidden,
            sparse: Sparse::of(repo),
            claimed: PathList::default(),
            claimed_bytes: 0,
            gitlinks: Vec::new(),
            lfs: Vec::new(),
            store_lfs: may_write_pack,
            by_libgit2: Vec::new(),
            refusals,
        }
    }

    /// Called by `add_all` for each changed path in FILES. Only decides and
    /// records: nothing is written until every path has been seen without
    /// a refusal ([`Stager::stage`]), so a refused run writes nothing at all.
    /// Names that are not UTF-8 get every check; only the pack skips them.
    pub(super) fn pick(&mut self, repo: &Repository, workdir: &Path, path: &Path) {
        use std::os::unix::ffi::OsStrExt as _;
        if self.hidden.contains(path.as_os_str().as_bytes()) {
            return;
        }
        let name = path.to_string_lossy();
        // Only a sparse checkout needs to know (one index lookup).
        let tracked = self.sparse.is_on()
            && repo
                .index()
                .ok()
                .is_some_and(|i| i.get_path(path, 0).is_some());
        // git never updates a tracked path outside the sparse definition,
        // changed or deleted, even once its skip-worktree bit is gone.
        if self.sparse.outside(&name) == Some(true) && tracked {
            return;
        }
        let Some(meta) = workdir.join(path).symlink_metadata().ok() else {
            // Gone from the working tree: libgit2 removes it.
            self.by_libgit2.push((path.to_path_buf(), false));
            return;
        };
        if self.sparse.is_on()
            && !tracked
            && let Some(why) = self.sparse.refuses(&name)
        {
            self.refusals.push(why);
            return;
        }
        if meta.is_dir() {
            // libgit2 lists an untracked nested repository as `dir/`.
            match embedded_repository(workdir, &name) {
                Some(Ok(head)) => {
                    let link = name.trim_end_matches('/').to_owned();
                    self.gitlinks.push((link, head, Stat::of(&meta)));
                }
                Some(Err(why)) => self.refusals.push(why),
                // A tracked file or link that became a directory: its entry
                // goes (the files inside are listed on their own).
                None => self
                    .by_libgit2
                    .push((path.to_path_buf(), name.ends_with('/'))),
            }
            return;
        }
        if !meta.file_type().is_file() {
            self.by_libgit2.push((path.to_path_buf(), true));
            return;
        }
        let utf8 = path.to_str();
        let may_apply = match utf8 {
            Some(p) => self.attributes.may_apply(workdir, p),
            None => true, // rare: ask libgit2 rather than guess
        };
        if self.global_attributes || may_apply {
            match external_conversion(repo, path) {
                Conversion::None => return self.by_libgit2.push((path.to_path_buf(), true)),
                Conversion::Lfs => return self.lfs.push((path.to_path_buf(), Stat::of(&meta))),
                Conversion::Refused(why) => return self.refusals.push(why),
                Conversion::Plain => {}
            }
        }
        match utf8 {
            Some(p) if self.fast => {
                self.claimed.push(p);
                self.claimed_bytes += meta.len();
            }
            _ => self.by_libgit2.push((path.to_path_buf(), true)),
        }
    }

    /// What must stop the run, one sentence per path.
    pub(super) fn take_refusals(&mut self) -> Vec<String> {
        std::mem::take(&mut self.refusals)
    }

    /// Stages what [`Stager::pick`] recorded: paths for libgit2 as
    /// `add_all` would (add or remove by path), refreshed entries, gitlinks,
    /// and the claimed files written as one pack, as `git_index_add_bypath`
    /// would stage them. Returns which entries of the staged index (by
    /// position) hold their file's bytes unconverted ([`PlainEntries`]).
    pub(super) fn stage(self, repo: &Repository, index: &mut Index) -> Result<PlainEntries> {
        let config = repo.config()?;
        let modes = ModeRules {
            trust_executable_bit: config.get_bool("core.fileMode").unwrap_or(true),
            has_symlinks: config.get_bool("core.symlinks").unwrap_or(true),
        };
        for (path, exists) in &self.by_libgit2 {
            let shown = path.display();
            if *exists {
                index
                    .add_path(path)
                    .with_context(|| format!("staging {shown}"))?;
            } else {
                index
                    .remove_path(path)
                    .with_context(|| format!("staging the deletion of {shown}"))?;
            }
        }
        if !self.lfs.is_empty() {
            let workdir = repo.workdir().context("no working tree")?;
            let store = super::lfs::Store::of(repo);
            let odb = repo.odb()?;
            let total = self.lfs.iter().map(|(_, stat)| stat.size).sum();
            let meter = progress::meter("Reading files for Git LFS", Unit::Bytes, total);
            for (path, stat) in &self.lfs {
                let name = path.to_string_lossy();
                let file = workdir.join(path);
                let existing = index.get_path(path, 0);
                // The pointer the index holds, if it holds one.
                // (Its object's size is asked first: a file committed
                // whole before it was tracked must not be read whole.)
                let known = existing
                    .as_ref()
                    .filter(|e| {
                        odb.read_header(e.id)
                            .is_ok_and(|(size, _)| size < super::lfs::POINTER_MAX)
                    })
                    .and_then(|e| repo.find_blob(e.id).ok())
                    .and_then(|b| super::lfs::Pointer::parse(b.content()));
                let cleaned = super::lfs::clean(
                    &file,
                    self.store_lfs.then_some(&store),
                    known.as_ref(),
                    &meter,
                )?;
                let id = repo
                    .blob(&cleaned.blob)
                    .with_context(|| format!("staging the LFS pointer of {name}"))?;
                let mode = modes.of_regular_file(stat.mode, existing.as_ref().map(|e| e.mode));
                let mut entry = stat.entry(&name, id, mode);
                if let Some(e) = existing {
                    entry.path = e.path;
                } else {
                    use std::os::unix::ffi::OsStrExt as _;
                    entry.path = path.as_os_str().as_bytes().to_vec();
                }
                index
                    .add(&entry)
                    .with_context(|| format!("staging {name}"))?;
            }
            meter.finish(true);
        }
        for (path, head, stat) in &self.gitlinks {
            index
                .add(&stat.entry(path, *head, 0o160000))
                .with_context(|| format!("staging {path}"))?;
        }
        if self.claimed.is_empty() {
            return Ok(PlainEntries::default());
        }
        // Memory: the index holds every entry (about 130 bytes each in
        // libgit2); beside it the paths in one buffer while the files are
        // hashed, then 32 bytes per file (the index holds the paths), so
        // that 100,000 files stage in about git's own footprint.
        let workdir = repo.workdir().context("no working tree")?;
        let odb = repo.odb()?;
        let hashing = progress::meter("Hashing new files", Unit::Bytes, self.claimed_bytes);
        let claimed = self.claimed;
        u32::try_from(claimed.len()).context("too many files for one pack")?;
        let mut blobs = Vec::with_capacity(claimed.len());
        let unchecked = UncheckedIds::new();
        hash_files(workdir, &claimed, &hashing, |path, id, meta| {
            let existing = index.get_path(Path::new(path), 0).map(|e| e.mode);
            let mode = modes.of_regular_file(meta.mode(), existing);
            index
                .add(&Stat::of(meta).entry(path, id, mode))
                .with_context(|| format!("staging {path}"))?;
            blobs.push(PackedBlob {
                id,
                size: meta.len(),
                file: blobs.len() as u32,
            });
            Ok(())
        })?;
        drop(unchecked);
        hashing.finish(true);
        // From here on a file is its entry's position (the index is not
        // changed again): its path is the entry's. Under core.ignoreCase
        // libgit2 keeps one entry for names that differ only in case (as
        // git's index does): such a file keeps its own name, aside.
        let entries = index.len();
        let mut aside = PathList::default();
        for blob in &mut blobs {
            let path = claimed.get(blob.file as usize);
            let at = position_of(index, path).unwrap_or_else(|| {
                aside.push(path);
                entries + aside.len() - 1
            });
            blob.file = u32::try_from(at).context("too many files for one pack")?;
        }
        drop(claimed);
        // Positions are the in-memory index's; under core.ignoreCase it is
        // sorted otherwise than the file libgit2 writes, which the racy
        // check reads back: no entry is then taken as plain there (each
        // goes through libgit2's diff, as before this list existed).
        let plain = if config_flag(repo, "core.ignoreCase") {
            PlainEntries::default()
        } else {
            let mut plain = vec![false; entries];
            for blob in blobs.iter().filter(|b| (b.file as usize) < entries) {
                plain[blob.file as usize] = true;
            }
            PlainEntries(plain)
        };
        let paths = StagedPaths {
            index,
            entries,
            aside,
        };
        // One copy of each new content: a pack must not hold an object twice
        // (libgit2's indexer refuses it) nor what the repository already has.
        // Without a refresh: a plain `exists` rescans the pack directory
        // for every object it does not find (every new file here, 10% of a
        // 10,000-file run); an object another process packs meanwhile is
        // then packed twice, in two packs, which git allows. In the order
        // of their ids, the order of the pack's index.
        let no_refresh = git2::OdbLookupFlags::NO_REFRESH;
        blobs.sort_unstable_by_key(|b| b.id);
        blobs.dedup_by_key(|b| b.id);
        blobs.retain(|b| !odb.exists_ext(b.id, no_refresh));
        blobs.shrink_to_fit();
        if !blobs.is_empty() {
            let total = blobs.iter().map(|b| b.size).sum();
            let packing = progress::meter("Writing new files", Unit::Bytes, total);
            let pack_dir = repo.commondir().join("objects").join("pack");
            std::fs::create_dir_all(&pack_dir).context("creating objects/pack")?;
            store_pack(&pack_dir, workdir, &paths, &blobs, &packing)?;
            packing.finish(true);
            odb.refresh().context("reading the pack of new files")?;
            for blob in &blobs {
                if !odb.exists_ext(blob.id, no_refresh) {
                    let path = paths.path(blob.file);
                    bail!("{path}: the pack written for it does not hold its content");
                }
            }
        }
        Ok(plain)
    }
}

/// `index.write_tree()`, then `git write-tree`'s check (the object of an
/// entry, gitlinks aside, exists) for every entry that differs from
/// `parent` (git checks the entries of the directories its tree cache no
/// longer vouches for, which hold those), made against the packs' indexes:
/// libgit2's check as it writes reads every checked blob's header, which
/// maps every page of the pack of new files (3.6 MB for 100,000 small
/// files; all of a larger pack). When the check fails, the trees written
/// are left unreferenced in the object database, as a refused `git commit`
/// leaves its blobs.
pub(super) fn write_tree(
    repo: &Repository,
    index: &mut Index,
    parent: Option<&git2::Tree<'_>>,
) -> Result<Oid> {
    let id = {
        let _unchecked = UncheckedIds::new();
        index.write_tree()?
    };
    let odb = repo.odb()?;
    let tree = repo.find_tree(id)?;
    super::for_each_changed_entry(repo, parent, Some(&tree), &mut |path, _, new| match new {
        Some(entry) if entry.filemode() != 0o160000 && !odb.exists(entry.id()) => bail!(
            "invalid object {:06o} {} for '{}'",
            entry.filemode(),
            entry.id(),
            String::from_utf8_lossy(path)
        ),
        _ => Ok(()),
    })?;
    Ok(id)
}

/// Where the entry of `path` (stage 0: the index has no conflicts here) is
/// in `index`, by libgit2's own lookup and order.
fn position_of(index: &Index, path: &str) -> Option<usize> {
    use git2::Binding as _;
    let c_path = std::ffi::CString::new(path).ok()?;
    let mut at = 0usize;
    // SAFETY: `index` is a live index for the call; libgit2 reads the
    // NUL-terminated `path` and writes one size_t to `at`.
    let found = unsafe { libgit2_sys::git_index_find(&mut at, index.raw(), c_path.as_ptr()) };
    if found != 0 {
        return None;
    }
    // Under core.ignoreCase that is the first entry equal but for case;
    // the one with these very bytes is among those that follow it.
    (at..index.len())
        .map_while(|i| {
            let entry = index.get(i)?;
            entry
                .path
                .eq_ignore_ascii_case(path.as_bytes())
                .then_some((i, entry.path == path.as_bytes()))
        })
        .find_map(|(i, exact)| exact.then_some(i))
}

/// The path of a [`PackedBlob`]'s file, relative to the working tree.
trait FilePaths {
    fn path(&self, file: u32) -> std::borrow::Cow<'_, str>;
}

/// `file` is a position in the list.
impl FilePaths for PathList {
    fn path(&self, file: u32) -> std::borrow::Cow<'_, str> {
        self.get(file as usize).into()
    }
}

/// `file` is the position of the file's entry in `index`, or, from
/// `entries` on, a path kept `aside`.
struct StagedPaths<'a> {
    index: &'a Index,
    entries: usize,
    aside: PathList,
}

impl FilePaths for StagedPaths<'_> {
    fn path(&self, file: u32) -> std::borrow::Cow<'_, str> {
        let file = file as usize;
        if file >= self.entries {
            return self.aside.get(file - self.entries).into();
        }
        // Only UTF-8 paths are packed.
        self.index
            .get(file)
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .unwrap_or_default()
            .into()
    }
}

/// Which entries of the staged index, by position, were staged here from
/// a regular file that no attribute or configuration converts: the blob is
/// the file's bytes. Such an entry can be checked against its file without
/// libgit2's filters ([`unchanged_plain_file`]). A byte per entry.
#[derive(Default)]
pub(super) struct PlainEntries(Vec<bool>);

impl PlainEntries {
    pub(super) fn contains(&self, position: usize) -> bool {
        self.0.get(position).copied().unwrap_or(false)
    }
}

/// Whether the file of a [`PlainEntries`] entry still holds what the entry
/// says: a regular file of the entry's size and executable bit whose bytes
/// hash to its blob. What libgit2's index-to-workdir diff would find for
/// it, without its filter and attribute lookups; an unreadable file counts
/// as changed.
pub(super) fn unchanged_plain_file(
    workdir: &Path,
    entry: &IndexEntry,
    trust_executable_bit: bool,
) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let path = workdir.join(std::ffi::OsStr::from_bytes(&entry.path));
    let Ok(meta) = path.symlink_metadata() else {
        return false;
    };
    // The owner's bit, as git and libgit2 read it (`canonical_mode`).
    let executable = meta.mode() & 0o100 != 0;
    if !meta.file_type().is_file()
        || meta.len() as u32 != entry.file_size
        || (trust_executable_bit && executable != (entry.mode == 0o100755))
    {
        return false;
    }
    let Ok(mut file) = File::open(&path) else {
        return false;
    };
    let mut buf = vec![0u8; IO_BUFFER.min(meta.len() as usize + 1)];
    blob_id(&mut file, meta.len(), &mut buf, |_| {}).is_ok_and(|id| id == Some(entry.id))
}

/// The blob id of `file`'s bytes, `size` long as its stat said; `None` when
/// it read back another length (it changed meanwhile). `read` is told each
/// piece's length.
fn blob_id(
    file: &mut File,
    size: u64,
    buf: &mut [u8],
    mut read: impl FnMut(u64),
) -> std::io::Result<Option<Oid>> {
    let mut id = Sha1::new();
    id.update(format!("blob {size}\0"));
    let mut total = 0u64;
    for_each_chunk(file, buf, |chunk| {
        id.update(chunk);
        total += chunk.len() as u64;
        read(chunk.len() as u64);
    })?;
    Ok((total == size).then(|| Oid::from_bytes(&id.finalize()).expect("SHA-1 is 20 bytes")))
}

/// An untracked directory that is a repository of its own: `git add` stages
/// the commit it has checked out as a gitlink, and refuses one without.
fn embedded_repository(workdir: &Path, path: &str) -> Option<Result<Oid, String>> {
    let dir = workdir.join(path.trim_end_matches('/'));
    if dir.join(".git").symlink_metadata().is_err() {
        return None;
    }
    let name = path.trim_end_matches('/');
    let head = Repository::open(&dir)
        .ok()
        .and_then(|r| r.head().ok().and_then(|h| h.target()));
    Some(head.ok_or_else(|| {
        format!(
            "'{name}' is a git repository without a commit checked out, which `git add` refuses \
             too; commit in it, remove its .git, or leave it out of FILES"
        )
    }))
}

/// git's `ce_mode_from_stat` for a regular file in the working tree.
struct ModeRules {
    trust_executable_bit: bool,
    has_symlinks: bool,
}

impl ModeRules {
    fn of_regular_file(&self, st_mode: u32, existing: Option<u32>) -> u32 {
        let is = |mode: Option<u32>, kind: u32| mode.is_some_and(|m| m & 0o170000 == kind);
        // Without symlinks a link is checked out as a file: it stays a link.
        if !self.has_symlinks && is(existing, 0o120000) {
            return existing.expect("checked");
        }
        if !self.trust_executable_bit {
            return match existing {
                Some(m) if is(existing, 0o100000) => m,
                _ => 0o100644,
            };
        }
        canonical_mode(st_mode)
    }
}

/// What git would do to a file's bytes beyond what libgit2 does itself.
enum Conversion {
    /// Nothing external: libgit2 applies `text`, `eol`, `ident` as git does.
    None,
    /// No attribute converts the content: committed byte for byte.
    Plain,
    /// git-lfs's clean filter, which commit-back runs itself.
    Lfs,
    Refused(String),
}

/// The attributes that decide how git converts a file's content.
const CONVERSION_ATTRIBUTES: [&std::ffi::CStr; 6] = [
    c"filter",
    c"working-tree-encoding",
    c"text",
    c"eol",
    c"ident",
    c"crlf",
];

/// One attribute's state, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attr {
    Unspecified,
    Set,
    Unset,
    Value(String),
}

unsafe extern "C" {
    /// libgit2's own (linked through libgit2-sys, which does not declare
    /// it): every name looked up in one walk over the attribute files.
    fn git_attr_get_many(
        values_out: *mut *const std::ffi::c_char,
        repo: *mut libgit2_sys::git_repository,
        flags: u32,
        path: *const std::ffi::c_char,
        num_attr: usize,
        names: *mut *const std::ffi::c_char,
    ) -> std::ffi::c_int;
}

/// [`CONVERSION_ATTRIBUTES`] for `file`, in one lookup: six `get_attr`
/// calls each walk every attribute file again, which cost 10,000 files
/// under a root `.gitattributes` about 1.6 s (bench, 2026-12-02).
/// None when libgit2 could not read them (then libgit2 stages the path
/// itself, and fails loudly if it must).
fn conversion_attributes(repo: &Repository, file: &Path) -> Option<[Attr; 6]> {
    use git2::Binding as _;
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(file.as_os_str().as_bytes()).ok()?;
    let mut names: [*const std::ffi::c_char; 6] = CONVERSION_ATTRIBUTES.map(|n| n.as_ptr());
    let mut values: [*const std::ffi::c_char; 6] = [std::ptr::null(); 6];
    // SAFETY: a live repository; `path` and the names are NUL-terminated and
    // outlive the call; `values` has room for the six answers, which point
    // into libgit2's attribute cache and are read before any other call.
    let rc = unsafe {
        git_attr_get_many(
            values.as_mut_ptr(),
            repo.raw(),
            libgit2_sys::GIT_ATTR_CHECK_FILE_THEN_INDEX,
            path.as_ptr(),
            names.len(),
            names.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return None;
    }
    Some(values.map(|v| {
        if v.is_null() {
            return Attr::Unspecified;
        }
        // SAFETY: non-null values are NUL-terminated strings (see above).
        let text = unsafe { std::ffi::CStr::from_ptr(v) };
        // The true/false markers are told apart by address, so the value
        // is passed on as it came.
        match text.to_str().map(|t| AttrValue::from_string(Some(t))) {
            Ok(AttrValue::True) => Attr::Set,
            Ok(AttrValue::False) => Attr::Unset,
            Ok(AttrValue::Unspecified) => Attr::Unspecified,
            _ => Attr::Value(text.to_string_lossy().into_owned()),
        }
    }))
}

fn external_conversion(repo: &Repository, file: &Path) -> Conversion {
    let path = file.to_string_lossy();
    // Unreadable attributes: never the fast path (a filter could be hidden).
    let Some([filter, encoding, text, eol, ident, crlf]) = conversion_attributes(repo, file) else {
        return Conversion::None;
    };
    if let Attr::Value(driver) = filter {
        if driver == "lfs" {
            if super::lfs::has_extensions(repo) {
                return Conversion::Refused(format!(
                    "'{path}' is tracked by Git LFS and this repository configures LFS extensions \
                     (lfs.extension.*), which commit-back does not run; commit it from a step \
                     where git and git-lfs are installed, or leave it out of FILES"
                ));
            }
            return Conversion::Lfs;
        }
        let known = repo
            .index()
            .ok()
            .is_some_and(|i| i.get_path(file, 0).is_some());
        let why = if known {
            format!(
                "'{path}' has filter={driver} in its attributes and its file changed on disk: \
                 commit-back runs no external filters, so it cannot tell whether git would \
                 see a change, and will not commit the file raw; commit it from a step where git \
                 and the {driver} filter are installed, or leave it out of FILES"
            )
        } else {
            format!(
                "'{path}' has filter={driver} in its attributes: commit-back runs no external \
                 filters and will not commit the file raw (it could be a decrypted secret); commit it from a step where git and the \
                 {driver} filter are installed, or leave it out of FILES"
            )
        };
        return Conversion::Refused(why);
    }
    match &encoding {
        // git dies on these: "true/false are no valid working-tree-encodings".
        Attr::Set | Attr::Unset => {
            return Conversion::Refused(format!(
                "'{path}' has working-tree-encoding set without a value in its attributes, \
                 which git refuses (\"true/false are no valid working-tree-encodings\"); \
                 give it an encoding or remove it"
            ));
        }
        Attr::Value(encoding) => {
            let utf8 = matches!(encoding.to_ascii_lowercase().as_str(), "utf-8" | "utf8");
            if !utf8 {
                return Conversion::Refused(format!(
                    "'{path}' has working-tree-encoding={encoding} in its attributes: git would \
                     convert it to UTF-8 with iconv, which commit-back does not do; commit it \
                     from a step where git is installed, or leave it out of FILES"
                ));
            }
            // UTF-8 is no conversion: the other attributes decide.
        }
        Attr::Unspecified => {}
    }
    // No attribute that converts content is set (unset, or `-text`,
    // `binary`, `-ident`…): the bytes are committed as they are, so the
    // file may go into the pack of new files like any plain file. A
    // `.gitattributes` that says nothing about this path (`*.lfs …`,
    // `*.png binary`) must not cost the fast path.
    let converts = [text, eol, ident, crlf]
        .iter()
        .any(|a| matches!(a, Attr::Set | Attr::Value(_)));
    if converts {
        Conversion::None
    } else {
        Conversion::Plain
    }
}

/// A sparse checkout's definition, as far as `git add` needs it: new files
/// outside it are refused (git: "The following paths … exist outside of your
/// sparse-checkout definition, so will not be updated in the index").
enum Sparse {
    Off,
    /// Cone mode: directories included with everything below them, and
    /// their parents, whose own files only are included.
    Cone {
        recursive: HashSet<String>,
        parents: HashSet<String>,
    },
    /// Non-cone patterns (gitignore syntax) are not evaluated here.
    Patterns,
}

impl Sparse {
    fn of(repo: &Repository) -> Sparse {
        let flag = |key: &str| config_flag(repo, key);
        if !flag("core.sparseCheckout") {
            return Sparse::Off;
        }
        let file = std::fs::read_to_string(repo.path().join("info/sparse-checkout"));
        match (flag("core.sparseCheckoutCone"), file) {
            (true, Ok(text)) => Sparse::cone(&text).unwrap_or(Sparse::Patterns),
            (true, Err(_)) => Sparse::Cone {
                recursive: HashSet::new(),
                parents: HashSet::new(),
            },
            (false, _) => Sparse::Patterns,
        }
    }

    /// Parses the patterns `git sparse-checkout set` writes in cone mode;
    /// None when they are not of that shape (git then falls back to
    /// non-cone matching too).
    fn cone(text: &str) -> Option<Sparse> {
        let mut recursive = HashSet::new();
        let mut parents = HashSet::new();
        for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
            if line == "/*" || line == "!/*/" || line.starts_with('#') {
                continue;
            }
            let (negated, rest) = match line.strip_prefix('!') {
                Some(r) => (true, r),
                None => (false, line),
            };
            let dir = if negated {
                rest.strip_prefix('/')?.strip_suffix("/*/")?
            } else {
                rest.strip_prefix('/')?.strip_suffix('/')?
            };
            let dir = unescape(dir);
            if negated {
                parents.insert(dir);
            } else {
                recursive.insert(dir);
            }
        }
        recursive.retain(|d| !parents.contains(d));
        Some(Sparse::Cone { recursive, parents })
    }

    fn is_on(&self) -> bool {
        !matches!(self, Sparse::Off)
    }

    /// Whether `path` is outside the definition; None where that is not
    /// known (non-cone patterns).
    fn outside(&self, path: &str) -> Option<bool> {
        match self {
            Sparse::Off => Some(false),
            Sparse::Cone { .. } => Some(!self.includes(path)),
            Sparse::Patterns => None,
        }
    }

    /// Why `path`, a new file about to be staged, is refused.
    fn refuses(&self, path: &str) -> Option<String> {
        match self {
            Sparse::Off => None,
            Sparse::Cone { .. } => {
                let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                (!self.includes(path)).then(|| {
                    format!(
                        "'{path}' is outside the sparse-checkout definition, and `git add` would \
                         not stage it either; add its directory with `git sparse-checkout add \
                         {}` before commit-back, or leave it out of FILES",
                        if dir.is_empty() { "." } else { dir }
                    )
                })
            }
            Sparse::Patterns => Some(format!(
                "'{path}' is new in a non-cone sparse checkout, whose patterns commit-back does \
                 not evaluate; use cone mode (`git sparse-checkout set --cone DIR…`), or leave \
                 new files out of FILES"
            )),
        }
    }
}

impl Sparse {
    /// Whether a cone includes `path`: files at the top, files directly in a
    /// parent of an included directory, everything below an included one.
    fn includes(&self, path: &str) -> bool {
        let Sparse::Cone { recursive, parents } = self else {
            return matches!(self, Sparse::Off);
        };
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        let mut ancestors =
            std::iter::successors(Some(dir), |d| d.rsplit_once('/').map(|(p, _)| p))
                .filter(|d| !d.is_empty());
        dir.is_empty() || parents.contains(dir) || ancestors.any(|a| recursive.contains(a))
    }
}

/// Cone patterns escape glob characters and backslashes with a backslash.
fn unescape(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Where `.gitattributes` files could apply: memoised per directory.
struct AttributeFiles {
    /// `.gitattributes` paths in the index (libgit2 reads those too).
    in_index: HashSet<Vec<u8>>,
    by_dir: HashMap<String, bool>,
}

impl AttributeFiles {
    fn new(in_index: HashSet<Vec<u8>>) -> AttributeFiles {
        AttributeFiles {
            in_index,
            by_dir: HashMap::new(),
        }
    }

    /// Whether a `.gitattributes` in the file's directory or any above it
    /// (in the working tree or the index) could apply to `path`.
    fn may_apply(&mut self, workdir: &Path, path: &str) -> bool {
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        self.dir_has(workdir, dir)
    }

    fn dir_has(&mut self, workdir: &Path, dir: &str) -> bool {
        if let Some(&known) = self.by_dir.get(dir) {
            return known;
        }
        let file = if dir.is_empty() {
            ".gitattributes".to_owned()
        } else {
            format!("{dir}/.gitattributes")
        };
        let here = workdir.join(&file).symlink_metadata().is_ok()
            || self.in_index.contains(file.as_bytes());
        let result = here
            || (!dir.is_empty() && {
                let parent = dir.rsplit_once('/').map_or("", |(p, _)| p);
                self.dir_has(workdir, parent)
            });
        self.by_dir.insert(dir.to_owned(), result);
        result
    }
}

/// A boolean from git's configuration; unset or unreadable is false.
fn config_flag(repo: &Repository, key: &str) -> bool {
    repo.config().and_then(|c| c.get_bool(key)).unwrap_or(false)
}

fn autocrlf(repo: &Repository) -> bool {
    let Ok(config) = repo.config() else {
        return true;
    };
    match config.get_string("core.autocrlf") {
        Ok(v) => !matches!(
            v.to_ascii_lowercase().as_str(),
            "false" | "no" | "off" | "0"
        ),
        Err(e) => e.code() != git2::ErrorCode::NotFound,
    }
}

/// Attribute sources outside the working tree, as libgit2 reads them:
/// `info/attributes` in the common git dir (shared by linked worktrees),
/// `core.attributesFile` (or its XDG default) and the system file.
fn global_attributes(repo: &Repository) -> bool {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let configured = repo
        .config()
        .ok()
        .and_then(|c| c.get_path("core.attributesFile").ok());
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".config")))
        .map(|x| x.join("git/attributes"));
    [
        Some(repo.commondir().join("info/attributes")),
        configured,
        xdg,
        Some(PathBuf::from("/etc/gitattributes")),
    ]
    .into_iter()
    .flatten()
    .any(|p| p.exists())
}

/// `GIT_PERMS_CANONICAL`: executable for the owner or not.
fn canonical_mode(st_mode: u32) -> u32 {
    if st_mode & 0o100 != 0 {
        0o100755
    } else {
        0o100644
    }
}

/// What the index records of a file, as read when it was packed (a few
/// dozen bytes per file: 10,000 files must not cost megabytes).
struct Stat {
    ctime: (i64, i64),
    mtime: (i64, i64),
    dev: u64,
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
}

impl Stat {
    fn of(meta: &std::fs::Metadata) -> Stat {
        Stat {
            ctime: (meta.ctime(), meta.ctime_nsec()),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            dev: meta.dev(),
            ino: meta.ino(),
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.size(),
        }
    }

    fn entry(&self, path: &str, id: Oid, mode: u32) -> IndexEntry {
        // The index stores 32-bit stat fields; git truncates the same way.
        let time = |(secs, nanos): (i64, i64)| IndexTime::new(secs as i32, nanos as u32);
        IndexEntry {
            ctime: time(self.ctime),
            mtime: time(self.mtime),
            dev: self.dev as u32,
            ino: self.ino as u32,
            mode,
            uid: self.uid,
            gid: self.gid,
            file_size: self.size as u32,
            id,
            flags: 0,
            flags_extended: 0,
            path: path.as_bytes().to_vec(),
        }
    }
}

/// libgit2 checks that an entry's blob exists as the entry is added (one
/// object lookup each). The entries of the claimed files are added before
/// their pack is written, so that only their paths and 32 bytes per file
/// are held beside the index meanwhile, and every new blob is looked up
/// once the pack is in place ([`Stager::stage`]); [`write_tree`] makes its
/// own check. The check is back on when the last one is dropped, on every
/// path. (A process-wide libgit2 option: counted, so that stagings on
/// other threads, as the unit tests run them, do not turn it back on under
/// each other.)
struct UncheckedIds;

static UNCHECKED: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

impl UncheckedIds {
    fn new() -> UncheckedIds {
        let mut holders = UNCHECKED.lock().unwrap_or_else(|e| e.into_inner());
        *holders += 1;
        git2::opts::strict_object_creation(false);
        UncheckedIds
    }
}

impl Drop for UncheckedIds {
    fn drop(&mut self) {
        let mut holders = UNCHECKED.lock().unwrap_or_else(|e| e.into_inner());
        *holders -= 1;
        if *holders == 0 {
            git2::opts::strict_object_creation(true);
        }
    }
}

/// A file for the pack of new files: its blob's id and its size as the
/// first read saw them, and which file it is ([`FilePaths`]).
struct PackedBlob {
    id: Oid,
    size: u64,
    file: u32,
}

/// The largest stored deflate block.
const STORED_BLOCK: usize = 65_535;
const OBJ_BLOB: u8 = 3;

/// Buffer sizes for reading files and writing the pack: at glibc's mmap
/// threshold, so they are returned to the system when staging ends.
const IO_BUFFER: usize = 128 * 1024;

/// First read: each file's blob id and the stat the index records, handed
/// to `each` in the order of `files`.
fn hash_files(
    workdir: &Path,
    files: &PathList,
    meter: &Meter,
    mut each: impl FnMut(&str, Oid, &std::fs::Metadata) -> Result<()>,
) -> Result<()> {
    let mut buf = vec![0u8; IO_BUFFER];
    for path in files.iter() {
        let mut file = File::open(workdir.join(path)).with_context(|| format!("reading {path}"))?;
        let meta = file.metadata().with_context(|| format!("reading {path}"))?;
        let id = blob_id(&mut file, meta.len(), &mut buf, |n| meter.add(n))
            .with_context(|| format!("reading {path}"))?;
        let Some(id) = id else {
            bail!("{path} changed while it was being staged");
        };
        each(path, id, &meta)?;
    }
    Ok(())
}

/// Second read: a version 2 pack of `blobs` (of `files`, relative to
/// `workdir`, with the size and id [`hash_files`] saw; in the order of
/// their ids, the order of the pack's index), content in stored deflate
/// blocks, streamed: memory does not grow with file size. A file that
/// changed in between is an error (its size, or its content hashed again
/// here). Returns where each object starts, its entry's CRC-32 and the
/// pack's checksum, for [`write_index`].
fn write_pack(
    out: impl Write,
    workdir: &Path,
    files: &impl FilePaths,
    blobs: &[PackedBlob],
    meter: &Meter,
) -> Result<PackWritten> {
    if !blobs.windows(2).all(|w| w[0].id < w[1].id) {
        bail!("the pack's objects are not in the order of their ids");
    }
    let mut pack = HashingWriter {
        inner: std::io::BufWriter::with_capacity(IO_BUFFER, out),
        sha1: Sha1::new(),
        crc: 0,
        at: 0,
    };
    let count = u32::try_from(blobs.len()).context("too many files for one pack")?;
    pack.write_all(b"PACK")?;
    pack.write_all(&2u32.to_be_bytes())?;
    pack.write_all(&count.to_be_bytes())?;
    let mut entries = Vec::with_capacity(blobs.len());
    let mut buf = vec![0u8; IO_BUFFER];
    for blob in blobs {
        let path = files.path(blob.file);
        let mut file =
            File::open(workdir.join(&*path)).with_context(|| format!("reading {path}"))?;
        let size = blob.size;
        let offset = pack.at;
        pack.crc = 0;
        pack.write_all(&object_header(OBJ_BLOB, size))?;
        pack.write_all(&[0x78, 0x01])?; // zlib: deflate, 32 KiB window, no dictionary
        let mut adler = 1; // adler32 of nothing
        let mut id = Sha1::new();
        id.update(format!("blob {size}\0"));
        let mut written = 0u64;
        let mut failed = None;
        for_each_chunk(&mut file, &mut buf, |chunk| {
            if failed.is_some() {
                return;
            }
            adler = adler32(adler, chunk);
            id.update(chunk);
            meter.add(chunk.len() as u64);
            for block in chunk.chunks(STORED_BLOCK) {
                written += block.len() as u64;
                // Sizes beyond the stat are caught below; the final block is
                // the one that reaches the size hash_files saw.
                if let Err(e) = stored_block(&mut pack, block, written == size) {
                    failed = Some(e);
                    return;
                }
            }
        })
        .with_context(|| format!("reading {path}"))?;
        if let Some(e) = failed {
            return Err(e).context("writing the pack of new files");
        }
        if written != size || Oid::from_bytes(&id.finalize()).ok() != Some(blob.id) {
            bail!("{path} changed while it was being staged");
        }
        if size == 0 {
            stored_block(&mut pack, &[], true)?;
        }
        pack.write_all(&adler.to_be_bytes())?;
        entries.push((offset, pack.crc));
    }
    let checksum: [u8; 20] = pack.sha1.clone().finalize().into();
    pack.inner.write_all(&checksum)?;
    pack.inner.flush()?;
    Ok(PackWritten { entries, checksum })
}

/// What [`write_index`] needs of a written pack.
#[derive(Debug)]
struct PackWritten {
    /// For each object, in the pack's order: where its entry starts and
    /// the CRC-32 of the entry's bytes.
    entries: Vec<(u64, u32)>,
    checksum: [u8; 20],
}

/// The pack's version 2 `.idx` (gitformat-pack), as `git index-pack`
/// writes it: libgit2's indexer would read the whole pack back through
/// memory maps to make it (a 2 GiB file mapped whole). `blobs` are the
/// pack's objects, in its order, which must be their ids'.
fn write_index(out: impl Write, blobs: &[PackedBlob], pack: &PackWritten) -> std::io::Result<()> {
    if blobs.len() != pack.entries.len() || !blobs.windows(2).all(|w| w[0].id < w[1].id) {
        return Err(std::io::Error::other(
            "the pack's objects are not in the order of their ids",
        ));
    }
    let mut idx = HashingWriter {
        inner: std::io::BufWriter::with_capacity(IO_BUFFER, out),
        sha1: Sha1::new(),
        crc: 0,
        at: 0,
    };
    let entries = &pack.entries;
    idx.write_all(&[0xff, b't', b'O', b'c', 0, 0, 0, 2])?;
    let mut fanout = [0u32; 256];
    for blob in blobs {
        fanout[usize::from(blob.id.as_bytes()[0])] += 1;
    }
    let mut running = 0u32;
    for n in fanout {
        running += n;
        idx.write_all(&running.to_be_bytes())?;
    }
    for blob in blobs {
        idx.write_all(blob.id.as_bytes())?;
    }
    for (_, crc) in entries {
        idx.write_all(&crc.to_be_bytes())?;
    }
    let mut large = Vec::new();
    for (offset, _) in entries {
        match u32::try_from(*offset) {
            Ok(small) if small < 0x8000_0000 => idx.write_all(&small.to_be_bytes())?,
            _ => {
                let at = 0x8000_0000 | u32::try_from(large.len()).expect("under 2^31 objects");
                idx.write_all(&at.to_be_bytes())?;
                large.push(*offset);
            }
        }
    }
    for offset in large {
        idx.write_all(&offset.to_be_bytes())?;
    }
    idx.write_all(&pack.checksum)?;
    let own: [u8; 20] = idx.sha1.clone().finalize().into();
    idx.inner.write_all(&own)?;
    idx.inner.flush()
}

/// Writes the pack of `blobs` and its index into `objects/pack` under
/// temporary names, then renames them (the pack first: readers look for
/// the index) as `pack-<checksum>`.
fn store_pack(
    pack_dir: &Path,
    workdir: &Path,
    files: &impl FilePaths,
    blobs: &[PackedBlob],
    meter: &Meter,
) -> Result<()> {
    let temporary = |kind: &str| {
        pack_dir.join(format!(
            "tmp_commit_back_{kind}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ))
    };
    let (pack_tmp, idx_tmp) = (temporary("pack"), temporary("idx"));
    let create = |path: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))
    };
    let result = (|| -> Result<()> {
        let written = write_pack(create(&pack_tmp)?, workdir, files, blobs, meter)?;
        write_index(create(&idx_tmp)?, blobs, &written).context("writing the pack's index")?;
        let name = pack_dir.join(format!("pack-{}", hex(&written.checksum)));
        for (tmp, ext) in [(&pack_tmp, "pack"), (&idx_tmp, "idx")] {
            let mut perms = std::fs::metadata(tmp)?.permissions();
            perms.set_readonly(true);
            std::fs::set_permissions(tmp, perms)?;
            std::fs::rename(tmp, name.with_extension(ext))
                .context("moving the pack of new files into place")?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&pack_tmp);
        let _ = std::fs::remove_file(&idx_tmp);
    }
    result
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds `file` to `f` in buffer-sized chunks until end of file.
fn for_each_chunk(
    file: &mut File,
    buf: &mut [u8],
    mut f: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    loop {
        match file.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => f(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Pack object header: type and size, 4 bits then 7 per byte, low first.
pub(super) fn object_header(kind: u8, size: u64) -> Vec<u8> {
    let mut bytes = vec![(kind << 4) | (size & 0x0f) as u8];
    let mut rest = size >> 4;
    while rest != 0 {
        *bytes.last_mut().expect("one byte at least") |= 0x80;
        bytes.push((rest & 0x7f) as u8);
        rest >>= 7;
    }
    bytes
}

fn stored_block(out: &mut impl Write, data: &[u8], last: bool) -> std::io::Result<()> {
    let len = u16::try_from(data.len()).expect("block within STORED_BLOCK");
    out.write_all(&[u8::from(last)])?; // BFINAL, BTYPE=00, padding to the byte
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&(!len).to_le_bytes())?;
    out.write_all(data)
}

/// zlib's adler32 (the C library libgit2 already links).
fn adler32(adler: u32, data: &[u8]) -> u32 {
    let mut sum = libz_sys::uLong::from(adler);
    for part in data.chunks(u32::MAX as usize) {
        // SAFETY: zlib reads exactly `len` bytes from a live slice.
        sum = unsafe { libz_sys::adler32(sum, part.as_ptr(), part.len() as libz_sys::uInt) };
    }
    sum as u32
}

/// zlib's crc32 (the C library libgit2 already links).
fn crc32(crc: u32, data: &[u8]) -> u32 {
    let mut sum = libz_sys::uLong::from(crc);
    for part in data.chunks(u32::MAX as usize) {
        // SAFETY: zlib reads exactly `len` bytes from a live slice.
        sum = unsafe { libz_sys::crc32(sum, part.as_ptr(), part.len() as libz_sys::uInt) };
    }
    sum as u32
}

/// Hashes what it writes: SHA-1 of everything, CRC-32 since `crc` was
/// last reset (one pack entry), and counts it (`at`: the next offset).
struct HashingWriter<W: Write> {
    inner: W,
    sha1: Sha1,
    crc: u32,
    at: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha1.update(&buf[..n]);
        self.crc = crc32(self.crc, &buf[..n]);
        self.at += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::git::{CommitOutcome, CommitRequest, Repo, WriteMode};
    use std::process::Command;

    /// git, isolated from the machine's configuration; its output trimmed.
    pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// A repository with a history and a working tree full of the cases
    /// staging must get right, twice: once for git, once for commit-back.
    fn scene(root: &Path, name: &str, config: Option<(&str, &str)>) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("keep/attr")).unwrap();
        std::fs::create_dir_all(dir.join("keep/dir")).unwrap();
        git(&dir, &["init", "-q", "-b", "main"]);
        git(&dir, &["config", "user.name", "t"]);
        git(&dir, &["config", "user.email", "t@example.com"]);
        if let Some((key, value)) = config {
            git(&dir, &["config", key, value]);
        }
        use std::os::unix::fs::PermissionsExt as _;
        let executable = std::fs::Permissions::from_mode(0o755);
        let plain = std::fs::Permissions::from_mode(0o644);
        std::fs::write(dir.join("keep/tracked.txt"), "old\n").unwrap();
        std::fs::write(dir.join("keep/gone.txt"), "bye\n").unwrap();
        std::fs::write(dir.join("keep/was-file"), "file\n").unwrap();
        std::fs::write(dir.join("keep/dir/was-dir.txt"), "dir\n").unwrap();
        std::fs::write(dir.join("keep/tool.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(dir.join("keep/tool.sh"), executable.clone()).unwrap();
        std::fs::write(
            dir.join("keep/attr/.gitattributes"),
            "*.txt text eol=crlf\n",
        )
        .unwrap();
        git(&dir, &["add", "-A"]);
        git(&dir, &["commit", "-q", "-m", "base"]);
        // Changes: modified, deleted, file <-> directory, mode lost, new in
        // new directories, edge sizes, executable, symlink, CRLF text under
        // an attributes file.
        std::fs::write(dir.join("keep/tracked.txt"), "new\r\nline\n").unwrap();
        std::fs::remove_file(dir.join("keep/gone.txt")).unwrap();
        std::fs::remove_file(dir.join("keep/was-file")).unwrap();
        std::fs::create_dir(dir.join("keep/was-file")).unwrap();
        std::fs::write(dir.join("keep/was-file/now-inside.txt"), "in\n").unwrap();
        std::fs::remove_dir_all(dir.join("keep/dir")).unwrap();
        std::fs::write(dir.join("keep/dir"), "now a file\n").unwrap();
        std::fs::write(dir.join("keep/tool.sh"), "#!/bin/sh\necho\n").unwrap();
        std::fs::set_permissions(dir.join("keep/tool.sh"), plain).unwrap();
        let sizes = [0usize, 1, 65_535, 65_536, 131_071, (1 << 20) + 1, 3 << 20];
        for (i, size) in sizes.iter().enumerate() {
            let bytes: Vec<u8> = (0..*size).map(|b| (b * 31 + i) as u8).collect();
            let sub = dir.join(format!("gen/d{}", i % 3));
            std::fs::create_dir_all(&sub).unwrap();
            std::fs::write(sub.join(format!("f{size}.bin")), bytes).unwrap();
        }
        // The same new content twice, and content the repository already has.
        std::fs::write(dir.join("gen/copy-a.txt"), "same\n").unwrap();
        std::fs::write(dir.join("gen/copy-b.txt"), "same\n").unwrap();
        std::fs::write(dir.join("gen/like-gone.txt"), "bye\n").unwrap();
        std::fs::write(dir.join("gen/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(dir.join("gen/run.sh"), executable).unwrap();
        std::os::unix::fs::symlink("d0/f0.bin", dir.join("gen/link")).unwrap();
        std::fs::write(dir.join("keep/attr/crlf.txt"), "a\r\nb\n").unwrap();
        std::fs::write(dir.join("gen/crlf.txt"), "c\r\nd\n").unwrap();
        dir
    }

    fn staged_by_commit_back(dir: &Path) -> String {
        let repo = Repo::open(dir, WriteMode::Disk).unwrap();
        let specs = [".".to_owned()];
        let req = CommitRequest::for_test(&specs);
        match repo.commit_artifacts(&req, WriteMode::Disk).unwrap() {
            CommitOutcome::Created(c) => {
                // Nothing but objects before the push is accepted…
                assert_ne!(repo.head_commit(), Some(c.oid));
                // …and what `git commit` leaves once it was.
                repo.adopt(c.oid, c.oid).unwrap();
                repo.raw().find_commit(c.oid).unwrap().tree_id().to_string()
            }
            _ => panic!("nothing staged"),
        }
    }

    /// Racy git after a late index write: a file outside FILES changed in
    /// the same second as the old index was written, at the same size. The
    /// index is written after the push, seconds later: git must still see
    /// the change (it compares seconds; libgit2's own smudging, nanoseconds).
    #[test]
    fn an_index_written_after_the_push_keeps_racy_changes_visible() {
        // Both kinds changed, then each alone (the parked index is put in
        // place as it is when neither did).
        assert_eq!(racy_scene(true, true), "M artifact.txt\n M outside.txt");
        assert_eq!(racy_scene(false, true), "M outside.txt");
        assert_eq!(racy_scene(true, false), "M artifact.txt");
        assert_eq!(racy_scene(false, false), "");
    }

    /// `git status` after a run in which a file outside FILES changed in
    /// the second of the clone (`outside_changes`), and the artifact during
    /// the push (`artifact_changes`), both unseen by their stat (same size,
    /// same mtime, in place).
    fn racy_scene(artifact_changes: bool, outside_changes: bool) -> String {
        use std::time::{Duration, SystemTime, UNIX_EPOCH};
        // Start right after a second begins: the setup fits in that second,
        // as a clone and a quick build do.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        std::thread::sleep(Duration::from_nanos(
            1_000_000_000 - u64::from(now.subsec_nanos()),
        ));
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let at = |nanos: u32| UNIX_EPOCH + Duration::new(second, nanos);
        let stamp = |path: &Path, t: SystemTime| {
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        let dir = std::env::temp_dir().join(format!("cb-racy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        git(&dir, &["init", "-q", "-b", "main"]);
        std::fs::write(dir.join("outside.txt"), "1\n").unwrap();
        stamp(&dir.join("outside.txt"), at(100));
        git(&dir, &["add", "outside.txt"]);
        git(
            &dir,
            &[
                "-c",
                "user.name=a",
                "-c",
                "user.email=a@b",
                "commit",
                "-qm",
                "base",
            ],
        );
        // The old index, its entry and the later edit all in one second:
        // racy for git (seconds). The edit keeps the entry's mtime.
        stamp(&dir.join(".git/index"), at(999_999_998));
        if outside_changes {
            std::fs::write(dir.join("outside.txt"), "2\n").unwrap();
            stamp(&dir.join("outside.txt"), at(100));
        }
        std::fs::write(dir.join("artifact.txt"), "a\n").unwrap();
        stamp(&dir.join("artifact.txt"), at(500));
        // The build takes a while: staging, and the staged index, come in a
        // later second (git then trusts these entries by their stat alone).
        while SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            <= second
        {
            std::thread::sleep(Duration::from_millis(50));
        }

        let repo = Repo::open(&dir, WriteMode::Disk).unwrap();
        let specs = ["artifact.txt".to_owned()];
        let req = CommitRequest::for_test(&specs);
        let CommitOutcome::Created(c) = repo.commit_artifacts(&req, WriteMode::Disk).unwrap()
        else {
            panic!("nothing staged");
        };
        // The artifact, staged from the plain-file pack, changes during
        // the push without its stat showing it (same size, same mtime, in
        // place): compared with its file, not trusted by its stat.
        if artifact_changes {
            std::fs::write(dir.join("artifact.txt"), "b\n").unwrap();
            stamp(&dir.join("artifact.txt"), at(500));
        }
        let staged = git(&dir, &["rev-parse", &format!("{}:artifact.txt", c.oid)]);
        assert!(
            !is_loose(&dir, &staged),
            "artifact.txt was not staged by the pack"
        );
        repo.adopt(c.oid, c.oid).unwrap();
        // git's status without ctime, which an edit in place changes: only
        // the racy-git rule can show these changes, and it does if the
        // entries were smudged. (commit-back's check sees them: the plain
        // artifact by content, the checkout's file by libgit2's diff, which
        // does compare ctime.)
        let status = git(
            &dir,
            &["-c", "core.trustctime=false", "status", "--porcelain"],
        );
        std::fs::remove_dir_all(&dir).unwrap();
        status
    }

    fn is_loose(dir: &Path, id: &str) -> bool {
        dir.join(".git/objects")
            .join(&id[..2])
            .join(&id[2..])
            .exists()
    }

    /// Differential: the tree commit-back stages equals the one `git add -A`
    /// writes for the same working tree, under each configuration that
    /// changes what staging stores.
    #[test]
    fn staging_matches_git_add_and_packs_plain_files() {
        let configs = [
            None,
            Some(("core.autocrlf", "true")),
            Some(("core.fileMode", "false")),
        ];
        for config in configs {
            let root = std::env::temp_dir().join(format!("cb-stage-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            let by_git = scene(&root, "git", config);
            git(&by_git, &["add", "-A"]);
            let expected = git(&by_git, &["write-tree"]);

            let ours = scene(&root, "ours", config);
            assert_eq!(staged_by_commit_back(&ours), expected, "{config:?}");
            git(&ours, &["fsck", "--strict", "--no-dangling"]);
            // The index describes the working tree: git sees nothing to add.
            assert_eq!(git(&ours, &["status", "--porcelain"]), "", "{config:?}");
            let autocrlf = config.is_some_and(|(k, _)| k == "core.autocrlf");

            let blob = |path: &str| git(&ours, &["rev-parse", &format!("HEAD:{path}")]);
            let plain = blob("gen/d1/f1.bin");
            let filtered = blob("keep/attr/crlf.txt");
            let link = blob("gen/link");
            // Plain files went into the pack unless autocrlf rules that out;
            // what attributes or a symlink govern went through libgit2.
            assert_eq!(is_loose(&ours, &plain), autocrlf, "{config:?}");
            assert!(is_loose(&ours, &filtered));
            assert!(is_loose(&ours, &link));
            std::fs::remove_dir_all(&root).unwrap();
        }
    }

    /// The pack's index is the one `git index-pack` makes, byte for byte.
    #[test]
    fn pack_indexes_match_git_index_pack() {
        let dir = std::env::temp_dir().join(format!("cb-stage-idx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let mut names = Vec::new();
        for i in 0..300 {
            let name = format!("f{i}");
            std::fs::write(work.join(&name), format!("file {i}\n").repeat(i)).unwrap();
            names.push(name);
        }
        let meter = progress::meter("test", Unit::Bytes, 0);
        let names: PathList = names.iter().map(String::as_str).collect();
        let mut unique: Vec<PackedBlob> = Vec::new();
        let mut file = 0u32;
        hash_files(&work, &names, &meter, |_, id, meta| {
            if !unique.iter().any(|b| b.id == id) {
                unique.push(PackedBlob {
                    id,
                    size: meta.len(),
                    file,
                });
            }
            file += 1;
            Ok(())
        })
        .unwrap();
        unique.sort_unstable_by_key(|b| b.id);
        let pack_dir = dir.join("pack");
        std::fs::create_dir_all(&pack_dir).unwrap();
        store_pack(&pack_dir, &work, &names, &unique, &meter).unwrap();
        let found: Vec<PathBuf> = std::fs::read_dir(&pack_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(found.len(), 2, "{found:?}");
        let pack = found
            .iter()
            .find(|p| p.extension().unwrap() == "pack")
            .unwrap();
        let ours = std::fs::read(pack.with_extension("idx")).unwrap();
        let by_git = dir.join("by-git.idx");
        let out = Command::new("git")
            .args(["index-pack", "-o"])
            .arg(&by_git)
            .arg(pack)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            ours == std::fs::read(&by_git).unwrap(),
            "the .idx differs from git's"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Offsets past 2 GiB go to the index's 64-bit table: `git show-index`
    /// reads them back.
    #[test]
    fn large_offsets_are_read_back_by_git() {
        let blob = |b: u8| PackedBlob {
            id: Oid::from_bytes(&[b; 20]).unwrap(),
            size: 0,
            file: 0,
        };
        let id = |b: u8| blob(b).id;
        let blobs = [blob(0x01), blob(0x7f), blob(0x80), blob(0xee)];
        let written = PackWritten {
            entries: vec![
                ((1 << 31) + 5, 8),
                (0x7fff_ffff, 10),
                ((5 << 32) + 9, 9),
                (12, 7),
            ],
            checksum: [0x42; 20],
        };
        let mut idx = Vec::new();
        write_index(&mut idx, &blobs, &written).unwrap();
        // Out of their ids' order, nothing is written.
        let unordered = [blob(0x7f), blob(0x01), blob(0x80), blob(0xee)];
        assert!(write_index(Vec::new(), &unordered, &written).is_err());
        let mut child = Command::new("git")
            .args(["show-index"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&idx).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let expected = [
            (2147483653u64, id(0x01), 8u32),
            (2147483647, id(0x7f), 10),
            (21474836489, id(0x80), 9),
            (12, id(0xee), 7),
        ]
        .iter()
        .map(|(o, i, c)| format!("{o} {i} ({c:08x})\n"))
        .collect::<String>();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }

    /// An entry whose object is missing: an error in git's words (`git
    /// write-tree`); a gitlink's commit is not looked for, as in git.
    #[test]
    fn trees_are_written_only_for_objects_that_exist() {
        let dir = std::env::temp_dir().join(format!("cb-stage-tree-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        git(&dir, &["init", "-q"]);
        std::fs::write(dir.join("here"), "here\n").unwrap();
        git(&dir, &["add", "here"]);
        let cacheinfo = |mode: &str, id: &str, path: &str| {
            let info = format!("{mode},{id},{path}");
            git(&dir, &["update-index", "--add", "--cacheinfo", &info]);
        };
        cacheinfo("160000", &"1".repeat(40), "sub");
        let repo = Repository::open(&dir).unwrap();
        let mut index = repo.index().unwrap();
        let tree = write_tree(&repo, &mut index, None).unwrap();
        assert_eq!(tree.to_string(), git(&dir, &["write-tree"]));
        let parent = repo.find_tree(tree).unwrap();
        let missing = "3".repeat(40);
        cacheinfo("100644", &missing, "dir/gone");
        let by_git = Command::new("git")
            .arg("write-tree")
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(!by_git.status.success());
        let mut index = repo.index().unwrap();
        index.read(true).unwrap();
        let err = write_tree(&repo, &mut index, Some(&parent))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("invalid object 100644 {missing} for 'dir/gone'")
        );
        assert!(
            String::from_utf8_lossy(&by_git.stderr).contains(&err),
            "{}",
            String::from_utf8_lossy(&by_git.stderr)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_changes_between_the_reads_is_an_error() {
        let dir = std::env::temp_dir().join(format!("cb-stage-race-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f"), "first\n").unwrap();
        let files: PathList = ["f"].into_iter().collect();
        let meter = progress::meter("test", Unit::Bytes, 0);
        let mut blobs = Vec::new();
        hash_files(&dir, &files, &meter, |_, id, meta| {
            blobs.push(PackedBlob {
                id,
                size: meta.len(),
                file: 0,
            });
            Ok(())
        })
        .unwrap();
        std::fs::write(dir.join("f"), "first, then more\n").unwrap();
        let err = write_pack(Vec::new(), &dir, &files, &blobs, &meter).unwrap_err();
        assert!(
            format!("{err:#}").contains("f changed while it was being staged"),
            "{err:#}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// git's `ce_mode_from_stat`, case by case.
    #[test]
    fn modes_follow_git() {
        let rules = |trust, links| ModeRules {
            trust_executable_bit: trust,
            has_symlinks: links,
        };
        let (exe, plain, link, gitlink) = (0o100755, 0o100644, 0o120000, 0o160000);
        let table = [
            // (core.fileMode, core.symlinks, st_mode, index entry, staged)
            (true, true, 0o100755, None, exe),
            (true, true, 0o100644, Some(exe), plain),
            (true, true, 0o100700, Some(link), exe),
            (false, true, 0o100755, None, plain),
            (false, true, 0o100755, Some(plain), plain),
            (false, true, 0o100644, Some(exe), exe),
            (false, true, 0o100644, Some(link), plain),
            (false, true, 0o100755, Some(gitlink), plain),
            (true, false, 0o100644, Some(link), link),
            (false, false, 0o100644, Some(link), link),
            (true, false, 0o100755, Some(plain), exe),
        ];
        for (trust, links, st_mode, existing, staged) in table {
            assert_eq!(
                rules(trust, links).of_regular_file(st_mode, existing),
                staged,
                "fileMode={trust} symlinks={links} {st_mode:o} over {existing:?}"
            );
        }
    }

    /// The patterns `git sparse-checkout set --skip-checks app/sub 'a b' 'we*rd'`
    /// writes.
    #[test]
    fn cone_patterns() {
        let cone =
            Sparse::cone("/*\n!/*/\n/app/\n!/app/*/\n/a b/\n/app/sub/\n/we\\*rd/\n").unwrap();
        for (path, inside) in [
            ("top.txt", true),
            ("app/x", true),
            ("app/other/y", false),
            ("app/sub/deep/z", true),
            ("a b/c", true),
            ("we*rd/f", true),
            ("weird/f", false),
            ("docs/d", false),
            ("apple/x", false),
        ] {
            assert_eq!(cone.includes(path), inside, "{path}");
        }
        assert!(
            Sparse::cone("/*\n!/*/\n*.txt\n").is_none(),
            "not cone-shaped"
        );
    }

    #[test]
    fn object_headers_match_the_pack_format() {
        assert_eq!(object_header(OBJ_BLOB, 0), [0x30]);
        assert_eq!(object_header(OBJ_BLOB, 15), [0x3f]);
        assert_eq!(object_header(OBJ_BLOB, 16), [0xb0, 0x01]);
        // 200 MiB = 0xC80_0000: low nibble 0, then 7-bit groups.
        assert_eq!(
            object_header(OBJ_BLOB, 200 << 20),
            [0xb0, 0x80, 0x80, 0xa0, 0x06]
        );
    }
}
