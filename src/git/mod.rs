//! The only place that names git2: staging, the artifact commit, tags, rebase
//! onto a moved branch, and recovery files. Every commit and tag object is
//! written by [`Repo::write_commit`] / [`Repo::create_tag`], which sign it
//! when the run signs ([`Sign`]): no other path writes one. Network operations are in
//! [`remote`]; the HTTP and SSH specifics in [`http`] and [`ssh`]; the
//! streamed push of large files (a pack written as it is sent) in `sendpack`.

pub mod http;
pub mod lfs;
mod parked_index;
pub mod recovery;
pub mod remote;
mod sendpack;
pub mod ssh;
mod stage;

pub use crate::path_list::PathList;
use anyhow::{Context as _, Result};
use git2::{Repository, Signature};
use parked_index::ParkedIndex;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An object id: the one git2 type the rest of the program handles.
pub use git2::Oid;

/// Whether `name` (`refs/…`) is a valid reference name, as git checks it.
pub fn is_valid_ref_name(name: &str) -> bool {
    git2::Reference::is_valid_name(name)
}

/// Written in every artifact commit; LOOP_GUARD recognises it.
pub const TRAILER: &str = "Commit-Back-Artifact";

/// Paths never staged, even with FILES=. and INCLUDE_IGNORED=true: our own
/// recovery files and the pipes' storage (Pipelines lists the latter in
/// .git/info/exclude, which INCLUDE_IGNORED would override).
pub const NEVER_STAGED: &[&str] = &[recovery::DIR, ".bitbucket/pipelines/generated"];

/// Signs what the repository writes: a commit or tag buffer in, the armored
/// signature (ending in a newline) out. [`crate::signing::Signer`] is the one
/// implementation; git/ never sees a key.
pub trait Sign {
    fn sign(&self, payload: &[u8]) -> Result<String>;
}

/// The staged index until the push is accepted.
enum Staged {
    Parked(ParkedIndex),
    /// Where it could not be written aside.
    Held(git2::Index),
}

pub struct Repo {
    inner: Repository,
    /// Signs every commit and tag this run writes (SIGNING_KEY, SIGN).
    signer: Option<std::sync::Arc<dyn Sign>>,
    workdir: PathBuf,
    /// The index as `git add` left it for the artifact commit, parked in a
    /// file of its own: `.git/index` only once the push is accepted
    /// ([`Repo::adopt`]).
    staged: std::cell::RefCell<Option<(Staged, stage::PlainEntries)>>,
    /// How long the last `commit_artifacts` took (for the report).
    times: std::cell::Cell<CommitTimes>,
}

/// How the artifact commit should be written.
pub struct CommitRequest<'a> {
    pub specs: &'a [String],
    pub include_ignored: bool,
    pub message: &'a str,
    pub author_name: &'a str,
    pub author_email: &'a str,
    pub trailer_value: &'a str,
    /// Commit even when FILES match HEAD: another repository gets a copy of
    /// FILES whatever this clone's HEAD already holds.
    pub keep_unchanged: bool,
}

#[cfg(test)]
impl<'a> CommitRequest<'a> {
    /// What the unit tests commit with: `specs`, fixed names, no trailer.
    pub(crate) fn for_test(specs: &'a [String]) -> Self {
        CommitRequest {
            specs,
            include_ignored: false,
            message: "m",
            author_name: "a",
            author_email: "a@b",
            trailer_value: "t",
            keep_unchanged: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ArtifactCommit {
    pub oid: Oid,
    pub parent: Option<Oid>,
    pub message: String,
    /// The paths it adds, changes or deletes. Shared, not copied: the run
    /// keeps this commit in several places (the attempt, each one sent,
    /// the report), and with 100,000 files each copy was 5 MB (a
    /// [`PathList`] of them, 3.7 MB).
    pub files: Arc<PathList>,
}

/// How long `commit_artifacts` took, in its two parts.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitTimes {
    pub stage_ms: u64,
    pub commit_ms: u64,
}

pub enum CommitOutcome {
    Created(ArtifactCommit),
    NothingToCommit,
    /// git would do what commit-back cannot (run a filter), or would refuse
    /// too (unmerged entries, files outside a sparse checkout): one sentence
    /// each, nothing written.
    Unstageable(Vec<String>),
}

pub enum RebaseOutcome {
    Rebased(Oid),
    /// Upstream already holds exactly these changes.
    AlreadyUpstream,
    Conflict(Vec<String>),
}

/// libgit2's pack window (git's core.packedGitWindowSize) and the most it
/// maps at once (core.packedGitLimit).
const MWINDOW_SIZE: usize = 8 * 1024 * 1024;
const MWINDOW_MAPPED_LIMIT: usize = 32 * 1024 * 1024;

/// Whether repository writes reach the disk. In a dry run objects go to an
/// in-memory object database and no ref, index or file is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Disk,
    InMemory,
}

impl Repo {
    /// Opens the repository containing `dir`. libgit2's ownership check is off:
    /// in Pipelines the clone belongs to another uid than the pipe's user.
    pub fn open(dir: &Path, mode: WriteMode) -> Result<Repo> {
        // SAFETY: a global libgit2 option, set before any repository is opened,
        // from the one thread that runs git operations.
        unsafe {
            git2::opts::set_verify_owner_validation(false)?;
            // Pack files are read through mmap windows of 1 GiB by default
            // (8 GiB mapped in all): indexing the staged pack of a 200 MB
            // file mapped all of it, and mapped pages count as the
            // process's memory. Small windows, few at once: a 2 GiB file
            // pushes in flat memory (BENCHMARKS.md, "Memory").
            git2::opts::set_mwindow_size(MWINDOW_SIZE)?;
            git2::opts::set_mwindow_mapped_limit(MWINDOW_MAPPED_LIMIT)?;
        }
        let inner = Repository::discover(dir)
            .with_context(|| format!("{} is not inside a git repository", dir.display()))?;
        let workdir = inner
            .workdir()
            .context("the repository is bare; commit-back needs a working tree")?
            .to_path_buf();
        if mode == WriteMode::InMemory {
            let odb = inner.odb()?;
            // Highest priority: every write lands here, and is dropped at exit.
            odb.add_new_mempack_backend(1000)?;
        }
        Ok(Repo {
            inner,
            signer: None,
            workdir,
            staged: Default::default(),
            times: Default::default(),
        })
    }

