//! HTTPS in front of the git server: a TLS terminator on 127.0.0.1 with a
//! self-signed certificate for `localhost` (made by the `openssl` command),
//! relaying each connection to a [`GitHttpServer`](crate::GitHttpServer).
//! Real TLS and real certificate checks on the client's side; the client
//! trusts it only when pointed at [`TlsFront::certificate`] (SSL_CERT_FILE).
//! Stops when dropped.

use openssl::ssl::{ErrorCode, SslAcceptor, SslFiletype, SslMethod, SslStream};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct TlsFront {
    addr: SocketAddr,
    certificate: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// A connection idle this long is dropped, so every relay thread ends.
const IDLE: Duration = Duration::from_secs(30);
/// How long each side is waited for before the other is looked at.
const POLL: Duration = Duration::from_millis(5);

impl TlsFront {
    /// Terminates TLS on a new port and relays to `backend_port` on 127.0.0.1.
    pub fn start(backend_port: u16) -> TlsFront {
        let dir = tempfile::tempdir().expect("temp dir");
        let (key, certificate) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        let status = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&certificate)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("running openssl (Debian package openssl)");
        assert!(status.success(), "openssl req failed");
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        acceptor
            .set_private_key_file(&key, SslFiletype::PEM)
            .unwrap();
        acceptor.set_certificate_chain_file(&certificate).unwrap();
        let acceptor = Arc::new(acceptor.build());

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let backend = SocketAddr::from(([127, 0, 0, 1], backend_port));
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let acceptor = acceptor.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(IDLE));
                    if let Ok(tls) = acceptor.accept(conn) {
                        let _ = relay(tls, backend);
                    }
                });
            }
        });
        TlsFront {
            addr,
            certificate,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// `https://localhost:PORT/<path>`: the name the certificate is for.
    pub fn url(&self, path: &str) -> String {
        format!(
            "https://localhost:{}/{}",
            self.addr.port(),
            path.trim_start_matches('/')
        )
    }

    /// The self-signed certificate, to trust with SSL_CERT_FILE.
    pub fn certificate(&self) -> &Path {
        &self.certificate
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies bytes both ways until either side closes or both stay idle for IDLE.
fn relay(mut tls: SslStream<TcpStream>, backend: SocketAddr) -> std::io::Result<()> {
    let mut back = TcpStream::connect(backend)?;
    back.set_read_timeout(Some(POLL))?;
    tls.get_ref().set_read_timeout(Some(POLL))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut last = Instant::now();
    while last.elapsed() < IDLE {
        match tls.ssl_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                back.write_all(&buf[..n])?;
                last = Instant::now();
            }
            Err(e) if e.code() == ErrorCode::WANT_READ => {}
            Err(_) => break,
        }
        match back.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                tls.write_all(&buf[..n])?;
                last = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    let _ = tls.shutdown();
    Ok(())
}
