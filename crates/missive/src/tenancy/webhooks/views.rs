//! Tenants' webhook endpoints and their events as both front ends show them (Resend's shapes),
//! and the requests that change them.

use missive_core::{
    ProjectId, TenantId, WebhookEventId, WebhookEventStatus, WebhookEventType, WebhookId,
    WebhookStatus,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

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
    pub webhook_id: Option<WebhookId>,
    #[schema(max_length = 2048)]
    pub endpoint: Option<String>,
    #[schema(min_items = 1)]
    pub events: Option<Vec<WebhookEventType>>,
    pub status: Option<WebhookStatus>,
}

/// An endpoint (Resend's shape, with our `tenant_id` and `disabled_reason`).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Always `webhook`.
    #[schema(example = "webhook")]
    pub object: &'static str,
    pub id: WebhookId,
    pub tenant_id: TenantId,
    pub project_id: ProjectId,
    pub endpoint: String,
    pub events: Vec<WebhookEventType>,
    pub status: WebhookStatus,
    /// Why Missive disabled it (`410 Gone`, no success for days); null when the tenant did.
    pub disabled_reason: Option<String>,
    /// `whsec_...`; null in listings.
    pub signing_secret: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The answer to a create or a rotation: the endpoint's id and its (new) secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSecretView {
    #[schema(example = "webhook")]
    pub object: &'static str,
    pub id: WebhookId,
    /// `whsec_...`: the key of the HMAC-SHA256 signatures.
    pub signing_secret: String,
}

/// The answer to an update.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookRefView {
    #[schema(example = "webhook")]
    pub object: &'static str,
    pub id: WebhookId,
}

/// The answer to a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedWebhook {
    #[schema(example = "webhook")]
    pub object: &'static str,
    pub id: WebhookId,
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
    pub after: Option<WebhookId>,
    /// Endpoints newer than this id. With `after` too, the endpoints between the two.
    pub before: Option<WebhookId>,
}

/// An event of an endpoint (Resend's shape, with the delivery's `message_id`).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEventView {
    /// Always `webhook_event`.
    #[schema(example = "webhook_event")]
    pub object: &'static str,
    pub id: WebhookEventId,
    /// `msg_...`: the `svix-id` / `webhook-id` every attempt carries.
    pub message_id: String,
    #[serde(rename = "type")]
    pub kind: WebhookEventType,
    pub status: WebhookEventStatus,
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
    pub after: Option<WebhookEventId>,
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
    pub id: WebhookEventId,
}
