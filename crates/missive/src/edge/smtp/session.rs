//! One SMTP session: the state machine, input framing, pipelined replies, timeouts and shutdown.
//!
//! The shape follows Stalwart's: a [`State`] enum drives the session; the envelope being built
//! ([`Envelope`]) is kept apart from what the session has established about its client
//! ([`Session::client`]) and from the limits ([`SmtpLimits`]). Each stage lives in its own module
//! (`ehlo`, `auth`, `mail`, `rcpt`, `data`, `bdat`) as methods on [`Session`]. A complete
//! message leaves the session as a raw message for the one accept path (`crate::ingest`).
//!
//! Pipelining: replies are collected and written when the input buffer is empty, so a client
//! that pipelines gets its replies in one write, and one that does not gets each at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use missive_core::{ApiKeyId, EmailAddress, ProjectId, ProjectRef, SendingPolicy, TenantId};
use smtp_proto::request::receiver::DataReceiver;
use smtp_proto::{Error as ProtoError, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::bdat::ChunkState;
use super::reply::{self, Reply};
use super::{Listener, SmtpContext};
use crate::edge::mx::Inbound;
use crate::edge::rate_limit::CallerRates;
use crate::edge::slots::Slot;

/// The longest command line, CRLF included (RFC 5321 4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;

/// What the session is waiting for.
#[derive(Debug)]
pub enum State {
    /// A command line.
    Command,
    /// A line that went over the limit: everything up to its end is dropped, then 500.
    DiscardLine,
    /// Message text after DATA, until CRLF.CRLF.
    Data(DataState),
    /// A chunk after BDAT, by its length.
    Chunk(ChunkState),
    /// The next line of an AUTH exchange.
    Auth(AuthStep),
}

/// Message text being received.
pub struct DataState {
    pub receiver: DataReceiver,
    pub message: Vec<u8>,
    /// Set once the text went over the size limit; the rest is read and dropped.
    pub too_big: bool,
}

impl std::fmt::Debug for DataState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataState")
            .field("bytes", &self.message.len())
            .field("too_big", &self.too_big)
            .finish_non_exhaustive()
    }
}

/// Where an AUTH exchange is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// PLAIN without an initial response: the next line is the response.
    PlainResponse,
    /// LOGIN: the next line is the username.
    LoginUsername,
    /// LOGIN: the next line is the password.
    LoginPassword,
}

/// Whom the client submits for, and why we believe it.
#[derive(Debug, Clone)]
pub struct Sender {
    pub tenant_id: TenantId,
    /// The project the session sends as: its key's, or the one its trusted network names.
    pub project_id: ProjectId,
    pub sending: SendingPolicy,
    /// `auth` for an API key, or the trusted network the client's address is in.
    pub via: String,
    /// The API key that authenticated the session, if one did.
    pub key_id: Option<ApiKeyId>,
    /// The tenant's and the key's request rate limits: each transaction counts as a request.
    pub rates: CallerRates,
    /// The session's place among its tenant's open sessions, once taken.
    pub place: Option<Arc<Slot<TenantId>>>,
}

impl Sender {
    /// The project the session sends as.
    #[must_use]
    pub const fn project(&self) -> ProjectRef {
        ProjectRef {
            tenant_id: self.tenant_id,
            project_id: self.project_id,
        }
    }
}

/// The transaction being built: MAIL FROM, then RCPT TO, then DATA (or BDAT chunks).
#[derive(Default)]
pub struct Envelope {
    /// `None` for the null reverse path (`MAIL FROM:<>`), which only the MX takes.
    pub mail_from: Option<EmailAddress>,
    /// MAIL was accepted: a transaction is open.
    pub started: bool,
    pub smtputf8: bool,
    pub recipients: Vec<EmailAddress>,
    /// On the MX: what each recipient is to it, in the order of `recipients`.
    pub inbound: Vec<Inbound>,
    /// The text received so far by BDAT; `None` until the first chunk.
    pub chunks: Option<Vec<u8>>,
}