    /// From now on every commit and tag is signed by `signer`.
    pub fn sign_with(&mut self, signer: std::sync::Arc<dyn Sign>) {
        self.signer = Some(signer);
    }

    /// How long the last artifact commit took to stage and to write.
    pub fn commit_times(&self) -> CommitTimes {
        self.times.get()
    }

    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    pub fn head_commit(&self) -> Option<Oid> {
        self.inner.head().ok().and_then(|h| h.target())
    }

    pub fn is_shallow(&self) -> bool {
        self.inner.is_shallow()
    }

    /// The message of `rev` (e.g. BITBUCKET_COMMIT, possibly a short hash).
    pub fn message_of(&self, rev: &str) -> Option<String> {
        let obj = self.inner.revparse_single(rev).ok()?;
        let commit = obj.peel_to_commit().ok()?;
        Some(String::from_utf8_lossy(commit.message_bytes()).into_owned())
    }

    /// The checked-out branch and `origin`, for defaults outside Pipelines.
    pub fn checkout(&self) -> crate::checkout::Checkout {
        let head = self.inner.find_reference("HEAD").ok();
        let branch = head
            .as_ref()
            .and_then(|h| h.symbolic_target().ok().flatten().map(str::to_owned))
            .and_then(|t| t.strip_prefix("refs/heads/").map(str::to_owned));
        let origin_url = self
            .inner
            .find_remote("origin")
            .ok()
            .and_then(|r| r.url().ok().map(str::to_owned));
        crate::checkout::Checkout {
            detached: branch.is_none(),
            branch,
            origin_url,
        }
    }

