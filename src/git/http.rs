//! Git smart-HTTP for libgit2, on reqwest.
//!
//! libgit2's own HTTP transport loses what Bitbucket says when it refuses: a
//! 403 becomes "unexpected http status code: 403" without the body ("To access
//! this repository, enable two-step authentication."), a 401 loops on the
//! credentials callback, and plain http:// (the Pipelines origin) is never
//! proxied. This subtransport keeps status and body of every refused request
//! (see [`take_failure`]), honours `HTTP(S)_PROXY`/`NO_PROXY` and the Pipelines
//! auth proxy, and sends auth itself, once.
//!
//! The request is sent on the first *read*: libgit2 writes a push request in
//! several pieces before it reads the answer (engineering notes).

use crate::secret::Secret;
use crossbeam_channel::{Receiver, SendTimeoutError, Sender, bounded};
use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

/// What a refused or failed HTTP request left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpFailure {
    pub status: Option<u16>,
    /// The body of a refused request, one entry per line, trimmed.
    pub body_lines: Vec<String>,
    /// Transport-level error text (connect, timeout, reset), if any.
    pub error: Option<String>,
}

/// Per-run HTTP settings. Set with [`install`] before any remote operation.
pub struct HttpSettings {
    pub authorization: Option<Secret>,
    pub proxy: Option<String>,
    pub timeout: Duration,
    /// Ask receive-pack for an atomic push (all refs or none).
    pub atomic: bool,
    pub user_agent: String,
}

struct Context {
    client: reqwest::blocking::Client,
    settings: HttpSettings,
    last_failure: Mutex<Option<HttpFailure>>,
}

static CONTEXT: Mutex<Option<Arc<Context>>> = Mutex::new(None);
static REGISTER: Once = Once::new();

/// Largest refusal body kept; Bitbucket's are one or two lines.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// Installs the settings and registers the transport for http and https.
pub fn install(settings: HttpSettings) -> anyhow::Result<()> {
    // reqwest's blocking timeout bounds each wait: connecting, the answer's
    // headers, every read of its body. A push's upload is inside the first
    // wait, so POSTs get a longer bound (UPLOAD_TIMEOUT_FACTOR).
    let mut builder = reqwest::blocking::Client::builder()
        .user_agent(settings.user_agent.clone())
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .redirect(crate::origin::redirect_policy())
        .http1_only();
    if let Some(proxy) = &settings.proxy {
        builder = builder.proxy(reqwest::Proxy::http(proxy)?);
    }
    let client = builder.build()?;
    *CONTEXT.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(Context {
        client,
        settings,
        last_failure: Mutex::new(None),
    }));
    let mut result = Ok(());
    REGISTER.call_once(|| {
        for scheme in ["http", "https"] {
            // SAFETY: called once per process, before any remote operation, from
            // the single thread that runs git operations.
            let r = unsafe { git2::transport::register(scheme, factory) };
            if let Err(e) = r {
                result = Err(anyhow::anyhow!("registering the {scheme} transport: {e}"));
            }
        }
    });
    result
}

fn factory(remote: &git2::Remote<'_>) -> Result<Transport, git2::Error> {
    let ctx = CONTEXT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| {
            git2::Error::from_str("commit-back: HTTP transport used before install()")
        })?;
    Transport::smart(remote, true, Subtransport { ctx })
}

/// The failure recorded by the last refused request, cleared on read.
pub fn take_failure() -> Option<HttpFailure> {
    let ctx = CONTEXT.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
    ctx.last_failure
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
}

struct Subtransport {
    ctx: Arc<Context>,
}

