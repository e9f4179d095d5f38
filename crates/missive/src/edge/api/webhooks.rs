//! `/v1/webhooks`: Resend's Webhooks API for a tenant's endpoints (create, get, list, update,
//! delete, rotate the signing secret; an endpoint's events, their attempts, replay) and our
//! `test`, served by [`crate::tenancy::webhooks`]. Scope `webhooks:manage`.

use axum::Json;
use axum::extract::State;
use missive_core::{WebhookEventId, WebhookId};

use super::auth::TenantAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::edge::state::AppState;
use crate::tenancy::webhooks::{
    CreateWebhookRequest, DeletedWebhook, ListWebhookEventsQuery, ListWebhooksQuery,
    UpdateWebhookRequest, WebhookAttemptList, WebhookEventList, WebhookEventRefView,
    WebhookEventView, WebhookList, WebhookRefView, WebhookSecretView, WebhookView,
};

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
    Ok(Json(state.webhooks.create((&auth).into(), &request).await?))
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
    Ok(Json(state.webhooks.list((&auth).into(), &query).await?))
}

/// Read an endpoint, with its signing secret.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = WebhookId, Path, description = "Webhook id")),
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
    ApiPath(id): ApiPath<WebhookId>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(state.webhooks.get((&auth).into(), id).await?))
}

/// Change an endpoint's URL, event types or status.
#[utoipa::path(
    patch, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = WebhookId, Path, description = "Webhook id")),
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
    ApiPath(id): ApiPath<WebhookId>,
    ApiJson(request): ApiJson<UpdateWebhookRequest>,
) -> Result<Json<WebhookRefView>, ApiError> {
    Ok(Json(
        state.webhooks.update((&auth).into(), id, &request).await?,
    ))
}

/// Delete an endpoint.
#[utoipa::path(
    delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = WebhookId, Path, description = "Webhook id")),
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
    ApiPath(id): ApiPath<WebhookId>,
) -> Result<Json<DeletedWebhook>, ApiError> {
    Ok(Json(state.webhooks.delete((&auth).into(), id).await?))
}

/// A new signing secret; the old one keeps signing beside it for
/// `MISSIVE_WEBHOOK_SECRET_OVERLAP_SECS`, so receivers with either secret verify.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/signing-secret/rotate", tag = "webhooks",
    params(("id" = WebhookId, Path, description = "Webhook id")),
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
    ApiPath(id): ApiPath<WebhookId>,
) -> Result<Json<WebhookSecretView>, ApiError> {
    Ok(Json(state.webhooks.rotate((&auth).into(), id).await?))
}

/// List an endpoint's events, newest first.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}/events", tag = "webhooks",
    params(("id" = WebhookId, Path, description = "Webhook id"), ListWebhookEventsQuery),
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
    ApiPath(id): ApiPath<WebhookId>,
    ApiQuery(query): ApiQuery<ListWebhookEventsQuery>,
) -> Result<Json<WebhookEventList>, ApiError> {
    Ok(Json(
        state.webhooks.events((&auth).into(), id, &query).await?,
    ))
}

/// Read one event, with the body its attempts post.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}/events/{event_id}", tag = "webhooks",
    params(("id" = WebhookId, Path, description = "Webhook id"), ("event_id" = WebhookEventId, Path, description = "Event id")),
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
    ApiPath((id, event_id)): ApiPath<(WebhookId, WebhookEventId)>,
) -> Result<Json<WebhookEventView>, ApiError> {
    Ok(Json(
        state.webhooks.event((&auth).into(), id, event_id).await?,
    ))
}

/// An event's attempts: the endpoint's status, the start of its answer, when.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}/events/{event_id}/attempts", tag = "webhooks",
    params(("id" = WebhookId, Path, description = "Webhook id"), ("event_id" = WebhookEventId, Path, description = "Event id")),
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
    ApiPath((id, event_id)): ApiPath<(WebhookId, WebhookEventId)>,
) -> Result<Json<WebhookAttemptList>, ApiError> {
    Ok(Json(
        state
            .webhooks
            .attempts((&auth).into(), id, event_id)
            .await?,
    ))
}

/// Send an event again from the start of the retry schedule, with the same id and body.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/events/{event_id}/replay", tag = "webhooks",
    params(("id" = WebhookId, Path, description = "Webhook id"), ("event_id" = WebhookEventId, Path, description = "Event id")),
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
    ApiPath((id, event_id)): ApiPath<(WebhookId, WebhookEventId)>,
) -> Result<Json<WebhookEventRefView>, ApiError> {
    Ok(Json(
        state.webhooks.replay((&auth).into(), id, event_id).await?,
    ))
}

/// Queue a test event for the endpoint (`email.sent` with `data.test`, no email).
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = WebhookId, Path, description = "Webhook id")),
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
    ApiPath(id): ApiPath<WebhookId>,
) -> Result<Json<WebhookEventRefView>, ApiError> {
    Ok(Json(state.webhooks.test((&auth).into(), id).await?))
}
