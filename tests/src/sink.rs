//! An SMTP sink on real TCP for delivery tests: it records what it receives and can be told to
//! answer each recipient with a sequence of codes (one per attempt), or to drop connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// How the sink behaves beyond plain SMTP.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// Offer STARTTLS.
    pub starttls: bool,
    /// TLS from the first byte (SMTPS).
    pub implicit_tls: bool,
    /// Require AUTH PLAIN with these credentials before MAIL.
    pub auth: Option<(String, String)>,
    /// Leave PIPELINING out of the EHLO reply (and count clients that pipeline anyway).
    pub no_pipelining: bool,
    /// Offer DSN (RFC 3461).
    pub dsn: bool,
}

/// One message as the sink received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// Whether the transaction ran under TLS.
    pub tls: bool,
    /// The user name the client authenticated as.
    pub auth_user: Option<String>,
    /// The message with dot-stuffing undone.
    pub data: Vec<u8>,
    /// The MAIL command and each accepted RCPT command as sent, parameters included.
    pub commands: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    received: Vec<Received>,
    /// Per recipient: replies to its next RCPT commands; 250 once exhausted.
    rcpt_replies: HashMap<String, Vec<String>>,
    drop_connections: usize,
    connections: usize,
    /// Commands that arrived behind another one although PIPELINING was not offered.
    unoffered_pipelining: usize,
}

/// A running sink; stops when dropped with its runtime.
#[derive(Debug, Clone)]
pub struct SmtpSink {
    pub addr: SocketAddr,
    /// PEM of the CA that signed the sink's certificate, when it speaks TLS.
    pub ca_pem: Option<String>,
    state: Arc<Mutex<State>>,
}

/// A CA and a certificate for 127.0.0.1 and localhost signed by it.
fn tls_material() -> (TlsAcceptor, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let key = rcgen::KeyPair::generate().expect("server key");
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("params");
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    let der_key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key DER");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der_key)
        .expect("server config");
    (TlsAcceptor::from(Arc::new(config)), ca.pem())
}

fn reply_text(code: u16) -> String {
    match code {
        200..=299 => format!("{code} 2.1.5 ok"),
        400..=499 => format!("{code} 4.3.0 try again later"),
        _ => format!("{code} 5.1.1 no such user"),
    }
}

impl SmtpSink {
    /// Binds a port on loopback and serves in the background.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start() -> Self {
        Self::start_with(SinkOptions::default()).await
    }

    /// Starts a sink with TLS and authentication options.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start_with(options: SinkOptions) -> Self {
        let (acceptor, ca_pem) = if options.starttls || options.implicit_tls {
            let (acceptor, pem) = tls_material();
            (Some(acceptor), Some(pem))
        } else {
            (None, None)
        };
        let options = Arc::new(options);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let addr = listener.local_addr().expect("sink addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                let drop_it = {
                    let mut s = state.lock().unwrap();
                    s.connections += 1;
                    if s.drop_connections > 0 {
                        s.drop_connections -= 1;
                        true
                    } else {
                        false
                    }
                };
                if drop_it {
                    drop(stream);
                    continue;
                }
                // Replies go out as written: with Nagle's algorithm a pipelining client waited
                // for a delayed ACK (about 40 ms) on every message.
                drop(stream.set_nodelay(true));
                let (acceptor, options) = (acceptor.clone(), options.clone());
                tokio::spawn(async move {
                    drop(session(stream, state, acceptor, options).await);
                });
            }
        });
        Self {
            addr,
            ca_pem,
            state,
        }
    }

    /// The relay URL that points Missive here.
    #[must_use]
    pub fn relay_url(&self) -> String {
        format!("smtp://{}?tls=none", self.addr)
    }

    /// Writes the CA to a file Missive can trust (`MISSIVE_RELAY_CA_FILE`).
    ///
    /// # Panics
    /// When the sink has no TLS or the file cannot be written.
    #[must_use]
    pub fn write_ca_file(&self) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("missive-sink-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&path, self.ca_pem.as_ref().expect("a TLS sink")).expect("write CA");
        path
    }

    /// Answers `recipient`'s next RCPT commands with `codes`, then 250 (a 5xx is `5.1.1 no
    /// such user`, a hard bounce).
    pub fn answer_rcpt(&self, recipient: &str, codes: &[u16]) {
        let replies: Vec<String> = codes.iter().map(|&c| reply_text(c)).collect();
        self.answer_rcpt_with(recipient, &replies);
    }

    /// Answers `recipient`'s next RCPT commands with these whole replies (`552 5.2.2 full`),
    /// then 250.
    pub fn answer_rcpt_with(&self, recipient: &str, replies: &[impl ToString]) {
        self.state.lock().unwrap().rcpt_replies.insert(
            recipient.to_owned(),
            replies.iter().map(ToString::to_string).collect(),
        );
    }

    /// Closes the next `n` connections right after accepting them.
    pub fn drop_next_connections(&self, n: usize) {
        self.state.lock().unwrap().drop_connections = n;
    }

    /// Everything received so far.
    #[must_use]
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Commands a client sent ahead of a reply although PIPELINING was not offered.
    #[must_use]
    pub fn unoffered_pipelining(&self) -> usize {
        self.state.lock().unwrap().unoffered_pipelining
    }

    /// Connections accepted so far.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }
}