impl SmartSubtransport for Subtransport {
    fn action(
        &self,
        url: &str,
        action: Service,
    ) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        Ok(Box::new(Stream {
            ctx: self.ctx.clone(),
            base: strip_userinfo(url.trim_end_matches('/')),
            service: action,
            pending: Vec::new(),
            upload: None,
            stalled: None,
            response: None,
        }))
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

/// Credentials never travel in the URL: the Authorization header carries them.
fn strip_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority
                .rsplit_once('@')
                .map(|(_, h)| h)
                .unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

struct Stream {
    ctx: Arc<Context>,
    base: String,
    service: Service,
    /// Written bytes not yet handed to the upload (coalesced into chunks).
    pending: Vec<u8>,
    /// The POST in flight: its body is streamed from `write`, never held whole
    /// (a 200 MB pack must not sit in memory twice).
    upload: Option<Upload>,
    /// Set when the server stopped reading the upload: the stream is dead.
    stalled: Option<String>,
    response: Option<reqwest::blocking::Response>,
}

struct Upload {
    tx: Option<Sender<Vec<u8>>>,
    handle: std::thread::JoinHandle<reqwest::Result<reqwest::blocking::Response>>,
}

/// An upload (the whole pack) and the server's verdict on it may take this
/// many times NETWORK_TIMEOUT: a large push must not be cut off. A server
/// that stops reading the upload is caught sooner: each chunk must be taken
/// within NETWORK_TIMEOUT (see `flush_pending`).
const UPLOAD_TIMEOUT_FACTOR: u32 = 10;

/// Chunks handed to the upload thread; the bound keeps memory flat.
const CHUNK: usize = 64 * 1024;
const CHUNKS_IN_FLIGHT: usize = 4;

/// The request body: reads the chunks `write` sends, EOF when the sender is dropped.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Stream {
    /// URL, whether it is a POST, its content type and the expected answer type.
    fn endpoint(&self) -> (String, bool, Option<&'static str>, &'static str) {
        match self.service {
            Service::UploadPackLs => (
                format!("{}/info/refs?service=git-upload-pack", self.base),
                false,
                None,
                "application/x-git-upload-pack-advertisement",
            ),
            Service::ReceivePackLs => (
                format!("{}/info/refs?service=git-receive-pack", self.base),
                false,
                None,
                "application/x-git-receive-pack-advertisement",
            ),
            Service::UploadPack => (
                format!("{}/git-upload-pack", self.base),
                true,
                Some("application/x-git-upload-pack-request"),
                "application/x-git-upload-pack-result",
            ),
            Service::ReceivePack => (
                format!("{}/git-receive-pack", self.base),
                true,
                Some("application/x-git-receive-pack-request"),
                "application/x-git-receive-pack-result",
            ),
        }
    }

    fn request(&self) -> io::Result<reqwest::blocking::RequestBuilder> {
        let (url, post, content_type, expect) = self.endpoint();
        let client = &self.ctx.client;
        let mut req = if post {
            client.post(&url)
        } else {
            client.get(&url)
        };
        req = req.header("Accept", expect);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        if let Some(auth) = &self.ctx.settings.authorization {
            let mut value =
                reqwest::header::HeaderValue::from_str(auth.expose()).map_err(|_| {
                    io::Error::other(
                        "the credential contains characters not allowed in an HTTP header",
                    )
                })?;
            value.set_sensitive(true);
            req = req.header(reqwest::header::AUTHORIZATION, value);
        }
        Ok(req)
    }

    /// Starts the POST and hands it what was written so far.
    fn start_upload(&mut self) -> io::Result<()> {
        self.open_upload()?;
        match self.flush_pending() {
            Ok(()) => Ok(()),
            Err(e) => Err(self.upload_failed(e)),
        }
    }

    /// Starts the POST on its own thread, its body read from a channel.
    fn open_upload(&mut self) -> io::Result<()> {
        if self.service == Service::ReceivePack && self.ctx.settings.atomic {
            add_capability(&mut self.pending, "atomic");
        }
        let (tx, rx) = bounded::<Vec<u8>>(CHUNKS_IN_FLIGHT);
        let req = self
            .request()?
            .timeout(self.ctx.settings.timeout * UPLOAD_TIMEOUT_FACTOR)
            .body(reqwest::blocking::Body::new(ChannelReader {
                rx,
                current: Vec::new(),
                pos: 0,
            }));
        let handle = std::thread::spawn(move || req.send());
        self.upload = Some(Upload {
            tx: Some(tx),
            handle,
        });
        Ok(())
    }

