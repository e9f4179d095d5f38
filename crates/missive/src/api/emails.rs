//! `/v1/emails`: send (Resend's request shape), batch send, read, list and cancel.
//!
//! A send answers only after the email, its deliveries, its events and its idempotency record are
//! committed. With an `Idempotency-Key` header, the same key and body get the first answer again
//! for 24 hours; the same key with another body is a 409.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use missive_core::outcome::BounceClass;
use missive_core::submission::{
    Draft, DraftAttachment, RecipientKind, SubmissionError, Tag, parse_rfc3339, parse_tag_filter,
};
use missive_core::{
    DeliveryStatus, EmailState, EventKind, Fingerprint, IdempotencyKey, Scope, TenantId,
};
use missive_store::{DeliveryRecord, EmailFilter, EmailRecord, EventRecord, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{AdminAuth, TenantAuth};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, page_limit};
use crate::ingest::{Accepted, IngestError, Input, Refusal, Request, TemplateCall};
use crate::state::AppState;

/// Most emails in one batch.
pub const MAX_BATCH: usize = 100;

/// One address or a list of them, as Resend accepts.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

fn addresses(list: Option<OneOrMany>) -> Vec<String> {
    list.map(OneOrMany::into_vec).unwrap_or_default()
}

/// `POST /v1/emails`, in Resend's shape.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SendEmailRequest {
    /// `addr@domain` or `Name <addr@domain>`; the tenant's `default_from` when absent.
    pub from: Option<String>,
    /// At most 50 addresses.
    pub to: OneOrMany,
    pub cc: Option<OneOrMany>,
    /// Delivered to, never shown in the headers.
    pub bcc: Option<OneOrMany>,
    pub reply_to: Option<OneOrMany>,
    /// Required, unless the template has one.
    pub subject: Option<String>,
    /// Not with `template`.
    pub html: Option<String>,
    /// Not with `template`.
    pub text: Option<String>,
    /// Extra headers; Missive's own (From, To, Message-ID...) cannot be overridden.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub attachments: Vec<DraftAttachment>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// When to send, at most a year ahead: ISO 8601 with a zone (`2024-08-05T11:52:01.858Z`) or
    /// `in N minutes|hours|days` (`in 1 min`), as Resend accepts. The email waits until then and
    /// can be canceled meanwhile.
    pub scheduled_at: Option<String>,
    /// Send with a published template (Resend's shape): its html, text and subject rendered
    /// with `variables`; `from`, `subject` and `reply_to` given here win over the template's.
    pub template: Option<TemplateInput>,
}

/// The template of a send.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    /// The template's id or alias (a shipped template's alias works too).
    pub id: String,
    /// Values for the template's variables: strings or numbers as declared; lists and objects
    /// for undeclared ones a template loops over.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: serde_json::Map<String, Value>,
}

impl From<SendEmailRequest> for Request {
    fn from(mut request: SendEmailRequest) -> Self {
        let template = request.template.take().map(|t| TemplateCall {
            reference: t.id,
            variables: t.variables,
        });
        Self {
            draft: request.into(),
            template,
        }
    }
}

impl From<SendEmailRequest> for Draft {
    fn from(request: SendEmailRequest) -> Self {
        Self {
            from: request.from,
            to: request.to.into_vec(),
            cc: addresses(request.cc),
            bcc: addresses(request.bcc),
            reply_to: addresses(request.reply_to),
            subject: request.subject,
            html: request.html,
            text: request.text,
            headers: request.headers.into_iter().collect(),
            attachments: request.attachments,
            tags: request.tags,
            scheduled_at: request.scheduled_at,
        }
    }
}

/// The answer to a send.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SentEmail {
    pub id: Uuid,
}

/// The answer to a batch send, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchSent {
    pub data: Vec<SentEmail>,
}

/// One recipient's delivery state.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientView {
    pub email: String,
    pub kind: RecipientKind,
    pub status: DeliveryStatus,
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    pub last_smtp_code: Option<i32>,
    pub last_smtp_response: Option<String>,
    /// After a refusal: `hard` (the address does not work; it is now suppressed) or `soft`.
    pub bounce_class: Option<BounceClass>,
    /// Where the latest attempt went; null before the first.
    pub route: Option<RouteView>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// An attempt's route: the shared relay or the tenant's own server, and its `host:port`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteView {
    /// `shared` or `tenant`.
    #[schema(example = "tenant")]
    pub kind: String,
    #[schema(example = "smtp.acme.test:587")]
    pub host: Option<String>,
}

