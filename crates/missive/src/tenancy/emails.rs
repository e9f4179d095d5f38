//! A tenant's emails as the API and the console show them: one with its recipients and its
//! history, a filtered page of them, and canceling a scheduled one. Sending is the accept path's
//! ([`crate::ingest`]).

use missive_core::outcome::BounceClass;
use missive_core::submission::{
    RecipientKind, SubmissionError, Tag, parse_rfc3339, parse_tag_filter,
};
use missive_core::{
    DeliveryStatus, EmailId, EmailState, EventKind, ProjectId, Reach, RouteKind, Scope, TenantId,
};
use missive_store::{DeliveryRecord, EmailFilter, EmailRecord, EventRecord, Store};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::tenancy::caller::Caller;
use crate::tenancy::error::ServiceError;
use crate::tenancy::page::page_limit;

/// One address or a list of them, as Resend accepts.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    #[must_use]
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
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
    #[schema(example = "tenant")]
    pub kind: RouteKind,
    #[schema(example = "smtp.acme.test:587")]
    pub host: Option<String>,
}

fn route_view(kind: Option<RouteKind>, host: Option<String>) -> Option<RouteView> {
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
    /// For what a delivery report or a complaint said after the relay accepted the message:
    /// the report's enhanced status and the system that reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportView>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What a report said, on the event it caused.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportView {
    /// The enhanced status (`5.1.1`), when the report gave one.
    pub status: Option<String>,
    /// The reporting MTA.
    pub reporting_mta: Option<String>,
}

/// An email: Resend's fields plus the tenant, each recipient's status and the history.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailView {
    /// Always `email`.
    #[schema(example = "email")]
    pub object: &'static str,
    pub id: EmailId,
    pub tenant_id: TenantId,
    pub project_id: ProjectId,
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
    pub after: Option<EmailId>,
    /// Emails with a recipient in this state.
    pub status: Option<DeliveryStatus>,
    /// `name:value`.
    pub tag: Option<String>,
    /// RFC 3339; emails created at or after.
    pub created_after: Option<String>,
    /// RFC 3339; emails created before.
    pub created_before: Option<String>,
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
        project_id: email.project_id,
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
                bounce_class: d.bounce_class,
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
                    report: (e.report_status.is_some() || e.reporting_mta.is_some()).then_some(
                        ReportView {
                            status: e.report_status,
                            reporting_mta: e.reporting_mta,
                        },
                    ),
                    created_at: e.created_at,
                })
                .collect()
        }),
    }
}

/// One email with each recipient's status and the event history (scope `emails:read`).
///
/// # Errors
/// [`ServiceError::NotFound`] when the tenant has no such email.
pub async fn get(
    store: &Store,
    caller: Caller<'_>,
    id: EmailId,
) -> Result<EmailView, ServiceError> {
    let reach = caller.require_reach(Scope::EmailsRead)?;
    let detail = store.email_detail(reach, id).await?;
    Ok(email_view(
        detail.email,
        detail.deliveries,
        Some(detail.events),
    ))
}

/// A page of emails, newest first, filtered by recipient status, tag and creation time (scope
/// `emails:read`). The operator's call for an unknown tenant is a 404, not an empty list.
///
/// # Errors
/// [`ServiceError::Invalid`] for a bad filter.
pub async fn list(
    store: &Store,
    caller: Caller<'_>,
    query: &ListEmailsQuery,
) -> Result<EmailList, ServiceError> {
    let tenant = caller.require(Scope::EmailsRead)?;
    if caller.is_operator() {
        store.get_tenant(tenant).await?;
    }
    list_of(store, caller.reach(), query).await
}

async fn list_of(
    store: &Store,
    reach: Reach,
    query: &ListEmailsQuery,
) -> Result<EmailList, ServiceError> {
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
            .map_err(ServiceError::from)
    };
    let filter = EmailFilter {
        status: query.status,
        tag,
        created_after: time("created_after", &query.created_after)?,
        created_before: time("created_before", &query.created_before)?,
        before_id: query.after,
    };
    let page = store.list_emails(reach, &filter, limit).await?;
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

/// Cancels a scheduled email whose sending has not begun (scope `send`).
///
/// # Errors
/// [`ServiceError::NotFound`], or [`ServiceError::Conflict`] when it is not scheduled or sending
/// has begun.
pub async fn cancel(store: &Store, caller: Caller<'_>, id: EmailId) -> Result<(), ServiceError> {
    let reach = caller.require_reach(Scope::Send)?;
    let tenant = reach.tenant_id;
    store.cancel_email(reach, id).await?;
    tracing::info!(tenant_id = %tenant, email_id = %id, "scheduled email canceled");
    Ok(())
}

impl From<SubmissionError> for ServiceError {
    fn from(err: SubmissionError) -> Self {
        Self::Invalid(err.to_string())
    }
}
