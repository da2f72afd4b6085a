//! The push of large files, streamed: commit-back writes the pack itself and
//! streams it into the receive-pack request, so no object is ever held whole.
//!
//! libgit2's pack builder reads every object whole and compresses it into a
//! second buffer: one 200 MB file peaked at over 400 MB, and a 2 GiB file
//! could not be pushed within Pipelines' 1 GB docker-service limit. Its
//! object list and delta search also grow with the number of objects
//! (16 MB for 100,000 small files, beside the threads' own heaps). A push
//! over HTTP(S) whose new commits carry a blob of [`STREAM_FROM`] bytes or
//! more, or [`STREAM_OBJECTS_FROM`] objects or more, takes this path
//! ([`should_stream`]). What it gives up is the delta search between the
//! new objects (libgit2 sends no thin packs, so deltas against what the
//! server holds were never sent either). The ref advertisement and
//! the request go through the very stream libgit2 is given ([`http::open`]):
//! the same credential, proxy, silence bound, redirect and recorded refusal.
//! The protocol is git's send-pack (report-status, side-band-64k, atomic
//! as libgit2 asks for it); the pack is [`pack`]'s.
//!
//! What libgit2 would check before sending is checked the same way, with
//! its words: a ref moved without force must be a fast-forward of what the
//! server has. Everything else (smaller pushes without a large file, SSH,
//! deletions) stays with libgit2.
//!
//! Never updates a local ref; never completes a pack whose blobs did not
//! read back as their ids (the request ends without the pack's trailer, and
//! the server drops it).

mod pack;

use super::http;
use crate::progress::{self, Unit};
use git2::transport::Service;
use git2::{ErrorClass, ErrorCode, Oid, Repository};
use std::io::{Read, Write};

/// Blobs of this size or more are streamed: below it, what libgit2 holds
/// is small and its delta search may send less.
pub const STREAM_FROM: u64 = 1024 * 1024;

/// Pushes of this many new trees and blobs or more are streamed: below it,
/// libgit2's object list is a few hundred kilobytes.
pub const STREAM_OBJECTS_FROM: usize = 1000;

/// Commits looked at to decide ([`should_stream`]); a push of more
/// new commits than this is not the artifact push this path is for.
const COMMITS_LOOKED_AT: usize = 100;

/// Whether the commits behind `updates` that the remote-tracking refs do
/// not already hold add or change a blob of [`STREAM_FROM`] bytes or more,
/// or [`STREAM_OBJECTS_FROM`] trees and blobs or more (counted at each
/// path they are new at; the walk stops at the limit).
pub fn should_stream(repo: &Repository, updates: &[(Oid, String, bool)]) -> bool {
    let Ok(mut walk) = repo.revwalk() else {
        return false;
    };
    let mut any = false;
    for (oid, _, _) in updates {
        if let Ok(commit) = repo
            .find_object(*oid, None)
            .and_then(|o| o.peel_to_commit())
        {
            any |= walk.push(commit.id()).is_ok();
        }
    }
    if !any {
        return false;
    }
    let _ = walk.hide_glob("refs/remotes");
    let Ok(odb) = repo.odb() else {
        return false;
    };
    let mut objects = 0;
    for id in walk.take(COMMITS_LOOKED_AT).flatten() {
        let Ok(commit) = repo.find_commit(id) else {
            continue;
        };
        let Ok(tree) = commit.tree() else {
            continue;
        };
        // Against the first parent: what the commit adds to the branch.
        let parent = commit.parent(0).ok().and_then(|p| p.tree().ok());
        let stream = pack::walk_new(repo, &tree, parent.as_slice(), &mut |id, kind| {
            objects += 1;
            let is_large = kind == git2::ObjectType::Blob
                && odb
                    .read_header(id)
                    .is_ok_and(|(size, _)| size as u64 >= STREAM_FROM);
            if is_large || objects >= STREAM_OBJECTS_FROM {
                pack::Step::Stop
            } else {
                pack::Step::Enter
            }
        });
        if stream.unwrap_or(false) {
            return true;
        }
    }
    false
}