fn route_view(kind: Option<String>, host: Option<String>) -> Option<RouteView> {
    kind.map(|kind| RouteView { kind, host })
}

/// One entry of an email's history, with the upstream SMTP reply where there was one.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub recipient: Option<String>,
    pub smtp_code: Option<i32>,
    pub smtp_response: Option<String>,
    /// For an attempt's outcome: where it went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteView>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// An email: Resend's fields plus the tenant, each recipient's status and the history.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailView {
    /// Always `email`.
    #[schema(example = "email")]
    pub object: &'static str,
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub message_id: String,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Vec<String>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub tags: Vec<Tag>,
    /// The email's overall state, derived from its recipients.
    pub last_event: EmailState,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub scheduled_at: Option<OffsetDateTime>,
    pub recipients: Vec<RecipientView>,
    /// The history, oldest first (only when reading one email).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventView>>,
}

/// A page of emails, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailList {
    /// Always `list`.
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<EmailView>,
    /// Whether older emails follow; pass the last id as `after`.
    pub has_more: bool,
}

/// Filters and paging for `GET /v1/emails`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListEmailsQuery {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// Emails older than this id (the last id of the previous page).
    pub after: Option<Uuid>,
    /// Emails with a recipient in this state.
    pub status: Option<DeliveryStatus>,
    /// `name:value`.
    pub tag: Option<String>,
    /// RFC 3339; emails created at or after.
    pub created_after: Option<String>,
    /// RFC 3339; emails created before.
    pub created_before: Option<String>,
}

/// The client's idempotency key, and the fingerprint of its request: the body, re-serialised
/// with sorted keys so formatting does not matter.
fn idempotency(
    headers: &HeaderMap,
    body: &Value,
) -> Result<Option<(IdempotencyKey, Fingerprint)>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let invalid = |e: missive_core::idempotency::InvalidIdempotencyKey| {
        ApiError::InvalidIdempotencyKey(e.to_string())
    };
    let key = IdempotencyKey::parse(
        value
            .to_str()
            .map_err(|_| invalid(missive_core::idempotency::InvalidIdempotencyKey))?,
    )
    .map_err(invalid)?;
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    Ok(Some((key, Fingerprint::of([canonical.as_slice()]))))
}

/// A field that did not hold up: 422 naming it.
impl From<SubmissionError> for ApiError {
    fn from(err: SubmissionError) -> Self {
        Self::Validation(err.to_string())
    }
}

/// Hands requests to the one accept path; the stored ids, in order.
async fn accept(
    state: &AppState,
    auth: &TenantAuth,
    requests: Vec<Request>,
    idempotency: Option<(IdempotencyKey, Fingerprint)>,
    batch: bool,
) -> Result<Vec<Uuid>, ApiError> {
    let input = Input::Requests {
        requests,
        idempotency,
    };
    let Accepted { ids, .. } = state
        .ingest
        .accept(auth.tenant_id, &auth.sending, input)
        .await
        .map_err(|e| refused(e, batch))?;
    Ok(ids)
}

/// The answer to a refused send; in a batch, every refusal is a validation error naming the
/// email's index.
fn refused(err: IngestError, batch: bool) -> ApiError {
    match err {
        IngestError::Refused {
            item,
            refusal: refusal @ Refusal::DomainNotVerified { .. },
        } => ApiError::DomainNotVerified(if batch {
            format!("[{}] {refusal}", item.unwrap_or_default())
        } else {
            refusal.to_string()
        }),
        IngestError::Refused { item, refusal } if batch => {
            ApiError::Validation(format!("[{}] {refusal}", item.unwrap_or_default()))
        }
        IngestError::Refused { refusal, .. } => match refusal {
            Refusal::SenderNotAllowed { .. } => ApiError::InvalidFrom(refusal.to_string()),
            Refusal::IdempotencyKey(_) => ApiError::InvalidIdempotencyKey(refusal.to_string()),
            Refusal::Invalid(_)
            | Refusal::TooLarge { .. }
            | Refusal::TooManyRecipients { .. }
            | Refusal::LineTooLong
            | Refusal::Template(_)
            | Refusal::DomainNotVerified { .. } => ApiError::Validation(refusal.to_string()),
        },
        IngestError::IdempotencyConflict => ApiError::IdempotencyConflict,
        IngestError::OverQuota(period) => ApiError::OverQuota(period),
        IngestError::Signing(reason) => ApiError::Internal(reason),
        IngestError::Store(store) => store.into(),
    }
}

