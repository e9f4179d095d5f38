//! `/v1/emails`: send (Resend's request shape), batch send, read, list and cancel.
//!
//! A send answers only after the email, its deliveries, its events and its idempotency record are
//! committed. With an `Idempotency-Key` header, the same key and body get the first answer again
//! for 24 hours; the same key with another body is a 409.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use missive_core::submission::{
    Attachment, MAX_RECIPIENTS_PER_FIELD, MAX_SUBJECT_CHARS, MAX_TAGS, RecipientKind, Submission,
    Tag, check_custom_header, check_tag,
};
use missive_core::{Mailbox, Scope, TenantId};
use missive_store::{
    DeliveryRecord, EmailFilter, EmailRecord, EventRecord, IdempotencyRecord, InsertOutcome,
    NewEmail,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::TenantAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::ingest::{self, IngestError, SendingSettings};
use crate::state::AppState;

/// Most emails in one batch.
pub const MAX_BATCH: usize = 100;
/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 256;

/// One address or a list of them, as Resend accepts.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

/// Attachment bytes: base64 text, or an array of byte values (what Resend's Python SDK sends).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AttachmentContent {
    Base64(String),
    Bytes(Vec<u8>),
}

/// An attachment; with `content_id` it is an inline part (`<img src="cid:...">`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct AttachmentInput {
    pub filename: Option<String>,
    pub content: Option<AttachmentContent>,
    /// Remote attachments are not fetched; send `content`.
    pub path: Option<String>,
    pub content_type: Option<String>,
    pub content_id: Option<String>,
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
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    /// Extra headers; Missive's own (From, To, Message-ID...) cannot be overridden.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub attachments: Vec<AttachmentInput>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// RFC 3339; the email waits until then and can be canceled meanwhile.
    pub scheduled_at: Option<String>,
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
    /// queued, sending, delivered, deferred, bounced, failed or canceled.
    pub status: String,
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    pub last_smtp_code: Option<i32>,
    pub last_smtp_response: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One entry of an email's history, with the upstream SMTP reply where there was one.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    #[serde(rename = "type")]
    pub kind: String,
    pub recipient: Option<String>,
    pub smtp_code: Option<i32>,
    pub smtp_response: Option<String>,
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
    pub last_event: &'static str,
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
    pub status: Option<String>,
    /// `name:value`.
    pub tag: Option<String>,
    /// RFC 3339; emails created at or after.
    pub created_after: Option<String>,
    /// RFC 3339; emails created before.
    pub created_before: Option<String>,
}

const DELIVERY_STATUSES: &[&str] = &[
    "queued",
    "sending",
    "delivered",
    "deferred",
    "bounced",
    "failed",
    "canceled",
];

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::Invalid(message) => Self::Validation(message),
            IngestError::SenderNotAllowed(message) => Self::InvalidFrom(message),
            too_large @ IngestError::TooLarge { .. } => Self::Validation(too_large.to_string()),
            IngestError::Store(store) => store.into(),
        }
    }
}

fn invalid(message: impl Into<String>) -> IngestError {
    IngestError::Invalid(message.into())
}

fn parse_time(field: &str, raw: &str) -> Result<OffsetDateTime, IngestError> {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| invalid(format!("{field}: `{raw}` is not an RFC 3339 time")))
}

fn mailboxes(field: &str, raw: Option<OneOrMany>) -> Result<Vec<Mailbox>, IngestError> {
    let list = raw.map(OneOrMany::into_vec).unwrap_or_default();
    if list.len() > MAX_RECIPIENTS_PER_FIELD {
        return Err(invalid(format!(
            "{field}: at most {MAX_RECIPIENTS_PER_FIELD} addresses"
        )));
    }
    list.iter()
        .map(|a| Mailbox::parse(a).map_err(|e| invalid(format!("{field}: {e}"))))
        .collect()
}

fn guess_content_type(filename: &str) -> &'static str {
    let extension = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "ics" => "text/calendar",
        "json" => "application/json",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

