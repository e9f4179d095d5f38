//! `/v1/webhooks`: Resend's Webhooks API for a tenant's endpoints (create, get, list, update,
//! delete, rotate the signing secret; an endpoint's events, their attempts, replay) and our
//! `test`. Scope `webhooks:manage`.

use axum::Json;
use axum::extract::State;
use missive_core::webhook::message_id;
use missive_core::{Scope, WebhookEventType};
use missive_store::{WebhookEventRecord, WebhookRecord};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::TenantAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, page, page_limit};
use crate::state::AppState;
use crate::webhooks::dispatcher::body_of;
use crate::webhooks::{Endpoint, EndpointChange, WebhookError};

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        match err {
            WebhookError::Invalid(_) | WebhookError::Target(_) => Self::Validation(err.to_string()),
            WebhookError::NoSecretKey => Self::Unavailable(err.to_string()),
            WebhookError::Sealed(_) => Self::Internal(err.to_string()),
            WebhookError::Store(store) => store.into(),
        }
    }
}

/// `POST /v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// An http or https URL on a public address (loopback and private ranges only where the
    /// operator allows them; link-local never).
    #[schema(max_length = 2048)]
    pub endpoint: String,
    /// The event types to receive.
    #[schema(min_items = 1)]
    pub events: Vec<WebhookEventType>,
}

/// `PATCH /v1/webhooks/{id}`: what it names is replaced.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    /// The path's id again, as the Resend SDKs send it; another id is refused.
    pub webhook_id: Option<Uuid>,
    #[schema(max_length = 2048)]
    pub endpoint: Option<String>,
    #[schema(min_items = 1)]
    pub events: Option<Vec<WebhookEventType>>,
    pub status: Option<WebhookStatus>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookStatus {
    Enabled,
    Disabled,
}

impl WebhookStatus {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
        }
    }

    fn of(record: &WebhookRecord) -> Self {
        if record.status == "enabled" {
            Self::Enabled
        } else {
            Self::Disabled
        }
    }
}

/// An endpoint (Resend's shape, with our `tenant_id` and `disabled_reason`).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Always `webhook`.
    #[schema(example = "webhook")]
    pub object: &'static str,
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub endpoint: String,
    pub events: Vec<String>,
    pub status: WebhookStatus,
    /// Why Missive disabled it (`410 Gone`, no success for days); null when the tenant did.
    pub disabled_reason: Option<String>,
    /// `whsec_...`; null in listings.
    pub signing_secret: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

fn view(record: WebhookRecord, signing_secret: Option<String>) -> WebhookView {
    WebhookView {
        object: "webhook",
        id: record.id,
        tenant_id: record.tenant_id,
        status: WebhookStatus::of(&record),
        endpoint: record.endpoint,
        events: record.events,
        disabled_reason: record.disabled_reason,
        signing_secret,
        created_at: record.created_at,
    }
}

/// The answer to a create or a rotation: the endpoint's id and its (new) secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSecretView {
    #[schema(example = "webhook")]
    pub object: &'static str,
    pub id: Uuid,
    /// `whsec_...`: the key of the HMAC-SHA256 signatures.
    pub signing_secret: String,
}

fn secret_view(endpoint: Endpoint) -> Json<WebhookSecretView> {
    Json(WebhookSecretView {
        object: "webhook",
        id: endpoint.record.id,
        signing_secret: endpoint.signing_secret,
    })
}

/// The answer to an update.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookRefView {
    #[schema(example = "webhook")]
    pub object: &'static str,
    pub id: Uuid,
}

/// The answer to a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedWebhook {
    #[schema(example = "webhook")]
    pub object: &'static str,
    pub id: Uuid,
    pub deleted: bool,
}

/// A page of endpoints, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<WebhookView>,
    pub has_more: bool,
}

/// Paging for `GET /v1/webhooks`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListWebhooksQuery {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// Endpoints older than this id (the last id of the previous page).
    pub after: Option<Uuid>,
    /// Endpoints newer than this id. With `after` too, the endpoints between the two.
    pub before: Option<Uuid>,
}

fn names(events: &[WebhookEventType]) -> Vec<String> {
    events.iter().map(|e| e.as_str().to_owned()).collect()
}

/// Register an endpoint; the answer carries its signing secret.
#[utoipa::path(
    post, path = "/v1/webhooks", tag = "webhooks",
    request_body = CreateWebhookRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Created, enabled", body = WebhookSecretView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `webhooks:manage`", body = ErrorBody),
        (status = 422, description = "An endpoint that is not an http(s) URL, that resolves to an address Missive does not connect to, or that does not resolve", body = ErrorBody),
        (status = 503, description = "MISSIVE_SECRET_KEY is not set", body = ErrorBody),
    )
)]
pub async fn create_webhook(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateWebhookRequest>,
) -> Result<Json<WebhookSecretView>, ApiError> {
    auth.require(Scope::WebhooksManage)?;
    let endpoint = state
        .webhooks
        .create(auth.tenant_id, &request.endpoint, &names(&request.events))
        .await?;
    Ok(secret_view(endpoint))
}

