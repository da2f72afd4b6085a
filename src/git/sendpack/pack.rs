//! The push's pack, written as it is sent: which objects go ([`objects_to_send`]),
//! each read from the object database in bounded pieces, checked against its
//! id, and compressed to fit its data ([`level_for`]).
//!
//! Objects: the new commits (those the server's refs do not reach), annotated
//! tags, and for each new commit the trees and blobs that differ from its
//! parents' at the same path: a parent is on the server or in this pack, so
//! what it holds need not be sent. No deltas (a pack may hold none).
//!
//! Blobs are streamed from a loose object or a non-delta pack entry (found
//! through the pack's `.idx`); anything else (a delta in a clone's pack, an
//! alternate) is read whole through libgit2, which is what it held before.
//! Never writes to the repository.

use super::STREAM_FROM;
use crate::git::stage::object_header;
use flate2::Compression;
use flate2::write::ZlibEncoder;
use git2::{ObjectType, Oid, Repository, Tree};
use sha1::{Digest, Sha1};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The objects the server needs for `news` (commits or tag objects), given
/// the ids it advertised: tags (with a tagged tree or blob), commits, the
/// commits' trees, then the blobs in the order of their ids (the order of
/// the pack staging wrote, read from start to end; 21 bytes a blob, where
/// a set of the blobs seen took as much again).
pub fn objects_to_send(
    repo: &Repository,
    news: &[Oid],
    haves: &[Oid],
) -> Result<Vec<(Oid, ObjectType)>, git2::Error> {
    // Trees, commits and tags seen; blobs are made unique at the end.
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut blobs = Vec::new();
    let mut walk = repo.revwalk()?;
    for &tip in news {
        let mut object = repo.find_object(tip, None)?;
        while let Some(tag) = object.as_tag() {
            if seen.insert(tag.id()) {
                out.push((tag.id(), ObjectType::Tag));
            }
            object = tag.target()?;
        }
        match object.kind() {
            Some(ObjectType::Commit) => walk.push(object.id())?,
            // A tag of a tree or a blob brings it along (as libgit2 does).
            Some(ObjectType::Tree) => {
                let tree = repo.find_tree(object.id())?;
                add_tree(repo, &tree, &[], &mut seen, &mut out, &mut blobs)?;
            }
            Some(ObjectType::Blob) => blobs.push((object.id(), ObjectType::Blob)),
            _ => {}
        }
    }
    for &have in haves {
        // What the server has but this clone lacks cannot be hidden: the
        // commits it would hide are then sent again, which is harmless.
        if let Ok(commit) = repo
            .find_object(have, None)
            .and_then(|o| o.peel_to_commit())
        {
            let _ = walk.hide(commit.id());
        }
    }
    let commits: Vec<git2::Commit> = walk
        .map(|id| id.and_then(|id| repo.find_commit(id)))
        .collect::<Result<_, _>>()?;
    for commit in &commits {
        if seen.insert(commit.id()) {
            out.push((commit.id(), ObjectType::Commit));
        }
    }
    for commit in &commits {
        // A parent this clone lacks (a shallow clone's edge) is on the server.
        let bases: Vec<Tree> = commit.parents().filter_map(|p| p.tree().ok()).collect();
        add_tree(
            repo,
            &commit.tree()?,
            &bases,
            &mut seen,
            &mut out,
            &mut blobs,
        )?;
    }
    blobs.sort_unstable_by_key(|b| b.0);
    blobs.dedup_by_key(|b| b.0);
    // The few others first, in place.
    blobs.splice(0..0, out);
    Ok(blobs)
}

/// `tree` and what it holds that the pack must carry: trees once each
/// (into `out`), blobs as met (into `blobs`).
fn add_tree(
    repo: &Repository,
    tree: &Tree,
    bases: &[Tree],
    seen: &mut HashSet<Oid>,
    out: &mut Vec<(Oid, ObjectType)>,
    blobs: &mut Vec<(Oid, ObjectType)>,
) -> Result<(), git2::Error> {
    walk_new(repo, tree, bases, &mut |id, kind| {
        if kind == ObjectType::Blob {
            blobs.push((id, kind));
        } else if !seen.insert(id) {
            return Step::Skip;
        } else {
            out.push((id, kind));
        }
        Step::Enter
    })
    .map(|_| ())
}

/// What a [`walk_new`] visitor wants next.
pub enum Step {
    /// Go on (into the tree just visited).
    Enter,
    /// Not into the tree just visited.
    Skip,
    /// End the walk.
    Stop,
}

