//! Posting one signed webhook to a tenant's endpoint, safely.
//!
//! - The connection goes only to addresses the target policy passed: host names are resolved by
//!   a resolver hook that asks [`Targets::connectable`] (one lookup, every address checked, those
//!   very addresses used), and IP literals, which the hook never sees, are checked before the
//!   request. No proxy from the environment.
//! - Redirects are not followed (a 3xx is a failed attempt); connect timeout and whole-request
//!   timeout are bounded; at most a small excerpt of the response body is read.
//! - Both header sets carry the same values: `svix-*` for Resend's and Svix's verifiers,
//!   `webhook-*` for Standard Webhooks'.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use reqwest::redirect::Policy;

use crate::net::targets::{TargetError, Targets, parse_url};

/// Limits of one attempt.
#[derive(Clone, Copy, Debug)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Bytes of the response body kept for the attempt's record.
    pub max_response_bytes: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            max_response_bytes: 1024,
        }
    }
}

/// What one signed post carries.
#[derive(Debug)]
pub struct Signed<'a> {
    pub url: &'a str,
    /// `msg_...`: the same on every attempt of one event.
    pub id: &'a str,
    pub timestamp: i64,
    pub body: &'a [u8],
    /// One `v1,...` signature per live secret, space separated.
    pub signature: &'a str,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The endpoint's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The start of the response body, or why there was no response.
    pub response: String,
    pub duration: Duration,
}

impl Attempt {
    /// A 2xx answer.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// `410 Gone`: the endpoint asks not to be called again.
    #[must_use]
    pub fn gone(&self) -> bool {
        self.status == Some(410)
    }
}

/// The resolver hook: a host name becomes only the addresses the policy passed.
struct Vetting(Targets);

impl Resolve for Vetting {
    fn resolve(&self, name: Name) -> Resolving {
        let targets = self.0.clone();
        Box::pin(async move {
            let ips = targets.connectable(name.as_str()).await?;
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Posts signed webhooks.
#[derive(Clone, Debug)]
pub struct WebhookClient {
    http: reqwest::Client,
    targets: Targets,
    settings: ClientSettings,
}

impl WebhookClient {
    /// # Errors
    /// When the HTTP client cannot be built (no TLS provider installed).
    pub fn new(targets: Targets, settings: ClientSettings) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(Vetting(targets.clone())))
            .redirect(Policy::none())
            .no_proxy()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .pool_max_idle_per_host(4)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            targets,
            settings,
        })
    }

    /// One attempt; never an error, the outcome says what happened.
    pub async fn post(&self, signed: &Signed<'_>) -> Attempt {
        let started = Instant::now();
        let failed = |response: String| Attempt {
            status: None,
            response,
            duration: started.elapsed(),
        };
        let url = match parse_url(signed.url) {
            Ok(url) => url,
            Err(e) => return failed(e.to_string()),
        };
        if let Err(e) = self.targets.check_literal(&url) {
            return failed(e.to_string());
        }
        let headers = match headers(signed) {
            Ok(headers) => headers,
            Err(e) => return failed(e),
        };
        let sent = self
            .http
            .post(url)
            .headers(headers)
            .body(signed.body.to_vec())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => return failed(describe(&e)),
        };
        let status = response.status().as_u16();
        let mut excerpt = Vec::new();
        // Only the start of the body: an endpoint cannot make us read more.
        while excerpt.len() < self.settings.max_response_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        excerpt.truncate(self.settings.max_response_bytes);
        Attempt {
            status: Some(status),
            response: String::from_utf8_lossy(&excerpt).into_owned(),
            duration: started.elapsed(),
        }
    }
}

fn headers(signed: &Signed<'_>) -> Result<HeaderMap, String> {
    let value = |text: &str| HeaderValue::from_str(text).map_err(|e| e.to_string());
    let timestamp = signed.timestamp.to_string();
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static("Missive-Webhooks/1"));
    for (id, time, signature) in [
        ("svix-id", "svix-timestamp", "svix-signature"),
        ("webhook-id", "webhook-timestamp", "webhook-signature"),
    ] {
        headers.insert(id, value(signed.id)?);
        headers.insert(time, value(&timestamp)?);
        headers.insert(signature, value(signed.signature)?);
    }
    Ok(headers)
}

/// A failed request in words, with the policy's refusal when that is what stopped it.
fn describe(err: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<TargetError>() {
            return refused.to_string();
        }
        source = e.source();
    }
    if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        format!("could not connect: {err}")
    } else {
        err.to_string()
    }
}