/// List the tenant's endpoints, newest first.
#[utoipa::path(
    get, path = "/v1/webhooks", tag = "webhooks",
    params(ListWebhooksQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One page", body = WebhookList),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `webhooks:manage`", body = ErrorBody),
    )
)]
pub async fn list_webhooks(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListWebhooksQuery>,
) -> Result<Json<WebhookList>, ApiError> {
    auth.require(Scope::WebhooksManage)?;
    let (cursor, limit) = page(query.limit, query.after, query.before)?;
    let page = state.webhooks.list(auth.tenant_id, cursor, limit).await?;
    Ok(Json(WebhookList {
        object: "list",
        data: page.webhooks.into_iter().map(|w| view(w, None)).collect(),
        has_more: page.has_more,
    }))
}

/// Read an endpoint, with its signing secret.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The endpoint", body = WebhookView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `webhooks:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such webhook", body = ErrorBody),
        (status = 503, description = "MISSIVE_SECRET_KEY is not set", body = ErrorBody),
    )
)]
pub async fn get_webhook(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<WebhookView>, ApiError> {
    auth.require(Scope::WebhooksManage)?;
    let endpoint = state.webhooks.get(auth.tenant_id, id).await?;
    Ok(Json(view(endpoint.record, Some(endpoint.signing_secret))))
}

/// Change an endpoint's URL, event types or status.
#[utoipa::path(
    patch, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    request_body = UpdateWebhookRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Updated", body = WebhookRefView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `webhooks:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such webhook", body = ErrorBody),
        (status = 422, description = "An endpoint Missive does not connect to, or invalid events", body = ErrorBody),
    )
)]
pub async fn update_webhook(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(request): ApiJson<UpdateWebhookRequest>,
) -> Result<Json<WebhookRefView>, ApiError> {
    auth.require(Scope::WebhooksManage)?;
    if request.webhook_id.is_some_and(|given| given != id) {
        return Err(ApiError::Validation(
            "webhook_id: not the id in the path".to_owned(),
        ));
    }
    let change = EndpointChange {
        endpoint: request.endpoint,
        events: request.events.as_deref().map(names),
        status: request.status.map(|s| s.as_str().to_owned()),
    };
    let record = state.webhooks.update(auth.tenant_id, id, change).await?;
    Ok(Json(WebhookRefView {
        object: "webhook",
        id: record.id,
    }))
}

/// Delete an endpoint.
#[utoipa::path(
    delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Deleted", body = DeletedWebhook),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `webhooks:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such webhook", body = ErrorBody),
    )
)]
pub async fn delete_webhook(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<DeletedWebhook>, ApiError> {
    auth.require(Scope::WebhooksManage)?;
    state.webhooks.delete(auth.tenant_id, id).await?;
    Ok(Json(DeletedWebhook {
        object: "webhook",
        id,
        deleted: true,
    }))
}

/// A new signing secret; the old one keeps signing beside it for
/// `MISSIVE_WEBHOOK_SECRET_OVERLAP_SECS`, so receivers with either secret verify.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/signing-secret/rotate", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The new secret", body = WebhookSecretView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `webhooks:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such webhook", body = ErrorBody),
        (status = 503, description = "MISSIVE_SECRET_KEY is not set", body = ErrorBody),
    )
)]
pub async fn rotate_webhook_secret(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<WebhookSecretView>, ApiError> {
    auth.require(Scope::WebhooksManage)?;
    let endpoint = state.webhooks.rotate(auth.tenant_id, id).await?;
    Ok(secret_view(endpoint))
}

/// An event of an endpoint (Resend's shape, with the delivery's `message_id`).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEventView {
    /// Always `webhook_event`.
    #[schema(example = "webhook_event")]
    pub object: &'static str,
    pub id: Uuid,
    /// `msg_...`: the `svix-id` / `webhook-id` every attempt carries.
    pub message_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `pending`, `attempting`, `success` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// When the next attempt is due; null once the event is settled.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The body every attempt posts; only when one event is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
}

fn event_view(record: WebhookEventRecord, payload: Option<serde_json::Value>) -> WebhookEventView {
    let open = matches!(record.status.as_str(), "pending" | "attempting");
    WebhookEventView {
        object: "webhook_event",
        message_id: message_id(record.id),
        id: record.id,
        kind: record.kind,
        status: record.status,
        attempts: record.attempts,
        next_attempt_at: open.then_some(record.next_attempt_at),
        created_at: record.created_at,
        payload,
    }
}

