//! SMTP submission: listeners on `MISSIVE_SMTP_ADDR` (STARTTLS offered) and `MISSIVE_SMTPS_ADDR`
//! (implicit TLS), feeding the same accept path (`crate::ingest`), queue, ids and events as the
//! REST API.
//!
//! - Who may submit: a client that AUTHenticated under TLS with a tenant key holding the `send`
//!   scope, or a client whose address is in a tenant's trusted networks (looked up once per
//!   connection, through the key cache, which network changes empty). Anyone else gets 530 at
//!   MAIL: never an open relay.
//! - Connection limits: a total cap and a per-address cap; a client over either gets 421 while the
//!   others are served.
//! - The inbound MX ([`Listener::Mx`]) is the same session without AUTH, taking only what
//!   comes back to Missive ([`crate::edge::mx`]; its stages in `inbound`).
//! - Shutdown: listeners stop accepting; idle sessions get 421 at once; a session inside a
//!   transaction may finish it until the shutdown timeout, then gets 421.

mod auth;
mod bdat;
mod data;
mod ehlo;
mod inbound;
mod mail;
mod rcpt;
pub mod reply;
pub mod session;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use missive_core::{TenantId, TenantStatus};
use missive_store::Store;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use session::{Ended, Sender, Session};

use crate::edge::mx::Mx;
use crate::edge::rate_limit::{CallerRates, RateLimits};
use crate::edge::slots::Slots;
use crate::ingest::Ingest;
use crate::tenancy::credentials;
use crate::tenancy::keys::KeyCache;

/// How long a client may take over the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the grace period, how long sessions get to write their 421 and close.
pub const FORCE_STOP_TIME: Duration = Duration::from_secs(2);

/// Which listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Plain text first, STARTTLS offered.
    Submission,
    /// TLS from the first byte.
    Submissions,
    /// The inbound MX ([`crate::edge::mx`]): plain text first, STARTTLS offered, no AUTH;
    /// takes only what comes back to Missive.
    Mx,
}

/// Limits of the SMTP submission listeners (the limits of a message are the accept path's).
#[derive(Debug, Clone)]
pub struct SmtpLimits {
    /// Open sessions across all clients.
    pub max_connections: usize,
    /// Open sessions from one address; more get 421 while the others are served.
    pub max_connections_per_ip: usize,
    /// Open sessions of one tenant; more are closed with 421 once the tenant is known.
    pub max_sessions_per_tenant: usize,
    /// Refused commands before the session is closed with 421.
    pub max_errors: usize,
    /// Waiting for the client's next input.
    pub idle_timeout: Duration,
    /// The whole session, however busy.
    pub session_timeout: Duration,
}

/// What every session shares.
pub struct SmtpContext {
    pub store: Store,
    /// The one accept path, shared with the API; its limits also bound SIZE, DATA and RCPT.
    pub ingest: Ingest,
    pub keys: KeyCache,
    /// Our name in the greeting, EHLO and Received headers.
    pub hostname: String,
    pub limits: SmtpLimits,
    pub tls: TlsAcceptor,
    /// Stop accepting; sessions outside a transaction close with 421.
    pub shutdown: CancellationToken,
    /// The grace period is over: every session closes with 421.
    pub force_stop: CancellationToken,
    /// Request rate limits, shared with the API: each MAIL FROM counts as a request.
    pub rates: Arc<RateLimits>,
    /// Open sessions per tenant.
    pub tenant_sessions: Arc<Slots<TenantId>>,
    /// What the MX listener does with what it takes; `None` when this process runs no MX.
    pub mx: Option<Arc<Mx>>,
}

impl std::fmt::Debug for SmtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpContext")
            .field("hostname", &self.hostname)
            .field("limits", &self.limits)
            .field("accept", self.ingest.limits())
            .finish_non_exhaustive()
    }
}

/// Serves one connection: the TLS handshake for implicit TLS, the session, and after STARTTLS
/// the handshake and a fresh session over TLS.
pub async fn serve_connection<S>(
    ctx: Arc<SmtpContext>,
    stream: S,
    peer: SocketAddr,
    listener: Listener,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    // Nobody submits through the MX: a trusted network means nothing there.
    let trusted = match listener {
        Listener::Mx => Ok(None),
        Listener::Submission | Listener::Submissions => trusted_sender(&ctx.keys, peer.ip()).await,
    };
    let trusted = trusted.unwrap_or_else(|err| {
        tracing::error!(error = %err, "trusted network lookup failed; treating the client as untrusted");
        None
    });
    if let Some(sender) = &trusted {
        tracing::Span::current().record("tenant_id", tracing::field::display(sender.tenant_id));
    }
    let result = match listener {
        Listener::Submissions => match handshake(&ctx.tls, stream).await {
            Some(tls) => Session::new(ctx.clone(), tls, peer, listener, true, trusted)
                .run(true)
                .await
                .map(|_| ()),
            None => Ok(()),
        },
        Listener::Submission | Listener::Mx => {
            match Session::new(ctx.clone(), stream, peer, listener, false, trusted)
                .run(true)
                .await
            {
                Ok(Ended::StartTls(stream, trusted)) => match handshake(&ctx.tls, stream).await {
                    Some(tls) => {
                        Session::new(ctx.clone(), tls, peer, listener, true, trusted.map(|t| *t))
                            .run(false)
                            .await
                            .map(|_| ())
                    }
                    None => Ok(()),
                },
                Ok(Ended::Closed) => Ok(()),
                Err(err) => Err(err),
            }
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "SMTP session ended by an I/O error");
    }
}