/// Deserialises a body already parsed as JSON, naming the offending field on failure.
fn parse_request<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ApiError::Validation(if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        })
    })
}

/// Send one email. Answers after the commit.
#[utoipa::path(
    post, path = "/v1/emails", tag = "emails",
    request_body = SendEmailRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 h")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Accepted and committed", body = SentEmail),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `send`", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 422, description = "Invalid field or sender", body = ErrorBody),
    )
)]
pub async fn send_email(
    auth: TenantAuth,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<SentEmail>, ApiError> {
    auth.require(Scope::Send)?;
    let idempotency = idempotency(&headers, &body)?;
    let request: SendEmailRequest = parse_request(body)?;
    let ids = accept(&state, &auth, vec![request.into()], idempotency, false).await?;
    let id = ids
        .first()
        .copied()
        .ok_or_else(|| ApiError::Internal("an accepted send returned no email id".to_owned()))?;
    tracing::Span::current().record("email_id", tracing::field::display(id));
    Ok(Json(SentEmail { id }))
}

/// Send up to 100 emails; all are validated before any is stored, and all are stored together.
#[utoipa::path(
    post, path = "/v1/emails/batch", tag = "emails",
    request_body = Vec<SendEmailRequest>,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 h")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "All accepted and committed", body = BatchSent),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `send`", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 422, description = "An invalid email (its index is named); nothing stored", body = ErrorBody),
    )
)]
pub async fn send_batch(
    auth: TenantAuth,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<BatchSent>, ApiError> {
    auth.require(Scope::Send)?;
    let idempotency = idempotency(&headers, &body)?;
    let requests: Vec<Value> = parse_request(body)?;
    if requests.is_empty() || requests.len() > MAX_BATCH {
        return Err(ApiError::Validation(format!(
            "a batch holds 1 to {MAX_BATCH} emails"
        )));
    }
    let mut parsed = Vec::with_capacity(requests.len());
    for (index, request) in requests.into_iter().enumerate() {
        let at = |e: ApiError| ApiError::Validation(format!("[{index}] {e}"));
        let request: SendEmailRequest = parse_request(request).map_err(at)?;
        parsed.push(request.into());
    }
    let ids = accept(&state, &auth, parsed, idempotency, true).await?;
    Ok(Json(BatchSent {
        data: ids.into_iter().map(|id| SentEmail { id }).collect(),
    }))
}

fn email_view(
    email: EmailRecord,
    deliveries: Vec<DeliveryRecord>,
    events: Option<Vec<EventRecord>>,
) -> EmailView {
    let of_kind = |kind: RecipientKind| {
        deliveries
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| d.recipient.clone())
            .collect::<Vec<_>>()
    };
    let states: Vec<(DeliveryStatus, i32)> =
        deliveries.iter().map(|d| (d.status, d.attempts)).collect();
    let last_event = EmailState::of(email.scheduled_at.is_some(), &states);
    EmailView {
        object: "email",
        id: email.id,
        tenant_id: email.tenant_id,
        message_id: email.message_id,
        to: of_kind(RecipientKind::To),
        cc: of_kind(RecipientKind::Cc),
        bcc: of_kind(RecipientKind::Bcc),
        from: email.from_address,
        reply_to: email.reply_to,
        subject: email.subject,
        html: email.html,
        text: email.text,
        tags: serde_json::from_value(email.tags).unwrap_or_default(),
        last_event,
        created_at: email.created_at,
        scheduled_at: email.scheduled_at,
        recipients: deliveries
            .into_iter()
            .map(|d| RecipientView {
                email: d.recipient,
                kind: d.kind,
                status: d.status,
                attempts: d.attempts,
                next_attempt_at: d.next_attempt_at,
                last_smtp_code: d.last_smtp_code,
                last_smtp_response: d.last_smtp_response,
                bounce_class: d.bounce_class.and_then(|c| BounceClass::try_from(c).ok()),
                route: route_view(d.route, d.route_host),
                updated_at: d.updated_at,
            })
            .collect(),
        events: events.map(|events| {
            events
                .into_iter()
                .map(|e| EventView {
                    kind: e.kind,
                    recipient: e.recipient,
                    smtp_code: e.smtp_code,
                    smtp_response: e.smtp_response,
                    route: route_view(e.route, e.route_host),
                    created_at: e.created_at,
                })
                .collect()
        }),
    }
}