impl std::fmt::Debug for Envelope {
    // Message text never reaches logs: only its size.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("mail_from", &self.mail_from)
            .field("smtputf8", &self.smtputf8)
            .field("recipients", &self.recipients)
            .field("chunk_bytes", &self.chunks.as_ref().map(Vec::len))
            .finish()
    }
}

/// What the client has established in this session.
#[derive(Debug, Default)]
pub struct Client {
    /// The EHLO or HELO argument; `None` until one was sent.
    pub helo: Option<String>,
    pub esmtp: bool,
    /// Set by a successful AUTH.
    pub authenticated: Option<Sender>,
    /// Set when the client's address is in a tenant's trusted networks.
    pub trusted: Option<Sender>,
}

impl Client {
    /// The tenant mail is submitted for: AUTH wins over a trusted network.
    #[must_use]
    pub fn sender(&self) -> Option<&Sender> {
        self.authenticated.as_ref().or(self.trusted.as_ref())
    }
}

/// How a session ended.
#[derive(Debug)]
pub enum Ended<S> {
    /// Closed (QUIT, timeout, error limit, shutdown or the client left).
    Closed,
    /// The client asked for STARTTLS: the caller runs the handshake and a fresh session.
    /// (The sender boxed: a session ends this way once, and the enum stays small.)
    StartTls(S, Option<Box<Sender>>),
}

/// What handling one command asks the loop to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    Close,
    StartTls,
}

/// One session over any byte stream (TCP, TLS, or an in-memory duplex in tests).
#[derive(Debug)]
pub struct Session<S> {
    pub(super) ctx: Arc<SmtpContext>,
    pub(super) stream: S,
    pub(super) peer: SocketAddr,
    pub(super) listener: Listener,
    /// TLS is active (implicit, or after STARTTLS).
    pub(super) tls: bool,
    pub(super) state: State,
    pub(super) client: Client,
    pub(super) envelope: Envelope,
    pub(super) errors: usize,
    pub(super) input: Vec<u8>,
    pub(super) pos: usize,
    pub(super) out: Vec<u8>,
    pub(super) deadline: Instant,
    /// The username given in an AUTH LOGIN exchange (ignored: the password is the key).
    pub(super) login_user: Option<String>,
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Takes a place among the sender's tenant's open sessions, unless it holds one; false
    /// (and the client told, and the session to close) when the tenant has no place left.
    pub(super) fn hold_tenant_place(&mut self) -> bool {
        let ctx = self.ctx.clone();
        let sender = match (&mut self.client.authenticated, &mut self.client.trusted) {
            (Some(sender), _) | (None, Some(sender)) => sender,
            (None, None) => return true,
        };
        if sender.place.is_some() {
            return true;
        }
        match ctx
            .tenant_sessions
            .try_add(sender.tenant_id, ctx.limits.max_sessions_per_tenant)
        {
            Some(slot) => {
                sender.place = Some(Arc::new(slot));
                true
            }
            None => {
                tracing::info!(tenant_id = %sender.tenant_id, peer = %self.peer, "SMTP session refused: the tenant has too many open");
                metrics::counter!("missive_smtp_tenant_session_refusals_total").increment(1);
                self.reply(&reply::TOO_MANY_TENANT_SESSIONS);
                false
            }
        }
    }

    /// A session on a new connection (`tls` when the stream is already encrypted).
    pub fn new(
        ctx: Arc<SmtpContext>,
        stream: S,
        peer: SocketAddr,
        listener: Listener,
        tls: bool,
        trusted: Option<Sender>,
    ) -> Self {
        let deadline = Instant::now() + ctx.limits.session_timeout;
        Self {
            ctx,
            stream,
            peer,
            listener,
            tls,
            state: State::Command,
            client: Client {
                trusted,
                ..Client::default()
            },
            envelope: Envelope::default(),
            errors: 0,
            input: Vec::with_capacity(4096),
            pos: 0,
            out: Vec::with_capacity(1024),
            deadline,
            login_user: None,
        }
    }