    /// Hands the pending bytes to the upload. Fails when the request already
    /// ended (refused, connection lost; `finish` then tells why) or when the
    /// server has read nothing for NETWORK_TIMEOUT (a stalled upload).
    fn flush_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.pending);
        let timeout = self.ctx.settings.timeout;
        let Some(tx) = self.upload.as_ref().and_then(|u| u.tx.as_ref()) else {
            return Err(io::Error::other("the upload already ended"));
        };
        match tx.send_timeout(chunk, timeout) {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Disconnected(_)) => {
                Err(io::Error::other("the server stopped reading the request"))
            }
            Err(SendTimeoutError::Timeout(_)) => {
                // Joining the request would wait out its whole bound: leave
                // its thread behind (it ends with that bound, or the process).
                self.upload = None;
                let text = format!(
                    "the upload timed out: the server read nothing for {} s",
                    timeout.as_secs_f32()
                );
                self.record(HttpFailure {
                    status: None,
                    body_lines: vec![],
                    error: Some(text.clone()),
                });
                self.stalled = Some(text);
                Err(self.stall_error())
            }
        }
    }

    fn stall_error(&self) -> io::Error {
        let text = self.stalled.clone().unwrap_or_default();
        io::Error::new(io::ErrorKind::TimedOut, text)
    }

    /// The upload ended early: the answer (or the connection error) says why.
    fn upload_failed(&mut self, e: io::Error) -> io::Error {
        if self.stalled.is_some() {
            return e;
        }
        match self.finish() {
            Err(reason) => reason,
            Ok(()) => e,
        }
    }

    /// Sends the request (GET) or ends the upload (POST) and checks the answer.
    fn finish(&mut self) -> io::Result<()> {
        if self.stalled.is_some() {
            return Err(self.stall_error());
        }
        let (url, post, _, expect) = self.endpoint();
        let result = if post {
            if self.upload.is_none() {
                self.open_upload()?;
            }
            // A failure here shows in the request's own result below,
            // unless the server stopped reading (then there is none to wait for).
            if self.flush_pending().is_err() && self.stalled.is_some() {
                return Err(self.stall_error());
            }
            let mut upload = self.upload.take().expect("started above");
            upload.tx.take();
            upload
                .handle
                .join()
                .unwrap_or_else(|_| panic!("the upload thread panicked"))
        } else {
            self.request()?.send()
        };
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                let text = crate::text::error_chain(&e);
                self.record(HttpFailure {
                    status: None,
                    body_lines: vec![],
                    error: Some(text.clone()),
                });
                return Err(io::Error::other(text));
            }
        };
        let status = response.status();
        if !status.is_success() {
            let body_lines = body_text_lines(&read_limited(response));
            let first = body_lines.first().cloned().unwrap_or_default();
            self.record(HttpFailure {
                status: Some(status.as_u16()),
                body_lines,
                error: None,
            });
            return Err(io::Error::other(format!(
                "HTTP {}: {first}",
                status.as_u16()
            )));
        }
        let ctype = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if ctype != expect {
            let body = read_limited(response);
            self.record(HttpFailure {
                status: Some(status.as_u16()),
                body_lines: body_text_lines(&body),
                error: Some(format!("unexpected content-type '{ctype}'")),
            });
            return Err(io::Error::other(format!(
                "{url} is not a git smart-HTTP endpoint (content-type '{ctype}')"
            )));
        }
        self.response = Some(response);
        Ok(())
    }

    fn record(&self, failure: HttpFailure) {
        *self
            .ctx
            .last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(failure);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.response.is_none() {
            self.finish()?;
        }
        let response = self.response.as_mut().expect("sent above");
        response.read(buf).map_err(|e| {
            let text = format!("reading the response: {e}");
            self.record(HttpFailure {
                status: None,
                body_lines: vec![],
                error: Some(text.clone()),
            });
            io::Error::other(text)
        })
    }
}

