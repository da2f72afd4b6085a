//! A real git server over HTTP: `git http-backend` (CGI) behind a small
//! HTTP/1.1 server on 127.0.0.1 that authenticates like Bitbucket (Basic for
//! git; 401 with Bitbucket's realm) and can answer with Bitbucket's exact
//! refusal texts. It also serves as the Pipelines auth proxy: a request in
//! absolute form (`GET http://bitbucket.org/ws/repo/info/refs`) without
//! credentials is what a client sends through a proxy, and is authenticated
//! as the pipeline. With [`GitHttpServer::serve_lfs`] it also fronts a real
//! Git LFS server (giftless) at `<repository>.git/info/lfs/`, authenticating
//! the batch API as it authenticates git (the upload and verify hrefs carry
//! giftless's own tokens). The server stops when dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A canned answer, e.g. 403 "To access this repository, enable two-step authentication."
/// Status 0 means: accept the request and never answer (a hung server; the
/// connection is dropped after 30 s so the test server still stops by itself).
/// Status 1: read the request, then close without answering (the server died).
/// Status 2: serve the request, but cut the answer off halfway (truncated).
/// Status 3: read the request's head, then stop reading its body and never
/// answer (a server that stalls an upload; dropped after 30 s like status 0).
/// Status 301-308: a redirect to `body` (the Location).
/// Status 4: serve the request (a push is applied), then close without a
/// byte of answer (the answer was lost).
/// Status 5: serve the request as usual (lets a request through a queue).
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

#[derive(Default)]
struct State {
    /// "user:password" -> REMOTE_USER.
    accounts: HashMap<String, String>,
    /// Password (secret) -> canned refusal, checked before accounts.
    refusals: HashMap<String, Answer>,
    /// Answers for the next requests, whoever sends them (fault injection).
    next_answers: Vec<Answer>,
    /// Answers for the next requests whose path ends with the key.
    next_answers_for: Vec<(String, Answer)>,
    /// REMOTE_USER for proxied requests without credentials (the auth proxy).
    proxy_user: Option<String>,
    /// Request bodies are read at most this fast (bytes per second): a slow link.
    upload_rate: Option<u64>,
    /// The LFS server behind `/info/lfs/` paths.
    lfs_port: Option<u16>,
    /// Whole Authorization header values accepted, and their REMOTE_USER
    /// (the tokens `git-lfs-authenticate` hands out over SSH).
    authorizations: HashMap<String, String>,
    log: Vec<RequestRecord>,
}

/// What the server saw, for assertions.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub proxied: bool,
    pub user: Option<String>,
    pub status: u16,
    /// The request carried an Authorization header (any).
    pub authorization: bool,
    /// Bytes of the request's body that were read.
    pub received: u64,
}