async fn handshake<S>(
    acceptor: &TlsAcceptor,
    stream: S,
) -> Option<tokio_rustls::server::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(err)) => {
            tracing::info!(error = %err, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!("TLS handshake timed out");
            None
        }
    }
}

/// The tenant whose trusted networks hold `ip`, if it is active.
async fn trusted_sender(
    keys: &KeyCache,
    ip: IpAddr,
) -> Result<Option<Sender>, missive_store::StoreError> {
    Ok(keys
        .find_trusted(ip)
        .await?
        .filter(|t| t.tenant_status == TenantStatus::Active)
        .map(|t| Sender {
            tenant_id: t.tenant_id,
            project_id: t.project_id,
            sending: t.sending,
            via: format!("trusted network {}", t.network),
            key_id: None,
            rates: CallerRates {
                tenant: credentials::per_minute(t.requests_per_minute),
                key: None,
            },
            place: None,
        }))
}

/// The listeners, bound and ready to serve.
#[derive(Debug)]
pub struct SmtpServer {
    ctx: Arc<SmtpContext>,
    listeners: Vec<(TcpListener, SocketAddr, Listener)>,
}

impl SmtpServer {
    #[must_use]
    pub fn new(ctx: Arc<SmtpContext>, listeners: Vec<(TcpListener, SocketAddr, Listener)>) -> Self {
        Self { ctx, listeners }
    }

    /// The address of the listener of `kind`, when this server has one.
    #[must_use]
    pub fn addr(&self, kind: Listener) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(_, _, k)| *k == kind)
            .map(|(_, addr, _)| *addr)
    }

    #[must_use]
    pub fn context(&self) -> Arc<SmtpContext> {
        self.ctx.clone()
    }

    /// Accepts until `ctx.shutdown` fires, then waits up to `grace` for open sessions before
    /// telling the rest to close.
    pub async fn run(self, grace: Duration) {
        let ctx = self.ctx;
        let per_address: Arc<Slots<IpAddr>> = Arc::default();
        let mut sessions = JoinSet::new();
        for (_, addr, kind) in &self.listeners {
            let what = match kind {
                Listener::Submission => "SMTP submission listening (STARTTLS)",
                Listener::Submissions => "SMTP submission listening (implicit TLS)",
                Listener::Mx => "inbound MX listening",
            };
            tracing::info!(%addr, "{what}");
        }
        let listeners = self.listeners;
        loop {
            let (accepted, listener) = tokio::select! {
                () = ctx.shutdown.cancelled() => break,
                Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
                accepted = accept_any(&listeners) => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %err, "SMTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            drop(stream.set_nodelay(true));
            if sessions.len() >= ctx.limits.max_connections {
                sessions.spawn(refuse(stream, reply::SERVER_BUSY));
                continue;
            }
            let Some(slot) = per_address.try_add(peer.ip(), ctx.limits.max_connections_per_ip)
            else {
                tracing::info!(%peer, "SMTP connection refused: too many from this address");
                sessions.spawn(refuse(stream, reply::TOO_MANY_CONNECTIONS));
                continue;
            };
            let span = tracing::info_span!("smtp", %peer, tenant_id = tracing::field::Empty);
            let ctx = ctx.clone();
            sessions.spawn(
                async move {
                    // A session's state machine is some 20 KB: on the heap, once per connection,
                    // rather than moved around inside this task.
                    Box::pin(serve_connection(ctx, stream, peer, listener)).await;
                    drop(slot);
                }
                .instrument(span),
            );
        }
        drop(listeners);
        let drained = tokio::time::timeout(grace, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            ctx.force_stop.cancel();
            // Each session writes its 421 and closes; give them a moment to do so.
            drop(
                tokio::time::timeout(FORCE_STOP_TIME, async {
                    while sessions.join_next().await.is_some() {}
                })
                .await,
            );
        }
        tracing::info!("SMTP listeners stopped");
    }
}

/// The next connection on any of `listeners`, and which one it came in on.
async fn accept_any(
    listeners: &[(TcpListener, SocketAddr, Listener)],
) -> (std::io::Result<(TcpStream, SocketAddr)>, Listener) {
    std::future::poll_fn(|cx| {
        for (listener, _, kind) in listeners {
            if let std::task::Poll::Ready(accepted) = listener.poll_accept(cx) {
                return std::task::Poll::Ready((accepted, *kind));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Answers a connection we will not serve with `reply` and closes it.
async fn refuse(mut stream: TcpStream, reply: reply::Reply) {
    let mut out = Vec::new();
    reply.write_to(&mut out);
    drop(stream.write_all(&out).await);
    drop(stream.shutdown().await);
}