impl Write for Stream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.stalled.is_some() {
            return Err(self.stall_error());
        }
        self.pending.extend_from_slice(data);
        // The first command line must be whole before the upload starts: the
        // atomic capability is added to it.
        if self.upload.is_none() && !first_pkt_complete(&self.pending) {
            return Ok(data.len());
        }
        if self.upload.is_none() {
            self.start_upload()?;
        } else if self.pending.len() >= CHUNK
            && let Err(e) = self.flush_pending()
        {
            return Err(self.upload_failed(e));
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether `buf` holds a complete first pkt-line (or a flush packet).
fn first_pkt_complete(buf: &[u8]) -> bool {
    let Some(len) = buf
        .get(..4)
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| usize::from_str_radix(h, 16).ok())
    else {
        return buf.len() >= 4;
    };
    len < 4 || buf.len() >= len
}

fn read_limited(response: reqwest::blocking::Response) -> Vec<u8> {
    let mut body = Vec::new();
    let _ = response.take(MAX_ERROR_BODY).read_to_end(&mut body);
    body
}

/// Bitbucket answers refusals with text/plain; git prints each line as
/// `remote: …` (remote-curl.c show_http_message). JSON error bodies are kept
/// whole on one line.
fn body_text_lines(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .map(|l| crate::text::untrusted(l).trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Adds a capability to the first command of a receive-pack request
/// (`<len>old new ref\0caps\n`). receive-pack uses it only if it advertised it.
fn add_capability(body: &mut Vec<u8>, capability: &str) {
    let Some(len) = body
        .get(..4)
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| usize::from_str_radix(h, 16).ok())
    else {
        return;
    };
    if len < 4 || body.len() < len {
        return;
    }
    let line = &body[4..len];
    let Some(nul) = line.iter().position(|&b| b == 0) else {
        return;
    };
    let caps = &line[nul + 1..];
    if caps
        .split(|&b| b == b' ' || b == b'\n')
        .any(|c| c == capability.as_bytes())
    {
        return;
    }
    let mut new_line = line.to_vec();
    let insert_at = if new_line.last() == Some(&b'\n') {
        new_line.len() - 1
    } else {
        new_line.len()
    };
    let addition = format!(" {capability}");
    new_line.splice(insert_at..insert_at, addition.bytes());
    let mut out = format!("{:04x}", new_line.len() + 4).into_bytes();
    out.extend_from_slice(&new_line);
    out.extend_from_slice(&body[len..]);
    *body = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_removed_from_urls() {
        assert_eq!(
            strip_userinfo("https://x-token-auth@bitbucket.org/ws/r.git"),
            "https://bitbucket.org/ws/r.git"
        );
        assert_eq!(
            strip_userinfo("http://u:p@127.0.0.1:80/a@b"),
            "http://127.0.0.1:80/a@b"
        );
        assert_eq!(strip_userinfo("http://host/x"), "http://host/x");
    }

    #[test]
    fn capability_is_added_to_the_first_command() {
        let first = b"0000000000000000000000000000000000000000 1111111111111111111111111111111111111111 refs/heads/main\0report-status side-band-64k\n";
        let mut body = format!("{:04x}", first.len() + 4).into_bytes();
        body.extend_from_slice(first);
        body.extend_from_slice(b"0000PACK");
        add_capability(&mut body, "atomic");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("side-band-64k atomic\n0000PACK"), "{text}");
        let len = usize::from_str_radix(&text[..4], 16).unwrap();
        assert_eq!(&body[len..len + 4], b"0000");
        let before = body.clone();
        add_capability(&mut body, "atomic");
        assert_eq!(body, before, "idempotent");
    }

    #[test]
    fn refusal_bodies_become_trimmed_lines() {
        assert_eq!(
            body_text_lines(b"To access this repository, enable two-step authentication. \n"),
            ["To access this repository, enable two-step authentication."]
        );
    }
}
