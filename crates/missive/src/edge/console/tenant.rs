//! A tenant's pages: emails and their timelines, templates with a live preview, webhook
//! endpoints with their events and attempts, domains, usage. Each calls the tenancy service the
//! REST API calls, as the session's tenant key (so its scopes and row-level security are the
//! API's own), and draws the typed view it answers.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use missive_core::template::{Variable, VariableType};
use missive_core::{DeliveryStatus, DomainId, EmailId, WebhookEventId, WebhookId};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::charts::{self, Bar};
use super::session::{ConsoleError, Empty, Posted, Session};
use super::views::{self, path_id, value};
use crate::edge::state::AppState;
use crate::tenancy::caller::{Caller, TenantAuth};
use crate::tenancy::domains::ListDomainsQuery;
use crate::tenancy::emails::{self, ListEmailsQuery};
use crate::tenancy::error::ServiceError;
use crate::tenancy::templates::{ListTemplatesQuery, RenderRequest, UpdateTemplateRequest};
use crate::tenancy::usage::{self, UsageQuery};
use crate::tenancy::webhooks::{ListWebhookEventsQuery, ListWebhooksQuery};

/// Rows per page of a console list.
const PAGE: u32 = 25;

/// A form's empty field is no filter.
fn given(field: Option<&String>) -> Option<&str> {
    field.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// An id from a form or a link's query; anything else is a bad request naming the field.
fn id_param<T: From<uuid::Uuid>>(
    name: &str,
    raw: Option<&String>,
) -> Result<Option<T>, ConsoleError> {
    given(raw)
        .map(|s| {
            uuid::Uuid::parse_str(s)
                .map(T::from)
                .map_err(|_| ServiceError::Invalid(format!("`{name}` is not an id")))
        })
        .transpose()
        .map_err(ConsoleError::from)
}

/// A day (`YYYY-MM-DD`, from a date input) or a full RFC 3339 time.
fn time_param(raw: Option<&String>) -> Option<String> {
    given(raw).map(|s| {
        if s.len() == 10 {
            format!("{s}T00:00:00Z")
        } else {
            s.to_owned()
        }
    })
}

/// The cursor of the page after a list, when there is one: its last row's id.
pub(super) fn next_after<T: ToString>(has_more: bool, last: Option<T>) -> Option<String> {
    has_more.then_some(last).flatten().map(|id| id.to_string())
}

#[derive(Debug, Default, Deserialize)]
pub struct EmailFilters {
    status: Option<String>,
    tag: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after: Option<String>,
}

/// Emails, newest first, filtered by recipient status, tag and time; paged by the API's cursor.
pub async fn emails(
    State(state): State<AppState>,
    session: Session,
    Query(filters): Query<EmailFilters>,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?;
    let status = given(filters.status.as_ref())
        .map(|s| {
            s.parse::<DeliveryStatus>()
                .map_err(|_| ServiceError::Invalid(format!("`{s}` is not a delivery status")))
        })
        .transpose()?;
    let query = ListEmailsQuery {
        limit: Some(PAGE),
        after: id_param::<EmailId>("after", filters.after.as_ref())?,
        status,
        tag: given(filters.tag.as_ref()).map(str::to_owned),
        created_after: time_param(filters.since.as_ref()),
        created_before: time_param(filters.until.as_ref()),
    };
    let list = emails::list(&state.store, auth.into(), &query).await?;
    // The next page keeps the filters and moves the cursor.
    let next = next_after(list.has_more, list.data.last().map(|e| e.id)).map(|last| {
        let mut pairs = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", &filters.status),
            ("tag", &filters.tag),
            ("since", &filters.since),
            ("until", &filters.until),
        ] {
            if let Some(v) = given(v.as_ref()) {
                pairs.append_pair(k, v);
            }
        }
        pairs.append_pair("after", &last);
        pairs.finish()
    });
    views::page(
        &session,
        "emails",
        "emails",
        json!({
            "emails": value(&list.data),
            "next": next,
            "paged": filters.after.is_some(),
            "filters": {
                "status": given(filters.status.as_ref()),
                "tag": given(filters.tag.as_ref()),
                "since": given(filters.since.as_ref()),
                "until": given(filters.until.as_ref()),
            },
            "statuses": DeliveryStatus::ALL.map(DeliveryStatus::as_str),
        }),
    )
}

