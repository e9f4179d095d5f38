//! The HTTP API: routes, the OpenAPI document generated from them, and the edge middleware every
//! response passes through (request ids, tracing spans, metrics, panic and error handling).

pub mod api_keys;
pub mod auth;
pub mod document;
pub mod domains;
pub mod emails;
pub mod error;
pub mod extract;
pub mod health;
pub mod own_projects;
pub mod projects;
pub mod receiving;
pub mod serve;
pub mod suppressions;
pub mod templates;
pub mod tenant;
pub mod tenants;
pub mod usage;
pub mod webhooks;

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use self::auth::RateHeaders;
use self::error::{ApiError, ServerErrorDetail};
use self::serve::{BodyBudget, hold_body_budget};
use crate::edge::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Missive",
        description = "Multi-tenant transactional email relay. Request shapes follow Resend's API, \
                       so Resend SDKs work when pointed at this server's /v1."
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "admin", description = "Operator routes, authenticated with MISSIVE_ADMIN_KEY"),
        (name = "tenant", description = "The calling tenant"),
        (name = "projects", description = "The calling tenant's projects, for a key with `projects:manage`"),
        (name = "api-keys", description = "The calling tenant's API keys (Resend-compatible)"),
        (name = "emails", description = "Send and read emails (Resend-compatible)"),
        (name = "templates", description = "The calling tenant's templates (Resend-compatible), and shipped ones"),
        (name = "webhooks", description = "The calling tenant's webhook endpoints (Resend-compatible)"),
        (name = "domains", description = "The calling tenant's sending domains: DKIM keys, DNS records, verification (Resend-compatible)"),
        (name = "receiving", description = "Mail received for the calling tenant's domains (Resend-compatible)"),
        (name = "suppressions", description = "The calling tenant's suppression list (Resend-compatible)"),
        (name = "usage", description = "The calling tenant's usage and quotas (Resend-compatible)"),
        (name = "health", description = "Probes and metrics"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The operator's MISSIVE_ADMIN_KEY"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A tenant API key (msv_...)"))
                    .build(),
            ),
        );
    }
}

/// The application's routes and their OpenAPI document.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(tenants::create_tenant, tenants::list_tenants))
        .routes(routes!(
            tenants::get_tenant,
            tenants::update_tenant,
            tenants::delete_tenant
        ))
        .routes(routes!(
            api_keys::admin_create_api_key,
            api_keys::admin_list_api_keys
        ))
        .routes(routes!(api_keys::admin_revoke_api_key))
        .routes(routes!(api_keys::create_api_key, api_keys::list_api_keys))
        .routes(routes!(api_keys::revoke_api_key))
        .routes(routes!(tenant::current_tenant))
        .routes(routes!(
            projects::admin_create_project,
            projects::admin_list_projects
        ))
        .routes(routes!(
            projects::admin_get_project,
            projects::admin_update_project,
            projects::admin_delete_project
        ))
        .routes(routes!(
            projects::admin_create_project_key,
            projects::admin_list_project_keys
        ))
        .routes(routes!(projects::admin_revoke_project_key))
        .routes(routes!(
            own_projects::list_projects,
            own_projects::create_project
        ))
        .routes(routes!(own_projects::projects_usage))
        .routes(routes!(
            own_projects::get_project,
            own_projects::update_project
        ))
        .routes(routes!(
            own_projects::create_project_key,
            own_projects::list_project_keys
        ))
        .routes(routes!(own_projects::revoke_project_key))
        .routes(routes!(emails::send_email, emails::list_emails))
        .routes(routes!(emails::send_batch))
        .routes(routes!(emails::get_email))
        .routes(routes!(receiving::list_received))
        .routes(routes!(receiving::get_received))
        .routes(routes!(receiving::get_received_raw))
        .routes(routes!(receiving::list_received_attachments))
        .routes(routes!(receiving::get_received_attachment))
        .routes(routes!(receiving::download_received_attachment))
        .routes(routes!(emails::cancel_email))
        .routes(routes!(
            templates::create_template,
            templates::list_templates
        ))
        .routes(routes!(
            templates::get_template,
            templates::update_template,
            templates::delete_template
        ))
        .routes(routes!(templates::publish_template))
        .routes(routes!(templates::duplicate_template))
        .routes(routes!(templates::render_template))
        .routes(routes!(webhooks::create_webhook, webhooks::list_webhooks))
        .routes(routes!(
            webhooks::get_webhook,
            webhooks::update_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::rotate_webhook_secret))
        .routes(routes!(webhooks::list_webhook_events))
        .routes(routes!(webhooks::get_webhook_event))
        .routes(routes!(webhooks::list_webhook_attempts))
        .routes(routes!(webhooks::replay_webhook_event))
        .routes(routes!(webhooks::test_webhook))
        .routes(routes!(
            suppressions::add_suppression,
            suppressions::list_suppressions
        ))
        .routes(routes!(
            suppressions::get_suppression,
            suppressions::remove_suppression
        ))
        .routes(routes!(domains::create_domain, domains::list_domains))
        .routes(routes!(
            domains::get_domain,
            domains::update_domain,
            domains::delete_domain
        ))
        .routes(routes!(domains::verify_domain))
        .routes(routes!(domains::rotate_domain))
        .routes(routes!(tenants::verify_tenant_smtp))
        .routes(routes!(usage::get_usage))
        .routes(routes!(usage::get_tenant_usage))
        .routes(routes!(emails::admin_list_emails))
        .routes(routes!(emails::admin_get_email))
        .routes(routes!(suppressions::add_suppressions))
        .routes(routes!(suppressions::remove_suppressions))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
}

