//! The listener: TCP, optionally TLS (rustls), with a connection limit and an idle
//! timeout.
//!
//! A task accepts TCP connections while fewer than `http.max_connections` are open
//! (past that, new connections wait in the kernel's backlog), runs each TLS handshake in
//! a task of its own (at most `http.tls_handshake_timeout_secs`, so a slow handshake
//! never holds up other connections), and hands ready connections to the HTTP server. A
//! connection that reads and writes nothing for `http.idle_timeout_secs` is closed.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig as RustlsConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{HttpConfig, TlsConfig};
use crate::error::{Result, ServerError};

/// Reads a certificate chain and key into a TLS acceptor for HTTP.
pub fn tls_acceptor(config: &TlsConfig) -> Result<TlsAcceptor> {
    tls_acceptor_for(config, b"http/1.1")
}

/// Reads a certificate chain and key into a TLS acceptor for `protocol` (its ALPN
/// name: `http/1.1`, or `postgresql` for the SQL listener).
pub fn tls_acceptor_for(config: &TlsConfig, protocol: &[u8]) -> Result<TlsAcceptor> {
    let bad =
        |what: &str, e: &dyn std::fmt::Display| ServerError::Config(format!("tls.{what}: {e}"));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert_file)
        .map_err(|e| bad("cert_file", &format!("{}: {e}", config.cert_file.display())))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad("cert_file", &format!("{}: {e}", config.cert_file.display())))?;
    if certs.is_empty() {
        return Err(bad(
            "cert_file",
            &format!("{} holds no certificate", config.cert_file.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key_file)
        .map_err(|e| bad("key_file", &format!("{}: {e}", config.key_file.display())))?;
    let mut server = RustlsConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("cert_file", &e))?;
    server.alpn_protocols = vec![protocol.to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// The stream under a connection.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// A served connection: its stream, its slot under the connection limit, and its idle
/// timer.
pub struct Connection {
    stream: Stream,
    _slot: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Connection {
    fn touch(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    fn check_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle past http.idle_timeout_secs",
            ));
        }
        Ok(())
    }
}

/// A byte stream, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Stream {
    fn io(&mut self) -> Pin<&mut dyn Io> {
        match self {
            Stream::Plain(s) => Pin::new(s),
            Stream::Tls(s) => Pin::new(&mut **s),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let result = this.stream.io().poll_read(cx, buf);
        match result {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                this.check_idle(cx)?;
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = this.stream.io().poll_write(cx, data);
        match result {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                this.check_idle(cx)?;
                Poll::Pending
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.stream.io().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.stream.io().poll_shutdown(cx)
    }
}

/// The listener the HTTP server accepts from.
pub struct ServerListener {
    ready: mpsc::Receiver<(Connection, SocketAddr)>,
    local: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for ServerListener {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl ServerListener {
    /// Starts accepting on `tcp`.
    pub fn start(
        tcp: TcpListener,
        tls: Option<TlsAcceptor>,
        http: &HttpConfig,
    ) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let slots = Arc::new(Semaphore::new(http.max_connections.max(1)));
        let idle = Duration::from_secs(http.idle_timeout_secs.max(1));
        let handshake = Duration::from_secs(http.tls_handshake_timeout_secs.max(1));
        let accept = tokio::spawn(accept_loop(tcp, tls, slots, idle, handshake, tx));
        Ok(Self {
            ready,
            local,
            accept,
        })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    slots: Arc<Semaphore>,
    idle: Duration,
    handshake: Duration,
    tx: mpsc::Sender<(Connection, SocketAddr)>,
) {
    loop {
        // Wait for a free slot before accepting: past the limit, connections queue in
        // the kernel's backlog.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, addr) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, do not spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let tx = tx.clone();
        match &tls {
            None => {
                let conn = Connection {
                    stream: Stream::Plain(stream),
                    _slot: slot,
                    idle,
                    deadline: Box::pin(tokio::time::sleep(idle)),
                };
                if tx.send((conn, addr)).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let conn = Connection {
                                stream: Stream::Tls(Box::new(tls)),
                                _slot: slot,
                                idle,
                                deadline: Box::pin(tokio::time::sleep(idle)),
                            };
                            let _ = tx.send((conn, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

impl axum::serve::Listener for ServerListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task ended (the runtime is shutting down): never resolve.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