/// What the push learnt along the way, whatever became of it.
#[derive(Default)]
pub struct Session {
    /// Where the server said each ref was (from its advertisement).
    pub olds: Vec<(String, Oid)>,
    /// `push_update_reference`'s view: ref and refusal reason.
    pub statuses: Vec<(String, Option<String>)>,
    /// Side-band progress and error text.
    pub sideband: String,
    pub objects: u64,
    pub bytes: u64,
    pub streamed: bool,
}

/// Pushes `updates` to `url` with a pack written here. What the push
/// learnt comes back whatever became of it: the caller concludes as for
/// libgit2's push (`Endpoint::conclude`).
pub fn push(
    url: &str,
    repo: &Repository,
    updates: &[(Oid, String, bool)],
) -> (Result<(), git2::Error>, Session) {
    let uploading = progress::meter("Uploading", Unit::Bytes, 0);
    let mut session = Session {
        streamed: true,
        ..Default::default()
    };
    let result = send(url, repo, updates, &uploading, &mut session);
    uploading.finish(result.is_ok());
    (result, session)
}

fn net_error(text: impl std::fmt::Display) -> git2::Error {
    // What git2 makes of an error from a Rust subtransport stream.
    git2::Error::new(ErrorCode::GenericError, ErrorClass::Net, text.to_string())
}

fn send(
    url: &str,
    repo: &Repository,
    updates: &[(Oid, String, bool)],
    uploading: &progress::Meter,
    session: &mut Session,
) -> Result<(), git2::Error> {
    let mut listing = http::open(url, Service::ReceivePackLs).map_err(net_error)?;
    let mut advertisement = Vec::new();
    listing.read_to_end(&mut advertisement).map_err(net_error)?;
    drop(listing);
    let advert = parse_advertisement(&advertisement).map_err(net_error)?;
    let commands: Vec<Command> = updates
        .iter()
        .map(|(new, name, force)| Command {
            old: advert.tip(name).unwrap_or(Oid::ZERO_SHA1),
            new: *new,
            name: name.clone(),
            force: *force,
        })
        .collect();
    session.olds = commands.iter().map(|c| (c.name.clone(), c.old)).collect();
    for c in &commands {
        check_fast_forward(repo, c)?;
    }
    let news: Vec<Oid> = commands
        .iter()
        .filter(|c| !c.new.is_zero())
        .map(|c| c.new)
        .collect();
    let haves: Vec<Oid> = advert.refs.iter().map(|(_, oid)| *oid).collect();
    let objects = pack::objects_to_send(repo, &news, &haves)?;
    let wants = |cap: &str| advert.capabilities.iter().any(|c| c == cap);
    let caps: Vec<&str> = ["report-status", "side-band-64k"]
        .into_iter()
        .filter(|c| wants(c))
        .collect();
    let mut request = http::open(url, Service::ReceivePack).map_err(net_error)?;
    let mut counted = Counted {
        inner: &mut request,
        bytes: 0,
        meter: uploading,
        failed: false,
    };
    let sent = counted
        .write_all(&command_lines(&commands, &caps))
        .map_err(pack::Failure::Sending)
        .and_then(|()| match news.is_empty() {
            true => Ok(()),
            false => pack::write(repo, &objects, &mut counted),
        });
    session.bytes = counted.bytes;
    match sent {
        Ok(()) if !news.is_empty() => session.objects = objects.len() as u64,
        Ok(()) => {}
        // The object database, not the network: what libgit2 would call it.
        Err(pack::Failure::Reading(e)) => {
            return Err(git2::Error::new(
                ErrorCode::GenericError,
                ErrorClass::Odb,
                format!("reading the objects to push: {e}"),
            ));
        }
        Err(pack::Failure::Sending(e)) => return Err(net_error(e)),
    }
    let mut answer = Vec::new();
    request.read_to_end(&mut answer).map_err(net_error)?;
    let (report, sideband, fatal) = if wants("side-band-64k") {
        demultiplex(&answer).map_err(net_error)?
    } else {
        (answer, String::new(), None)
    };
    session.sideband = sideband;
    if let Some(text) = fatal {
        // libgit2's words for a side-band error (smart_protocol.c), and as
        // there, in the error and not among the server's progress lines:
        // the evidence is the same whichever writer sent the pack.
        return Err(net_error(format!(
            "report-status: Error reported: {}",
            crate::text::untrusted(text.trim())
        )));
    }
    if !wants("report-status") {
        return Ok(());
    }
    let status = parse_report(&report).map_err(net_error)?;
    if let Err(reason) = status.unpack {
        // libgit2's words (push.c), the server's reason kept beside them.
        return Err(net_error(format!(
            "unpacking the sent packfile failed on the remote: {reason}"
        )));
    }
    session.statuses = status.refs;
    Ok(())
}