    /// Literal (glob-free) FILES entries that name no path in the working
    /// tree and none in HEAD (a deletion still counts as a match).
    pub fn missing_paths<'s>(&self, specs: &'s [String]) -> Vec<&'s str> {
        let head_tree = self.inner.head().ok().and_then(|h| h.peel_to_tree().ok());
        specs
            .iter()
            .map(String::as_str)
            .filter(|s| *s != "." && !s.contains(['*', '?', '[']))
            .filter(|s| {
                self.workdir
                    .join(s.trim_end_matches('/'))
                    .symlink_metadata()
                    .is_err()
            })
            .filter(|s| {
                head_tree
                    .as_ref()
                    .is_none_or(|t| t.get_path(Path::new(s.trim_end_matches('/'))).is_err())
            })
            .collect()
    }

    /// The full sha of `rev` (e.g. a 12-character BITBUCKET_COMMIT).
    pub fn resolve(&self, rev: &str) -> Option<String> {
        self.inner
            .revparse_single(rev)
            .ok()
            .and_then(|o| o.peel_to_commit().ok())
            .map(|c| c.id().to_string())
    }

    pub fn has_trailer(message: &str) -> bool {
        message
            .lines()
            .any(|l| l.starts_with(&format!("{TRAILER}:")))
    }

    /// `git add -A -- <specs>` then `git commit`, in the object database
    /// only: the index, HEAD and branches stay as they are until the push is
    /// accepted ([`Repo::adopt`]). In memory mode not even objects reach the disk.
    pub fn commit_artifacts(
        &self,
        req: &CommitRequest<'_>,
        mode: WriteMode,
    ) -> Result<CommitOutcome> {
        let repo = &self.inner;
        let started = std::time::Instant::now();
        let refusals = stage::refusals_before_staging(repo);
        if !refusals.is_empty() {
            return Ok(CommitOutcome::Unstageable(refusals));
        }
        let mut index = repo.index().context("reading the index")?;
        if index.has_conflicts() {
            return Ok(CommitOutcome::Unstageable(vec![unmerged(&index)]));
        }
        let mut stager = stage::Stager::new(repo, &index, mode == WriteMode::Disk);
        let workdir = &self.workdir;
        // What `add_all` would stage (deletions included); every path is
        // only recorded here, and staged by `stage` once none was refused:
        // a refused run writes nothing.
        stage::for_each_changed_path(repo, &index, req.specs, req.include_ignored, |path| {
            let p = path.to_string_lossy();
            let never = NEVER_STAGED
                .iter()
                .any(|n| p == *n || p.starts_with(&format!("{n}/")));
            if !never {
                stager.pick(repo, workdir, path);
            }
        })
        .context("staging FILES")?;
        // The diff behind those paths is freed: its pages (15 MB for
        // 100,000 new files) go back before the index grows by as much.
        crate::memory::release_free_memory();
        let refusals = stager.take_refusals();
        if !refusals.is_empty() {
            return Ok(CommitOutcome::Unstageable(refusals));
        }
        let plain = stager.stage(repo, &mut index).context("staging FILES")?;
        let staged_at = started.elapsed();
        let parent = match repo.head() {
            Ok(h) => Some(
                h.peel_to_commit()
                    .context("HEAD does not point to a commit")?,
            ),
            Err(e) if e.code() == git2::ErrorCode::UnbornBranch => None,
            Err(e) => return Err(e).context("reading HEAD"),
        };
        let parent_tree = parent.as_ref().map(|p| p.tree()).transpose()?;
        let tree_oid = stage::write_tree(repo, &mut index, parent_tree.as_ref())
            .context("writing the tree")?;
        let tree = repo.find_tree(tree_oid)?;
        if parent_tree.as_ref().map(|t| t.id()) == Some(tree_oid) && !req.keep_unchanged {
            return Ok(CommitOutcome::NothingToCommit);
        }
        // Kept for `adopt`, on disk: not held through the push (nor beside
        // the list of files). Held when it cannot be written aside: the
        // push matters more.
        let staged = (mode == WriteMode::Disk).then(|| match ParkedIndex::park(repo, &mut index) {
            Ok(parked) => Staged::Parked(parked),
            Err(_) => Staged::Held(index),
        });
        // What the index held (13 MB of libgit2's entries for 100,000
        // files) is free once it is parked: its pages go back now.
        crate::memory::release_free_memory();
        let files = changed_files(repo, parent_tree.as_ref(), &tree)?;
        let message = format!(
            "{}\n\n{TRAILER}: {}\n",
            req.message.trim_end(),
            req.trailer_value
        );
        let sig = Signature::now(req.author_name, req.author_email)?;
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let oid = self
            .write_commit(&sig, &sig, &message, &tree, &parents)
            .context("writing the commit")?;
        self.times.set(CommitTimes {
            stage_ms: staged_at.as_millis() as u64,
            commit_ms: (started.elapsed() - staged_at).as_millis() as u64,
        });
        if let Some(staged) = staged {
            *self.staged.borrow_mut() = Some((staged, plain));
        }
        Ok(CommitOutcome::Created(ArtifactCommit {
            oid,
            parent: parent.map(|p| p.id()),
            message,
            files: files.into(),
        }))
    }

    /// After an accepted push to the checked-out branch: what `git commit`
    /// would have left (the staged index written, HEAD on `artifact`), then
    /// forward to `landed` when that is a rebased copy or upstream's tip:
    /// files changed upstream are updated in the working tree (safe
    /// checkout: local modifications are never overwritten), then HEAD follows.
    /// On any failure the clone is put back as the build left it.
    pub fn adopt(&self, artifact: Oid, landed: Oid) -> Result<()> {
        // What to put back if the clone cannot reach `landed`: then it is
        // left exactly as the build left it. libgit2 replaces the index by
        // rename, so a hard link keeps the old one, bytes and timestamps.
        let index_path = self.inner.path().join("index");
        let backup = self.inner.path().join("commit-back-index.orig");
        let _ = std::fs::remove_file(&backup);
        let kept = std::fs::hard_link(&index_path, &backup).is_ok();
        let head_before = self.head_commit();
        let result = self.adopt_unguarded(artifact, landed);
        if result.is_err() {
            if kept {
                let _ = std::fs::rename(&backup, &index_path);
            }
            match head_before {
                Some(head) => {
                    let _ = self.move_head(head);
                }
                None => self.unborn_again(),
            }
        }
        let _ = std::fs::remove_file(&backup);
        result
    }

    fn adopt_unguarded(&self, artifact: Oid, landed: Oid) -> Result<()> {
        // Written owned by no repository: libgit2's own racy smudge (by the
        // nanosecond, through a full diff) does not run then; the one here,
        // by the second as git does, is what protects racy entries. Then it
        // is the repository's index (a checkout of `landed` below updates
        // that one).
        match self.staged.borrow_mut().take() {
            Some((Staged::Parked(parked), plain)) => {
                // Usually no racy entry changed: the parked file is the
                // index as it is. Else read back (bound to its own file).
                if !self.racy_entries_unchanged(&parked, &plain)? {
                    let mut index = parked.open()?;
                    self.smudge_racily_clean(&mut index, &plain)
                        .context("writing the index")?;
                    index.write().context("writing the index")?;
                }
                parked.put_in_place(&self.inner)?;
            }
            Some((Staged::Held(mut index), plain)) => {
                // The very object the repository cached: `set_index` on
                // it leaves it without an owner.
                self.inner
                    .set_index(&mut index)
                    .context("writing the index")?;
                self.smudge_racily_clean(&mut index, &plain)
                    .context("writing the index")?;
                index.write().context("writing the index")?;
            }
            None => {}
        }
        self.move_head(artifact)?;
        if landed == artifact {
            return Ok(());
        }
        let target = self.inner.find_commit(landed)?;
        let mut checkout = git2::build::CheckoutBuilder::new();
        checkout.safe();
        self.inner
            .checkout_tree(target.as_object(), Some(&mut checkout))
            .context("updating the working tree")?;
        self.move_head(landed)
    }

    /// Racy git, at git's granularity. An entry whose mtime falls in the
    /// same second as the old index file was written may have changed after
    /// its stat was taken without its stat showing it (same size, same
    /// second); git re-reads such entries only while the index file's own
    /// mtime is in that second. libgit2 smudges racy entries on write, but
    /// compares nanoseconds, and git (built without USE_NSEC) compares
    /// seconds: an index rewritten a second later, after the push, would make
    /// git trust stale stat data. So every entry racy by the second whose
    /// file differs from it gets size 0 here, which makes git compare contents
    /// (what git's own ce_smudge_racily_clean_entry does).
    ///
    /// The entries staged from plain files (`plain`) are compared with
    /// their files here, byte for byte; only the others go through
    /// libgit2's diff, whose filter and attribute lookups per file were a
    /// third of a 10,000-file run when every new file was racy (as it is
    /// when the build writes it in the second of the checkout).
    fn smudge_racily_clean(
        &self,
        index: &mut git2::Index,
        plain: &stage::PlainEntries,
    ) -> Result<()> {
        let Some(written) = self.index_written() else {
            return Ok(());
        };
        let trust_executable_bit = self.trusts_executable_bit();
        let mut changed: Vec<Vec<u8>> = Vec::new();
        let mut racy: std::collections::HashSet<Vec<u8>> = Default::default();
        for (position, e) in index.iter().enumerate() {
            if !is_racy(&e, written) {
                continue;
            }
            if !plain.contains(position) {
                racy.insert(e.path);
            } else if !stage::unchanged_plain_file(&self.workdir, &e, trust_executable_bit) {
                changed.push(e.path);
            }
        }
        if !racy.is_empty() {
            let diff = self.diff_of_paths(index, racy.iter().map(Vec::as_slice))?;
            changed.extend(
                diff.deltas()
                    .filter_map(|d| d.old_file().path_bytes().map(<[u8]>::to_vec))
                    .filter(|p| racy.contains(p)),
            );
        }
        for path in changed {
            use std::os::unix::ffi::OsStrExt as _;
            let path = Path::new(std::ffi::OsStr::from_bytes(&path));
            if let Some(mut entry) = index.get_path(path, 0) {
                entry.file_size = 0;
                index.add(&entry)?;
            }
        }
        Ok(())
    }

    /// What [`Repo::smudge_racily_clean`] would find nothing to do in,
    /// read off the parked file in pieces: every racy entry's file is
    /// unchanged (a plain one compared here, the others, the checkout's
    /// own files written in the second of the clone, through libgit2's diff
    /// in an index of their own). False
    /// when something changed or it cannot tell (an index version it does
    /// not read, too many entries for a small index): the caller then reads
    /// the index whole and smudges.
    fn racy_entries_unchanged(
        &self,
        parked: &ParkedIndex,
        plain: &stage::PlainEntries,
    ) -> Result<bool> {
        /// Beyond this many, the index is read whole anyway.
        const OTHERS_AT_MOST: usize = 10_000;
        let Some(written) = self.index_written() else {
            return Ok(true);
        };
        let trust_executable_bit = self.trusts_executable_bit();
        let mut unchanged = true;
        let mut others = Vec::new();
        let read = parked.for_each_entry(|position, e| {
            if !is_racy(e, written) {
                return true;
            }
            if plain.contains(position) {
                unchanged = stage::unchanged_plain_file(&self.workdir, e, trust_executable_bit);
            } else if others.len() < OTHERS_AT_MOST {
                others.push(git2::IndexEntry {
                    path: e.path.clone(),
                    ..*e
                });
            } else {
                unchanged = false;
            }
            unchanged
        })?;
        if !read || !unchanged {
            return Ok(false);
        }
        if others.is_empty() {
            return Ok(true);
        }
        // In memory, owned by no repository. libgit2 compares each with its
        // file as its diff over the whole parked index would (stat first,
        // ctime included, then content where the stat differs). Any error
        // here only means the index is read whole instead.
        let diff = (|| -> Result<bool> {
            let mut own = git2::Index::new()?;
            for e in &others {
                own.add(e)?;
            }
            let paths = others.iter().map(|e| e.path.as_slice());
            Ok(self.diff_of_paths(&own, paths)?.deltas().next().is_none())
        })();
        Ok(diff.unwrap_or(false))
    }

    /// libgit2's diff of `index` with the working tree at `paths` only: a
    /// literal path list, which libgit2's iterators look up by binary search.
    fn diff_of_paths<'p>(
        &self,
        index: &git2::Index,
        paths: impl Iterator<Item = &'p [u8]>,
    ) -> Result<git2::Diff<'_>> {
        let mut opts = git2::DiffOptions::new();
        opts.include_typechange(true)
            .ignore_submodules(true)
            .disable_pathspec_match(true);
        for path in paths {
            opts.pathspec(std::ffi::CString::new(path)?);
        }
        Ok(self
            .inner
            .diff_index_to_workdir(Some(index), Some(&mut opts))?)
    }

    /// When `.git/index` was last written, to the second: entries whose
    /// file changed in that second or later are racy. None without one.
    fn index_written(&self) -> Option<i64> {
        std::fs::metadata(self.inner.path().join("index"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
    }

    fn trusts_executable_bit(&self) -> bool {
        self.inner
            .config()
            .and_then(|c| c.get_bool("core.fileMode"))
            .unwrap_or(true)
    }

    /// The branch HEAD names did not exist before: it does not again.
    fn unborn_again(&self) {
        if let Ok(head) = self.inner.find_reference("HEAD")
            && let Ok(Some(name)) = head.symbolic_target()
            && let Ok(mut branch) = self.inner.find_reference(name)
        {
            let _ = branch.delete();
        }
    }

    /// Moves the branch HEAD is on (or a detached HEAD) to `commit`.
    fn move_head(&self, commit: Oid) -> Result<()> {
        let repo = &self.inner;
        let head = repo.find_reference("HEAD")?;
        match head.symbolic_target()? {
            Some(branch_ref) => {
                repo.reference(branch_ref, commit, true, "commit-back: artifact commit")?;
            }
            None => repo.set_head_detached(commit)?,
        }
        Ok(())
    }

    /// The annotated tag object `name` for `target`, in the object database
    /// only: no ref is written, none is ever moved.
    pub fn create_tag(&self, name: &str, target: Oid, req: &CommitRequest<'_>) -> Result<Oid> {
        let repo = &self.inner;
        let obj = repo.find_object(target, None)?;
        let sig = Signature::now(req.author_name, req.author_email)?;
        let message = format!("{}\n", req.message.lines().next().unwrap_or("commit-back"));
        let Some(signer) = &self.signer else {
            return Ok(repo.tag_annotation_create(name, &obj, &sig, &message)?);
        };
        // `git tag -s`: the tag object as libgit2 and git write it, with the
        // signature of everything before it appended to the message.
        let kind = obj.kind().map(|k| k.str()).unwrap_or("commit");
        let mut buffer = format!(
            "object {target}\ntype {kind}\ntag {name}\ntagger {}\n\n{message}",
            identity_line(&sig)
        );
        let signature = signer.sign(buffer.as_bytes()).context("signing the tag")?;
        buffer.push_str(&signature);
        Ok(repo
            .odb()?
            .write(git2::ObjectType::Tag, buffer.as_bytes())?)
    }

    /// The one writer of commits: `git commit`, or `git commit -S` when the
    /// run signs (the signature of the commit buffer in its `gpgsig` header,
    /// laid out byte for byte as git lays it out).
    fn write_commit(
        &self,
        author: &Signature<'_>,
        committer: &Signature<'_>,
        message: &str,
        tree: &git2::Tree<'_>,
        parents: &[&git2::Commit<'_>],
    ) -> Result<Oid> {
        let repo = &self.inner;
        let Some(signer) = &self.signer else {
            return Ok(repo.commit(None, author, committer, message, tree, parents)?);
        };
        let buffer = repo.commit_create_buffer(author, committer, message, tree, parents)?;
        let signature = signer.sign(&buffer).context("signing the commit")?;
        let content = std::str::from_utf8(&buffer).context("the commit is not UTF-8")?;
        // libgit2 continues each line of the header; git ends the header
        // with the signature's last line, without a continuation.
        Ok(repo.commit_signed(content, signature.trim_end_matches('\n'), Some("gpgsig"))?)
    }

    /// After the tag landed: `refs/tags/<name>` here too, unless a tag of
    /// that name exists (it is left alone; the answer says where it points).
    pub fn record_tag(&self, name: &str, tag: Oid) -> Result<Option<Oid>> {
        let refname = format!("refs/tags/{name}");
        if let Ok(existing) = self.inner.find_reference(&refname) {
            return Ok(existing.target().filter(|t| *t != tag));
        }
        self.inner
            .reference(&refname, tag, false, "commit-back: tag")?;
        Ok(None)
    }

    /// The commit `oid` names, peeling tags; None when it is not here.
    pub fn peel_to_commit(&self, oid: Oid) -> Option<Oid> {
        let obj = self.inner.find_object(oid, None).ok()?;
        obj.peel_to_commit().ok().map(|c| c.id())
    }

    /// The artifact commit rebuilt for another repository: `base`'s tree
    /// (or nothing, for a new branch) with every path FILES selects set as
    /// in `artifact` (files the build deleted are deleted), same message,
    /// author and committer. Conflicts cannot happen: FILES' paths are copied.
    pub fn overlay(
        &self,
        artifact: Oid,
        base: Option<Oid>,
        specs: &[String],
    ) -> Result<RebaseOutcome> {
        let repo = &self.inner;
        let ours = repo.find_commit(artifact)?;
        let ours_tree = ours.tree()?;
        let before = ours.parents().next().map(|p| p.tree()).transpose()?;
        let base_commit = base
            .map(|b| repo.find_commit(b))
            .transpose()
            .context("the fetched branch tip is missing")?;
        // An index, not a tree update: a FILES path that is a file here and
        // a directory there (or the reverse) replaces what was there, as
        // `git add` would; a tree update refuses such a change.
        let mut index = git2::Index::new()?;
        if let Some(c) = &base_commit {
            index.read_tree(&c.tree()?)?;
        }
        let spec = git2::Pathspec::new(specs.iter())?;
        let flags = git2::PathspecFlags::DEFAULT;
        let mut present = std::collections::HashSet::new();
        for path in spec.match_tree(&ours_tree, flags)?.entries() {
            let entry = ours_tree.get_path(Path::new(&*String::from_utf8_lossy(path)))?;
            index.add(&git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: entry.filemode() as u32,
                uid: 0,
                gid: 0,
                file_size: 0,
                id: entry.id(),
                flags: 0,
                flags_extended: 0,
                path: path.to_vec(),
            })?;
            present.insert(path.to_vec());
        }
        if let Some(before) = &before {
            for path in spec.match_tree(before, flags)?.entries() {
                if !present.contains(path) {
                    // Deleted by the build: deleted there too, if it is there.
                    let _ = index.remove_path(Path::new(&*String::from_utf8_lossy(path)));
                }
            }
        }
        if present.is_empty() && base_commit.is_none() {
            // Nothing to copy into a branch that does not exist: no branch.
            return Ok(RebaseOutcome::AlreadyUpstream);
        }
        let tree_oid = index.write_tree_to(repo)?;
        let base_tree = base_commit.as_ref().map(|c| c.tree_id());
        if base_tree == Some(tree_oid) {
            return Ok(RebaseOutcome::AlreadyUpstream);
        }
        let tree = repo.find_tree(tree_oid)?;
        let message = String::from_utf8_lossy(ours.message_raw_bytes()).into_owned();
        let parents: Vec<&git2::Commit<'_>> = base_commit.iter().collect();
        let oid =
            self.write_commit(&ours.author(), &ours.committer(), &message, &tree, &parents)?;
        Ok(RebaseOutcome::Rebased(oid))
    }

    /// The newest commit in `tip`'s first `limit` commits whose message
    /// carries exactly this trailer line (the run's own id).
    pub fn find_trailer(&self, tip: Oid, line: &str, limit: usize) -> Result<Option<Oid>> {
        let mut walk = self.inner.revwalk()?;
        walk.push(tip)?;
        for oid in walk.take(limit) {
            let oid = oid?;
            let commit = self.inner.find_commit(oid)?;
            if String::from_utf8_lossy(commit.message_raw_bytes())
                .lines()
                .any(|l| l.trim_end() == line)
            {
                return Ok(Some(oid));
            }
        }
        Ok(None)
    }

    /// Replays the artifact commit on `base` (the branch's new tip).
    pub fn rebase(&self, artifact: Oid, base: Oid) -> Result<RebaseOutcome> {
        let repo = &self.inner;
        let ours = repo.find_commit(artifact)?;
        let base_commit = repo
            .find_commit(base)
            .context("the fetched branch tip is missing")?;
        let mut index = repo
            .cherrypick_commit(&ours, &base_commit, 0, None)
            .context("replaying the artifact commit")?;
        if index.has_conflicts() {
            return Ok(RebaseOutcome::Conflict(conflicted_files(&index)?));
        }
        let tree_oid = index.write_tree_to(repo)?;
        if tree_oid == base_commit.tree_id() {
            return Ok(RebaseOutcome::AlreadyUpstream);
        }
        let tree = repo.find_tree(tree_oid)?;
        let committer = Signature::now(
            &String::from_utf8_lossy(ours.committer().name_bytes()),
            &String::from_utf8_lossy(ours.committer().email_bytes()),
        )?;
        let message = String::from_utf8_lossy(ours.message_raw_bytes()).into_owned();
        let oid =
            self.write_commit(&ours.author(), &committer, &message, &tree, &[&base_commit])?;
        Ok(RebaseOutcome::Rebased(oid))
    }

    /// Whether `commit`, as written, carries a signature (`gpgsig`).
    pub fn is_signed(&self, commit: Oid) -> bool {
        self.inner.extract_signature(&commit, None).is_ok()
    }

    pub fn first_parent(&self, commit: Oid) -> Option<Oid> {
        self.inner.find_commit(commit).ok()?.parent_id(0).ok()
    }

    /// Whether `tip`'s history holds `commit` (or is it).
    pub fn contains(&self, tip: Oid, commit: Oid) -> Result<bool> {
        if tip == commit {
            return Ok(true);
        }
        self.inner
            .graph_descendant_of(tip, commit)
            .context("walking the fetched history")
    }

    pub fn files_between(&self, parent: Option<Oid>, commit: Oid) -> Result<PathList> {
        let repo = &self.inner;
        let tree = repo.find_commit(commit)?.tree()?;
        let parent_tree = parent
            .map(|p| repo.find_commit(p).and_then(|c| c.tree()))
            .transpose()?;
        changed_files(repo, parent_tree.as_ref(), &tree)
    }

    pub(crate) fn raw(&self) -> &Repository {
        &self.inner
    }
}

/// `Name <email> 1700000000 +0100`, as git writes an identity.
/// An entry git would not trust by its stat alone, the index having been
/// written in `written`'s second (a gitlink never is).
fn is_racy(e: &git2::IndexEntry, written: i64) -> bool {
    e.mode != 0o160000 && i64::from(e.mtime.seconds()) >= written
}

fn identity_line(sig: &Signature<'_>) -> String {
    let when = sig.when();
    let offset = when.offset_minutes().unsigned_abs();
    format!(
        "{} <{}> {} {}{:02}{:02}",
        String::from_utf8_lossy(sig.name_bytes()),
        String::from_utf8_lossy(sig.email_bytes()),
        when.seconds(),
        if when.offset_minutes() < 0 { '-' } else { '+' },
        offset / 60,
        offset % 60
    )
}

/// The refusal for an index with unmerged entries (`git commit` refuses it;
/// `git add` would stage the conflict markers).
fn unmerged(index: &git2::Index) -> String {
    let files = conflicted_files(index).unwrap_or_default();
    let shown: Vec<&str> = files.iter().take(10).map(String::as_str).collect();
    format!(
        "the index has unmerged entries ({}{}): a merge or rebase was left unfinished, and \
         `git commit` would refuse too; resolve it (or `git merge --abort`) before commit-back",
        shown.join(", "),
        if files.len() > 10 { ", …" } else { "" }
    )
}

/// The paths in conflict in `index`, sorted, each once.
fn conflicted_files(index: &git2::Index) -> Result<Vec<String>> {
    let mut files: Vec<String> = index
        .conflicts()?
        .filter_map(|c| c.ok())
        .filter_map(|c| c.our.or(c.their).or(c.ancestor))
        .map(|e| String::from_utf8_lossy(&e.path).into_owned())
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// The paths that differ between `old` and `new` (added, changed, deleted;
/// a mode or type change included), in the order of libgit2's tree-to-tree
/// diff, which listed them before: a walk of both trees that skips every
/// subtree they share, holding nothing per path but the path itself (the
/// diff held 160 bytes a path: 16 MB for 100,000 new files).
fn changed_files(
    repo: &Repository,
    old: Option<&git2::Tree<'_>>,
    new: &git2::Tree<'_>,
) -> Result<PathList> {
    let mut out = PathList::default();
    for_each_changed_entry(repo, old, Some(new), &mut |path, _, _| {
        out.push(&String::from_utf8_lossy(path));
        Ok(())
    })?;
    Ok(out)
}

/// What one side of [`for_each_changed_entry`] holds at a path.
type Side<'e, 'r> = Option<&'e git2::TreeEntry<'r>>;

/// Calls `each` with the path and both sides of every entry that is not a
/// tree and differs between `old` and `new` (id or mode; absent on one
/// side), in the order of libgit2's tree-to-tree diff, where a blob and a
/// tree of the same name are two paths (a link or gitlink that became a
/// file is one call with both sides, where the diff, without type
/// changes, lists a deletion and an addition): a walk of both trees that skips
/// every subtree they share and holds nothing per path (a diff holds about
/// 150 bytes a path: 15 MB for 100,000 new files).
fn for_each_changed_entry(
    repo: &Repository,
    old: Option<&git2::Tree<'_>>,
    new: Option<&git2::Tree<'_>>,
    each: &mut impl FnMut(&[u8], Side<'_, '_>, Side<'_, '_>) -> Result<()>,
) -> Result<()> {
    walk_changed(repo, old, new, &mut Vec::new(), each)
}

/// One directory of [`for_each_changed_entry`]: entries in git's tree
/// order, where a directory sorts as its name and a slash (both trees are
/// stored so).
fn walk_changed(
    repo: &Repository,
    old: Option<&git2::Tree<'_>>,
    new: Option<&git2::Tree<'_>>,
    prefix: &mut Vec<u8>,
    each: &mut impl FnMut(&[u8], Side<'_, '_>, Side<'_, '_>) -> Result<()>,
) -> Result<()> {
    use std::cmp::Ordering;
    let is_tree = |e: &git2::TreeEntry<'_>| e.kind() == Some(git2::ObjectType::Tree);
    let key = |e: &git2::TreeEntry<'_>| {
        let mut k = e.name_bytes().to_vec();
        if is_tree(e) {
            k.push(b'/');
        }
        k
    };
    let mut olds = old.into_iter().flat_map(|t| t.iter()).peekable();
    let mut news = new.into_iter().flat_map(|t| t.iter()).peekable();
    loop {
        let order = match (olds.peek(), news.peek()) {
            (None, None) => return Ok(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(o), Some(n)) => key(o).cmp(&key(n)),
        };
        let (o, n) = match order {
            Ordering::Less => (olds.next(), None),
            Ordering::Greater => (None, news.next()),
            Ordering::Equal => (olds.next(), news.next()),
        };
        if let (Some(o), Some(n)) = (&o, &n)
            && o.id() == n.id()
            && o.filemode() == n.filemode()
        {
            continue;
        }
        let entry = n.as_ref().or(o.as_ref()).expect("one side");
        let at = prefix.len();
        prefix.extend_from_slice(entry.name_bytes());
        if is_tree(entry) {
            prefix.push(b'/');
            let subtree = |e: &Option<git2::TreeEntry<'_>>| {
                e.as_ref().map(|e| repo.find_tree(e.id())).transpose()
            };
            let (o, n) = (subtree(&o)?, subtree(&n)?);
            walk_changed(repo, o.as_ref(), n.as_ref(), prefix, each)?;
        } else {
            each(prefix, o.as_ref(), n.as_ref())?;
        }
        prefix.truncate(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FILES with 100,000 entries (more than one environment string can carry
    /// on Linux, so exercised here rather than through the binary).
    #[test]
    fn staging_with_a_hundred_thousand_pathspecs() {
        let dir = std::env::temp_dir().join(format!("cb-100k-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let raw = Repository::init(&dir).unwrap();
        std::fs::write(dir.join("seed"), "seed\n").unwrap();
        let mut index = raw.index().unwrap();
        index.add_path(Path::new("seed")).unwrap();
        index.write().unwrap();
        let tree = raw.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = Signature::now("t", "t@example.com").unwrap();
        raw.commit(Some("HEAD"), &sig, &sig, "seed", &tree, &[])
            .unwrap();
        std::fs::create_dir_all(dir.join("gen")).unwrap();
        std::fs::write(dir.join("gen/wanted.json"), "{}\n").unwrap();
        std::fs::write(dir.join("gen/other.json"), "{}\n").unwrap();
        let mut specs: Vec<String> = (0..99_999)
            .map(|i| format!("gen/missing-{i}.json"))
            .collect();
        specs.push("gen/wanted.json".into());
        let files = crate::config::parse_files(Some(&specs.join("\n")), Some(&dir)).unwrap();
        assert_eq!(files.len(), 100_000);
        let repo = Repo::open(&dir, WriteMode::InMemory).unwrap();
        let req = CommitRequest::for_test(&files);
        match repo.commit_artifacts(&req, WriteMode::InMemory).unwrap() {
            CommitOutcome::Created(c) => {
                assert_eq!(c.files.iter().collect::<Vec<_>>(), ["gen/wanted.json"])
            }
            _ => panic!("the wanted file was not staged"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The files of a commit are the paths `git diff --name-only` lists, in
    /// its order: additions, changes, deletions, mode and type changes,
    /// gitlinks, names around the directory sort rule.
    #[test]
    fn changed_files_are_the_paths_git_diff_lists() {
        let dir = std::env::temp_dir().join(format!("cb-changed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let git = |args: &[&str]| {
            let identity = ["-c", "user.name=t", "-c", "user.email=t@e"];
            let args = [&identity[..], &["-c", "core.quotePath=false"], args].concat();
            stage::tests::git(&dir, &args)
        };
        let write = |path: &str, text: &str| {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        git(&["init", "-q"]);
        for (path, text) in [
            ("a.txt", "a\n"),
            ("a/b", "b\n"),
            ("keep/same", "same\n"),
            ("gone/deep/x", "x\n"),
            ("becomes_dir", "file\n"),
            ("becomes_file/y", "y\n"),
            ("mode.sh", "#!/bin/sh\n"),
            ("ünï/cödé", "u\n"),
            ("z", "z\n"),
        ] {
            write(path, text);
        }
        // A link that becomes a file holding its target: the same blob.
        std::os::unix::fs::symlink("a.txt", dir.join("same_blob")).unwrap();
        git(&["add", "-A"]);
        let sub = "1111111111111111111111111111111111111111";
        git(&[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{sub},sub"),
        ]);
        git(&["commit", "-qm", "one"]);
        write("a/b", "b changed\n");
        write("a/new", "new\n");
        write("a-b", "sorts before a/\n");
        std::fs::remove_dir_all(dir.join("gone")).unwrap();
        std::fs::remove_file(dir.join("becomes_dir")).unwrap();
        write("becomes_dir/inside", "i\n");
        std::fs::remove_dir_all(dir.join("becomes_file")).unwrap();
        write("becomes_file", "f\n");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.join("mode.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        git(&[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{},sub", "2".repeat(40)),
        ]);
        write("ünï/nëw", "n\n");
        std::os::unix::fs::symlink("a.txt", dir.join("link")).unwrap();
        std::fs::remove_file(dir.join("same_blob")).unwrap();
        write("same_blob", "a.txt");
        git(&["add", "-A"]);
        git(&["commit", "-qm", "two"]);
        let expected = git(&["diff", "--name-only", "--no-renames", "HEAD^", "HEAD"]);
        let repo = Repository::open(&dir).unwrap();
        let tree = |rev: &str| repo.revparse_single(rev).unwrap().peel_to_tree().unwrap();
        let ours = changed_files(&repo, Some(&tree("HEAD^")), &tree("HEAD")).unwrap();
        let ours = ours.iter().collect::<Vec<_>>().join("\n");
        assert_eq!(ours, expected);
        assert_eq!(expected.lines().count(), 13, "{expected}");
        // The same walk finds the new regular files' blobs (LFS checks,
        // sizes in the report): what git's raw diff lists with a regular
        // file's new mode and a new blob, or a new type (what libgit2's
        // diff without type changes listed as added).
        let head = repo.head().unwrap().target().unwrap();
        let blobs: Vec<String> = lfs::committed(&repo, head, 0)
            .unwrap()
            .large
            .into_iter()
            .map(|(path, size)| format!("{path} {size}"))
            .collect();
        let raw = git(&["diff-tree", "-r", "--raw", "--no-renames", "HEAD^", "HEAD"]);
        let by_git: Vec<String> = raw
            .lines()
            .filter_map(|line| {
                let (fields, path) = line.split_once('\t')?;
                let f: Vec<&str> = fields.split(' ').collect();
                let regular = |mode: &str| mode == "100644" || mode == "100755";
                let new_type = !regular(f[0].trim_start_matches(':'));
                (regular(f[1]) && (new_type || f[2] != f[3]))
                    .then(|| format!("{path} {}", git(&["cat-file", "-s", f[3]])))
            })
            .collect();
        assert_eq!(blobs, by_git);
        assert_eq!(by_git.len(), 7, "{raw}");
        assert!(raw.contains(" T\tsame_blob"), "{raw}");
        // From nothing: every path of the tree.
        let all = changed_files(&repo, None, &tree("HEAD")).unwrap();
        let listed = git(&["ls-tree", "-r", "--name-only", "HEAD"]);
        let all = all.iter().collect::<Vec<_>>().join("\n");
        assert_eq!(all, listed);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The staged index waits for the push on disk, not in memory: the
    /// build's `.git/index` is left as it was (inode, bytes, timestamp)
    /// until the push is accepted, the file aside goes with the run, and
    /// once adopted the index is the one `git add` writes.
    #[test]
    fn the_staged_index_waits_aside_and_the_builds_index_is_untouched() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = std::env::temp_dir().join(format!("cb-parked-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let git = |args: &[&str]| {
            let identity = ["-c", "user.name=t", "-c", "user.email=t@e"];
            stage::tests::git(&dir, &[&identity[..], args].concat())
        };
        std::fs::create_dir_all(&dir).unwrap();
        git(&["init", "-q"]);
        std::fs::write(dir.join("seed"), "seed\n").unwrap();
        git(&["add", "seed"]);
        git(&["commit", "-qm", "seed"]);
        std::fs::create_dir_all(dir.join("gen")).unwrap();
        for i in 0..50 {
            std::fs::write(dir.join(format!("gen/{i}.json")), format!("{i}\n")).unwrap();
        }
        let index_path = dir.join(".git/index");
        let before = std::fs::metadata(&index_path).unwrap();
        let bytes_before = std::fs::read(&index_path).unwrap();
        let parked_files = || {
            std::fs::read_dir(dir.join(".git"))
                .unwrap()
                .filter(|e| {
                    let name = e.as_ref().unwrap().file_name();
                    name.to_string_lossy().starts_with("commit-back-index")
                })
                .count()
        };
        let specs = [".".to_owned()];
        let req = CommitRequest::for_test(&specs);
        // Not adopted: the run ends (a refused push).
        {
            let repo = Repo::open(&dir, WriteMode::Disk).unwrap();
            let CommitOutcome::Created(_) = repo.commit_artifacts(&req, WriteMode::Disk).unwrap()
            else {
                panic!("nothing staged")
            };
            assert!(matches!(
                &*repo.staged.borrow(),
                Some((Staged::Parked(_), _))
            ));
            assert_eq!(parked_files(), 1);
            let after = std::fs::metadata(&index_path).unwrap();
            assert_eq!(after.ino(), before.ino());
            assert_eq!(after.mtime_nsec(), before.mtime_nsec());
            assert_eq!(std::fs::read(&index_path).unwrap(), bytes_before);
            // What the repository reads as its index now is the build's.
            assert_eq!(repo.raw().index().unwrap().len(), 1);
        }
        assert_eq!(parked_files(), 0);
        assert_eq!(std::fs::read(&index_path).unwrap(), bytes_before);
        // Adopted: the index is git's.
        let repo = Repo::open(&dir, WriteMode::Disk).unwrap();
        let CommitOutcome::Created(c) = repo.commit_artifacts(&req, WriteMode::Disk).unwrap()
        else {
            panic!("nothing staged")
        };
        repo.adopt(c.oid, c.oid).unwrap();
        assert_eq!(parked_files(), 0);
        assert_eq!(git(&["status", "--porcelain"]), "");
        assert_eq!(git(&["write-tree"]), git(&["rev-parse", "HEAD^{tree}"]));
        assert_eq!(repo.raw().index().unwrap().len(), 51);
        drop(repo);

        // Another git process holds index.lock while staging ends: the
        // index cannot be parked, stays in memory, and nothing is left
        // beside `.git/index`, which is untouched; once the lock is gone
        // the accepted push writes it.
        std::fs::write(dir.join("gen/more.json"), "more\n").unwrap();
        let bytes_before = std::fs::read(&index_path).unwrap();
        let lock = dir.join(".git/index.lock");
        std::fs::write(&lock, "").unwrap();
        let repo = Repo::open(&dir, WriteMode::Disk).unwrap();
        let CommitOutcome::Created(c) = repo.commit_artifacts(&req, WriteMode::Disk).unwrap()
        else {
            panic!("nothing staged")
        };
        assert!(matches!(&*repo.staged.borrow(), Some((Staged::Held(_), _))));
        assert_eq!(parked_files(), 0);
        assert_eq!(std::fs::read(&index_path).unwrap(), bytes_before);
        std::fs::remove_file(&lock).unwrap();
        repo.adopt(c.oid, c.oid).unwrap();
        assert_eq!(git(&["status", "--porcelain"]), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
