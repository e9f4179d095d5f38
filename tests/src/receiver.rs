//! An HTTP receiver for webhooks: a real server on loopback that records every request (its
//! headers and body) and answers as the test scripts it (a status, a redirect, or a stall past
//! the client's timeout); 200 once the script runs out.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    /// `302` to this location.
    Redirect(String),
    /// Waits this long, then answers 200.
    Stall(Duration),
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Hit {
    /// A header's value (names are lower case).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    hits: Mutex<Vec<Hit>>,
}

/// The running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// # Panics
    /// When loopback cannot be bound.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let app = Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { answer(&state, uri.path(), &headers, &body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("its address");
        let task = tokio::spawn(async move {
            drop(axum::serve(listener, app).await);
        });
        Self { addr, shared, task }
    }

    /// A URL on the receiver.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests like this, in order.
    ///
    /// # Panics
    /// When a lock is poisoned.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().expect("script").extend(replies);
    }

    /// Every request so far.
    ///
    /// # Panics
    /// When a lock is poisoned.
    #[must_use]
    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().expect("hits").clone()
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(shared: &Shared, path: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    shared.hits.lock().expect("hits").push(Hit {
        path: path.to_owned(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(body).into_owned(),
    });
    let reply = shared.script.lock().expect("script").pop_front();
    match reply.unwrap_or(Reply::Status(200)) {
        Reply::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            (status, format!("answered {code}")).into_response()
        }
        Reply::Redirect(location) => {
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
        Reply::Stall(wait) => {
            tokio::time::sleep(wait).await;
            (StatusCode::OK, "late").into_response()
        }
    }
}
