//! A minimal SMTP client for relaying, written for per-recipient results: each RCPT gets its own
//! reply and a rejected recipient never aborts the others (lettre aborts the whole transaction on
//! one rejection). Connections are reused across messages, under our own cap.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use secrecy::ExposeSecret;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use missive_core::routing::{RelayTls, SmtpRelay};

mod breaker;
mod conn;
mod transaction;

use self::breaker::Breaker;
use self::conn::{Connection, Stream};
pub use self::conn::{Reply, SmtpError};
use self::transaction::{Stage, transaction};
use crate::net::targets::Targets;

/// A message's envelope sender and what the relay is asked for about it.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    /// The reverse path: the email's return path, or its author's address.
    pub from: &'a str,
    /// The message needs SMTPUTF8.
    pub smtputf8: bool,
    /// Delivery status notifications to ask for, from a relay that offers DSN.
    pub dsn: Option<Dsn<'a>>,
}

/// What Missive asks a DSN-capable relay for (RFC 3461): reports of failures and delays (and of
/// success when `success`), with the headers only, the email's id as ENVID and each recipient
/// as ORCPT, so every report names what it is about.
#[derive(Clone, Copy, Debug)]
pub struct Dsn<'a> {
    pub envelope_id: &'a str,
    pub success: bool,
}

/// The result for one recipient of one attempt: the reply that decided it, or the failure.
#[derive(Debug)]
pub enum RecipientReply {
    Reply(Reply),
    Failed(String),
}

/// One step of a conversation as [`SmtpPool::verify`] reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Step {
    /// `connect`, `greeting`, `ehlo`, `starttls`, `tls`, `auth`.
    pub step: &'static str,
    pub ok: bool,
    /// The relay's reply (code and text), or what went wrong.
    pub detail: String,
}

/// What a conversation records of itself: nothing for deliveries, each step for a check.
struct Trace<'a>(Option<&'a mut Vec<Step>>);

impl Trace<'_> {
    fn step(&mut self, step: &'static str, ok: bool, detail: impl FnOnce() -> String) {
        if let Some(steps) = self.0.as_deref_mut() {
            steps.push(Step {
                step,
                ok,
                detail: detail(),
            });
        }
    }

    fn reply(&mut self, step: &'static str, ok: bool, reply: &Reply) {
        self.step(step, ok, || {
            format!("{} {}", reply.code, reply.text.replace('\n', " / "))
        });
    }

    /// Records a failed step and passes its error on.
    fn failed<T>(&mut self, step: &'static str, err: SmtpError) -> Result<T, SmtpError> {
        self.step(step, false, || err.to_string());
        Err(err)
    }
}

/// A relay with a pool of reusable connections, a cap on how many are open at once, and a
/// [`Breaker`].
pub struct SmtpPool {
    relay: SmtpRelay,
    tls: TlsConnector,
    helo: String,
    timeout: Duration,
    permits: Semaphore,
    idle: Mutex<Vec<Connection>>,
    /// For a tenant's own server: the address policy every connection's addresses must pass,
    /// resolved once per connection (as webhook endpoints are).
    policy: Option<Targets>,
    breaker: Breaker,
}

