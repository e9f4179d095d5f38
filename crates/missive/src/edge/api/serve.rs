//! Serving the API over TCP with the limits an open port needs: what the SMTP listener already
//! has, for HTTP.
//!
//! - A client must send a request's headers within `header_timeout` of connecting or of its
//!   previous response: a connection that sends half a header and stops, or sits idle between
//!   keep-alive requests, is closed then (hyper's header-read timer runs from the moment the
//!   connection waits for a request head, so one setting covers both).
//! - Connections are capped in all and per client address; one past a cap gets a 503 in our
//!   error shape and is closed, and costs no task.
//! - Request bodies held in memory at once are capped by a byte budget ([`BodyBudget`]): a
//!   request waits briefly for room, or gets a 503, so concurrent large bodies cannot grow the
//!   heap without bound.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::error::{ApiError, ErrorBody};
use crate::edge::slots::Slots;

/// The HTTP listener's limits.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// For a request's headers, from the connection's start or its previous response.
    pub header_timeout: Duration,
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections from one client address.
    pub max_connections_per_ip: usize,
}

/// Request body bytes that may be held in memory at once, over all requests.
#[derive(Debug)]
pub struct BodyBudget {
    /// One permit per KiB.
    kib: Semaphore,
    total_kib: u32,
    /// How long a request waits for room before it gets a 503.
    wait: Duration,
    /// A request without a `Content-Length` may grow to this; it holds that much.
    max_request_bytes: usize,
}

impl BodyBudget {
    #[must_use]
    pub fn new(bytes: usize, wait: Duration, max_request_bytes: usize) -> Self {
        let total_kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        Self {
            kib: Semaphore::new(total_kib as usize),
            total_kib,
            wait,
            max_request_bytes,
        }
    }
}

/// Holds room in the [`BodyBudget`] for a request's body from before it is read until its
/// response is made (the parsed body lives that long).
pub async fn hold_body_budget(
    State(budget): State<Arc<BodyBudget>>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let bytes = match declared {
        // Bodiless requests (most reads) take no room.
        Some(0) => return next.run(request).await,
        Some(n) => n.min(budget.max_request_bytes),
        // Chunked: it may grow to the limit.
        None if request.method() == axum::http::Method::GET => return next.run(request).await,
        None => budget.max_request_bytes,
    };
    let kib = u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, budget.total_kib);
    match tokio::time::timeout(budget.wait, budget.kib.acquire_many(kib)).await {
        Ok(Ok(_room)) => next.run(request).await,
        _ => {
            metrics::counter!("missive_http_body_budget_refusals_total").increment(1);
            let mut response = ApiError::Unavailable(
                "request bodies in memory are at their budget; retry shortly".to_owned(),
            )
            .into_response();
            // Not a server fault to log: the client is told to come back.
            response
                .extensions_mut()
                .remove::<super::error::ServerErrorDetail>();
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
            response
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let per_address: Arc<Slots<IpAddr>> = Arc::default();
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %err, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        drop(stream.set_nodelay(true));
        let Ok(permit) = open.clone().try_acquire_owned() else {
            metrics::counter!("missive_http_connections_refused_total", "why" => "total")
                .increment(1);
            tokio::spawn(refuse(stream, "too many open connections"));
            continue;
        };
        let Some(slot) = per_address.try_add(peer.ip(), limits.max_connections_per_ip) else {
            metrics::counter!("missive_http_connections_refused_total", "why" => "address")
                .increment(1);
            tracing::info!(%peer, "HTTP connection refused: too many from this address");
            tokio::spawn(refuse(
                stream,
                "too many open connections from this address",
            ));
            continue;
        };
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "HTTP connection ended with an error");
            }
            drop((permit, slot));
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Answers a connection we will not serve with a 503 in our error shape, and closes it.
async fn refuse(mut stream: TcpStream, message: &'static str) {
    let body = serde_json::to_string(&ErrorBody {
        status_code: 503,
        name: "service_unavailable",
        message: message.to_owned(),
    })
    .unwrap_or_default();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // Bounded: a client that does not read gets nothing more.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