/// libgit2's own check before a push (push.c), with its words: without
/// force, the server's ref must be an ancestor of the new one.
fn check_fast_forward(repo: &Repository, c: &Command) -> Result<(), git2::Error> {
    if c.force || c.old.is_zero() || c.new.is_zero() || c.old == c.new {
        return Ok(());
    }
    let nff = |text: &str| git2::Error::new(ErrorCode::NotFastForward, ErrorClass::Reference, text);
    if !repo.odb().is_ok_and(|odb| odb.exists(c.old)) {
        return Err(nff(
            "cannot push because a reference that you are trying to update on the remote contains commits that are not present locally.",
        ));
    }
    match repo.merge_base(c.new, c.old) {
        Ok(base) if base == c.old => Ok(()),
        _ => Err(nff("cannot push non-fastforwardable reference")),
    }
}

/// Counts what the request takes; once it failed, it takes nothing more
/// (a dropped encoder's last bytes must not reach a stream that ended).
struct Counted<'a, W: Write> {
    inner: &'a mut W,
    bytes: u64,
    meter: &'a progress::Meter,
    failed: bool,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failed {
            return Err(std::io::Error::other("the upload already failed"));
        }
        let n = self.inner.write(buf).inspect_err(|_| self.failed = true)?;
        self.bytes += n as u64;
        self.meter.set(self.bytes, 0);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One ref the push asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Command {
    old: Oid,
    new: Oid,
    name: String,
    force: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Advertisement {
    refs: Vec<(String, Oid)>,
    capabilities: Vec<String>,
}

impl Advertisement {
    fn tip(&self, name: &str) -> Option<Oid> {
        self.refs.iter().find(|(n, _)| n == name).map(|(_, o)| *o)
    }
}

/// The pkt-lines of `data` up to the first flush (None for a flush), and
/// what follows it.
fn pkt_lines(mut data: &[u8]) -> Result<(Vec<&[u8]>, &[u8]), String> {
    let mut lines = Vec::new();
    loop {
        let Some(head) = data.get(..4) else {
            return Ok((lines, data));
        };
        let len = std::str::from_utf8(head)
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .ok_or_else(|| "the server's answer is not in git's pkt-line format".to_owned())?;
        if len == 0 {
            return Ok((lines, &data[4..]));
        }
        if len < 4 || data.len() < len {
            return Err("the server's answer ended inside a pkt-line".into());
        }
        lines.push(&data[4..len]);
        data = &data[len..];
    }
}

/// A receive-pack ref advertisement, after the smart-HTTP service line.
fn parse_advertisement(data: &[u8]) -> Result<Advertisement, String> {
    let mut data = data;
    if data.get(4..5) == Some(b"#") {
        data = pkt_lines(data)?.1;
    }
    let (lines, _) = pkt_lines(data)?;
    let mut advert = Advertisement::default();
    for (i, line) in lines.iter().enumerate() {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if let Some(message) = line.strip_prefix(b"ERR ") {
            // libgit2's words (smart_protocol.c).
            return Err(format!(
                "remote error: {}",
                crate::text::untrusted(&String::from_utf8_lossy(message))
            ));
        }
        let (refpart, caps) = match line.iter().position(|&b| b == 0) {
            Some(nul) => (&line[..nul], Some(&line[nul + 1..])),
            None => (line, None),
        };
        if i == 0
            && let Some(caps) = caps
        {
            advert.capabilities = String::from_utf8_lossy(caps)
                .split(' ')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
        }
        let text = String::from_utf8_lossy(refpart);
        let Some((hex, name)) = text.split_once(' ') else {
            return Err(format!(
                "the server advertised an unreadable ref line '{}'",
                crate::text::untrusted(&text)
            ));
        };
        let oid =
            Oid::from_str(hex).map_err(|_| "the server advertised an invalid id".to_owned())?;
        // An empty repository advertises its capabilities on the zero id.
        if !oid.is_zero() {
            advert.refs.push((name.to_owned(), oid));
        }
    }
    Ok(advert)
}

/// The update commands, capabilities on the first, and the flush.
fn command_lines(commands: &[Command], caps: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, c) in commands.iter().enumerate() {
        let mut line = format!("{} {} {}", c.old, c.new, c.name).into_bytes();
        if i == 0 {
            line.push(0);
            line.extend_from_slice(caps.join(" ").as_bytes());
        }
        line.push(b'\n');
        out.extend_from_slice(format!("{:04x}", line.len() + 4).as_bytes());
        out.extend_from_slice(&line);
    }
    out.extend_from_slice(b"0000");
    out
}