async fn session(
    stream: TcpStream,
    state: Arc<Mutex<State>>,
    acceptor: Option<TlsAcceptor>,
    options: Arc<SinkOptions>,
) -> std::io::Result<()> {
    if options.implicit_tls {
        let tls = acceptor.expect("TLS material").accept(stream).await?;
        return conversation(&mut BufReader::new(tls), &state, &options, true, true)
            .await
            .map(drop);
    }
    let mut reader = BufReader::new(stream);
    if conversation(&mut reader, &state, &options, false, true).await? {
        // STARTTLS: whatever the client sent before the handshake is discarded.
        let tls = acceptor
            .expect("TLS material")
            .accept(reader.into_inner())
            .await?;
        conversation(&mut BufReader::new(tls), &state, &options, true, false).await?;
    }
    Ok(())
}

/// Runs commands until QUIT or EOF (false), or until a STARTTLS was accepted (true).
async fn conversation<S: AsyncRead + AsyncWrite + Unpin>(
    reader: &mut BufReader<S>,
    state: &Mutex<State>,
    options: &SinkOptions,
    tls: bool,
    greet: bool,
) -> std::io::Result<bool> {
    if greet {
        reader
            .get_mut()
            .write_all(b"220 sink.test ESMTP\r\n")
            .await?;
    }
    let offer_starttls = options.starttls && !tls;
    let mut mail_from = String::new();
    let mut rcpt_to: Vec<String> = Vec::new();
    let mut commands: Vec<String> = Vec::new();
    let mut auth_user: Option<String> = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(false);
        }
        if options.no_pipelining && !reader.buffer().is_empty() {
            state.lock().unwrap().unoffered_pipelining += 1;
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            let mut lines = vec!["250-sink.test", "250-8BITMIME", "250-SMTPUTF8"];
            if offer_starttls {
                lines.push("250-STARTTLS");
            }
            if options.auth.is_some() && !offer_starttls {
                lines.push("250-AUTH PLAIN");
            }
            if !options.no_pipelining {
                lines.push("250-PIPELINING");
            }
            if options.dsn {
                lines.push("250-DSN");
            }
            lines.push("250 ENHANCEDSTATUSCODES");
            lines.join("\r\n")
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            "250 ok".to_owned()
        } else if upper == "STARTTLS" && offer_starttls {
            reader
                .get_mut()
                .write_all(b"220 2.0.0 ready for TLS\r\n")
                .await?;
            return Ok(true);
        } else if upper.starts_with("AUTH PLAIN ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(command[11..].trim())
                .unwrap_or_default();
            let parts: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
            let given = (parts.len() == 3).then(|| {
                (
                    String::from_utf8_lossy(parts[1]).into_owned(),
                    String::from_utf8_lossy(parts[2]).into_owned(),
                )
            });
            match (&options.auth, given) {
                (Some(expected), Some(given)) if *expected == given => {
                    auth_user = Some(given.0);
                    "235 2.7.0 authenticated".to_owned()
                }
                _ => "535 5.7.8 bad credentials".to_owned(),
            }
        } else if upper.starts_with("MAIL FROM:") {
            if options.auth.is_some() && auth_user.is_none() {
                "530 5.7.0 authentication required".to_owned()
            } else {
                mail_from = address(&command);
                rcpt_to.clear();
                commands = vec![command.clone()];
                "250 2.1.0 ok".to_owned()
            }
        } else if upper.starts_with("RCPT TO:") {
            let recipient = address(&command);
            let reply = {
                let mut s = state.lock().unwrap();
                match s.rcpt_replies.get_mut(&recipient) {
                    Some(replies) if !replies.is_empty() => replies.remove(0),
                    _ => reply_text(250),
                }
            };
            if reply.starts_with('2') {
                rcpt_to.push(recipient);
                commands.push(command.clone());
            }
            reply
        } else if upper == "DATA" {
            if rcpt_to.is_empty() {
                "554 5.5.1 no valid recipients".to_owned()
            } else {
                reader.get_mut().write_all(b"354 go ahead\r\n").await?;
                let mut data = Vec::new();
                loop {
                    let mut raw = Vec::new();
                    if reader.read_until(b'\n', &mut raw).await? == 0 {
                        return Ok(false);
                    }
                    if raw == b".\r\n" {
                        break;
                    }
                    let unstuffed = if raw.starts_with(b"..") {
                        &raw[1..]
                    } else {
                        &raw[..]
                    };
                    data.extend_from_slice(unstuffed);
                }
                state.lock().unwrap().received.push(Received {
                    mail_from: mail_from.clone(),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    tls,
                    auth_user: auth_user.clone(),
                    data,
                    commands: std::mem::take(&mut commands),
                });
                "250 2.0.0 queued as sink".to_owned()
            }
        } else if upper == "RSET" {
            rcpt_to.clear();
            "250 ok".to_owned()
        } else if upper == "QUIT" {
            reader.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(false);
        } else {
            "502 5.5.2 not implemented".to_owned()
        };
        let mut out = reply.into_bytes();
        out.extend_from_slice(b"\r\n");
        reader.get_mut().write_all(&out).await?;
    }
}

fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..]
        .find('>')
        .map_or(command.len(), |i| start + i);
    command[start..end].to_owned()
}