/// A page of an endpoint's events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEventList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<WebhookEventView>,
    pub has_more: bool,
}

/// Paging for an endpoint's events.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListWebhookEventsQuery {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// Events older than this event id (the last id of the previous page).
    pub after: Option<Uuid>,
}

/// One attempt of an event (Resend's shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAttemptView {
    pub id: String,
    /// Null when the endpoint gave no answer (refused, timed out, not allowed).
    pub http_status_code: Option<i32>,
    /// The start of the answer's body, or why there was none.
    pub response: String,
    pub duration_ms: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
}

/// An event's attempts, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAttemptList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<WebhookAttemptView>,
    pub has_more: bool,
}

/// The answer to a replay or a test: the event queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEventRefView {
    #[schema(example = "webhook_event")]
    pub object: &'static str,
    pub id: Uuid,
}

/// List an endpoint's events, newest first.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}/events", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id"), ListWebhookEventsQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One page", body = WebhookEventList),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `webhooks:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such webhook", body = ErrorBody),
    )
)]
pub async fn list_webhook_events(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<ListWebhookEventsQuery>,
) -> Result<Json<WebhookEventList>, ApiError> {
    auth.require(Scope::WebhooksManage)?;
    let limit = page_limit(query.limit)?;
    state.store.get_webhook(auth.tenant_id, id).await?;
    let (events, has_more) = state
        .store
        .list_webhook_events(auth.tenant_id, id, query.after, limit)
        .await?;
    Ok(Json(WebhookEventList {
        object: "list",
        data: events.into_iter().map(|e| event_view(e, None)).collect(),
        has_more,
    }))
}

/// Read one event, with the body its attempts post.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}/events/{event_id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id"), ("event_id" = Uuid, Path, description = "Event id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The event", body = WebhookEventView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `webhooks:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such webhook or event", body = ErrorBody),
    )
)]
pub async fn get_webhook_event(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath((id, event_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<WebhookEventView>, ApiError> {
    auth.require(Scope::WebhooksManage)?;
    let (record, content) = state
        .store
        .get_webhook_event(auth.tenant_id, id, event_id)
        .await?;
    let payload = serde_json::from_slice(&body_of(&content)).ok();
    Ok(Json(event_view(record, payload)))
}

/// An event's attempts: the endpoint's status, the start of its answer, when.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}/events/{event_id}/attempts", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id"), ("event_id" = Uuid, Path, description = "Event id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Every attempt, oldest first", body = WebhookAttemptList),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `webhooks:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such webhook or event", body = ErrorBody),
    )
)]
pub async fn list_webhook_attempts(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath((id, event_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<WebhookAttemptList>, ApiError> {
    auth.require(Scope::WebhooksManage)?;
    state
        .store
        .get_webhook_event(auth.tenant_id, id, event_id)
        .await?;
    let attempts = state
        .store
        .webhook_attempts(auth.tenant_id, event_id)
        .await?;
    Ok(Json(WebhookAttemptList {
        object: "list",
        data: attempts
            .into_iter()
            .map(|a| WebhookAttemptView {
                id: a.id.to_string(),
                http_status_code: a.http_status,
                response: a.response,
                duration_ms: a.duration_ms,
                sent_at: a.created_at,
            })
            .collect(),
        has_more: false,
    }))
}

/// Send an event again from the start of the retry schedule, with the same id and body.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/events/{event_id}/replay", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id"), ("event_id" = Uuid, Path, description = "Event id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Queued again", body = WebhookEventRefView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `webhooks:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such webhook or event", body = ErrorBody),
    )
)]
pub async fn replay_webhook_event(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath((id, event_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<WebhookEventRefView>, ApiError> {
    auth.require(Scope::WebhooksManage)?;
    state
        .store
        .replay_webhook_event(auth.tenant_id, id, event_id)
        .await?;
    Ok(Json(WebhookEventRefView {
        object: "webhook_event",
        id: event_id,
    }))
}

/// Queue a test event for the endpoint (`email.sent` with `data.test`, no email).
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Queued", body = WebhookEventRefView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `webhooks:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such webhook", body = ErrorBody),
    )
)]
pub async fn test_webhook(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<WebhookEventRefView>, ApiError> {
    auth.require(Scope::WebhooksManage)?;
    let event_id = state
        .store
        .queue_test_webhook_event(auth.tenant_id, id)
        .await?;
    Ok(Json(WebhookEventRefView {
        object: "webhook_event",
        id: event_id,
    }))
}