/// Visits what `tree` holds that `bases` do not hold at the same path (a
/// base is on the server or in the same pack): `tree` itself unless a base
/// is that very tree, then each entry that differs from every base's, into
/// a subtree the visitor enters. A submodule's commit is not visited (it is
/// not in this repository). True when the visitor stopped the walk.
pub fn walk_new(
    repo: &Repository,
    tree: &Tree,
    bases: &[Tree],
    visit: &mut impl FnMut(Oid, ObjectType) -> Step,
) -> Result<bool, git2::Error> {
    if bases.iter().any(|b| b.id() == tree.id()) {
        return Ok(false);
    }
    match visit(tree.id(), ObjectType::Tree) {
        Step::Enter => {}
        Step::Skip => return Ok(false),
        Step::Stop => return Ok(true),
    }
    for entry in tree.iter() {
        let at_base: Vec<git2::TreeEntry> = bases
            .iter()
            .filter_map(|b| b.get_name_bytes(entry.name_bytes()))
            .collect();
        if at_base.iter().any(|b| b.id() == entry.id()) {
            continue;
        }
        let stopped = match entry.kind() {
            Some(ObjectType::Tree) => {
                let sub_bases: Vec<Tree> = at_base
                    .iter()
                    .filter(|b| b.kind() == Some(ObjectType::Tree))
                    .filter_map(|b| repo.find_tree(b.id()).ok())
                    .collect();
                walk_new(repo, &repo.find_tree(entry.id())?, &sub_bases, visit)?
            }
            Some(ObjectType::Blob) => matches!(visit(entry.id(), ObjectType::Blob), Step::Stop),
            _ => false,
        };
        if stopped {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Why writing the pack stopped: reading an object (the object database:
/// not worth a retry) or handing bytes to the request (the network).
#[derive(Debug)]
pub enum Failure {
    Reading(io::Error),
    Sending(io::Error),
}

/// Writes a version 2 pack of `objects` to `out`, streamed.
pub fn write(
    repo: &Repository,
    objects: &[(Oid, ObjectType)],
    out: impl Write,
) -> Result<(), Failure> {
    write_to(repo, objects, out).map_err(|e| {
        if e.get_ref().is_some_and(|inner| inner.is::<ReadFailure>()) {
            Failure::Reading(e)
        } else {
            Failure::Sending(e)
        }
    })
}

/// An error reading an object, marked so it is told from the request's
/// errors wherever it surfaces.
#[derive(Debug)]
struct ReadFailure(String);

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReadFailure {}

fn reading(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(ReadFailure(e.to_string()))
}

fn write_to(repo: &Repository, objects: &[(Oid, ObjectType)], out: impl Write) -> io::Result<()> {
    let odb = repo.odb().map_err(reading)?;
    let mut pack = Hashing {
        inner: io::BufWriter::with_capacity(PIECE, out),
        sha1: Sha1::new(),
    };
    let count = u32::try_from(objects.len()).map_err(|_| io::Error::other("too many objects"))?;
    pack.write_all(b"PACK")?;
    pack.write_all(&2u32.to_be_bytes())?;
    pack.write_all(&count.to_be_bytes())?;
    let objects_dir = repo.commondir().join("objects");
    let packs = PackIndexes::of(&objects_dir);
    let mut buf = vec![0u8; PIECE];
    let mut small = SmallObjects::default();
    for &(id, kind) in objects {
        let (size, _) = odb.read_header(id).map_err(reading)?;
        let size = size as u64;
        if kind == ObjectType::Blob && size >= STREAM_FROM {
            let reader = match open_blob(&objects_dir, &packs, id).map_err(reading)? {
                Some(r) => r,
                None => whole(&odb, id).map_err(reading)?,
            };
            write_blob(&mut pack, id, size, reader, &mut buf)?;
        } else {
            let object = odb.read(id).map_err(reading)?;
            let data = object.data();
            // Below a sample's size git's own level; above it, fit to the data.
            let level = if kind == ObjectType::Blob && data.len() > SAMPLE {
                level_for(&data[..SAMPLE])
            } else {
                Compression::default()
            };
            pack.write_all(&object_header(pack_type(kind), data.len() as u64))?;
            pack.write_all(small.compress(data, level)?)?;
        }
    }
    let trailer = pack.sha1.clone().finalize();
    pack.inner.write_all(&trailer)?;
    pack.inner.flush()
}

/// Objects under [`STREAM_FROM`], compressed by one zlib stream per level,
/// reset between objects: a stream's state is a few hundred kilobytes,
/// and setting one up per object was most of the time for 100,000 files.
#[derive(Default)]
struct SmallObjects {
    encoders: Vec<(u32, ZlibEncoder<Vec<u8>>)>,
    output: Vec<u8>,
}

impl SmallObjects {
    /// `data` as one zlib stream at `level`.
    fn compress(&mut self, data: &[u8], level: Compression) -> io::Result<&[u8]> {
        let at = match self.encoders.iter().position(|(l, _)| *l == level.level()) {
            Some(at) => at,
            None => {
                self.encoders
                    .push((level.level(), ZlibEncoder::new(Vec::new(), level)));
                self.encoders.len() - 1
            }
        };
        let encoder = &mut self.encoders[at].1;
        encoder.write_all(data)?;
        // Finishes the stream, and the last call's buffer, emptied, takes
        // the next one: two buffers, each as large as the largest object.
        let mut spare = std::mem::take(&mut self.output);
        spare.clear();
        self.output = encoder.reset(spare)?;
        Ok(&self.output)
    }
}

/// Reads and writes happen in pieces of this size.
const PIECE: usize = 128 * 1024;
/// What [`level_for`] looks at.
const SAMPLE: usize = 64 * 1024;

/// Compression fit to the data: stored when a sample does not shrink by
/// 5% at level 1 (already-compressed formats, random bytes), else level 5,
/// which sends a few percent more than git's level 6 in much less time on
/// text-like data (BENCHMARKS.md, "Memory and compression").
pub fn level_for(sample: &[u8]) -> Compression {
    if sample.len() < 64 {
        return Compression::default();
    }
    let mut z = ZlibEncoder::new(Vec::with_capacity(sample.len() + 64), Compression::fast());
    let compressed = z
        .write_all(sample)
        .and_then(|()| z.finish())
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if compressed.saturating_mul(100) >= sample.len() * 95 {
        Compression::none()
    } else {
        Compression::new(5)
    }
}

fn write_blob(
    pack: &mut impl Write,
    id: Oid,
    size: u64,
    mut reader: Box<dyn Read + '_>,
    buf: &mut [u8],
) -> io::Result<()> {
    let mut hash = Sha1::new();
    hash.update(format!("blob {size}\0"));
    // The sample: the first piece, read whole.
    let mut filled = 0;
    while filled < SAMPLE {
        match reader.read(&mut buf[filled..SAMPLE]).map_err(reading)? {
            0 => break,
            n => filled += n,
        }
    }
    pack.write_all(&object_header(pack_type(ObjectType::Blob), size))?;
    let mut z = ZlibEncoder::new(pack, level_for(&buf[..filled]));
    let mut read = filled as u64;
    hash.update(&buf[..filled]);
    z.write_all(&buf[..filled])?;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(reading(e)),
        };
        read += n as u64;
        hash.update(&buf[..n]);
        z.write_all(&buf[..n])?;
    }
    z.finish()?;
    if read != size || Oid::from_bytes(&hash.finalize()).ok() != Some(id) {
        return Err(reading(format!(
            "object {id} did not read back as itself; the push was abandoned before the pack was complete"
        )));
    }
    Ok(())
}

/// A blob libgit2 reads whole (a delta in a clone's pack, an alternate):
/// read from its buffer, never copied.
fn whole<'a>(odb: &'a git2::Odb<'_>, id: Oid) -> io::Result<Box<dyn Read + 'a>> {
    let object = odb.read(id).map_err(io::Error::other)?;
    Ok(Box::new(WholeObject { object, at: 0 }))
}

struct WholeObject<'a> {
    object: git2::OdbObject<'a>,
    at: usize,
}

impl Read for WholeObject<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.object.data()[self.at..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}

/// A blob's content in pieces, from its loose object or a non-delta entry
/// of a pack; None when it is neither (read it whole then).
fn open_blob(
    objects: &Path,
    packs: &PackIndexes,
    id: Oid,
) -> io::Result<Option<Box<dyn Read + 'static>>> {
    let hex = id.to_string();
    if let Ok(file) = File::open(objects.join(&hex[..2]).join(&hex[2..])) {
        let mut z = flate2::read::ZlibDecoder::new(BufReader::with_capacity(PIECE, file));
        // "blob <size>\0"
        let mut byte = [0u8; 1];
        for _ in 0..32 {
            z.read_exact(&mut byte)?;
            if byte[0] == 0 {
                return Ok(Some(Box::new(z)));
            }
        }
        return Ok(None);
    }
    // A pack this cannot read (an index without its pack, a truncated
    // one) is left to libgit2.
    for idx in &packs.0 {
        let Ok(Some(offset)) = find_in_index(idx, id) else {
            continue;
        };
        return Ok(pack_entry(&idx.with_extension("pack"), offset)
            .ok()
            .flatten()
            .map(|z| Box::new(z) as Box<dyn Read>));
    }
    Ok(None)
}

