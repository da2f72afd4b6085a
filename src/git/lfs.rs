//! Git LFS on the local side: pointers as git-lfs's clean filter writes
//! them, the local object store, the endpoint as git-lfs finds it, and the
//! LFS objects a commit brings. The transfer itself (batch API, upload,
//! verify) is in [`transfer`].
//!
//! libgit2 runs no external filters, so a path whose attributes say
//! `filter=lfs` is cleaned here, as `git-lfs clean` would (git-lfs
//! `lfs/gitfilter_clean.go`, `lfs/pointer.go`): its content is hashed
//! (SHA-256) and copied into `.git/lfs/objects/<aa>/<bb>/<oid>`, and the
//! pointer is what is committed. Content that is itself a pointer (a clone
//! made with `GIT_LFS_SKIP_SMUDGE=1`, as Pipelines makes them) passes
//! through byte for byte, as git-lfs passes it.
//!
//! This module must never decide alone what git-lfs decides: the pointer
//! bytes are held to `git lfs` by the end-to-end suite (tests/e2e/lfs.rs).

pub mod transfer;

use anyhow::{Context as _, Result, bail};
use git2::{Oid, Repository};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

/// The pointer's version line git-lfs writes.
const SPEC_V1: &str = "https://git-lfs.github.com/spec/v1";
/// Versions git-lfs reads as v1 (pointer.go `v1Aliases`).
const V1_ALIASES: &[&str] = &[
    "http://git-media.io/v/2",
    "https://hawser.github.com/spec/v1",
    SPEC_V1,
];
/// git-lfs reads at most this much of a blob to see whether it is a
/// pointer (`blobSizeCutoff`).
pub const POINTER_MAX: usize = 1024;
/// Content shorter than this that parses as a pointer passes the clean
/// filter unchanged (gitfilter_clean.go `copyToTemp`; 512 before git-lfs
/// 3.0, `BlobSizeCutoff` since).
const PASSTHROUGH_BELOW: usize = POINTER_MAX;

const IO_BUFFER: usize = 128 * 1024;

/// An LFS object's name and size, as a pointer holds them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pointer {
    /// SHA-256 of the content, lowercase hex.
    pub oid: String,
    pub size: u64,
}

impl Pointer {
    /// The pointer file exactly as git-lfs writes it (no extensions); an
    /// empty file's pointer is empty (pointer.go `Encoded`).
    pub fn text(&self) -> String {
        if self.size == 0 {
            return String::new();
        }
        format!(
            "version {SPEC_V1}\noid sha256:{}\nsize {}\n",
            self.oid, self.size
        )
    }

    /// Reads a pointer as git-lfs's `DecodePointer` does: surrounding
    /// whitespace and empty lines ignored, lines split as `bufio.Scanner`
    /// splits them (a `\r` before `\n` dropped), `version`, `oid`, `size`
    /// in that order, `ext-N-name` lines allowed between them, nothing
    /// after; the oid lowercase hex.
    pub fn parse(data: &[u8]) -> Option<Pointer> {
        if data.len() >= POINTER_MAX {
            return None;
        }
        let text = std::str::from_utf8(data).ok()?.trim();
        let keys = ["version", "oid", "size"];
        let mut values = Vec::with_capacity(3);
        for line in text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.is_empty())
        {
            let (key, value) = line.split_once(' ')?;
            if values.len() == keys.len() {
                return None;
            }
            if key != keys[values.len()] {
                if is_extension_key(key) {
                    continue;
                }
                return None;
            }
            values.push(value);
        }
        let [version, oid, size] = values[..] else {
            return None;
        };
        if !V1_ALIASES.contains(&version) {
            return None;
        }
        let oid = oid.strip_prefix("sha256:")?;
        if oid.len() != 64 || !oid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        Some(Pointer {
            oid: oid.to_owned(),
            size: size.parse().ok()?,
        })
    }
}

