//! One connection to a relay: the stream before or after TLS, and reading replies and writing
//! commands on it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream, ReadBuf,
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// An SMTP reply: its code and its text (continuation lines joined with newlines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    pub(super) fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

/// Why a conversation broke off. Every variant is temporary for the recipients involved.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("cannot connect to the relay {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("the relay {addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("connection to the relay lost: {0}")]
    Io(#[from] io::Error),
    #[error("the relay sent a malformed reply: {0:?}")]
    Protocol(String),
    #[error("the relay refused us: {} {}", .0.code, .0.text)]
    Refused(Reply),
    #[error("the relay does not offer STARTTLS, and tls=starttls requires it")]
    NoStartTls,
    #[error("TLS with the relay failed: {0}")]
    Tls(io::Error),
}

/// A connection to the relay, before or after TLS.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The longest reply line we read; a relay sending more is broken.
const MAX_REPLY_LINE: usize = 4096;

pub(super) struct Connection {
    pub(super) stream: BufStream<Stream>,
    pub(super) smtputf8: bool,
    pub(super) eightbit: bool,
    /// RFC 2920: the envelope goes out in one write and its replies are read after.
    pub(super) pipelining: bool,
    /// RFC 3461: the relay takes NOTIFY, ORCPT, RET and ENVID.
    pub(super) dsn: bool,
}

impl Connection {
    /// A connection over `stream` before EHLO said what the relay offers.
    pub(super) fn new(stream: Stream) -> Self {
        Self {
            stream: BufStream::new(stream),
            smtputf8: false,
            eightbit: false,
            pipelining: false,
            dsn: false,
        }
    }
}

impl Connection {
    pub(super) async fn read_reply(&mut self) -> Result<Reply, SmtpError> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = (&mut self.stream)
                .take(MAX_REPLY_LINE as u64)
                .read_line(&mut line)
                .await?;
            if n == 0 {
                return Err(SmtpError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "relay closed the connection",
                )));
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| SmtpError::Protocol(line.to_owned()))?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(line);
            if !more {
                return Ok(Reply { code, text });
            }
        }
    }

    pub(super) async fn write_line(&mut self, line: &str) -> Result<(), SmtpError> {
        self.stream.write_all(line.as_bytes()).await?;
        self.stream.write_all(b"\r\n").await?;
        Ok(())
    }

    pub(super) async fn command(&mut self, line: &str) -> Result<Reply, SmtpError> {
        self.write_line(line).await?;
        self.stream.flush().await?;
        self.read_reply().await
    }
}
