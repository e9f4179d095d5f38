//! The web console at `/console`: server-rendered pages for the operator (tenants, the queue,
//! delivery rate) and for tenants (emails and their timelines, templates with a live preview,
//! webhook endpoints and their events, domains, usage).
//!
//! Pages are drawn from the same handlers the REST API answers with: a tenant's console request
//! calls the API handler with the session's [`TenantAuth`], so scopes, row-level security and
//! the 404 for another tenant's id are the API's own. Templates escape every value (handlebars'
//! HTML escaping); charts are SVG drawn here from numbers only; the two static files are served
//! from the binary. No script runs but our own (a strict Content-Security-Policy), and the pages
//! refuse to be framed.

mod charts;
mod operator;
mod projects;
mod received;
mod session;
mod tenant;
mod views;

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use missive_store::Store;
use tokio_util::sync::CancellationToken;

pub use self::session::{ConsoleError, Posted, Session, Viewer};
use crate::edge::state::AppState;

/// How often the activity figures are sampled when no operator page asks first.
pub const ROLLUP_EVERY: Duration = Duration::from_secs(30);

/// The console's routes, under `/console`.
pub fn router(state: AppState) -> Router {
    let pages = Router::new()
        .route("/", get(home))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/assets/{file}", get(asset))
        .route("/operator", get(operator::overview))
        .route("/operator/tenants/{id}", get(operator::tenant))
        .route(
            "/operator/tenants/{id}/smtp/verify",
            post(operator::verify_smtp),
        )
        .route("/emails", get(tenant::emails))
        .route("/emails/{id}", get(tenant::email))
        .route("/templates", get(tenant::templates))
        .route(
            "/templates/{id}",
            get(tenant::template).post(tenant::save_template),
        )
        .route("/templates/{id}/preview", post(tenant::preview_template))
        .route("/templates/{id}/publish", post(tenant::publish_template))
        .route("/webhooks", get(tenant::webhooks))
        .route("/webhooks/{id}", get(tenant::webhook))
        .route(
            "/webhooks/{id}/events/{event_id}",
            get(tenant::webhook_event),
        )
        .route(
            "/webhooks/{id}/events/{event_id}/replay",
            post(tenant::replay_webhook_event),
        )
        .route("/domains", get(tenant::domains))
        .route("/domains/{id}", get(tenant::domain))
        .route("/domains/{id}/verify", post(tenant::verify_domain))
        .route("/received", get(received::list))
        .route("/received/{id}", get(received::view))
        .route("/usage", get(tenant::usage))
        .route("/projects", get(projects::list))
        .route("/projects/switch", post(projects::switch))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(security_headers));
    Router::new().nest("/console", pages)
}

/// Samples the activity figures every [`ROLLUP_EVERY`] until `stop`.
pub async fn roll_up_activity(store: Store, stop: CancellationToken) {
    let mut tick = tokio::time::interval(ROLLUP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        sample_activity(&store).await;
    }
}

/// One sample of the activity figures; a failure is logged, and the pages show the last sample.
/// Another process sampling at the same time serves as well.
async fn sample_activity(store: &Store) {
    if let Err(err) = store.roll_up_activity().await {
        tracing::warn!(error = %err, "could not sample the console's activity figures");
    }
}

/// The console's front door: the signed-in viewer's first page, or the sign-in form.
async fn home(session: Option<Session>) -> Redirect {
    match session.map(|s| s.viewer) {
        Some(Viewer::Operator) => Redirect::to("/console/operator"),
        Some(Viewer::Tenant(_)) => Redirect::to("/console/emails"),
        None => Redirect::to("/console/login"),
    }
}

async fn not_found(session: Option<Session>) -> Response {
    views::error_page(
        session.as_ref(),
        StatusCode::NOT_FOUND,
        "There is no such page.",
    )
}

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

/// The Content-Security-Policy of every console response: our own script and styles only, no
/// inline script, no plugins, no framing by anyone, forms posted to us only. A template preview
/// is an `iframe` with `srcdoc` and an empty `sandbox`, which inherits this policy.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(CACHE_CONTROL) {
        // Pages show a tenant's data: never from a shared cache or the back button of the next
        // person at the desk.
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