    /// Greets the client, then serves it until it leaves or asks for STARTTLS.
    ///
    /// # Errors
    /// I/O errors on the stream (a client that vanished is not an error: it ends the session).
    pub async fn run(mut self, greet: bool) -> std::io::Result<Ended<S>> {
        if greet {
            let greeting = Reply::plain(220, format!("{} ESMTP Missive ready", self.ctx.hostname));
            self.reply(&greeting);
        }
        loop {
            match self.process_input().await? {
                Next::Continue => {}
                Next::Close => {
                    self.flush().await?;
                    return Ok(Ended::Closed);
                }
                Next::StartTls => {
                    self.flush().await?;
                    // Anything pipelined after STARTTLS was sent in clear text and is
                    // discarded (the CVE-2011-0411 class of injection).
                    return Ok(Ended::StartTls(
                        self.stream,
                        self.client.trusted.map(Box::new),
                    ));
                }
            }
            self.flush().await?;
            if self.transaction_open() && self.ctx.shutdown.is_cancelled() {
                // Draining: open transactions may finish, within the grace period.
            } else if self.ctx.shutdown.is_cancelled() {
                self.reply(&reply::SHUTTING_DOWN);
                self.flush().await?;
                return Ok(Ended::Closed);
            }
            match self.read_more().await? {
                Some(0) | None => return Ok(Ended::Closed),
                Some(_) => {}
            }
        }
    }

    /// Whether a transaction is in progress (MAIL given, or message text being read).
    fn transaction_open(&self) -> bool {
        self.envelope.started || matches!(self.state, State::Data(_) | State::Chunk(_))
    }