fn attachment(index: usize, input: AttachmentInput) -> Result<Attachment, IngestError> {
    let field = format!("attachments[{index}]");
    if input.path.is_some() {
        return Err(invalid(format!(
            "{field}.path: remote attachments are not fetched; send `content` (base64)"
        )));
    }
    let content = match input.content {
        Some(AttachmentContent::Base64(text)) => {
            let engine = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            engine
                .decode(compact)
                .map_err(|_| invalid(format!("{field}.content: not valid base64")))?
        }
        Some(AttachmentContent::Bytes(bytes)) => bytes,
        None => return Err(invalid(format!("{field}.content: required"))),
    };
    let filename = input
        .filename
        .ok_or_else(|| invalid(format!("{field}.filename: required")))?;
    if filename.is_empty()
        || filename.chars().count() > 255
        || filename.chars().any(char::is_control)
    {
        return Err(invalid(format!(
            "{field}.filename: 1 to 255 characters without control characters"
        )));
    }
    let content_type = match input.content_type {
        Some(ct) => {
            let valid = ct.split_once('/').is_some_and(|(t, s)| {
                let token = |x: &str| {
                    !x.is_empty()
                        && x.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
                };
                token(t) && token(s)
            });
            if !valid {
                return Err(invalid(format!(
                    "{field}.content_type: `{ct}` is not a MIME type such as application/pdf"
                )));
            }
            ct
        }
        None => guess_content_type(&filename).to_owned(),
    };
    if let Some(cid) = &input.content_id
        && (cid.is_empty()
            || cid.len() > 255
            || !cid
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>'))
    {
        return Err(invalid(format!(
            "{field}.content_id: printable ASCII without < or >"
        )));
    }
    Ok(Attachment {
        filename,
        content,
        content_type,
        content_id: input.content_id,
    })
}

/// Validates a REST request into a [`Submission`].
///
/// # Errors
/// [`IngestError::Invalid`] naming the field.
pub fn submission_from_request(
    request: SendEmailRequest,
    settings: &SendingSettings,
) -> Result<Submission, IngestError> {
    let from = ingest::sender(request.from.as_deref(), settings)?;
    let to = mailboxes("to", Some(request.to))?;
    let cc = mailboxes("cc", request.cc)?;
    let bcc = mailboxes("bcc", request.bcc)?;
    if to.is_empty() {
        return Err(invalid("to: at least one address"));
    }
    let reply_to = mailboxes("reply_to", request.reply_to)?;
    if request.subject.chars().count() > MAX_SUBJECT_CHARS
        || request.subject.chars().any(|c| c.is_control() && c != '\t')
    {
        return Err(invalid(format!(
            "subject: at most {MAX_SUBJECT_CHARS} characters, no line breaks"
        )));
    }
    if request.html.is_none() && request.text.is_none() {
        return Err(invalid("html or text: at least one is required"));
    }
    for (name, value) in &request.headers {
        check_custom_header(name, value).map_err(|e| invalid(e.to_string()))?;
    }
    if request.tags.len() > MAX_TAGS {
        return Err(invalid(format!("tags: at most {MAX_TAGS}")));
    }
    for tag in &request.tags {
        check_tag(tag).map_err(|e| invalid(e.to_string()))?;
    }
    let attachments = request
        .attachments
        .into_iter()
        .enumerate()
        .map(|(i, a)| attachment(i, a))
        .collect::<Result<Vec<_>, _>>()?;
    let scheduled_at = match request.scheduled_at.as_deref() {
        None => None,
        Some(raw) => {
            let at = parse_time("scheduled_at", raw)?;
            let now = OffsetDateTime::now_utc();
            if at > now + time::Duration::days(366) {
                return Err(invalid("scheduled_at: at most one year ahead"));
            }
            // A time already past means "now".
            (at > now).then_some(at)
        }
    };
    Ok(Submission {
        from,
        to,
        cc,
        bcc,
        reply_to,
        subject: request.subject,
        html: request.html,
        text: request.text,
        headers: request.headers.into_iter().collect(),
        attachments,
        tags: request.tags,
        scheduled_at,
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::InvalidIdempotencyKey(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_owned()))
}

/// The hash that tells "same request" from "another request under the same key": the body,
/// re-serialised with sorted keys so formatting does not matter.
fn request_hash(body: &Value) -> [u8; 32] {
    Sha256::digest(serde_json::to_vec(body).unwrap_or_default()).into()
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

async fn commit(
    state: &AppState,
    tenant_id: TenantId,
    emails: Vec<NewEmail>,
    key: Option<String>,
    body: &Value,
    response: Value,
) -> Result<Response, ApiError> {
    let record = key.as_deref().map(|key| IdempotencyRecord {
        key,
        request_hash: request_hash(body),
        response_status: 200,
        response_body: &response,
    });
    match ingest::accept(&state.writer, tenant_id, emails, record.as_ref()).await? {
        InsertOutcome::Inserted => Ok((StatusCode::OK, Json(response)).into_response()),
        InsertOutcome::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            Ok((status, Json(body)).into_response())
        }
        InsertOutcome::KeyReused => Err(ApiError::IdempotencyConflict),
    }
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
) -> Result<Response, ApiError> {
    auth.require(Scope::Send)?;
    let key = idempotency_key(&headers)?;
    let request: SendEmailRequest = parse_request(body.clone())?;
    let submission = submission_from_request(request, &auth.sending)?;
    let email = ingest::prepare(submission, &auth.sending, state.max_message_bytes)?;
    tracing::Span::current().record("email_id", tracing::field::display(email.id));
    let response = serde_json::json!({ "id": email.id });
    commit(&state, auth.tenant_id, vec![email], key, &body, response).await
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
) -> Result<Response, ApiError> {
    auth.require(Scope::Send)?;
    let key = idempotency_key(&headers)?;
    let requests: Vec<Value> = parse_request(body.clone())?;
    if requests.is_empty() || requests.len() > MAX_BATCH {
        return Err(ApiError::Validation(format!(
            "a batch holds 1 to {MAX_BATCH} emails"
        )));
    }
    let mut emails = Vec::with_capacity(requests.len());
    for (index, request) in requests.into_iter().enumerate() {
        let at = |e: ApiError| ApiError::Validation(format!("[{index}] {e}"));
        let request: SendEmailRequest = parse_request(request).map_err(at)?;
        let submission =
            submission_from_request(request, &auth.sending).map_err(|e| at(e.into()))?;
        emails.push(
            ingest::prepare(submission, &auth.sending, state.max_message_bytes)
                .map_err(|e| at(e.into()))?,
        );
    }
    let data: Vec<Value> = emails
        .iter()
        .map(|e| serde_json::json!({ "id": e.id }))
        .collect();
    commit(
        &state,
        auth.tenant_id,
        emails,
        key,
        &body,
        serde_json::json!({ "data": data }),
    )
    .await
}

/// The overall state of an email, from its recipients' states.
fn last_event(email: &EmailRecord, deliveries: &[DeliveryRecord]) -> &'static str {
    let any = |s: &str| deliveries.iter().any(|d| d.status == s);
    let all = |s: &str| !deliveries.is_empty() && deliveries.iter().all(|d| d.status == s);
    if all("canceled") {
        "canceled"
    } else if any("sending") {
        "sending"
    } else if any("queued") {
        let waiting = email.scheduled_at.is_some() && deliveries.iter().all(|d| d.attempts == 0);
        if waiting { "scheduled" } else { "queued" }
    } else if any("deferred") {
        "deferred"
    } else if any("bounced") {
        "bounced"
    } else if any("failed") {
        "failed"
    } else {
        "delivered"
    }
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
    let last_event = last_event(&email, &deliveries);
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
    let email = state.store.get_email(auth.tenant_id, id).await?;
    let deliveries = state.store.deliveries_of(auth.tenant_id, &[id]).await?;
    let events = state.store.events_of(auth.tenant_id, id).await?;
    Ok(Json(email_view(email, deliveries, Some(events))))
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
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::Validation(
            "limit must be from 1 to 100".to_owned(),
        ));
    }
    if let Some(status) = &query.status
        && !DELIVERY_STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::Validation(format!(
            "status must be one of {}",
            DELIVERY_STATUSES.join(", ")
        )));
    }
    let tag = match &query.tag {
        None => None,
        Some(raw) => Some(
            raw.split_once(':')
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .ok_or_else(|| ApiError::Validation("tag must be name:value".to_owned()))?,
        ),
    };
    let time = |field: &str, raw: &Option<String>| {
        raw.as_deref()
            .map(|r| parse_time(field, r))
            .transpose()
            .map_err(ApiError::from)
    };
    let filter = EmailFilter {
        status: query.status.clone(),
        tag,
        created_after: time("created_after", &query.created_after)?,
        created_before: time("created_before", &query.created_before)?,
        before_id: query.after,
    };
    let mut emails = state
        .store
        .list_emails(auth.tenant_id, &filter, i64::from(limit) + 1)
        .await?;
    let has_more = emails.len() > limit as usize;
    emails.truncate(limit as usize);
    let ids: Vec<Uuid> = emails.iter().map(|e| e.id).collect();
    let mut deliveries = state.store.deliveries_of(auth.tenant_id, &ids).await?;
    let data = emails
        .into_iter()
        .map(|email| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                deliveries.drain(..).partition(|d| d.email_id == email.id);
            deliveries = rest;
            email_view(email, mine, None)
        })
        .collect();
    Ok(Json(EmailList {
        object: "list",
        data,
        has_more,
    }))
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