/// One email: its recipients and its timeline, with SMTP replies and routes.
pub async fn email(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?;
    let email = emails::get(&state.store, auth.into(), path_id(&id)?).await?;
    views::page(
        &session,
        "email",
        "emails",
        json!({ "email": value(&email) }),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct Paging {
    pub(super) after: Option<String>,
}

impl Paging {
    pub(super) fn cursor<T: From<uuid::Uuid>>(&self) -> Result<Option<T>, ConsoleError> {
        id_param("after", self.after.as_ref())
    }
}

/// A page of one of the lists (`data`, `has_more`), with links to the next page and back to the
/// first.
pub(super) fn list_page<T: serde::Serialize>(
    session: &Session,
    section: &str,
    list: &T,
    next: Option<&str>,
    paging: &Paging,
) -> Result<Response, ConsoleError> {
    views::page(
        session,
        section,
        section,
        json!({ "next": next, "list": value(list), "paged": paging.after.is_some() }),
    )
}

/// The tenant's templates (and the shipped ones).
pub async fn templates(
    State(state): State<AppState>,
    session: Session,
    Query(paging): Query<Paging>,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?;
    let query = ListTemplatesQuery {
        limit: Some(PAGE),
        after: paging.cursor()?,
        before: None,
    };
    let list = state.ingest.templates().list(auth.into(), &query).await?;
    let next = next_after(list.has_more, list.data.last().map(|t| t.id));
    list_page(&session, "templates", &list, next.as_deref(), &paging)
}

/// Variables to preview a template with: each declared variable's fallback, or a sample of its
/// type.
fn sample_variables(variables: &[Variable]) -> Map<String, Value> {
    variables
        .iter()
        .map(|variable| {
            let sample = variable
                .fallback_value
                .clone()
                .unwrap_or_else(|| match variable.kind {
                    VariableType::Number => json!(42),
                    VariableType::String => json!(format!("sample {}", variable.key)),
                });
            (variable.key.clone(), sample)
        })
        .collect()
}

/// What a preview shows: the draft rendered, or why it does not render.
async fn render_preview(
    state: &AppState,
    caller: Caller<'_>,
    id: &str,
    variables: Map<String, Value>,
) -> Result<Value, ConsoleError> {
    let request = RenderRequest {
        variables,
        draft: true,
    };
    Ok(
        match state.ingest.templates().render(caller, id, &request).await {
            Ok(r) => {
                json!({ "ok": true, "subject": r.subject, "html": r.html, "text": r.text })
            }
            Err(err) if err.is_client_error() => {
                json!({ "ok": false, "error": err.to_string() })
            }
            Err(err) => return Err(err.into()),
        },
    )
}

/// The editor: the draft's fields, and its preview through the render service.
pub async fn template(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    template_page(&state, &session, &id, None).await
}

async fn template_page(
    state: &AppState,
    session: &Session,
    id: &str,
    notice: Option<&str>,
) -> Result<Response, ConsoleError> {
    let caller = Caller::from(session.tenant()?);
    let template = state.ingest.templates().get(caller, id).await?;
    let variables = sample_variables(&template.variables);
    let preview = render_preview(state, caller, id, variables.clone()).await?;
    views::page(
        session,
        "template",
        "templates",
        json!({
            "template": value(&template),
            "variables": serde_json::to_string_pretty(&variables).unwrap_or_default(),
            "preview": preview,
            "notice": notice,
        }),
    )
}

#[derive(Debug, Deserialize)]
pub struct TemplateForm {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    html: String,
    #[serde(default)]
    text: String,
    /// The preview's variables, as a JSON object.
    #[serde(default)]
    variables: String,
}

/// Saves the form into the template's draft (sends keep using the published version).
async fn save_draft(
    state: &AppState,
    auth: &TenantAuth,
    id: &str,
    form: &TemplateForm,
) -> Result<(), ServiceError> {
    let optional = |s: &str| Some((!s.trim().is_empty()).then(|| s.to_owned()));
    let patch = UpdateTemplateRequest {
        subject: optional(&form.subject),
        html: Some(form.html.clone()),
        text: optional(&form.text),
        ..Default::default()
    };
    state
        .ingest
        .templates()
        .update(auth.into(), id, patch)
        .await?;
    Ok(())
}

/// Saves the draft and shows the editor again.
pub async fn save_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<TemplateForm>,
) -> Result<Response, ConsoleError> {
    let auth = posted.session.tenant()?;
    match save_draft(&state, auth, &id, &posted.form).await {
        Ok(()) => Ok(Redirect::to(&format!("/console/templates/{id}")).into_response()),
        Err(err) if err.is_client_error() => {
            let mut response =
                template_page(&state, &posted.session, &id, Some(&err.to_string())).await?;
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(response)
        }
        Err(err) => Err(err.into()),
    }
}

/// The live preview: saves the draft as typed and answers with its rendering, a fragment the
/// editor's script puts in place.
pub async fn preview_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<TemplateForm>,
) -> Result<Response, ConsoleError> {
    let auth = posted.session.tenant()?;
    let variables = if posted.form.variables.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str::<Map<String, Value>>(&posted.form.variables) {
            Ok(v) => v,
            Err(e) => {
                let preview = json!({ "ok": false, "error": format!("variables: {e}") });
                return Ok(views::render_bare(
                    StatusCode::OK,
                    "preview",
                    &json!({ "preview": preview }),
                ));
            }
        }
    };
    let preview = match save_draft(&state, auth, &id, &posted.form).await {
        Ok(()) => render_preview(&state, auth.into(), &id, variables).await?,
        Err(err) if err.is_client_error() => {
            json!({ "ok": false, "error": err.to_string() })
        }
        Err(err) => return Err(err.into()),
    };
    Ok(views::render_bare(
        StatusCode::OK,
        "preview",
        &json!({ "preview": preview }),
    ))
}