    /// Reads more input, or ends the session on idle timeout, session timeout or shutdown.
    /// `None` when the session was ended here (its 421 is already written).
    async fn read_more(&mut self) -> std::io::Result<Option<usize>> {
        if self.pos > 0 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 8192];
        let idle = tokio::time::sleep(self.ctx.limits.idle_timeout);
        let ending = if self.transaction_open() {
            // An open transaction may finish after shutdown starts; the hard stop still ends it.
            self.ctx.force_stop.clone()
        } else {
            self.ctx.shutdown.clone()
        };
        let ended = tokio::select! {
            read = self.stream.read(&mut chunk) => {
                let n = match read {
                    Ok(n) => n,
                    // A reset or a TLS alert from a client that left: nothing to answer.
                    Err(_) => return Ok(None),
                };
                self.input.extend_from_slice(&chunk[..n]);
                return Ok(Some(n));
            }
            () = idle => &reply::IDLE_TIMEOUT,
            () = tokio::time::sleep_until(self.deadline) => &reply::SESSION_TIMEOUT,
            () = ending.cancelled() => &reply::SHUTTING_DOWN,
        };
        self.reply(ended);
        // Best effort: the client may be gone already.
        drop(self.flush().await);
        Ok(None)
    }

    /// Handles every complete unit of input in the buffer.
    async fn process_input(&mut self) -> std::io::Result<Next> {
        loop {
            let next = match &mut self.state {
                State::Data(_) => {
                    let Some(next) = self.receive_data().await else {
                        return Ok(Next::Continue);
                    };
                    next
                }
                State::Chunk(_) => {
                    let Some(next) = self.receive_chunk().await else {
                        return Ok(Next::Continue);
                    };
                    next
                }
                State::DiscardLine => {
                    let Some(nl) = memchr(b'\n', &self.input[self.pos..]) else {
                        self.pos = self.input.len();
                        return Ok(Next::Continue);
                    };
                    self.pos += nl + 1;
                    self.state = State::Command;
                    self.refuse(&reply::LINE_TOO_LONG)
                }
                State::Command | State::Auth(_) => {
                    let rest = &self.input[self.pos..];
                    let Some(nl) = memchr(b'\n', rest) else {
                        if rest.len() > MAX_COMMAND_LINE {
                            self.pos = self.input.len();
                            self.state = State::DiscardLine;
                        }
                        return Ok(Next::Continue);
                    };
                    let line = rest[..=nl].to_vec();
                    self.pos += nl + 1;
                    if line.len() > MAX_COMMAND_LINE {
                        self.refuse(&reply::LINE_TOO_LONG)
                    } else if let State::Auth(step) = &self.state {
                        let step = step.clone();
                        self.auth_line(step, &line).await
                    } else {
                        self.command(&line).await
                    }
                }
            };
            if next != Next::Continue {
                return Ok(next);
            }
        }
    }

    /// Parses and dispatches one command line.
    async fn command(&mut self, line: &[u8]) -> Next {
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request,
            Err(err) => return self.refuse(&syntax_reply(&err)),
        };
        match request {
            Request::Ehlo { host } => self.ehlo(&host, true),
            Request::Helo { host } => self.ehlo(&host, false),
            Request::Lhlo { .. } => self.refuse(&reply::NOT_IMPLEMENTED),
            Request::StartTls => self.starttls(),
            Request::Auth { .. } if self.listener == Listener::Mx => {
                self.refuse(&reply::NOT_IMPLEMENTED)
            }
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, &initial_response).await,
            Request::Mail { from } if self.listener == Listener::Mx => self.inbound_mail(&from),
            Request::Rcpt { to } if self.listener == Listener::Mx => self.inbound_rcpt(&to).await,
            Request::Mail { from } => {
                // The tenant's verified domains, which its senders may use; the accept path
                // checks again, so a database failure here only forgoes the early answer.
                let keys = match self.client.sender() {
                    Some(sender) => self
                        .ctx
                        .ingest
                        .domains()
                        .signing_keys(sender.tenant_id)
                        .await
                        .ok(),
                    None => None,
                };
                self.mail(&from, keys.as_deref())
            }
            Request::Rcpt { to } => self.rcpt(&to),
            Request::Data => self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last),
            Request::Rset => {
                self.envelope = Envelope::default();
                self.reply(&reply::OK);
                Next::Continue
            }
            Request::Noop { .. } => {
                self.reply(&reply::OK);
                Next::Continue
            }
            Request::Vrfy { .. } => {
                self.reply(&reply::VRFY);
                Next::Continue
            }
            Request::Help { .. } => {
                self.reply(&reply::HELP);
                Next::Continue
            }
            Request::Quit => {
                self.reply(&reply::BYE);
                Next::Close
            }
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => self.refuse(&reply::NOT_IMPLEMENTED),
        }
    }

    /// Queues a reply for the next write.
    pub(super) fn reply(&mut self, reply: &Reply) {
        reply.write_to(&mut self.out);
    }

    /// Queues a refusal and counts it; closes the session at the error limit.
    pub(super) fn refuse(&mut self, refusal: &Reply) -> Next {
        self.reply(refusal);
        self.errors += 1;
        if self.errors >= self.ctx.limits.max_errors {
            self.reply(&reply::TOO_MANY_ERRORS);
            return Next::Close;
        }
        Next::Continue
    }

    /// Writes the queued replies, unless more pipelined input is already waiting: its replies
    /// then go out together.
    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.out).await;
        self.out.clear();
        match result {
            Ok(()) => self.stream.flush().await,
            Err(err) => Err(err),
        }
    }

    /// How long the session may still run; for logging.
    #[must_use]
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

pub(super) fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// The reply for a line smtp-proto could not parse.
fn syntax_reply(err: &ProtoError) -> Reply {
    match err {
        ProtoError::UnknownCommand => reply::UNKNOWN_COMMAND,
        ProtoError::InvalidSenderAddress => {
            Reply::new(501, "5.1.7", "Invalid sender address syntax")
        }
        ProtoError::InvalidRecipientAddress => {
            Reply::new(501, "5.1.3", "Invalid recipient address syntax")
        }
        ProtoError::SyntaxError { syntax } => {
            Reply::owned(501, "5.5.2", format!("Syntax error, expected: {syntax}"))
        }
        ProtoError::InvalidParameter { param } => {
            Reply::owned(501, "5.5.4", format!("Invalid parameter `{param}`"))
        }
        ProtoError::UnsupportedParameter { param } => Reply::owned(
            504,
            "5.5.4",
            format!(
                "Unsupported parameter `{}`",
                param.chars().take(64).collect::<String>()
            ),
        ),
        ProtoError::ResponseTooLong => reply::LINE_TOO_LONG,
        ProtoError::NeedsMoreData { .. } | ProtoError::InvalidResponse { .. } => {
            Reply::new(500, "5.5.2", "Syntax error")
        }
    }
}
