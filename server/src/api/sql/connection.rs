//! One client connection, from the TCP accept to the close.
//!
//! `pgwire` negotiates TLS and decodes messages; this module runs the message loop
//! itself so that it can bound what a client may make the server hold:
//!
//! - every message's length is read from its header as the bytes arrive, and a
//!   message longer than `sql.max_message_bytes` ends the connection with a `54000`
//!   error before its body is buffered (the protocol allows 1 GiB per message, which
//!   `max_connections` clients could send at once);
//! - the login (startup and password) must finish within [`LOGIN_TIMEOUT`];
//! - a session idle for `sql.idle_session_timeout_secs` is closed with `57P05`, as
//!   PostgreSQL's `idle_session_timeout` does.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

/// Time a client has to finish its login, from the TCP accept.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What one connection may hold and how long it may wait.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest message a client may send, in bytes (length header included).
    pub max_message_bytes: usize,
    /// Longest a session may sit idle between statements (`None`: no limit).
    pub idle_timeout: Option<Duration>,
}

/// A message too long for `sql.max_message_bytes`, found from its header.
#[derive(Debug)]
struct TooLong {
    length: u64,
    limit: usize,
}

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a message of {} bytes is longer than sql.max_message_bytes ({} bytes)",
            self.length, self.limit
        )
    }
}

impl std::error::Error for TooLong {}

/// Follows the message framing of the bytes a client sends: the first message
/// (startup or cancel request, after any TLS negotiation) is a 4-byte length and a
/// body, every later one a type byte, a 4-byte length and a body. The length counts
/// itself but not the type byte.
#[derive(Debug)]
struct Frames {
    limit: usize,
    typed: bool,
    header: [u8; 5],
    have: usize,
    remaining: u64,
}

impl Frames {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            typed: false,
            header: [0; 5],
            have: 0,
            remaining: 0,
        }
    }

    /// Takes the next bytes of the stream; fails at the header of a message that is
    /// over the limit.
    fn observe(&mut self, mut data: &[u8]) -> Result<(), TooLong> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= n as u64;
                data = &data[n..];
                continue;
            }
            let size = if self.typed { 5 } else { 4 };
            let n = (size - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have < size {
                return Ok(());
            }
            let mut length = [0; 4];
            length.copy_from_slice(&self.header[size - 4..size]);
            let length = u64::from(u32::from_be_bytes(length));
            if length > self.limit as u64 {
                return Err(TooLong {
                    length,
                    limit: self.limit,
                });
            }
            // A length under 4 is malformed; the decoder reports it.
            self.remaining = length.saturating_sub(4);
            self.have = 0;
            self.typed = true;
        }
        Ok(())
    }
}

/// The client's stream, with every byte read passed through [`Frames`].
struct Limited<S> {
    io: S,
    frames: Frames,
}

impl<S: AsyncRead + Unpin> AsyncRead for Limited<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                match this.frames.observe(read) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(e) => Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e))),
                }
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Limited<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The message too long for the limit, if that is what `e` is.
fn too_long(e: &PgWireError) -> Option<&TooLong> {
    match e {
        PgWireError::IoError(e) => e.get_ref().and_then(|i| i.downcast_ref::<TooLong>()),
        _ => None,
    }
}

/// Serves one connection with `handlers` until the client leaves, breaks a limit, or
/// the connection fails.
pub async fn serve<H: PgWireServerHandlers>(
    tcp: TcpStream,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    handlers: H,
    limits: ConnectionLimits,
) -> io::Result<()> {
    let login = tokio::time::sleep(LOGIN_TIMEOUT);
    tokio::pin!(login);
    let negotiated = tokio::select! {
        _ = &mut login => return Ok(()),
        socket = negotiate_tls(tcp, tls) => socket?,
    };
    // A direct TLS connection without a certificate configured.
    let Some(socket) = negotiated else {
        return Ok(());
    };
    let old = socket.into_parts();
    let mut frames = Frames::new(limits.max_message_bytes);
    let early = frames.observe(&old.read_buf);
    let mut parts = FramedParts::new(Limited { io: old.io, frames }, old.codec);
    parts.read_buf = old.read_buf;
    parts.write_buf = old.write_buf;
    let mut socket = Framed::from_parts(parts);
    if let Err(e) = early {
        return refuse(&mut socket, "54000", &e.to_string()).await;
    }

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let on_error = handlers.error_handler();
    loop {
        let message = match socket.state() {
            PgWireConnectionState::AwaitingStartup
            | PgWireConnectionState::AuthenticationInProgress => {
                tokio::select! {
                    _ = &mut login => return Ok(()),
                    m = socket.next() => m,
                }
            }
            PgWireConnectionState::ReadyForQuery if limits.idle_timeout.is_some() => {
                let idle = limits.idle_timeout.unwrap_or_default();
                match tokio::time::timeout(idle, socket.next()).await {
                    Ok(m) => m,
                    Err(_) => {
                        return refuse(
                            &mut socket,
                            "57P05",
                            "terminating connection due to idle-session timeout \
                             (sql.idle_session_timeout_secs)",
                        )
                        .await;
                    }
                }
            }
            _ => socket.next().await,
        };
        let message = match message {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                if let Some(t) = too_long(&e) {
                    let text = t.to_string();
                    return refuse(&mut socket, "54000", &text).await;
                }
                return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
            }
            None => return Ok(()),
        };
        // Terminate: the client is leaving; dropping the socket closes it.
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            return Ok(());
        }
        let extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        if let Err(mut e) = process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await
        {
            on_error.on_error(&socket, &mut e);
            process_error(&mut socket, e, extended_query).await?;
        }
    }
}

/// Sends a FATAL error with `code` and closes the connection.
async fn refuse<S, C>(socket: &mut Framed<S, C>, code: &str, message: &str) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: tokio_util::codec::Encoder<PgWireBackendMessage, Error = io::Error>,
{
    let info = ErrorInfo::new("FATAL".into(), code.into(), message.into());
    // The client may already be gone; the connection closes either way.
    let _ = socket
        .send(PgWireBackendMessage::ErrorResponse(info.into()))
        .await;
    let _ = socket.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn should_follow_frames_split_anywhere_and_refuse_a_long_header() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&12u32.to_be_bytes());
        stream.extend_from_slice(&[0, 3, 0, 0, 0, 0, 0, 0]);
        stream.extend(typed(b'Q', b"SELECT 1\0"));
        stream.extend(typed(b'p', &[7; 90]));
        for split in 1..stream.len() {
            let mut f = Frames::new(100);
            f.observe(&stream[..split]).unwrap();
            f.observe(&stream[split..]).unwrap();
            assert_eq!(
                (f.have, f.remaining, f.typed),
                (0, 0, true),
                "split {split}"
            );
        }
        // The header of a 101-byte message is refused before its body arrives.
        let mut f = Frames::new(100);
        f.observe(&stream).unwrap();
        let mut long = vec![b'Q'];
        long.extend_from_slice(&101u32.to_be_bytes());
        let e = f.observe(&long).unwrap_err();
        assert_eq!((e.length, e.limit), (101, 100));
        // So is a startup message claiming 1 GiB.
        let e = Frames::new(100)
            .observe(&(1u32 << 30).to_be_bytes())
            .unwrap_err();
        assert_eq!(e.length, 1 << 30);
    }
}
