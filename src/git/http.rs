//! Git smart-HTTP for libgit2, on reqwest.
//!
//! libgit2's own HTTP transport loses what Bitbucket says when it refuses: a
//! 403 becomes "unexpected http status code: 403" without the body ("To access
//! this repository, enable two-step authentication."), a 401 loops on the
//! credentials callback, and plain http:// (the Pipelines origin) is never
//! proxied. This subtransport keeps status and body of every refused request
//! (see [`take_failure`], per [`Operation`]), honours `HTTP(S)_PROXY`/`NO_PROXY` and the Pipelines
//! auth proxy, and sends auth itself, once.
//!
//! The request is sent on the first *read*: libgit2 writes a push request in
//! several pieces before it reads the answer (engineering notes).
//!
//! NETWORK_TIMEOUT bounds silence, not duration: every request runs on its
//! own thread and hands its answer over a channel in 64 KiB pieces; the
//! upload is fed the same way. Each piece that moves stamps the stream's
//! [`Clock`], and libgit2's thread gives up once nothing moved for
//! NETWORK_TIMEOUT. Chosen over the async client on tokio: the same
//! per-direction deadlines, without a runtime in a synchronous program and
//! without hyper's habit of polling for an early answer while a body is
//! still being sent (a read timeout would then cut a long upload). A thread
//! given up on is left behind; it ends with its connection or the process.
//!
//! Redirects: only the ref advertisement follows one ([`Stream::follow`]),
//! as git does by default (`http.followRedirects=initial`).

use crate::secret::Secret;
use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, bounded};
use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

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
    /// The same without the Pipelines auth proxy: for exchanges with
    /// another origin than the push's (an LFS server's upload address).
    direct: reqwest::blocking::Client,
    settings: HttpSettings,
    /// What refused requests left, by the operation they belonged to.
    failures: Mutex<Vec<(Operation, HttpFailure)>>,
    /// (base URL given, base URL it redirected to).
    moved: Mutex<Option<(String, String)>>,
}

static CONTEXT: Mutex<Option<Arc<Context>>> = Mutex::new(None);
static REGISTER: Once = Once::new();