/// The content of a non-delta blob entry at `offset`; None for any other.
fn pack_entry(
    pack: &Path,
    offset: u64,
) -> io::Result<Option<flate2::read::ZlibDecoder<BufReader<File>>>> {
    let mut file = File::open(pack)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut byte = [0u8; 1];
    file.read_exact(&mut byte)?;
    let kind = (byte[0] >> 4) & 7;
    while byte[0] & 0x80 != 0 {
        file.read_exact(&mut byte)?;
    }
    if kind != pack_type(ObjectType::Blob) {
        return Ok(None);
    }
    Ok(Some(flate2::read::ZlibDecoder::new(
        BufReader::with_capacity(PIECE, file),
    )))
}

/// The `.idx` files of the repository's packs.
struct PackIndexes(Vec<PathBuf>);

impl PackIndexes {
    fn of(objects: &Path) -> PackIndexes {
        let mut found: Vec<PathBuf> = std::fs::read_dir(objects.join("pack"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "idx"))
            .collect();
        found.sort();
        PackIndexes(found)
    }
}

/// Where `id` starts in the pack of a version 2 `.idx` (binary search,
/// reading only the entries it looks at); None when absent or not v2.
fn find_in_index(idx: &Path, id: Oid) -> io::Result<Option<u64>> {
    let mut f = File::open(idx)?;
    let mut head = [0u8; 8 + 256 * 4];
    if f.read_exact(&mut head).is_err() || head[..8] != [0xff, b't', b'O', b'c', 0, 0, 0, 2] {
        return Ok(None);
    }
    let fanout = |i: usize| -> u64 {
        u64::from(u32::from_be_bytes(
            head[8 + i * 4..12 + i * 4].try_into().expect("4 bytes"),
        ))
    };
    let want = id.as_bytes();
    let first = usize::from(want[0]);
    let total = fanout(255);
    let (mut lo, mut hi) = (
        if first == 0 { 0 } else { fanout(first - 1) },
        fanout(first),
    );
    let names_at = 8 + 256 * 4u64;
    let mut name = [0u8; 20];
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        f.seek(SeekFrom::Start(names_at + mid * 20))?;
        f.read_exact(&mut name)?;
        match name.as_slice().cmp(want) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => {
                let offsets_at = names_at + total * 24;
                let mut word = [0u8; 4];
                f.seek(SeekFrom::Start(offsets_at + mid * 4))?;
                f.read_exact(&mut word)?;
                let small = u32::from_be_bytes(word);
                if small & 0x8000_0000 == 0 {
                    return Ok(Some(u64::from(small)));
                }
                let mut large = [0u8; 8];
                let at = offsets_at + total * 4 + u64::from(small & 0x7fff_ffff) * 8;
                f.seek(SeekFrom::Start(at))?;
                f.read_exact(&mut large)?;
                return Ok(Some(u64::from_be_bytes(large)));
            }
        }
    }
    Ok(None)
}