/// The OpenAPI document, as served at `/openapi.json`.
#[must_use]
pub fn openapi() -> serde_json::Value {
    document::complete(&routes().into_openapi())
}

/// The whole HTTP service: routes, `/openapi.json`, `/docs`, the console, and the edge layers,
/// with request bodies held in memory at once kept within `budget`.
pub fn router(state: AppState, max_request_bytes: usize, budget: Arc<BodyBudget>) -> Router {
    let console = crate::edge::console::router(state.clone());
    let (routes, openapi) = routes().with_state(state).split_for_parts();
    // Served as completed JSON: utoipa's model has no place for some of what the completion
    // states (`anyOf` beside properties, for one).
    let openapi = document::complete(&openapi);
    let app = routes
        .merge(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", openapi))
        .merge(console)
        .layer(axum::middleware::from_fn_with_state(
            budget,
            hold_body_budget,
        ));
    with_edge(app, max_request_bytes)
}

/// Wraps any router in Missive's edge: JSON 404/405, body limit, metrics, 5xx logging, panics as
/// JSON 500, request ids and tracing spans. Public so tests can put a deliberately failing route
/// behind the very same layers.
pub fn with_edge(router: Router, max_request_bytes: usize) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(observe))
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request| {
                            let request_id = request
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("");
                            tracing::info_span!(
                                "http",
                                method = %request.method(),
                                path = %request.uri().path(),
                                request_id,
                                tenant_id = tracing::field::Empty,
                                email_id = tracing::field::Empty,
                            )
                        })
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(CatchPanicLayer::custom(panic_response)),
        )
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[allow(clippy::needless_pass_by_value)] // the signature CatchPanicLayer requires
fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned());
    tracing::error!(panic = %detail, "request handler panicked");
    let mut response = ApiError::Internal(detail).into_response();
    // Already logged above; keep the 5xx logger from writing it twice.
    response.extensions_mut().remove::<ServerErrorDetail>();
    response
}

/// Counts requests and logs each server error once, with its detail; puts the rate limit state
/// a tenant's authentication left into the response's headers.
async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let rate = RateHeaders::default();
    request.extensions_mut().insert(rate.clone());
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let mut response = next.run(request).await;
    if let Some(state) = rate.get()
        && !response.headers().contains_key("ratelimit-limit")
    {
        error::rate_limit_headers(response.headers_mut(), state);
    }
    let status = response.status();
    if let Some(ServerErrorDetail(detail)) = response.extensions().get::<ServerErrorDetail>() {
        tracing::error!(status = status.as_u16(), error = %detail, "server error");
    }
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("missive_http_requests_total", &labels).increment(1);
    metrics::histogram!("missive_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
