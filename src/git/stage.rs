//! Staging FILES fast: libgit2's `add_all` decides which paths changed (and
//! stages whatever needs its care), while plain regular files go into one
//! pack written here, instead of one compressed loose object each.
//!
//! Why: `git add` writes every new file as a loose object: a file and often a
//! directory in `.git/objects` (inode creation dominates 1,000 small files)
//! and a zlib pass over the content (dominates one 200 MB file), which the
//! push then inflates and compresses again. The pack written here holds the
//! content in stored (uncompressed) deflate blocks: two files on disk in all,
//! no compression pass; the push compresses once, as it must. Each file is
//! read twice (page cache): once to name its blob, so that repeated contents
//! and contents the repository already has are left out of the pack, once
//! into the pack.
//!
//! A file takes this path only when libgit2 would store its bytes unchanged:
//! a regular file, no `core.autocrlf`, no attributes file anywhere that could
//! apply a filter, and an index without conflicts. Everything else (symlinks,
//! submodules, filtered files, deletions) stays with `add_all`.

use anyhow::{Context as _, Result, bail};
use git2::{Index, IndexEntry, IndexTime, Oid, Repository};
use sha1::{Digest as _, Sha1};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read as _, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// Files picked by [`DirectPack::claim`] during `add_all`, packed afterwards.
pub(super) struct DirectPack {
    /// `None`: this repository's configuration rules the fast path out.
    attributes: Option<AttributeFiles>,
    claimed: Vec<String>,
}

impl DirectPack {
    pub(super) fn new(repo: &Repository, index: &Index) -> DirectPack {
        let possible = !index.has_conflicts() && !autocrlf(repo) && !global_attributes(repo);
        DirectPack {
            attributes: possible.then(|| AttributeFiles::new(index)),
            claimed: Vec::new(),
        }
    }

    /// A fast path that claims nothing (a dry run must not write a pack).
    pub(super) fn disabled() -> DirectPack {
        DirectPack {
            attributes: None,
            claimed: Vec::new(),
        }
    }

    /// Called by `add_all` for each changed path in FILES: true when this
    /// module will stage it (`add_all` must then skip it).
    pub(super) fn claim(&mut self, workdir: &Path, path: &str) -> bool {
        let Some(attributes) = self.attributes.as_mut() else {
            return false;
        };
        let plain_file = workdir
            .join(path)
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_file());
        if !plain_file || attributes.may_apply(workdir, path) {
            return false;
        }
        self.claimed.push(path.to_owned());
        true
    }

    /// Writes the claimed files as one pack and stages them, as
    /// `git_index_add_bypath` would (mode from the file unless
    /// `core.fileMode` is false).
    pub(super) fn stage(self, repo: &Repository, index: &mut Index) -> Result<()> {
        if self.claimed.is_empty() {
            return Ok(());
        }
        let workdir = repo.workdir().context("no working tree")?;
        let odb = repo.odb()?;
        let blobs = hash_files(workdir, &self.claimed)?;
        // One copy of each new content: a pack must not hold an object twice
        // (libgit2's indexer refuses it) nor what the repository already has.
        let mut seen = HashSet::new();
        let new: Vec<(&str, &PackedBlob)> = self
            .claimed
            .iter()
            .zip(&blobs)
            .filter(|(_, b)| seen.insert(b.id) && !odb.exists(b.id))
            .map(|(path, b)| (path.as_str(), b))
            .collect();
        if !new.is_empty() {
            let mut writer = odb
                .packwriter()
                .context("opening a pack for the new files")?;
            write_pack(Libgit2Writer(&mut writer), workdir, &new)?;
            writer.commit().context("writing the pack of new files")?;
        }

        let trust_mode = repo
            .config()
            .and_then(|c| c.get_bool("core.fileMode"))
            .unwrap_or(true);
        for (path, blob) in self.claimed.iter().zip(blobs) {
            if !odb.exists(blob.id) {
                bail!("{path}: the pack written for it does not hold its content");
            }
            let mode = if trust_mode {
                canonical_mode(blob.stat.mode)
            } else {
                index
                    .get_path(Path::new(path), 0)
                    .map_or(0o100644, |e| e.mode)
            };
            index
                .add(&blob.stat.entry(path, blob.id, mode))
                .with_context(|| format!("staging {path}"))?;
        }
        Ok(())
    }
}

/// Where `.gitattributes` files could apply a filter: memoised per directory.
struct AttributeFiles {
    /// `.gitattributes` paths in the index (libgit2 reads those too).
    in_index: HashSet<Vec<u8>>,
    by_dir: HashMap<String, bool>,
}