/// Largest refusal body kept; Bitbucket's are one or two lines.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Installs the settings and registers the transport for http and https.
pub fn install(settings: HttpSettings) -> anyhow::Result<()> {
    // No total timeout: NETWORK_TIMEOUT bounds silence, measured by each
    // stream's clock (a slow but steady transfer never times out); only
    // connecting has its own bound. Redirects are followed by `follow`.
    let builder = || {
        reqwest::blocking::Client::builder()
            .user_agent(settings.user_agent.clone())
            .timeout(None)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .http1_only()
    };
    let direct = builder().build()?;
    let client = match &settings.proxy {
        Some(proxy) => builder().proxy(reqwest::Proxy::http(proxy)?).build()?,
        None => direct.clone(),
    };
    *CONTEXT.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(Context {
        client,
        direct,
        settings,
        failures: Mutex::new(Vec::new()),
        moved: Mutex::new(None),
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

/// A smart-HTTP stream outside libgit2 (the streamed push,
/// git/sendpack.rs): the very stream libgit2 is given, so the credential,
/// proxy, silence bound, redirect and recorded refusal are the same.
pub(super) fn open(url: &str, service: Service) -> io::Result<Box<dyn SmartSubtransportStream>> {
    let ctx = CONTEXT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| io::Error::other("commit-back: HTTP transport used before install()"))?;
    Subtransport { ctx }
        .action(url, service)
        .map_err(|e| io::Error::other(e.message().to_owned()))
}

/// The repository's new base URL, when its ref advertisement redirected
/// (given, new); cleared on read.
pub fn take_moved() -> Option<(String, String)> {
    let ctx = CONTEXT.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
    ctx.moved.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// One remote operation (a push, a fetch, an access check): the requests
/// made while it runs belong to it, and so do their failures.
///
/// Why a global at all: git2 registers a transport as a plain factory
/// function, without data of the caller's, so libgit2's requests cannot be
/// handed the operation they serve. The operation current when a request's
/// stream is opened is its owner ([`begin`]; git operations run on one
/// thread, one at a time), and [`take_failure`] gives an operation only its
/// own requests' failures: two operations never read each other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation(u64);

static CURRENT_OPERATION: AtomicU64 = AtomicU64::new(0);

/// Starts an operation: the HTTP requests opened from now on are its own.
pub fn begin() -> Operation {
    Operation(CURRENT_OPERATION.fetch_add(1, Ordering::SeqCst) + 1)
}

fn current_operation() -> Operation {
    Operation(CURRENT_OPERATION.load(Ordering::SeqCst))
}

/// The failure the last refused request of `operation` recorded (None if
/// none did), cleared on read together with any older ones.
pub fn take_failure(operation: Operation) -> Option<HttpFailure> {
    let ctx = CONTEXT.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
    let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
    let mine = failures
        .iter()
        .rposition(|(op, _)| *op == operation)
        .map(|i| failures.remove(i).1);
    failures.retain(|(op, _)| op.0 > operation.0);
    mine
}

/// A plain HTTP request outside git's protocol (the Git LFS API and
/// transfers), sent with the same client, proxy and silence bound as git's.
pub struct Exchange<'a> {
    pub method: reqwest::Method,
    pub url: &'a str,
    pub headers: Vec<(String, Secret)>,
    /// On the push's own origin: the run's credential goes along (unless
    /// the server gave an Authorization header of its own), and the
    /// Pipelines auth proxy (when the run uses it) carries the request.
    /// Elsewhere neither.
    pub on_push_origin: bool,
    pub body: ExchangeBody,
    /// Counts the body's bytes as the connection takes them.
    pub progress: Option<Arc<crate::progress::Meter>>,
}

pub enum ExchangeBody {
    Empty,
    Bytes(Vec<u8>),
    /// A file streamed from disk in bounded pieces (its length is sent).
    File(std::path::PathBuf, u64),
}

/// The answer to an [`Exchange`]: any status (the caller decides), the body
/// (at most [`MAX_ANSWER`] bytes).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Largest answer body kept from an exchange (an LFS batch answer for
/// hundreds of objects is well under it).
pub const MAX_ANSWER: usize = 32 * 1024 * 1024;

/// Request body bytes handed to the network, for the report: by exchanges
/// (the Git LFS API and uploads) and by git's own requests (pushes, fetch
/// negotiation), every attempt counted.
static EXCHANGE_SENT: AtomicU64 = AtomicU64::new(0);
static GIT_SENT: AtomicU64 = AtomicU64::new(0);

/// Total request body bytes sent over HTTP(S) so far.
pub fn bytes_sent() -> u64 {
    EXCHANGE_SENT.load(Ordering::Relaxed) + GIT_SENT.load(Ordering::Relaxed)
}

/// Sends one request and waits for its answer; NETWORK_TIMEOUT bounds the
/// silence in either direction, as for git's requests. Only a failure
/// without an answer (connection, timeout) is an error.
pub fn exchange(x: Exchange<'_>) -> Result<Answer, HttpFailure> {
    let ctx = CONTEXT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| network_failure("the HTTP client is not set up"))?;
    let clock = Arc::new(Clock::new());
    let client = if x.on_push_origin {
        &ctx.client
    } else {
        &ctx.direct
    };
    let mut req = client.request(x.method, x.url);
    for (name, value) in &x.headers {
        let mut v = reqwest::header::HeaderValue::from_str(value.expose()).map_err(|_| {
            network_failure(&format!(
                "the server gave an invalid value for the {name} header"
            ))
        })?;
        v.set_sensitive(true);
        req = req.header(name.as_str(), v);
    }
    let server_authorizes = x
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
    if x.on_push_origin
        && !server_authorizes
        && let Some(auth) = &ctx.settings.authorization
    {
        let mut value = reqwest::header::HeaderValue::from_str(auth.expose()).map_err(|_| {
            network_failure("the credential contains characters not allowed in an HTTP header")
        })?;
        value.set_sensitive(true);
        req = req.header(reqwest::header::AUTHORIZATION, value);
    }
    req = match x.body {
        ExchangeBody::Empty => req,
        ExchangeBody::Bytes(b) => {
            EXCHANGE_SENT.fetch_add(b.len() as u64, Ordering::Relaxed);
            req.body(b)
        }
        ExchangeBody::File(path, len) => {
            let file = std::fs::File::open(&path)
                .map_err(|e| network_failure(&format!("reading {}: {e}", path.display())))?;
            let reader = CountingReader {
                inner: file,
                clock: clock.clone(),
                left: len,
                progress: x.progress.clone(),
            };
            req.body(reqwest::blocking::Body::sized(reader, len))
        }
    };
    clock.moved();
    let rx = spawn_request(req, clock.clone());
    let timeout = ctx.settings.timeout;
    let next = || -> Result<Msg, HttpFailure> {
        loop {
            match rx.recv_timeout(TICK) {
                Ok(msg) => return Ok(msg),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(network_failure("the connection ended without an answer"));
                }
                Err(RecvTimeoutError::Timeout) => {
                    let allowed = timeout + clock.drain_allowance();
                    if clock.silent_for() >= allowed {
                        return Err(network_failure(&format!(
                            "the request timed out: the server sent nothing for {} s",
                            allowed.as_secs()
                        )));
                    }
                }
            }
        }
    };
    let (status, content_type) = match next()? {
        Msg::Head {
            status,
            content_type,
            ..
        } => (status, content_type),
        Msg::Failed(text) => return Err(network_failure(&text)),
        Msg::Body(_) | Msg::End => return Err(network_failure("an answer without a head")),
    };
    let mut body = Vec::new();
    loop {
        match next()? {
            Msg::Body(b) => {
                if body.len() < MAX_ANSWER {
                    body.extend_from_slice(&b);
                }
            }
            Msg::End => break,
            Msg::Failed(text) => return Err(network_failure(&text)),
            Msg::Head { .. } => return Err(network_failure("a second answer head")),
        }
    }
    body.truncate(MAX_ANSWER);
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

fn network_failure(text: &str) -> HttpFailure {
    HttpFailure {
        status: None,
        body_lines: vec![],
        error: Some(text.to_owned()),
    }
}

/// A file body: every piece read by the connection is progress. The
/// upload is done once its announced length was read (reqwest stops
/// reading there, without the read that would return 0).
struct CountingReader {
    inner: std::fs::File,
    clock: Arc<Clock>,
    left: u64,
    progress: Option<Arc<crate::progress::Meter>>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let limit = (buf.len().min(CHUNK) as u64).min(self.left) as usize;
        let n = self.inner.read(&mut buf[..limit])?;
        self.left -= n as u64;
        if n > 0 {
            self.clock.sent(n);
            EXCHANGE_SENT.fetch_add(n as u64, Ordering::Relaxed);
            if let Some(meter) = &self.progress {
                meter.add(n as u64);
            }
        }
        if n == 0 || self.left == 0 {
            self.clock.upload_done.store(true, Ordering::Relaxed);
        }
        Ok(n)
    }
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
        let mut base = strip_userinfo(url.trim_end_matches('/'));
        // A repository that redirected once is asked at its new home.
        if let Some((old, new)) = &*self.ctx.moved.lock().unwrap_or_else(|e| e.into_inner())
            && *old == base
        {
            base = new.clone();
        }
        Ok(Box::new(Stream {
            ctx: self.ctx.clone(),
            operation: current_operation(),
            base,
            service: action,
            pending: Vec::new(),
            upload: None,
            answer: None,
            stalled: None,
            opened: false,
            body: Vec::new(),
            body_pos: 0,
            finished: false,
            clock: Arc::new(Clock::new()),
        }))
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

/// Credentials never travel in the URL: the Authorization header carries them.
pub(crate) fn strip_userinfo(url: &str) -> String {
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
    /// The operation this request belongs to: its failures are recorded
    /// for it alone.
    operation: Operation,
    base: String,
    service: Service,
    /// Written bytes not yet handed to the upload.
    pending: Vec<u8>,
    /// The POST's body channel: its body is streamed from `write`, never
    /// held whole (a 200 MB pack must not sit in memory twice).
    upload: Option<Sender<Vec<u8>>>,
    /// The request in flight: its answer arrives here.
    answer: Option<Receiver<Msg>>,
    /// Set when the server stopped reading the upload: the stream is dead.
    stalled: Option<String>,
    /// The POST was opened (a stream makes one request at most).
    opened: bool,
    /// Received body bytes not yet read by libgit2.
    body: Vec<u8>,
    body_pos: usize,
    finished: bool,
    clock: Arc<Clock>,
}

/// When bytes last moved on this stream, in either direction: the one
/// measure of NETWORK_TIMEOUT ("seconds a connection may stay silent").
struct Clock {
    start: Instant,
    /// Milliseconds since `start` at the last movement.
    last: AtomicU64,
    /// Upload bytes taken by the connection.
    sent: AtomicU64,
    /// When the connection first stopped taking bytes at once (its buffers
    /// were full), and how many it had taken by then: from there on, the
    /// rate at which it takes them is the link's.
    pressure_at: AtomicU64,
    sent_at_pressure: AtomicU64,
    upload_done: AtomicBool,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            start: Instant::now(),
            last: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            pressure_at: AtomicU64::new(u64::MAX),
            sent_at_pressure: AtomicU64::new(0),
            upload_done: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn moved(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
    }

    fn sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        self.moved();
    }

    /// The upload had to wait for the connection (once is enough).
    fn pressure(&self) {
        if self.pressure_at.load(Ordering::Relaxed) == u64::MAX {
            self.sent_at_pressure
                .store(self.sent.load(Ordering::Relaxed), Ordering::Relaxed);
            self.pressure_at.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    fn silent_for(&self) -> Duration {
        Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.last.load(Ordering::Relaxed)),
        )
    }

    /// After the upload: the last bytes the connection took may still be
    /// in the network's buffers, unseen. They are at most all it took, and
    /// at most BUFFERED_AT_MOST; they drain at the rate the connection took
    /// bytes once its buffers were full, or, if they never were, at
    /// SLOWEST_LINK.
    fn drain_allowance(&self) -> Duration {
        if !self.upload_done.load(Ordering::Relaxed) {
            return Duration::ZERO;
        }
        let since = self.pressure_at.load(Ordering::Relaxed);
        drain_time(
            self.sent.load(Ordering::Relaxed),
            (since != u64::MAX).then(|| (since, self.sent_at_pressure.load(Ordering::Relaxed))),
            self.last.load(Ordering::Relaxed),
        )
    }
}