/// Publishes the draft: sends use it from now on.
pub async fn publish_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<Empty>,
) -> Result<Response, ConsoleError> {
    let auth = posted.session.tenant()?;
    state.ingest.templates().publish(auth.into(), &id).await?;
    Ok(Redirect::to(&format!("/console/templates/{id}")).into_response())
}

/// The tenant's webhook endpoints.
pub async fn webhooks(
    State(state): State<AppState>,
    session: Session,
    Query(paging): Query<Paging>,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?;
    let query = ListWebhooksQuery {
        limit: Some(PAGE),
        after: paging.cursor()?,
        before: None,
    };
    let list = state.webhooks.list(auth.into(), &query).await?;
    let next = next_after(list.has_more, list.data.last().map(|w| w.id));
    list_page(&session, "webhooks", &list, next.as_deref(), &paging)
}

/// An endpoint and its recent events.
pub async fn webhook(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Response, ConsoleError> {
    let caller = Caller::from(session.tenant()?);
    let id: WebhookId = path_id(&id)?;
    let endpoint = state.webhooks.get(caller, id).await?;
    let query = ListWebhookEventsQuery {
        limit: Some(PAGE),
        after: paging.cursor()?,
    };
    let events = state.webhooks.events(caller, id, &query).await?;
    let next = next_after(events.has_more, events.data.last().map(|e| e.id));
    views::page(
        &session,
        "webhook",
        "webhooks",
        json!({
            "endpoint": value(&endpoint),
            "next": next,
            "events": value(&events),
            "paged": paging.after.is_some(),
        }),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct EventNotice {
    replayed: Option<String>,
}

/// One event: its payload, each delivery attempt with the receiver's answer, and a replay button.
pub async fn webhook_event(
    State(state): State<AppState>,
    session: Session,
    Path((id, event_id)): Path<(String, String)>,
    Query(notice): Query<EventNotice>,
) -> Result<Response, ConsoleError> {
    let caller = Caller::from(session.tenant()?);
    let (id, event_id): (WebhookId, WebhookEventId) = (path_id(&id)?, path_id(&event_id)?);
    let event = state.webhooks.event(caller, id, event_id).await?;
    let attempts = state.webhooks.attempts(caller, id, event_id).await?;
    views::page(
        &session,
        "webhook_event",
        "webhooks",
        json!({
            "webhook_id": id,
            "event": value(&event),
            "attempts": value(&attempts),
            "replayed": notice.replayed.is_some(),
        }),
    )
}

/// Sends the event again from the start of its retry schedule (same id and body); shows it.
pub async fn replay_webhook_event(
    State(state): State<AppState>,
    Path((id, event_id)): Path<(String, String)>,
    posted: Posted<Empty>,
) -> Result<Response, ConsoleError> {
    let auth = posted.session.tenant()?;
    let (id, event_id): (WebhookId, WebhookEventId) = (path_id(&id)?, path_id(&event_id)?);
    let replayed = state.webhooks.replay(auth.into(), id, event_id).await?;
    Ok(Redirect::to(&format!(
        "/console/webhooks/{id}/events/{}?replayed=1",
        replayed.id
    ))
    .into_response())
}

/// The tenant's sending domains.
pub async fn domains(
    State(state): State<AppState>,
    session: Session,
    Query(paging): Query<Paging>,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?;
    let query = ListDomainsQuery {
        limit: Some(PAGE),
        after: paging.cursor()?,
        before: None,
    };
    let list = state.domains.list(auth.into(), &query).await?;
    let next = next_after(list.has_more, list.data.last().map(|d| d.id));
    list_page(&session, "domains", &list, next.as_deref(), &paging)
}

/// A domain with the records to publish and a verify button.
pub async fn domain(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?;
    let id: DomainId = path_id(&id)?;
    let domain = state.domains.get(auth.into(), id).await?;
    views::page(
        &session,
        "domain",
        "domains",
        json!({ "domain": value(&domain) }),
    )
}

/// Checks the domain's records now; shows the domain again.
pub async fn verify_domain(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<Empty>,
) -> Result<Response, ConsoleError> {
    let auth = posted.session.tenant()?;
    let id: DomainId = path_id(&id)?;
    state.domains.verify(auth.into(), id).await?;
    Ok(Redirect::to(&format!("/console/domains/{id}")).into_response())
}

/// This month's usage, a bar a day, and the quotas.
pub async fn usage(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?;
    let today = OffsetDateTime::now_utc().date();
    let first = today.replace_day(1).unwrap_or(today);
    let query = UsageQuery {
        from: Some(first.to_string()),
        to: Some(today.to_string()),
    };
    let default_rate = state.rates.tenant_limit(None);
    let usage = usage::get(&state.store, &state.requests, auth, &query, default_rate).await?;
    // Every day of the month so far, days without activity as empty bars.
    let by_day: std::collections::HashMap<&str, _> = usage
        .days
        .iter()
        .flatten()
        .map(|day| (day.date.as_str(), &day.figures))
        .collect();
    let mut bars = Vec::new();
    let mut day = first;
    while day <= today {
        let figures = by_day.get(day.to_string().as_str());
        bars.push(Bar {
            label: format!("{:02}", day.day()),
            values: figures.map_or(vec![0, 0, 0], |f| vec![f.delivered, f.bounced, f.failed]),
        });
        let Some(next) = day.next_day() else { break };
        day = next;
    }
    let chart = charts::bars(&bars, &["delivered", "bounced", "failed"], 1);
    views::page(
        &session,
        "usage",
        "usage",
        json!({
            "usage": value(&usage),
            "chart": chart,
            "month": format!("{}-{:02}", today.year(), u8::from(today.month())),
        }),
    )
}