impl std::fmt::Debug for SmtpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpPool")
            .field("relay", &self.relay.addr())
            .field("available", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl SmtpPool {
    /// A pool for `relay`; `tls` holds the roots the relay's certificate must chain to.
    #[must_use]
    pub fn new(
        relay: SmtpRelay,
        tls: Arc<tokio_rustls::rustls::ClientConfig>,
        helo: String,
        max_connections: usize,
        timeout: Duration,
    ) -> Self {
        Self {
            relay,
            tls: TlsConnector::from(tls),
            helo,
            timeout,
            permits: Semaphore::new(max_connections.max(1)),
            idle: Mutex::new(Vec::new()),
            policy: None,
            breaker: Breaker::default(),
        }
    }

    /// Connections go only to addresses `policy` passes (a tenant-supplied host).
    #[must_use]
    pub fn with_policy(mut self, policy: Targets) -> Self {
        self.policy = Some(policy);
        self
    }

    /// `host:port`, for logs, errors and the route shown per recipient.
    #[must_use]
    pub fn addr(&self) -> String {
        self.relay.addr()
    }

    /// The TCP connection: to the host as named (the operator's relay), or to an address the
    /// policy passed, from one lookup (a tenant's server).
    async fn dial(&self) -> Result<TcpStream, SmtpError> {
        let addr = self.addr();
        let connect_error = |source| SmtpError::Connect {
            addr: addr.clone(),
            source,
        };
        let Some(policy) = &self.policy else {
            return TcpStream::connect((self.relay.host.as_str(), self.relay.port))
                .await
                .map_err(connect_error);
        };
        let ips = policy.connectable(&self.relay.host).await.map_err(|e| {
            connect_error(io::Error::new(
                io::ErrorKind::PermissionDenied,
                e.to_string(),
            ))
        })?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for ip in ips {
            match TcpStream::connect((ip, self.relay.port)).await {
                Ok(stream) => return Ok(stream),
                Err(err) => last = err,
            }
        }
        Err(connect_error(last))
    }

    async fn timed<T, E: From<SmtpError>>(
        &self,
        future: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        tokio::time::timeout(self.timeout, future)
            .await
            .unwrap_or_else(|_| {
                Err(SmtpError::Timeout {
                    addr: self.addr(),
                    timeout: self.timeout,
                }
                .into())
            })
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<Stream, SmtpError> {
        let name = ServerName::try_from(self.relay.host.clone())
            .map_err(|e| SmtpError::Tls(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        let tls = self.tls.connect(name, tcp).await.map_err(SmtpError::Tls)?;
        Ok(Stream::Tls(Box::new(tls)))
    }

    async fn ehlo(&self, conn: &mut Connection) -> Result<Reply, SmtpError> {
        let ehlo = conn.command(&format!("EHLO {}", self.helo)).await?;
        if ehlo.is_positive() {
            let upper = ehlo.text.to_ascii_uppercase();
            conn.smtputf8 = upper.lines().any(|l| l.get(4..) == Some("SMTPUTF8"));
            conn.eightbit = upper.lines().any(|l| l.get(4..) == Some("8BITMIME"));
            conn.pipelining = upper.lines().any(|l| l.get(4..) == Some("PIPELINING"));
            conn.dsn = upper.lines().any(|l| l.get(4..) == Some("DSN"));
        }
        Ok(ehlo)
    }

    async fn connect(&self) -> Result<Connection, SmtpError> {
        self.connect_traced(&mut Trace(None)).await
    }

    /// Connects, greets, starts TLS as configured and logs in, recording each step in `trace`.
    async fn connect_traced(&self, trace: &mut Trace<'_>) -> Result<Connection, SmtpError> {
        let stream = match self.timed(self.dial()).await {
            Ok(stream) => stream,
            Err(err) => return trace.failed("connect", err),
        };
        trace.step("connect", true, || {
            stream
                .peer_addr()
                .map_or_else(|_| self.addr(), |a| a.to_string())
        });
        stream.set_nodelay(true)?;
        let conversation = async {
            let stream = match self.relay.tls {
                RelayTls::Tls => match self.handshake(stream).await {
                    Ok(stream) => {
                        trace.step("tls", true, || "implicit TLS established".into());
                        stream
                    }
                    Err(err) => return trace.failed("tls", err),
                },
                RelayTls::None | RelayTls::StartTls => Stream::Plain(stream),
            };
            let mut conn = Connection::new(stream);
            let greeting = conn.read_reply().await?;
            trace.reply("greeting", greeting.code == 220, &greeting);
            if greeting.code != 220 {
                return Err(SmtpError::Refused(greeting));
            }
            let mut ehlo = self.ehlo(&mut conn).await?;
            trace.reply("ehlo", ehlo.is_positive(), &ehlo);
            if self.relay.tls == RelayTls::StartTls {
                let offered = ehlo.is_positive()
                    && ehlo
                        .text
                        .to_ascii_uppercase()
                        .lines()
                        .any(|l| l.get(4..) == Some("STARTTLS"));
                if !offered {
                    return trace.failed("starttls", SmtpError::NoStartTls);
                }
                let reply = conn.command("STARTTLS").await?;
                trace.reply("starttls", reply.code == 220, &reply);
                if reply.code != 220 {
                    return Err(SmtpError::Refused(reply));
                }
                // Anything buffered before the handshake is discarded, as RFC 3207 requires.
                let Stream::Plain(tcp) = conn.stream.into_inner() else {
                    return Err(SmtpError::Protocol("STARTTLS on a TLS connection".into()));
                };
                let stream = match self.handshake(tcp).await {
                    Ok(stream) => stream,
                    Err(err) => return trace.failed("tls", err),
                };
                trace.step("tls", true, || "TLS established".into());
                conn = Connection::new(stream);
                ehlo = self.ehlo(&mut conn).await?;
                trace.reply("ehlo", ehlo.is_positive(), &ehlo);
            }
            if !ehlo.is_positive() {
                let helo = conn.command(&format!("HELO {}", self.helo)).await?;
                trace.reply("helo", helo.is_positive(), &helo);
                if !helo.is_positive() {
                    return Err(SmtpError::Refused(helo));
                }
            }
            if let Some(credentials) = &self.relay.credentials {
                let token = base64::engine::general_purpose::STANDARD.encode(format!(
                    "\0{}\0{}",
                    credentials.username,
                    credentials.password.expose_secret()
                ));
                let auth = conn.command(&format!("AUTH PLAIN {token}")).await?;
                trace.reply("auth", auth.code == 235, &auth);
                if auth.code != 235 {
                    return Err(SmtpError::Refused(auth));
                }
            }
            Ok(conn)
        };
        let result = self.timed(conversation).await;
        if let Err(err @ (SmtpError::Timeout { .. } | SmtpError::Io(_) | SmtpError::Protocol(_))) =
            &result
        {
            trace.step("conversation", false, || err.to_string());
        }
        result
    }

    /// Goes through the steps a delivery would (connect, greeting, EHLO, STARTTLS, login) and
    /// reports each, then says QUIT. Whether every step passed, and the steps.
    pub async fn verify(&self) -> (bool, Vec<Step>) {
        let mut steps = Vec::new();
        let result = self.connect_traced(&mut Trace(Some(&mut steps))).await;
        let ok = match result {
            Ok(mut conn) => {
                let _ = self.timed(conn.command("QUIT")).await;
                true
            }
            Err(_) => false,
        };
        (ok && steps.iter().all(|s| s.ok), steps)
    }

    /// Sends one message to some recipients and returns one reply per recipient, in order.
    /// Never fails as a whole: a broken conversation becomes a failure for each recipient that
    /// had no final answer yet.
    pub async fn send(
        &self,
        envelope: &Envelope<'_>,
        recipients: &[String],
        mime: &[u8],
    ) -> Vec<RecipientReply> {
        if let Err(open) = self.breaker.admit() {
            metrics::counter!("missive_route_paused_attempts_total").increment(1);
            let message = format!(
                "not tried: the relay {} failed {} connections in a row; next try in {}s",
                self.addr(),
                open.failures,
                open.retry_in.as_secs().max(1)
            );
            return recipients
                .iter()
                .map(|_| RecipientReply::Failed(message.clone()))
                .collect();
        }
        let Ok(_permit) = self.permits.acquire().await else {
            return recipients
                .iter()
                .map(|_| RecipientReply::Failed("relay pool closed".into()))
                .collect();
        };
        // A pooled connection may have been closed by the relay while idle: if it fails before
        // any recipient was accepted, try once more on a fresh one.
        let pooled = self.idle.lock().await.pop();
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => match self.connect().await {
                Ok(conn) => conn,
                Err(err) => {
                    self.breaker.record(false);
                    return recipients
                        .iter()
                        .map(|_| RecipientReply::Failed(err.to_string()))
                        .collect();
                }
            },
        };
        let mut replies: Vec<Option<RecipientReply>> = recipients.iter().map(|_| None).collect();
        let mut retry_on_fresh = reused;
        let outcome = loop {
            let outcome = self
                .timed(transaction(
                    &mut conn,
                    envelope,
                    recipients,
                    mime,
                    &mut replies,
                ))
                .await;
            if !(retry_on_fresh && matches!(outcome, Err(Stage::BeforeRecipients(_)))) {
                break outcome;
            }
            retry_on_fresh = false;
            match self.connect().await {
                Ok(fresh) => conn = fresh,
                Err(err) => break Err(Stage::BeforeRecipients(err)),
            }
        };
        // The route works unless no connection could be used at all.
        self.breaker
            .record(!matches!(outcome, Err(Stage::BeforeRecipients(_))));
        match outcome {
            Ok(()) => self.idle.lock().await.push(conn),
            Err(stage) => {
                let message = stage.into_error().to_string();
                for reply in &mut replies {
                    if reply.is_none() {
                        *reply = Some(RecipientReply::Failed(message.clone()));
                    }
                }
            }
        }
        replies
            .into_iter()
            .map(|r| r.unwrap_or_else(|| RecipientReply::Failed("no reply".into())))
            .collect()
    }
}