impl AttributeFiles {
    fn new(index: &Index) -> AttributeFiles {
        let in_index = index
            .iter()
            .map(|e| e.path)
            .filter(|p| p.ends_with(b".gitattributes"))
            .collect();
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
/// `$GIT_DIR/info/attributes`, `core.attributesFile` (or its XDG default) and
/// the system file. Any of them rules the fast path out for the whole run.
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
        Some(repo.path().join("info/attributes")),
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

struct PackedBlob {
    id: Oid,
    stat: Stat,
}

/// The largest stored deflate block.
const STORED_BLOCK: usize = 65_535;
const OBJ_BLOB: u8 = 3;

/// Buffer sizes for reading files and writing the pack: at glibc's mmap
/// threshold, so they are returned to the system when staging ends.
const IO_BUFFER: usize = 128 * 1024;

/// First read: each file's blob id and the stat the index records.
fn hash_files(workdir: &Path, files: &[String]) -> Result<Vec<PackedBlob>> {
    let mut buf = vec![0u8; IO_BUFFER];
    files
        .iter()
        .map(|path| {
            let mut file =
                File::open(workdir.join(path)).with_context(|| format!("reading {path}"))?;
            let meta = file.metadata().with_context(|| format!("reading {path}"))?;
            let mut id = Sha1::new();
            id.update(format!("blob {}\0", meta.len()));
            let mut read = 0u64;
            for_each_chunk(&mut file, &mut buf, |chunk| {
                id.update(chunk);
                read += chunk.len() as u64;
            })
            .with_context(|| format!("reading {path}"))?;
            if read != meta.len() {
                bail!("{path} changed while it was being staged");
            }
            Ok(PackedBlob {
                id: Oid::from_bytes(&id.finalize()).expect("SHA-1 is 20 bytes"),
                stat: Stat::of(&meta),
            })
        })
        .collect()
}

/// Second read: a version 2 pack of `blobs` (files relative to `workdir`,
/// with the size [`hash_files`] saw), content in stored deflate blocks,
/// streamed: memory does not grow with file size. A file that changed in
/// between shows as a size mismatch here or, same size, as a blob id the
/// pack does not hold (checked in [`DirectPack::stage`]).
fn write_pack(out: impl Write, workdir: &Path, blobs: &[(&str, &PackedBlob)]) -> Result<()> {
    let mut pack = HashingWriter {
        inner: std::io::BufWriter::with_capacity(IO_BUFFER, out),
        sha1: Sha1::new(),
    };
    let count = u32::try_from(blobs.len()).context("too many files for one pack")?;
    pack.write_all(b"PACK")?;
    pack.write_all(&2u32.to_be_bytes())?;
    pack.write_all(&count.to_be_bytes())?;
    let mut buf = vec![0u8; IO_BUFFER];
    for (path, blob) in blobs {
        let mut file = File::open(workdir.join(path)).with_context(|| format!("reading {path}"))?;
        let size = blob.stat.size;
        pack.write_all(&object_header(OBJ_BLOB, size))?;
        pack.write_all(&[0x78, 0x01])?; // zlib: deflate, 32 KiB window, no dictionary
        let mut adler = 1; // adler32 of nothing
        let mut written = 0u64;
        let mut failed = None;
        for_each_chunk(&mut file, &mut buf, |chunk| {
            if failed.is_some() {
                return;
            }
            adler = adler32(adler, chunk);
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
        if written != size {
            bail!("{path} changed while it was being staged");
        }
        if size == 0 {
            stored_block(&mut pack, &[], true)?;
        }
        pack.write_all(&adler.to_be_bytes())?;
    }
    let trailer = pack.sha1.clone().finalize();
    pack.inner.write_all(&trailer)?;
    pack.inner.flush()?;
    Ok(())
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
fn object_header(kind: u8, size: u64) -> Vec<u8> {
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

/// git2's pack writer reports every failure as "Write error"; this keeps
/// libgit2's own message (say, "No space left on device").
struct Libgit2Writer<W: Write>(W);

impl<W: Write> Write for Libgit2Writer<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .write(buf)
            .map_err(|_| std::io::Error::other(git2::Error::last_error(-1).message().to_owned()))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

struct HashingWriter<W: Write> {
    inner: W,
    sha1: Sha1,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha1.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::{CommitOutcome, CommitRequest, Repo, WriteMode};
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
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
        let req = CommitRequest {
            specs: &[".".to_owned()],
            include_ignored: false,
            message: "m",
            author_name: "a",
            author_email: "a@b",
            trailer_value: "t",
        };
        match repo.commit_artifacts(&req, WriteMode::Disk).unwrap() {
            CommitOutcome::Created(c) => {
                repo.raw().find_commit(c.oid).unwrap().tree_id().to_string()
            }
            CommitOutcome::NothingToCommit => panic!("nothing staged"),
        }
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

    #[test]
    fn a_file_that_changes_between_the_reads_is_an_error() {
        let dir = std::env::temp_dir().join(format!("cb-stage-race-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f"), "first\n").unwrap();
        let files = ["f".to_owned()];
        let blobs = hash_files(&dir, &files).unwrap();
        std::fs::write(dir.join("f"), "first, then more\n").unwrap();
        let err = write_pack(Vec::new(), &dir, &[("f", &blobs[0])]).unwrap_err();
        assert!(
            format!("{err:#}").contains("f changed while it was being staged"),
            "{err:#}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