/// How long the upload's last bytes may take to leave the network's
/// buffers: at most all `sent`, at most BUFFERED_AT_MOST, at the rate the
/// connection took bytes after it first pushed back (`pressure`: when, in
/// ms, and how many were taken by then) once more than a buffer's worth was
/// measured that way; else no faster than SLOWEST_LINK (a proxy or a large
/// buffer may take a whole pack at once and drain it slowly).
fn drain_time(sent: u64, pressure: Option<(u64, u64)>, last: u64) -> Duration {
    let buffered = sent.min(BUFFERED_AT_MOST) as f64;
    let measured = pressure.and_then(|(at, taken_before)| {
        let taken = sent.saturating_sub(taken_before);
        (taken > BUFFERED_AT_MOST && last > at).then(|| taken as f64 * 1000.0 / (last - at) as f64)
    });
    let rate = measured.unwrap_or(SLOWEST_LINK).max(1.0);
    Duration::from_secs_f64((buffered / rate).min(3600.0))
}

/// What the request's thread passes on: the answer's head, its body in
/// pieces, its end, or why it failed.
enum Msg {
    Head {
        status: u16,
        content_type: String,
        location: Option<String>,
    },
    Body(Vec<u8>),
    End,
    Failed(String),
}

/// Pieces handed between libgit2's writes and the connection: the
/// granularity at which upload progress is seen.
const CHUNK: usize = 64 * 1024;
const CHUNKS_IN_FLIGHT: usize = 4;

