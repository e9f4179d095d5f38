//! `/v1/emails`: send (Resend's request shape), batch send, read, list and cancel.
//!
//! A send answers only after the email, its deliveries, its events and its idempotency record are
//! committed. With an `Idempotency-Key` header, the same key and body get the first answer again
//! for 24 hours; the same key with another body is a 409.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use missive_core::submission::{Draft, DraftAttachment, Tag};
use missive_core::{EmailId, Fingerprint, IdempotencyKey, Scope, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::{AdminAuth, TenantAuth, admin_reach};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::edge::state::AppState;
use crate::ingest::{Accepted, IngestError, Input, Refusal, Request, TemplateCall};
use crate::tenancy::caller::Caller;
use crate::tenancy::emails::{self, EmailList, EmailView, ListEmailsQuery, OneOrMany};

/// Most emails in one batch.
pub const MAX_BATCH: usize = 100;

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
    pub id: EmailId,
}

/// The answer to a batch send, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchSent {
    pub data: Vec<SentEmail>,
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

/// Hands requests to the one accept path; the stored ids, in order.
async fn accept(
    state: &AppState,
    auth: &TenantAuth,
    requests: Vec<Request>,
    idempotency: Option<(IdempotencyKey, Fingerprint)>,
    batch: bool,
) -> Result<Vec<EmailId>, ApiError> {
    let input = Input::Requests {
        requests,
        idempotency,
    };
    let Accepted { ids, .. } = state
        .ingest
        .accept(auth.project(), &auth.sending, input)
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

/// Read one email with each recipient's status and the event history.
#[utoipa::path(
    get, path = "/v1/emails/{id}", tag = "emails",
    params(("id" = EmailId, Path, description = "Email id")),
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
    ApiPath(id): ApiPath<EmailId>,
) -> Result<Json<EmailView>, ApiError> {
    Ok(Json(emails::get(&state.store, (&auth).into(), id).await?))
}

/// Read one email of any tenant, as the tenant would; `x-project-id` narrows the read to one of
/// its projects.
#[utoipa::path(
    get, path = "/v1/tenants/{id}/emails/{email_id}", tag = "admin",
    params(
        ("id" = TenantId, Path, description = "Tenant id"),
        ("email_id" = EmailId, Path, description = "Email id"),
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
    headers: HeaderMap,
    ApiPath((tenant, id)): ApiPath<(TenantId, EmailId)>,
) -> Result<Json<EmailView>, ApiError> {
    let reach = admin_reach(&headers, tenant)?;
    Ok(Json(
        emails::get(&state.store, Caller::Operator(reach), id).await?,
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
    Ok(Json(
        emails::list(&state.store, (&auth).into(), &query).await?,
    ))
}

/// List any tenant's emails (all its projects', or those of the project `x-project-id` names).
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
    headers: HeaderMap,
    ApiPath(tenant): ApiPath<TenantId>,
    ApiQuery(query): ApiQuery<ListEmailsQuery>,
) -> Result<Json<EmailList>, ApiError> {
    let reach = admin_reach(&headers, tenant)?;
    Ok(Json(
        emails::list(&state.store, Caller::Operator(reach), &query).await?,
    ))
}

/// Cancel a scheduled email that has not started sending.
#[utoipa::path(
    post, path = "/v1/emails/{id}/cancel", tag = "emails",
    params(("id" = EmailId, Path, description = "Email id")),
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
    ApiPath(id): ApiPath<EmailId>,
) -> Result<Json<SentEmail>, ApiError> {
    emails::cancel(&state.store, (&auth).into(), id).await?;
    Ok(Json(SentEmail { id }))
}