pub struct GitHttpServer {
    addr: std::net::SocketAddr,
    root: PathBuf,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GitHttpServer {
    /// Serves the bare repositories under `root` (URL path = path below root).
    pub fn start(root: &Path) -> GitHttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (root2, state2, stop2) = (root.to_path_buf(), state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (root, state) = (root2.clone(), state2.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &root, &state);
                });
            }
        });
        GitHttpServer {
            addr,
            root: root.to_path_buf(),
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT/<path>`
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.addr.port(),
            path.trim_start_matches('/')
        )
    }

    /// The proxy address for the pipeline credential.
    pub fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Accepts Basic `user:password`, pushing as `remote_user` (what hooks see).
    pub fn account(&self, user: &str, password: &str, remote_user: &str) -> &Self {
        self.state
            .lock()
            .unwrap()
            .accounts
            .insert(format!("{user}:{password}"), remote_user.to_owned());
        self
    }

    /// Any request carrying `password` gets this answer.
    pub fn refuse(&self, password: &str, status: u16, body: &str) -> &Self {
        self.state.lock().unwrap().refusals.insert(
            password.to_owned(),
            Answer {
                status,
                body: body.to_owned(),
            },
        );
        self
    }

    /// The next requests get these answers, in order, before normal service.
    pub fn answer_next(&self, answers: Vec<Answer>) -> &Self {
        self.state.lock().unwrap().next_answers = answers;
        self
    }

    /// The next requests to a path ending in `suffix` (e.g. `git-receive-pack`)
    /// get these answers, in order.
    pub fn answer_next_for(&self, suffix: &str, answers: Vec<Answer>) -> &Self {
        self.state
            .lock()
            .unwrap()
            .next_answers_for
            .extend(answers.into_iter().map(|a| (suffix.to_owned(), a)));
        self
    }

    /// Reads every request body at `bytes_per_second` at most (a slow but
    /// steady link), in small reads so the client sees steady progress.
    pub fn throttle_uploads(&self, bytes_per_second: u64) -> &Self {
        self.state.lock().unwrap().upload_rate = Some(bytes_per_second);
        self
    }

    /// Fronts `lfs`: requests under `<repository>.git/info/lfs/` go there
    /// once authenticated (hrefs giftless builds point back here).
    pub fn serve_lfs(&self, lfs: &crate::lfs::LfsServer) -> &Self {
        self.state.lock().unwrap().lfs_port = Some(lfs.port);
        self
    }

    /// Accepts requests whose Authorization header is exactly `value`, as `user`.
    pub fn accept_authorization(&self, value: &str, user: &str) -> &Self {
        self.state
            .lock()
            .unwrap()
            .authorizations
            .insert(value.to_owned(), user.to_owned());
        self
    }

    /// Act as the Pipelines auth proxy: proxied requests without credentials push as `user`.
    pub fn proxy_as(&self, user: &str) -> &Self {
        self.state.lock().unwrap().proxy_user = Some(user.to_owned());
        self
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.lock().unwrap().log.clone()
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) proxied: bool,
    /// The host named in an absolute-form (proxied) request.
    pub(crate) proxied_host: Option<String>,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
}

pub(crate) fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Request> {
    let mut req = read_head(reader)?;
    read_body(reader, &mut req, None)?;
    Ok(req)
}

/// `read_exact`, no faster than `rate` bytes per second since `started`
/// (counting `done` bytes read before).
fn read_paced(
    reader: &mut BufReader<TcpStream>,
    buf: &mut [u8],
    rate: Option<(u64, std::time::Instant, &mut u64)>,
) -> std::io::Result<()> {
    let Some((rate, started, done)) = rate else {
        return reader.read_exact(buf);
    };
    for piece in buf.chunks_mut(8 * 1024) {
        reader.read_exact(piece)?;
        *done += piece.len() as u64;
        let due = Duration::from_secs_f64(*done as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}

/// The request line and headers; the body is left unread.
fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Request> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let mut target = parts.next().unwrap_or("/").to_owned();
    let mut proxied = false;
    let mut proxied_host = None;
    if let Some(rest) = target.strip_prefix("http://") {
        proxied = true;
        proxied_host = Some(rest.split('/').next().unwrap_or("").to_owned());
        target = rest
            .find('/')
            .map(|i| rest[i..].to_owned())
            .unwrap_or_else(|| "/".into());
    }
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target.clone(), String::new()),
    };
    Ok(Request {
        method,
        path,
        query,
        proxied,
        proxied_host,
        headers,
        body: Vec::new(),
    })
}

fn read_body(
    reader: &mut BufReader<TcpStream>,
    req: &mut Request,
    rate: Option<u64>,
) -> std::io::Result<()> {
    let mut body = Vec::new();
    copy_body(reader, &req.headers, rate, &mut body)?;
    req.body = body;
    Ok(())
}

/// Copies a request's body (chunked or Content-Length) to `sink` in 64 KiB
/// pieces, read no faster than `rate`: a big push is never held here.
fn copy_body(
    reader: &mut BufReader<TcpStream>,
    headers: &HashMap<String, String>,
    rate: Option<u64>,
    sink: &mut dyn Write,
) -> std::io::Result<u64> {
    let started = std::time::Instant::now();
    let mut done = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut copy = |reader: &mut BufReader<TcpStream>, mut n: u64, done: &mut u64| {
        while n > 0 {
            let take = buf.len().min(n as usize);
            let before = *done;
            read_paced(
                reader,
                &mut buf[..take],
                rate.map(|r| (r, started, &mut *done)),
            )?;
            if rate.is_none() {
                *done = before + take as u64;
            }
            sink.write_all(&buf[..take])?;
            n -= take as u64;
        }
        Ok::<(), std::io::Error>(())
    };
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n =
                u64::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            if n == 0 {
                let mut end = String::new();
                reader.read_line(&mut end)?;
                break;
            }
            copy(reader, n, &mut done)?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = headers
        .get("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        copy(reader, len, &mut done)?;
    }
    Ok(done)
}

pub(crate) fn respond(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn basic_credentials(headers: &HashMap<String, String>) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = headers.get("authorization")?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?,
    )
    .ok()?;
    let (u, p) = decoded.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

fn handle(conn: TcpStream, root: &Path, state: &Mutex<State>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let mut req = read_head(&mut reader)?;
    let stall = {
        let mut st = state.lock().unwrap();
        let at = st
            .next_answers_for
            .iter()
            .position(|(suffix, a)| a.status == 3 && req.path.ends_with(suffix.as_str()));
        at.map(|i| st.next_answers_for.remove(i))
    };
    if stall.is_some() {
        state.lock().unwrap().log.push(RequestRecord {
            method: req.method.clone(),
            path: req.path.clone(),
            proxied: req.proxied,
            user: None,
            status: 3,
            authorization: req.headers.contains_key("authorization"),
            received: 0,
        });
        std::thread::sleep(Duration::from_secs(30));
        return Ok(());
    }
    let lfs_port = state
        .lock()
        .unwrap()
        .lfs_port
        .filter(|_| req.path.contains("/info/lfs/"));
    let rate = state
        .lock()
        .unwrap()
        .upload_rate
        .filter(|_| req.method == "POST" || lfs_port.is_some());
    // A body is streamed on (to http-backend or the LFS server), not held
    // here: a big push must not sit in this process (the benchmark measures
    // its children, whose peak RSS includes this process's at spawn).

    // Decide who this is, or answer for them.
    let decision: Result<String, Answer> = {
        let mut st = state.lock().unwrap();
        let targeted = st
            .next_answers_for
            .iter()
            .position(|(suffix, _)| req.path.ends_with(suffix.as_str()));
        let injected = if let Some(i) = targeted {
            Some(st.next_answers_for.remove(i).1)
        } else if !st.next_answers.is_empty() {
            Some(st.next_answers.remove(0))
        } else {
            None
        };
        let authorization = req.headers.get("authorization");
        if let Some(a) = injected.filter(|a| a.status != 5) {
            Err(a)
        } else if let Some(user) = authorization.and_then(|v| st.authorizations.get(v)) {
            Ok(user.clone())
        } else if lfs_port.is_some() && authorization.is_some_and(|v| v.starts_with("Bearer ")) {
            // An upload or verify href: giftless checks its own token.
            Ok("lfs-action".to_owned())
        } else {
            match basic_credentials(&req.headers) {
                Some((u, p)) => {
                    if let Some(a) = st.refusals.get(&p) {
                        Err(a.clone())
                    } else if let Some(user) = st.accounts.get(&format!("{u}:{p}")) {
                        Ok(user.clone())
                    } else {
                        // Bitbucket's generic refusal (KB 942864127).
                        Err(Answer {
                            status: 401,
                            body: "Invalid credentials\n".into(),
                        })
                    }
                }
                None => match (&st.proxy_user, req.proxied) {
                    (Some(user), true) => Ok(user.clone()),
                    _ => Err(Answer {
                        status: 401,
                        body: "Unauthorized\n".into(),
                    }),
                },
            }
        }
    };
    // A refusal (not a fault served on: 2 truncates, 4 loses the answer)
    // reads what the client sends before answering, so that the client
    // reads the answer rather than a reset connection.
    if matches!(&decision, Err(a) if a.status != 2 && a.status != 4) {
        read_body(&mut reader, &mut req, None)?;
    }
    let record = |status: u16, user: Option<String>, received: u64| {
        state.lock().unwrap().log.push(RequestRecord {
            method: req.method.clone(),
            path: req.path.clone(),
            proxied: req.proxied,
            user,
            status,
            authorization: req.headers.contains_key("authorization"),
            received,
        });
    };
    let (user, truncate, lose) = match decision {
        Ok(u) => (u, false, false),
        Err(a) if a.status == 2 => ("fault-injected".to_string(), true, false),
        Err(a) if a.status == 4 => ("fault-injected".to_string(), false, true),
        Err(a) if a.status == 1 => {
            record(1, None, req.body.len() as u64);
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
        Err(a) if a.status == 0 => {
            record(0, None, req.body.len() as u64);
            std::thread::sleep(Duration::from_secs(30));
            return Ok(());
        }
        Err(a) => {
            record(a.status, None, req.body.len() as u64);
            let mut headers = vec![(
                "Content-Type".to_string(),
                "text/plain; charset=utf-8".to_string(),
            )];
            if a.status == 401 {
                headers.push((
                    "WWW-Authenticate".into(),
                    "Basic realm=\"Bitbucket.org HTTP\"".into(),
                ));
            }
            if (301..=308).contains(&a.status) {
                headers.push(("Location".into(), a.body.clone()));
            }
            respond(&mut out, a.status, &headers, a.body.as_bytes())?;
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    };

    if let Some(port) = lfs_port {
        let host = format!("127.0.0.1:{}", out.local_addr()?.port());
        let (status, received) = forward(&mut reader, &mut out, &req, port, &host, rate)?;
        record(status, Some(user), received);
        let _ = out.shutdown(Shutdown::Both);
        return Ok(());
    }

    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env("HOME", root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &req.method)
        .env("PATH_INFO", &req.path)
        .env("QUERY_STRING", &req.query)
        .env("REMOTE_USER", &user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ct) = req.headers.get("content-type") {
        cmd.env("CONTENT_TYPE", ct);
    }
    if let Some(ce) = req.headers.get("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", ce);
    }
    if let Some(gp) = req.headers.get("git-protocol") {
        cmd.env("GIT_PROTOCOL", gp);
    }
    // A chunked body has no length: http-backend then reads to the end.
    if let Some(len) = req.headers.get("content-length") {
        cmd.env("CONTENT_LENGTH", len);
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let headers = req.headers.clone();
    let writer =
        std::thread::spawn(move || copy_body(&mut reader, &headers, rate, &mut stdin).unwrap_or(0));
    let output = child.wait_with_output()?;
    let received = writer.join().unwrap_or(0);
    let raw = output.stdout;
    let split = find_header_end(&raw);
    let (head, body) = match split {
        Some((h, b)) => (String::from_utf8_lossy(&raw[..h]).into_owned(), &raw[b..]),
        None => (String::new(), &raw[..]),
    };
    let mut status = 200;
    let mut headers = Vec::new();
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("status") {
                status = v
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(500);
            } else {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
    }
    record(status, Some(user), received);
    if lose {
        let _ = out.shutdown(Shutdown::Both);
        return Ok(());
    }
    if truncate {
        // Announce the whole answer, send half of it, hang up.
        let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        out.write_all(head.as_bytes())?;
        out.write_all(&body[..body.len() / 2])?;
        let _ = out.shutdown(Shutdown::Both);
        return Ok(());
    }
    respond(&mut out, status, &headers, body)?;
    let _ = out.shutdown(Shutdown::Both);
    Ok(())
}

/// Passes a request on to the LFS server at `port` as `host` (so the hrefs
/// it builds point back here), its body streamed (paced by `rate`), and
/// its answer back; the answer's status.
fn forward(
    reader: &mut BufReader<TcpStream>,
    out: &mut TcpStream,
    req: &Request,
    port: u16,
    host: &str,
    rate: Option<u64>,
) -> std::io::Result<(u16, u64)> {
    let mut up = TcpStream::connect(("127.0.0.1", port))?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    let target = if req.query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.query)
    };
    let mut head = format!(
        "{} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n",
        req.method
    );
    let received;
    let chunked = req
        .headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    for (k, v) in &req.headers {
        let hop = matches!(
            k.as_str(),
            "host" | "connection" | "transfer-encoding" | "content-length" | "proxy-connection"
        );
        // Only giftless's own tokens go on; our Basic credentials stop here.
        let ours = k == "authorization" && !v.starts_with("Bearer ");
        if !hop && !ours {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if chunked {
        let mut whole = Request {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            proxied: req.proxied,
            proxied_host: None,
            headers: req.headers.clone(),
            body: Vec::new(),
        };
        read_body(reader, &mut whole, rate)?;
        received = whole.body.len() as u64;
        head.push_str(&format!("Content-Length: {}\r\n\r\n", whole.body.len()));
        up.write_all(head.as_bytes())?;
        up.write_all(&whole.body)?;
    } else {
        let len: u64 = req
            .headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        received = len;
        head.push_str(&format!("Content-Length: {len}\r\n\r\n"));
        up.write_all(head.as_bytes())?;
        let started = std::time::Instant::now();
        let mut done = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        while done < len {
            let n = buf.len().min((len - done) as usize);
            read_paced(reader, &mut buf[..n], rate.map(|r| (r, started, &mut done)))?;
            if rate.is_none() {
                done += n as u64;
            }
            up.write_all(&buf[..n])?;
        }
    }
    up.flush()?;
    let mut answer = BufReader::new(up);
    let mut status_line = String::new();
    answer.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    out.write_all(status_line.as_bytes())?;
    std::io::copy(&mut answer, out)?;
    out.flush()?;
    Ok((status, received))
}

fn find_header_end(raw: &[u8]) -> Option<(usize, usize)> {
    if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some((i, i + 4));
    }
    raw.windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2))
}