/// Side-band-64k: band 1 (the report), band 2 (progress text), band 3
/// (a fatal error's text).
fn demultiplex(data: &[u8]) -> Result<(Vec<u8>, String, Option<String>), String> {
    let (lines, _) = pkt_lines(data)?;
    let mut report = Vec::new();
    let mut progress = Vec::new();
    let mut fatal: Option<Vec<u8>> = None;
    for line in lines {
        match line.split_first() {
            Some((1, rest)) => report.extend_from_slice(rest),
            Some((2, rest)) => progress.extend_from_slice(rest),
            Some((3, rest)) => fatal.get_or_insert_with(Vec::new).extend_from_slice(rest),
            _ => return Err("the server's answer has an unknown side-band".into()),
        }
    }
    Ok((
        report,
        String::from_utf8_lossy(&progress).into_owned(),
        fatal.map(|f| String::from_utf8_lossy(&f).into_owned()),
    ))
}

#[derive(Debug, PartialEq, Eq)]
struct Report {
    unpack: Result<(), String>,
    refs: Vec<(String, Option<String>)>,
}

/// report-status: `unpack ok`, then `ok <ref>` or `ng <ref> <reason>`.
fn parse_report(data: &[u8]) -> Result<Report, String> {
    let (lines, _) = pkt_lines(data)?;
    let mut lines = lines.into_iter().map(|l| {
        let l = l.strip_suffix(b"\n").unwrap_or(l);
        crate::text::untrusted(&String::from_utf8_lossy(l))
    });
    let unpack = match lines.next() {
        Some(l) if l == "unpack ok" => Ok(()),
        Some(l) if l.starts_with("unpack ") => Err(l["unpack ".len()..].to_owned()),
        _ => return Err("the server's report has no unpack status".into()),
    };
    let mut refs = Vec::new();
    for line in lines {
        if let Some(name) = line.strip_prefix("ok ") {
            refs.push((name.to_owned(), None));
        } else if let Some(rest) = line.strip_prefix("ng ") {
            let (name, reason) = rest.split_once(' ').unwrap_or((rest, "refused"));
            refs.push((name.to_owned(), Some(reason.to_owned())));
        }
    }
    Ok(Report { unpack, refs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(s: &[u8]) -> Vec<u8> {
        let mut out = format!("{:04x}", s.len() + 4).into_bytes();
        out.extend_from_slice(s);
        out
    }

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn advertisements_as_http_and_empty_repositories_send_them() {
        let mut http = pkt(b"# service=git-receive-pack\n");
        http.extend_from_slice(b"0000");
        http.extend(pkt(format!(
            "{A} refs/heads/main\0report-status side-band-64k atomic\n"
        )
        .as_bytes()));
        http.extend(pkt(format!("{B} refs/tags/v1\n").as_bytes()));
        http.extend_from_slice(b"0000");
        let advert = parse_advertisement(&http).unwrap();
        assert_eq!(
            advert.capabilities,
            ["report-status", "side-band-64k", "atomic"]
        );
        assert_eq!(
            advert.tip("refs/heads/main"),
            Some(Oid::from_str(A).unwrap())
        );
        assert_eq!(advert.tip("refs/tags/v1"), Some(Oid::from_str(B).unwrap()));
        assert_eq!(advert.tip("refs/heads/other"), None);

        let zero = "0".repeat(40);
        let mut empty =
            pkt(format!("{zero} capabilities^{{}}\0report-status delete-refs\n").as_bytes());
        empty.extend_from_slice(b"0000");
        let advert = parse_advertisement(&empty).unwrap();
        assert!(advert.refs.is_empty());
        assert_eq!(advert.capabilities, ["report-status", "delete-refs"]);

        assert!(parse_advertisement(b"zzzz").is_err());
        assert!(parse_advertisement(b"0040short").is_err());
    }

    #[test]
    fn commands_carry_capabilities_on_the_first_line_only() {
        let c = |old: &str, name: &str| Command {
            old: Oid::from_str(old).unwrap(),
            new: Oid::from_str(B).unwrap(),
            name: name.into(),
            force: false,
        };
        let out = command_lines(
            &[c(A, "refs/heads/main"), c(&"0".repeat(40), "refs/tags/v2")],
            &["report-status", "side-band-64k"],
        );
        let text = String::from_utf8(out).unwrap();
        let first = format!("{A} {B} refs/heads/main\0report-status side-band-64k\n");
        let second = format!("{} {B} refs/tags/v2\n", "0".repeat(40));
        assert_eq!(
            text,
            format!(
                "{:04x}{first}{:04x}{second}0000",
                first.len() + 4,
                second.len() + 4
            )
        );
    }

    #[test]
    fn side_bands_and_reports() {
        let mut inner = pkt(b"unpack ok\n");
        inner.extend(pkt(b"ok refs/heads/main\n"));
        inner.extend(pkt(b"ng refs/tags/v1 pre-receive hook declined\n"));
        inner.extend_from_slice(b"0000");
        let mut muxed = Vec::new();
        muxed.extend(pkt(
            b"\x02remote: Permission denied to update branch main.\n",
        ));
        for part in inner.chunks(7) {
            let mut band = vec![1u8];
            band.extend_from_slice(part);
            muxed.extend(pkt(&band));
        }
        muxed.extend_from_slice(b"0000");
        let (report, progress, fatal) = demultiplex(&muxed).unwrap();
        assert_eq!(
            progress,
            "remote: Permission denied to update branch main.\n"
        );
        assert_eq!(fatal, None);
        assert_eq!(
            parse_report(&report).unwrap(),
            Report {
                unpack: Ok(()),
                refs: vec![
                    ("refs/heads/main".into(), None),
                    (
                        "refs/tags/v1".into(),
                        Some("pre-receive hook declined".into())
                    ),
                ],
            }
        );
        let mut failed = pkt(b"unpack index-pack abnormal exit\n");
        failed.extend(pkt(b"ng refs/heads/main unpacker error\n"));
        failed.extend_from_slice(b"0000");
        assert_eq!(
            parse_report(&failed).unwrap().unpack,
            Err("index-pack abnormal exit".into())
        );
        let mut error = pkt(b"\x03fatal: the remote end hung up\n");
        error.extend_from_slice(b"0000");
        assert_eq!(
            demultiplex(&error).unwrap().2.as_deref(),
            Some("fatal: the remote end hung up\n")
        );
        assert!(demultiplex(&pkt(b"\x07?")).is_err());
        assert!(parse_report(b"0000").is_err());
    }
}
