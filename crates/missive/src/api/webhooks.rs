//! `/v1/webhooks`: Resend's Webhooks API for a tenant's endpoints (create, get, list, update,
//! delete, rotate the signing secret). Scope `webhooks:manage`.

use axum::Json;
use axum::extract::State;
use missive_core::{Scope, WebhookEventType};
use missive_store::{Cursor, WebhookRecord};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::TenantAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, page_limit};
use crate::state::AppState;
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
    let limit = page_limit(query.limit)?;
    let cursor = Cursor {
        after: query.after,
        before: query.before,
    };
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
