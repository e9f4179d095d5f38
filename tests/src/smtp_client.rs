//! A small SMTP client for protocol tests: raw lines in, whole replies out, over any stream
//! (an in-memory duplex served by the application's session code, or TCP), with STARTTLS.

use std::net::SocketAddr;
use std::sync::Arc;

use missive::edge::smtp::{Listener, SmtpContext, serve_connection};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio_rustls::TlsConnector;

/// Anything the client can talk over.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One reply: its code and its lines' text (after the code and separator).
#[derive(Debug, Clone)]
pub struct SmtpReply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl SmtpReply {
    /// All lines joined, for assertions on the text.
    #[must_use]
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A client session.
pub struct SmtpClient {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for SmtpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpClient").finish_non_exhaustive()
    }
}

impl SmtpClient {
    /// A session served in-process over an in-memory stream, as if from `peer`.
    #[must_use]
    pub fn in_memory(ctx: Arc<SmtpContext>, peer: &str, listener: Listener) -> Self {
        let (client, server): (DuplexStream, DuplexStream) = tokio::io::duplex(1 << 20);
        let peer: SocketAddr = format!("{peer}:40000").parse().expect("peer address");
        tokio::spawn(serve_connection(ctx, server, peer, listener));
        Self::over(Box::new(client))
    }

    /// A session over TCP.
    ///
    /// # Panics
    /// When the connection fails.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        Self::over(Box::new(stream))
    }

    /// A session over implicit TLS.
    ///
    /// # Panics
    /// When the connection or the handshake fails.
    pub async fn connect_tls(addr: SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let tls = connector()
            .connect(ServerName::try_from("localhost").expect("name"), stream)
            .await
            .expect("TLS handshake");
        Self::over(Box::new(tls))
    }

    fn over(stream: Box<dyn Stream>) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes raw bytes.
    ///
    /// # Panics
    /// When the write fails.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    /// Reads one whole reply; `None` when the server closed the connection.
    pub async fn read_reply(&mut self) -> Option<SmtpReply> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            let code = line.get(..3)?.parse().ok()?;
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line.get(4..).unwrap_or_default().to_owned());
            if last {
                return Some(SmtpReply { code, lines });
            }
        }
    }

    async fn read_line(&mut self) -> Option<String> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                return Some(String::from_utf8_lossy(&line[..pos]).into_owned());
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(
                std::time::Duration::from_secs(20),
                self.stream.read(&mut chunk),
            )
            .await
            .expect("a reply within 20 s")
            .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads a reply and checks its code.
    ///
    /// # Panics
    /// On another code or a closed connection.
    pub async fn expect(&mut self, code: u16) -> SmtpReply {
        let reply = self
            .read_reply()
            .await
            .expect("a reply, not a closed connection");
        assert_eq!(reply.code, code, "unexpected reply: {reply:?}");
        reply
    }

    /// Sends one command line and checks the reply's code.
    pub async fn cmd(&mut self, line: &str, code: u16) -> SmtpReply {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.expect(code).await
    }

    /// Whether the server has closed the connection (after any replies still buffered).
    pub async fn closed(&mut self) -> bool {
        self.read_reply().await.is_none()
    }

    /// STARTTLS and the handshake; the caller sends EHLO again.
    ///
    /// # Panics
    /// When the server refuses or the handshake fails.
    pub async fn starttls(self) -> Self {
        let mut this = self;
        this.cmd("STARTTLS", 220).await;
        this.finish_starttls().await
    }

    /// The TLS handshake after the server's 220 to STARTTLS was read.
    ///
    /// # Panics
    /// When the server sent more in clear text, or the handshake fails.
    pub async fn finish_starttls(self) -> Self {
        assert!(
            self.buf.is_empty(),
            "nothing may follow the 220 in clear text"
        );
        let tls = connector()
            .connect(
                ServerName::try_from("localhost").expect("name"),
                self.stream,
            )
            .await
            .expect("TLS handshake");
        Self::over(Box::new(tls))
    }

    /// EHLO, STARTTLS, EHLO and AUTH PLAIN with `key`: ready for MAIL.
    pub async fn authenticated(self, key: &str) -> Self {
        let mut this = self;
        this.expect(220).await;
        this.cmd("EHLO client.test", 250).await;
        let mut this = this.starttls().await;
        this.cmd("EHLO client.test", 250).await;
        this.cmd(&format!("AUTH PLAIN {}", plain(key)), 235).await;
        this
    }

    /// One whole transaction; returns the final reply (after the message text).
    pub async fn send_mail(&mut self, from: &str, to: &[&str], message: &str) -> SmtpReply {
        self.cmd(&format!("MAIL FROM:<{from}>"), 250).await;
        for rcpt in to {
            self.cmd(&format!("RCPT TO:<{rcpt}>"), 250).await;
        }
        self.cmd("DATA", 354).await;
        self.send(message.as_bytes()).await;
        let end: &[u8] = if message.ends_with("\r\n") {
            b".\r\n"
        } else {
            b"\r\n.\r\n"
        };
        self.send(end).await;
        self.read_reply().await.expect("a reply to the message")
    }
}

/// The id in `250 2.0.0 Queued as <id>`.
///
/// # Panics
/// When the reply is not that.
#[must_use]
pub fn queued_id(reply: &SmtpReply) -> String {
    assert_eq!(reply.code, 250, "{reply:?}");
    reply.lines[0]
        .strip_prefix("2.0.0 Queued as ")
        .unwrap_or_else(|| panic!("not a queued reply: {reply:?}"))
        .to_owned()
}

/// The AUTH PLAIN response for any username and `password`.
#[must_use]
pub fn plain(password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0user\0{password}"))
}

/// A TLS client that accepts any certificate: the listeners' certificate is self-signed.
#[must_use]
pub fn connector() -> TlsConnector {
    let config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

#[derive(Debug)]
struct AcceptAny;

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