/// At most this much of an upload is taken to sit in the network's buffers
/// (a Linux send buffer grows to 4 MiB, a receive buffer to 6 MiB).
const BUFFERED_AT_MOST: u64 = 8 * 1024 * 1024;

/// Bytes per second assumed for draining an upload that never filled the
/// connection's buffers (no rate could be seen).
const SLOWEST_LINK: f64 = 256.0 * 1024.0;

/// How often a wait looks at the clock.
const TICK: Duration = Duration::from_millis(100);

/// Redirects followed on a ref advertisement (git follows up to 20; Bitbucket
/// needs one).
const MAX_REDIRECTS: usize = 5;

/// The request body: reads the chunks `write` sends, EOF when the sender is
/// dropped. Every chunk taken is progress.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    clock: Arc<Clock>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.clock.sent(chunk.len());
                    GIT_SENT.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    self.current = chunk;
                    self.pos = 0;
                }
                Err(_) => {
                    self.clock.upload_done.store(true, Ordering::Relaxed);
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Sends `req` on its own thread and passes the answer on through the
/// returned channel; every piece received is progress. The thread is left
/// behind if the answer is given up on (it ends with the connection or the
/// process).
fn spawn_request(req: reqwest::blocking::RequestBuilder, clock: Arc<Clock>) -> Receiver<Msg> {
    let (tx, rx) = bounded::<Msg>(CHUNKS_IN_FLIGHT);
    std::thread::spawn(move || {
        let mut response = match req.send() {
            Ok(r) => r,
            Err(e) => {
                // Never the URL: an address an LFS server hands out may
                // carry a signature in its query.
                let e = e.without_url();
                let _ = tx.send(Msg::Failed(crate::text::error_chain(&e)));
                return;
            }
        };
        clock.moved();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let head = Msg::Head {
            status: response.status().as_u16(),
            content_type: header("content-type").unwrap_or_default(),
            location: header("location"),
        };
        if tx.send(head).is_err() {
            return;
        }
        let mut buf = vec![0u8; CHUNK];
        loop {
            match response.read(&mut buf) {
                Ok(0) => {
                    let _ = tx.send(Msg::End);
                    return;
                }
                Ok(n) => {
                    clock.moved();
                    if tx.send(Msg::Body(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Msg::Failed(format!("reading the response: {e}")));
                    return;
                }
            }
        }
    });
    rx
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

    fn request(&self, url: &str) -> io::Result<reqwest::blocking::RequestBuilder> {
        let (_, post, content_type, expect) = self.endpoint();
        let client = &self.ctx.client;
        let mut req = if post {
            client.post(url)
        } else {
            client.get(url)
        };
        req = req.header("Accept", expect);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        // Only to the origin the credential was given for (or where that
        // origin redirected, checked by `follow`).
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
        self.opened = true;
        let (tx, rx) = bounded::<Vec<u8>>(CHUNKS_IN_FLIGHT);
        let (url, ..) = self.endpoint();
        let req = self
            .request(&url)?
            .body(reqwest::blocking::Body::new(ChannelReader {
                rx,
                current: Vec::new(),
                pos: 0,
                clock: self.clock.clone(),
            }));
        self.clock.moved();
        self.answer = Some(spawn_request(req, self.clock.clone()));
        self.upload = Some(tx);
        Ok(())
    }

    /// Hands the pending bytes to the upload, in CHUNK pieces. Fails when
    /// the request already ended (refused, connection lost; `finish` then
    /// tells why) or when no byte moved for NETWORK_TIMEOUT (a stalled upload).
    fn flush_pending(&mut self) -> io::Result<()> {
        let timeout = self.ctx.settings.timeout;
        let pending = std::mem::take(&mut self.pending);
        for piece in pending.chunks(CHUNK) {
            let Some(tx) = self.upload.as_ref() else {
                return Err(io::Error::other("the upload already ended"));
            };
            let mut piece = piece.to_vec();
            loop {
                match tx.send_timeout(piece, TICK) {
                    Ok(()) => break,
                    Err(SendTimeoutError::Disconnected(_)) => {
                        return Err(io::Error::other("the server stopped reading the request"));
                    }
                    Err(SendTimeoutError::Timeout(back)) => {
                        self.clock.pressure();
                        if self.clock.silent_for() < timeout {
                            piece = back;
                            continue;
                        }
                        // The request's thread is left behind (it ends
                        // with the connection, or the process).
                        self.upload = None;
                        self.answer = None;
                        let text = format!(
                            "the upload timed out: the server read nothing for {} s",
                            timeout.as_secs_f32()
                        );
                        self.record_network(&text);
                        self.stalled = Some(text);
                        return Err(self.stall_error());
                    }
                }
            }
        }
        Ok(())
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

    /// The next message of the answer, or a timeout once nothing moved for
    /// NETWORK_TIMEOUT (plus, right after an upload, the time the network's
    /// buffers need to drain at the rate it went).
    fn next_msg(&mut self) -> io::Result<Msg> {
        let timeout = self.ctx.settings.timeout;
        let Some(rx) = self.answer.as_ref() else {
            return Err(io::Error::other("no request in flight"));
        };
        loop {
            match rx.recv_timeout(TICK) {
                Ok(msg) => return Ok(msg),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other("the connection ended without an answer"));
                }
                Err(RecvTimeoutError::Timeout) => {
                    let allowed = timeout + self.clock.drain_allowance();
                    if self.clock.silent_for() >= allowed {
                        self.answer = None;
                        let what = match self.service {
                            Service::UploadPackLs | Service::ReceivePackLs => {
                                "the ref advertisement"
                            }
                            Service::UploadPack => "the fetch",
                            Service::ReceivePack => "the push's answer",
                        };
                        let text = format!(
                            "{what} timed out: the server sent nothing for {} s",
                            allowed.as_secs()
                        );
                        self.record_network(&text);
                        return Err(io::Error::new(io::ErrorKind::TimedOut, text));
                    }
                }
            }
        }
    }

    /// The rest of a refused answer's body, at most MAX_ERROR_BODY bytes.
    fn error_body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        while body.len() < MAX_ERROR_BODY {
            match self.next_msg() {
                Ok(Msg::Body(b)) => body.extend_from_slice(&b),
                _ => break,
            }
        }
        body.truncate(MAX_ERROR_BODY);
        self.answer = None;
        body
    }

    /// Sends the request (GET) or ends the upload (POST) and checks the
    /// answer's head. A ref advertisement may be redirected ([`follow`]).
    fn finish(&mut self) -> io::Result<()> {
        if self.stalled.is_some() {
            return Err(self.stall_error());
        }
        let (mut url, post, _, expect) = self.endpoint();
        if post {
            if self.upload.is_none() && self.answer.is_none() {
                // One request per stream: an upload that already ended
                // (refused, lost) is not opened again by a later read.
                if self.opened {
                    return Err(io::Error::other("the upload already ended"));
                }
                self.open_upload()?;
            }
            // A failure here shows in the request's own answer below,
            // unless the server stopped reading (then there is none to wait for).
            if self.flush_pending().is_err() && self.stalled.is_some() {
                return Err(self.stall_error());
            }
            self.upload = None;
        } else {
            self.clock.moved();
            self.answer = Some(spawn_request(self.request(&url)?, self.clock.clone()));
        }
        let mut hops = 0;
        let original_base = self.base.clone();
        loop {
            let (status, content_type, location) = match self.next_msg()? {
                Msg::Head {
                    status,
                    content_type,
                    location,
                } => (status, content_type, location),
                Msg::Failed(text) => {
                    self.record_network(&text);
                    return Err(io::Error::other(text));
                }
                Msg::Body(_) | Msg::End => {
                    return Err(io::Error::other("an answer without a head"));
                }
            };
            if (300..400).contains(&status) && !post {
                let _ = self.error_body();
                url = self.follow(&url, status, location.as_deref(), hops)?;
                hops += 1;
                self.clock.moved();
                self.answer = Some(spawn_request(self.request(&url)?, self.clock.clone()));
                continue;
            }
            if !(200..300).contains(&status) {
                let body_lines = body_text_lines(&self.error_body());
                let first = body_lines.first().cloned().unwrap_or_default();
                self.record(HttpFailure {
                    status: Some(status),
                    body_lines,
                    error: None,
                });
                return Err(io::Error::other(format!("HTTP {status}: {first}")));
            }
            if content_type != expect {
                let body = self.error_body();
                self.record(HttpFailure {
                    status: Some(status),
                    body_lines: body_text_lines(&body),
                    error: Some(format!("unexpected content-type '{content_type}'")),
                });
                return Err(io::Error::other(format!(
                    "{url} is not a git smart-HTTP endpoint (content-type '{content_type}')"
                )));
            }
            // Whatever an earlier hop recorded does not explain later errors.
            self.ctx
                .failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(op, _)| *op != self.operation);
            if hops > 0 {
                // Recorded once the new home answered as a git repository.
                let mut moved = self.ctx.moved.lock().unwrap_or_else(|e| e.into_inner());
                let given = moved
                    .as_ref()
                    .map(|(g, _)| g.clone())
                    .unwrap_or_else(|| original_base.clone());
                *moved = Some((given, self.base.clone()));
            }
            return Ok(());
        }
    }

    /// A redirected ref advertisement, as git follows it: to the same host
    /// only (the credential goes along; http may become https, never the
    /// reverse), a few hops at most; the new base URL is used for the rest
    /// of the run and reported ([`take_moved`]).
    fn follow(
        &mut self,
        url: &str,
        status: u16,
        location: Option<&str>,
        hops: usize,
    ) -> io::Result<String> {
        let refuse = |this: &Self, why: String| {
            this.record(HttpFailure {
                status: Some(status),
                body_lines: vec![],
                error: Some(why.clone()),
            });
            io::Error::other(why)
        };
        let Some(location) = location else {
            return Err(refuse(self, format!("HTTP {status} without a Location")));
        };
        let next = reqwest::Url::parse(url)
            .and_then(|u| u.join(location))
            .map_err(|_| {
                refuse(
                    self,
                    format!(
                        "HTTP {status} to an invalid Location '{}'",
                        crate::text::untrusted(location)
                    ),
                )
            })?;
        let mut clean = next.clone();
        // Credentials never travel in a URL, not even one a server names.
        let _ = clean.set_username("");
        let _ = clean.set_password(None);
        let shown = crate::text::untrusted(clean.as_str());
        if hops >= MAX_REDIRECTS {
            return Err(refuse(
                self,
                format!("more than {MAX_REDIRECTS} redirects (the last to {shown})"),
            ));
        }
        if !crate::origin::may_follow_with_credentials(url, clean.as_str()) {
            return Err(refuse(
                self,
                format!(
                    "the server redirects to {shown}, another host (or from https to http): commit-back sends the credential only where it was given; if the repository moved there, set REMOTE_URL to the new URL"
                ),
            ));
        }
        let Some(path) = clean.path().strip_suffix("/info/refs").map(str::to_owned) else {
            return Err(refuse(
                self,
                format!("the server redirects to {shown}, which is not a git repository URL"),
            ));
        };
        let mut base = clean.clone();
        base.set_path(&path);
        base.set_query(None);
        base.set_fragment(None);
        self.base = base.as_str().trim_end_matches('/').to_owned();
        // The service asked for stays the one libgit2 asked for.
        let (url, ..) = self.endpoint();
        Ok(url)
    }

    /// A failure without an HTTP answer (timeout, connection lost).
    fn record_network(&self, error: &str) {
        self.record(HttpFailure {
            status: None,
            body_lines: vec![],
            error: Some(error.to_owned()),
        });
    }

    fn record(&self, failure: HttpFailure) {
        self.ctx
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((self.operation, failure));
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.finished {
            self.finish()?;
            self.finished = true;
        }
        while self.body_pos == self.body.len() {
            if self.answer.is_none() {
                return Ok(0);
            }
            match self.next_msg()? {
                Msg::Body(b) => {
                    self.body = b;
                    self.body_pos = 0;
                }
                Msg::End => {
                    self.answer = None;
                    return Ok(0);
                }
                Msg::Failed(text) => {
                    self.answer = None;
                    self.record_network(&text);
                    return Err(io::Error::other(text));
                }
                Msg::Head { .. } => return Err(io::Error::other("a second answer head")),
            }
        }
        let n = buf.len().min(self.body.len() - self.body_pos);
        buf[..n].copy_from_slice(&self.body[self.body_pos..self.body_pos + n]);
        self.body_pos += n;
        Ok(n)
    }
}