/// Read one email with each recipient's status and the event history.
#[utoipa::path(
    get, path = "/v1/emails/{id}", tag = "emails",
    params(("id" = Uuid, Path, description = "Email id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The email", body = EmailView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `emails:read`", body = ErrorBody),
        (status = 404, description = "The tenant has no such email", body = ErrorBody),
    )
)]
pub async fn get_email(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<EmailView>, ApiError> {
    auth.require(Scope::EmailsRead)?;
    read_email(&state.store, auth.tenant_id, id).await.map(Json)
}

/// Read one email of any tenant, as the tenant would.
#[utoipa::path(
    get, path = "/v1/tenants/{id}/emails/{email_id}", tag = "admin",
    params(
        ("id" = TenantId, Path, description = "Tenant id"),
        ("email_id" = Uuid, Path, description = "Email id"),
    ),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The email", body = EmailView),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "The tenant has no such email", body = ErrorBody),
    )
)]
pub async fn admin_get_email(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath((tenant, id)): ApiPath<(TenantId, Uuid)>,
) -> Result<Json<EmailView>, ApiError> {
    read_email(&state.store, tenant, id).await.map(Json)
}

async fn read_email(store: &Store, tenant: TenantId, id: Uuid) -> Result<EmailView, ApiError> {
    let detail = store.email_detail(tenant, id).await?;
    Ok(email_view(
        detail.email,
        detail.deliveries,
        Some(detail.events),
    ))
}

/// List emails, newest first, filtered by recipient status, tag and creation time.
#[utoipa::path(
    get, path = "/v1/emails", tag = "emails",
    params(ListEmailsQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One page", body = EmailList),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `emails:read`", body = ErrorBody),
        (status = 422, description = "Invalid filter", body = ErrorBody),
    )
)]
pub async fn list_emails(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListEmailsQuery>,
) -> Result<Json<EmailList>, ApiError> {
    auth.require(Scope::EmailsRead)?;
    list_of(&state.store, auth.tenant_id, &query)
        .await
        .map(Json)
}

/// List any tenant's emails, as the tenant would.
#[utoipa::path(
    get, path = "/v1/tenants/{id}/emails", tag = "admin",
    params(("id" = TenantId, Path, description = "Tenant id"), ListEmailsQuery),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "One page", body = EmailList),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 422, description = "Invalid filter", body = ErrorBody),
    )
)]
pub async fn admin_list_emails(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath(tenant): ApiPath<TenantId>,
    ApiQuery(query): ApiQuery<ListEmailsQuery>,
) -> Result<Json<EmailList>, ApiError> {
    // An unknown tenant is a 404, not an empty list.
    state.store.get_tenant(tenant).await?;
    list_of(&state.store, tenant, &query).await.map(Json)
}

async fn list_of(
    store: &Store,
    tenant: TenantId,
    query: &ListEmailsQuery,
) -> Result<EmailList, ApiError> {
    let limit = page_limit(query.limit)?;
    let tag = query
        .tag
        .as_deref()
        .map(parse_tag_filter)
        .transpose()?
        .map(|tag| (tag.name, tag.value));
    let time = |field: &str, raw: &Option<String>| {
        raw.as_deref()
            .map(|r| parse_rfc3339(field, r))
            .transpose()
            .map_err(ApiError::from)
    };
    let filter = EmailFilter {
        status: query.status,
        tag,
        created_after: time("created_after", &query.created_after)?,
        created_before: time("created_before", &query.created_before)?,
        before_id: query.after,
    };
    let page = store.list_emails(tenant, &filter, limit).await?;
    let mut deliveries = page.deliveries;
    let data = page
        .emails
        .into_iter()
        .map(|email| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                deliveries.drain(..).partition(|d| d.email_id == email.id);
            deliveries = rest;
            email_view(email, mine, None)
        })
        .collect();
    Ok(EmailList {
        object: "list",
        data,
        has_more: page.has_more,
    })
}

/// Cancel a scheduled email that has not started sending.
#[utoipa::path(
    post, path = "/v1/emails/{id}/cancel", tag = "emails",
    params(("id" = Uuid, Path, description = "Email id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Canceled", body = SentEmail),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `send`", body = ErrorBody),
        (status = 404, description = "The tenant has no such email", body = ErrorBody),
        (status = 409, description = "Not scheduled, already sending or already canceled", body = ErrorBody),
    )
)]
pub async fn cancel_email(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<SentEmail>, ApiError> {
    auth.require(Scope::Send)?;
    state.store.cancel_email(auth.tenant_id, id).await?;
    tracing::info!(tenant_id = %auth.tenant_id, email_id = %id, "scheduled email canceled");
    Ok(Json(SentEmail { id }))
}