/// `ext-<digit>-<word>` (pointer.go `extRE`).
fn is_extension_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("ext-") else {
        return false;
    };
    let mut parts = rest.splitn(2, '-');
    let digit = parts.next().unwrap_or_default();
    let word = parts.next().unwrap_or_default();
    digit.len() == 1
        && digit.bytes().all(|b| b.is_ascii_digit())
        && !word.is_empty()
        && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// What the clean filter makes of a file.
#[derive(Debug)]
pub struct Cleaned {
    /// The blob to commit: the pointer text, or the file itself when it
    /// already was a pointer.
    pub blob: Vec<u8>,
    pub pointer: Pointer,
    /// The file held a pointer, not content: nothing to store or upload
    /// from here.
    pub passthrough: bool,
}

/// Runs git-lfs's clean filter over `file`, reading it in bounded chunks,
/// and with `store`, keeps its content there as git-lfs does. `known` is
/// the pointer the index holds for the path: a file of that size is
/// probably unchanged, so it is hashed first and copied only if it
/// differs; any other file is hashed while it is copied (one pass, as
/// git-lfs does).
pub fn clean(
    file: &Path,
    store: Option<&Store>,
    known: Option<&Pointer>,
    meter: &crate::progress::Meter,
) -> Result<Cleaned> {
    let read_error = || format!("reading {}", file.display());
    let mut f = File::open(file).with_context(read_error)?;
    let mut head = Vec::new();
    (&mut f)
        .take(POINTER_MAX as u64)
        .read_to_end(&mut head)
        .with_context(read_error)?;
    if head.is_empty() {
        // git-lfs commits an empty file as it is: nothing to store or send.
        return Ok(Cleaned {
            blob: Vec::new(),
            pointer: Pointer {
                oid: hex(&Sha256::digest(b"")),
                size: 0,
            },
            passthrough: true,
        });
    }
    if head.len() < PASSTHROUGH_BELOW
        && let Some(pointer) = Pointer::parse(&head)
    {
        return Ok(Cleaned {
            blob: head,
            pointer,
            passthrough: true,
        });
    }
    let len = f.metadata().with_context(read_error)?.len();
    let copy_now = store.filter(|_| known.is_none_or(|k| k.size != len));
    let mut temp = copy_now.map(Store::temp).transpose()?;
    let hashed = (|| -> Result<Pointer> {
        let mut sha = Sha256::new();
        let mut size = 0u64;
        let mut take = |chunk: &[u8]| -> Result<()> {
            sha.update(chunk);
            size += chunk.len() as u64;
            meter.add(chunk.len() as u64);
            if let Some((out, path)) = temp.as_mut() {
                out.write_all(chunk)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        };
        take(&head)?;
        let mut buf = vec![0u8; IO_BUFFER];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => take(&buf[..n])?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).with_context(read_error),
            }
        }
        Ok(Pointer {
            oid: hex(&sha.finalize()),
            size,
        })
    })();
    let pointer = match hashed {
        Ok(p) => p,
        Err(e) => {
            if let Some((_, path)) = &temp {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    match (store, temp) {
        (Some(store), Some((_, path))) => store.adopt(&path, &pointer)?,
        (Some(store), None) if known != Some(&pointer) => store.put(file, &pointer)?,
        _ => {}
    }
    Ok(Cleaned {
        blob: pointer.text().into_bytes(),
        pointer,
        passthrough: false,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The repository's LFS object store, as git-lfs places it: `lfs.storage`
/// (relative to the git directory) or `<git common dir>/lfs`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn of(repo: &Repository) -> Store {
        let common = repo.commondir().to_path_buf();
        let configured = repo
            .config()
            .ok()
            .and_then(|c| c.get_path("lfs.storage").ok());
        let root = match configured {
            Some(p) if p.is_absolute() => p,
            Some(p) => common.join(p),
            None => common.join("lfs"),
        };
        Store { root }
    }

    /// Where the object named `oid` lives.
    pub fn path(&self, oid: &str) -> PathBuf {
        self.root
            .join("objects")
            .join(&oid[..2])
            .join(&oid[2..4])
            .join(oid)
    }

    /// Whether the store holds the object whole (git-lfs checks the size).
    pub fn has(&self, pointer: &Pointer) -> bool {
        std::fs::metadata(self.path(&pointer.oid)).is_ok_and(|m| m.len() == pointer.size)
    }

    /// A new temporary file in the store (`<lfs>/tmp`, as git-lfs uses).
    fn temp(&self) -> Result<(File, PathBuf)> {
        let dir = self.root.join("tmp");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!(
            "commit-back-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok((file, path))
    }

    /// Makes the temporary file `temp` the object `pointer` names (or
    /// drops it when the store has that object already).
    fn adopt(&self, temp: &Path, pointer: &Pointer) -> Result<()> {
        if self.has(pointer) {
            let _ = std::fs::remove_file(temp);
            return Ok(());
        }
        let target = self.path(&pointer.oid);
        let dir = target.parent().expect("objects/aa/bb");
        let moved = std::fs::create_dir_all(dir)
            .with_context(|| format!("creating {}", dir.display()))
            .and_then(|()| {
                std::fs::rename(temp, &target)
                    .with_context(|| format!("storing {}", target.display()))
            });
        if moved.is_err() {
            let _ = std::fs::remove_file(temp);
        }
        moved
    }

    /// Copies `file` into the store as `pointer`'s object, hashing again on
    /// the way: content that changed since it was hashed is refused rather
    /// than stored under the wrong name. Nothing is done when the object
    /// is there.
    pub fn put(&self, file: &Path, pointer: &Pointer) -> Result<()> {
        if self.has(pointer) {
            return Ok(());
        }
        let (mut to, tmp) = self.temp()?;
        let copied = (|| -> Result<()> {
            let mut from =
                File::open(file).with_context(|| format!("reading {}", file.display()))?;
            let mut sha = Sha256::new();
            let mut size = 0u64;
            let mut buf = vec![0u8; IO_BUFFER];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
                };
                sha.update(&buf[..n]);
                size += n as u64;
                to.write_all(&buf[..n])
                    .with_context(|| format!("writing {}", tmp.display()))?;
            }
            if hex(&sha.finalize()) != pointer.oid || size != pointer.size {
                bail!(
                    "{} changed while it was being committed; run commit-back again once the build stopped writing it",
                    file.display()
                );
            }
            Ok(())
        })();
        match copied {
            Ok(()) => self.adopt(&tmp, pointer),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

/// An LFS object a commit brings: the path that holds its pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LfsObject {
    pub path: String,
    pub pointer: Pointer,
}

/// The LFS pointers a push of `commit` brings: what git-lfs's pre-push
/// hook would find to upload (blobs under [`POINTER_MAX`] bytes that parse
/// as pointers, whatever the attributes say), in the commits from `commit`
/// back to what the remote has: `upstream` (a tip just fetched) and the
/// remote-tracking refs. Each commit is compared with its first parent.
/// Without any of those, only `commit` itself. One entry per object.
pub fn objects_in(repo: &Repository, commit: Oid, upstream: &[Oid]) -> Result<Vec<LfsObject>> {
    let mut out: Vec<LfsObject> = Vec::new();
    for brought in commits_brought(repo, commit, upstream)? {
        new_blobs(repo, brought, |path, id, size| {
            if size >= POINTER_MAX as u64 {
                return Ok(());
            }
            let blob = repo.find_blob(id)?;
            if let Some(pointer) = Pointer::parse(blob.content())
                && !out.iter().any(|o| o.pointer == pointer)
            {
                let path = String::from_utf8_lossy(path).into_owned();
                out.push(LfsObject { path, pointer });
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// At most this many commits are searched for pointers in one push.
const MAX_COMMITS_BROUGHT: usize = 1000;

/// The commits a push of `commit` sends, as far as this clone knows what
/// the remote has (see [`objects_in`]).
fn commits_brought(repo: &Repository, commit: Oid, upstream: &[Oid]) -> Result<Vec<Oid>> {
    let mut known: Vec<Oid> = upstream.to_vec();
    for reference in repo.references_glob("refs/remotes/*")?.flatten() {
        if let Some(target) = reference.target() {
            known.push(target);
        }
    }
    if known.is_empty() {
        return Ok(vec![commit]);
    }
    let mut walk = repo.revwalk()?;
    walk.push(commit)?;
    for tip in known {
        // A tip this clone does not have hides nothing.
        let _ = walk.hide(tip);
    }
    walk.take(MAX_COMMITS_BROUGHT)
        .map(|c| c.map_err(Into::into))
        .collect()
}

/// What the files `commit` adds or changes against its first parent
/// weigh, from one walk ([`committed`]).
pub struct Committed {
    /// Each new or changed file's size, an LFS pointer counted at its
    /// content's size.
    pub bytes: u64,
    /// The files whose blob is larger than the limit asked for, and its size.
    pub large: Vec<(String, u64)>,
}

/// [`Committed`] for `commit`, with blobs of more than `limit` bytes listed.
pub fn committed(repo: &Repository, commit: Oid, limit: u64) -> Result<Committed> {
    let mut committed = Committed {
        bytes: 0,
        large: Vec::new(),
    };
    new_blobs(repo, commit, |path, id, size| {
        committed.bytes += if size < POINTER_MAX as u64 {
            Pointer::parse(repo.find_blob(id)?.content()).map_or(size, |p| p.size)
        } else {
            size
        };
        if size > limit {
            let path = String::from_utf8_lossy(path).into_owned();
            committed.large.push((path, size));
        }
        Ok(())
    })?;
    Ok(committed)
}

/// Each regular file `commit` adds or changes against its first parent:
/// path, blob id and size (from the object's header, never read whole).
fn new_blobs(
    repo: &Repository,
    commit: Oid,
    mut each: impl FnMut(&[u8], Oid, u64) -> Result<()>,
) -> Result<()> {
    let commit = repo.find_commit(commit)?;
    let tree = commit.tree()?;
    let parent_tree = match commit.parent(0) {
        Ok(p) => Some(p.tree()?),
        Err(_) => None,
    };
    let odb = repo.odb()?;
    // A walk of both trees, not a diff: nothing held per path.
    super::for_each_changed_entry(
        repo,
        parent_tree.as_ref(),
        Some(&tree),
        &mut |path, old, new| {
            let Some(new) = new else {
                return Ok(());
            };
            let regular = |e: &git2::TreeEntry<'_>| matches!(e.filemode(), 0o100644 | 0o100755);
            // A mode change keeps the blob the parent has: nothing new. (A
            // link or gitlink that became a file is new, as a diff without
            // type changes lists it, whatever its id.)
            if !regular(new) || old.is_some_and(|o| regular(o) && o.id() == new.id()) {
                return Ok(());
            }
            let Ok((size, _)) = odb.read_header(new.id()) else {
                return Ok(());
            };
            each(path, new.id(), size as u64)
        },
    )
}

/// Where LFS objects go for a push, as git-lfs finds it for an upload
/// (lfsapi/endpoint_finder.go): `lfs.pushurl`, `lfs.url`,
/// `remote.<name>.lfspushurl`, `remote.<name>.lfsurl` (git configuration
/// first, then `.lfsconfig` in the working tree), else derived from the
/// push URL: `<url>.git/info/lfs` (`<url>/info/lfs` when it ends in .git);
/// for an SSH URL, the same over https on the SSH host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The base URL; the batch API is `<url>/objects/batch`.
    pub url: String,
    /// Where it came from: a configuration key, or "the push URL".
    pub source: String,
    /// Derived from an SSH push URL: `git-lfs-authenticate` is asked for
    /// the URL and header first.
    pub ssh: Option<SshTarget>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The push URL as given (ssh:// or scp-like).
    pub url: String,
    /// The repository path `git-lfs-authenticate` is given.
    pub path: String,
}

/// `remote`: the remote's name when the push goes to a configured remote
/// (its lfsurl keys apply); None for another repository, where only the
/// push URL decides (the build's own `lfs.url` names the build's
/// repository's server, not that one's).
pub fn endpoint(repo: &Repository, remote: Option<&str>, push_url: &str) -> Endpoint {
    let workdir_config = repo
        .workdir()
        .map(|w| w.join(".lfsconfig"))
        .filter(|p| p.is_file())
        .and_then(|p| git2::Config::open(&p).ok());
    let git_config = repo.config().ok().and_then(|mut c| c.snapshot().ok());
    let get = |key: &str, from_lfsconfig: bool| -> Option<String> {
        let lfsconfig = workdir_config.as_ref().filter(|_| from_lfsconfig);
        [git_config.as_ref(), lfsconfig]
            .into_iter()
            .flatten()
            .find_map(|c| c.get_string(key).ok())
            .filter(|v| !v.trim().is_empty())
    };
    if let Some(name) = remote {
        // .lfsconfig is the repository's content: git-lfs reads only some
        // keys from it (config/git_fetcher.go `safeKeys`), not lfspushurl.
        let keys = [
            ("lfs.pushurl".to_owned(), true),
            ("lfs.url".to_owned(), true),
            (format!("remote.{name}.lfspushurl"), false),
            (format!("remote.{name}.lfsurl"), true),
        ];
        for (key, from_lfsconfig) in keys {
            if let Some(url) = get(&key, from_lfsconfig) {
                let mut endpoint = derived_or_given(&url);
                endpoint.source = key;
                return endpoint;
            }
        }
    }
    derived(push_url)
}

/// A configured LFS URL: http(s) as given, without userinfo (credentials
/// never travel in a URL); an SSH URL as git-lfs takes it (through
/// `git-lfs-authenticate`).
fn derived_or_given(url: &str) -> Endpoint {
    if url.starts_with("http://") || url.starts_with("https://") {
        Endpoint {
            url: super::http::strip_userinfo(url.trim_end_matches('/')),
            source: String::new(),
            ssh: None,
        }
    } else {
        // A configured SSH URL names the LFS server itself, not a git
        // remote: nothing is appended to it.
        let (host, path) = ssh_parts(url);
        Endpoint {
            url: format!("https://{host}/{}", path.trim_start_matches('/')),
            source: String::new(),
            ssh: Some(SshTarget {
                url: url.to_owned(),
                path,
            }),
        }
    }
}

fn derived(push_url: &str) -> Endpoint {
    let url = push_url.trim_end_matches('/');
    let lfs = |base: &str| {
        if base.ends_with(".git") {
            format!("{base}/info/lfs")
        } else {
            format!("{base}.git/info/lfs")
        }
    };
    if url.starts_with("http://") || url.starts_with("https://") {
        return Endpoint {
            url: lfs(&super::http::strip_userinfo(url)),
            source: "the push URL".into(),
            ssh: None,
        };
    }
    let (host, path) = ssh_parts(url);
    Endpoint {
        url: lfs(&format!("https://{host}/{}", path.trim_start_matches('/'))),
        source: "the push URL".into(),
        ssh: Some(SshTarget {
            url: url.to_owned(),
            path,
        }),
    }
}

/// Host and path of `ssh://[user@]host[:port]/path` or `[user@]host:path`.
/// git-lfs hands `git-lfs-authenticate` the ssh:// path as it is (leading
/// slash kept) and the scp-like one as what follows the colon
/// (lfshttp/endpoint.go, EndpointFromBareSshUrl).
fn ssh_parts(url: &str) -> (String, String) {
    match url.strip_prefix("ssh://") {
        Some(rest) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
            (host.to_owned(), path.to_owned())
        }
        None => {
            let (authority, path) = url.split_once(':').unwrap_or((url, ""));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            (host.to_owned(), path.to_owned())
        }
    }
}

/// Whether `repo` configures git-lfs extensions (`lfs.extension.*`), which
/// change what the clean filter writes: not supported.
pub fn has_extensions(repo: &Repository) -> bool {
    let Ok(config) = repo.config() else {
        return false;
    };
    let Ok(mut entries) = config.entries(Some(r"^lfs\.extension\.")) else {
        return false;
    };
    entries.next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID: &str = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";

    #[test]
    fn pointers_are_written_and_read_as_git_lfs_does() {
        let p = Pointer {
            oid: OID.into(),
            size: 12345,
        };
        assert_eq!(
            p.text(),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 12345\n")
        );
        assert_eq!(Pointer::parse(p.text().as_bytes()), Some(p.clone()));
        // Whitespace around, empty lines, CRLF, old versions, extensions: read.
        let loose = format!(
            "\n\nversion https://hawser.github.com/spec/v1\r\next-0-foo sha256:{OID}\noid sha256:{OID}\n\nsize 12345\r\n  "
        );
        assert_eq!(Pointer::parse(loose.as_bytes()), Some(p.clone()));
        // An empty file's pointer is empty.
        let empty = Pointer {
            oid: OID.into(),
            size: 0,
        };
        assert_eq!(empty.text(), "");
        // Not pointers.
        for bad in [
            format!("oid sha256:{OID}\nversion {SPEC_V1}\nsize 1\n"),
            format!("version {SPEC_V1}\noid sha256:{OID}\nsize 1\nextra x\n"),
            format!("version https://example.com/v9\noid sha256:{OID}\nsize 1\n"),
            format!("version {SPEC_V1}\noid sha1:{OID}\nsize 1\n"),
            format!("version {SPEC_V1}\noid sha256:{}\nsize 1\n", &OID[1..]),
            format!("version {SPEC_V1}\noid sha256:{OID}\nsize -1\n"),
            format!("version {SPEC_V1}\noid sha256:{OID}\n"),
            format!(
                "version {SPEC_V1}\noid sha256:{}\nsize 1\n",
                OID.to_uppercase()
            ),
            "hello\n".into(),
        ] {
            assert_eq!(Pointer::parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn endpoints_are_derived_from_push_urls_as_git_lfs_derives_them() {
        let d = |u: &str| derived(u);
        assert_eq!(
            d("https://x-token-auth@bitbucket.org/ws/repo.git").url,
            "https://bitbucket.org/ws/repo.git/info/lfs"
        );
        assert_eq!(
            d("http://bitbucket.org/ws/repo").url,
            "http://bitbucket.org/ws/repo.git/info/lfs"
        );
        let ssh = d("git@bitbucket.org:ws/repo.git");
        assert_eq!(ssh.url, "https://bitbucket.org/ws/repo.git/info/lfs");
        assert_eq!(ssh.ssh.as_ref().unwrap().path, "ws/repo.git");
        let ssh = d("git@host:/srv/repo.git");
        assert_eq!(ssh.url, "https://host/srv/repo.git/info/lfs");
        assert_eq!(ssh.ssh.as_ref().unwrap().path, "/srv/repo.git");
        // Configured: userinfo never kept.
        assert_eq!(
            derived_or_given("https://u:p@lfs.example.com/r/").url,
            "https://lfs.example.com/r"
        );
        let ssh = d("ssh://git@127.0.0.1:2222/srv/repo.git");
        assert_eq!(ssh.url, "https://127.0.0.1/srv/repo.git/info/lfs");
        assert_eq!(ssh.ssh.as_ref().unwrap().path, "/srv/repo.git");
    }
}