impl Write for Stream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.stalled.is_some() {
            return Err(self.stall_error());
        }
        // One request per stream: once its upload ended (refused, lost,
        // finished), nothing written later may open another one.
        if self.opened && self.upload.is_none() {
            return Err(io::Error::other("the upload already ended"));
        }
        self.pending.extend_from_slice(data);
        // The first command line must be whole before the upload starts: the
        // atomic capability is added to it.
        if self.upload.is_none() && self.answer.is_none() && !first_pkt_complete(&self.pending) {
            return Ok(data.len());
        }
        if self.upload.is_none() && self.answer.is_none() {
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
    fn drain_time_follows_the_link_rate_seen_under_pressure() {
        const MIB: u64 = 1024 * 1024;
        // A tiny push: nothing to wait for.
        assert!(drain_time(300, None, 0) < Duration::from_millis(5));
        // 4 MiB taken at once (a proxy, big buffers): the slowest link's pace.
        assert_eq!(drain_time(4 * MIB, None, 10).as_secs(), 16);
        assert_eq!(
            drain_time(4 * MIB, Some((0, 256 * 1024)), 300).as_secs(),
            16
        );
        // 21 MB at 1 MB/s under pressure: 8 MiB at 1 MB/s.
        let t = drain_time(21_000_000, Some((100, 256 * 1024)), 100 + 20_740);
        assert!((8..=9).contains(&t.as_secs()), "{t:?}");
        // A fast link measured: well under a second.
        assert!(drain_time(200 * MIB, Some((0, 0)), 2_000) < Duration::from_secs(1));
    }

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