/// The object kinds a pack entry names (gitformat-pack).
fn pack_type(kind: ObjectType) -> u8 {
    match kind {
        ObjectType::Commit => 1,
        ObjectType::Tree => 2,
        ObjectType::Blob => 3,
        _ => 4,
    }
}

struct Hashing<W: Write> {
    inner: W,
    sha1: Sha1,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha1.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_fits_the_data() {
        let text: Vec<u8> = (0..4000)
            .flat_map(|i| format!("2026-12-02 INFO request {i} took {} ms\n", i % 97).into_bytes())
            .collect();
        assert_eq!(level_for(&text[..SAMPLE]), Compression::new(5));
        let mut noise = vec![0u8; SAMPLE];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for b in noise.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        assert_eq!(level_for(&noise), Compression::none());
        assert_eq!(level_for(b"tiny"), Compression::default());
    }

    #[test]
    fn reused_streams_each_hold_one_object_whole() {
        let mut small = SmallObjects::default();
        let objects: [(&[u8], Compression); 5] = [
            (b"first object\n", Compression::default()),
            (b"", Compression::default()),
            (&[7u8; 5000], Compression::none()),
            (b"after a stored one", Compression::default()),
            (b"another level", Compression::new(5)),
        ];
        for (data, level) in objects {
            let stream = small.compress(data, level).unwrap().to_vec();
            let mut back = Vec::new();
            let mut z = flate2::read::ZlibDecoder::new(stream.as_slice());
            z.read_to_end(&mut back).unwrap();
            assert_eq!(back, data);
            // Nothing after the stream: a pack entry is exactly one.
            assert_eq!(z.total_in() as usize, stream.len());
        }
    }
}
