//! A tenant's pages: emails and their timelines, templates with a live preview, webhook
//! endpoints with their events and attempts, domains, usage. Each calls the REST handler the
//! API answers with, as the session's tenant key, and draws what it returned.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use missive_core::DeliveryStatus;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::charts::{self, Bar};
use super::session::{ConsoleError, Empty, Posted, Session};
use super::views::{self, path_id, value};
use crate::api::emails::{self as email_api, ListEmailsQuery};
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::templates::{self as template_api, ListTemplatesQuery, RenderRequest};
use crate::api::webhooks::{self as webhook_api, ListWebhookEventsQuery, ListWebhooksQuery};
use crate::api::{domains as domain_api, usage as usage_api};
use crate::state::AppState;

/// Rows per page of a console list.
const PAGE: u32 = 25;

/// The cursor of the page after an API list (its last id), when there is one.
fn next_after(list: &Value) -> Option<String> {
    if list["has_more"] != Value::Bool(true) {
        return None;
    }
    list["data"]
        .as_array()
        .and_then(|rows| rows.last())
        .and_then(|row| row["id"].as_str())
        .map(str::to_owned)
}

/// A form's empty field is no filter.
fn given(field: Option<&String>) -> Option<&str> {
    field.map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn uuid_param(name: &str, raw: Option<&String>) -> Result<Option<Uuid>, ConsoleError> {
    given(raw)
        .map(|s| {
            Uuid::parse_str(s).map_err(|_| ApiError::Validation(format!("`{name}` is not an id")))
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
    let auth = session.tenant()?.clone();
    let status = given(filters.status.as_ref())
        .map(|s| {
            serde_json::from_value(json!(s))
                .map_err(|_| ApiError::Validation(format!("`{s}` is not a delivery status")))
        })
        .transpose()?;
    let query = ListEmailsQuery {
        limit: Some(PAGE),
        after: uuid_param("after", filters.after.as_ref())?,
        status,
        tag: given(filters.tag.as_ref()).map(str::to_owned),
        created_after: time_param(filters.since.as_ref()),
        created_before: time_param(filters.until.as_ref()),
    };
    let Json(list) = email_api::list_emails(auth, State(state.clone()), ApiQuery(query)).await?;
    // The next page keeps the filters and moves the cursor.
    let next = (list.has_more)
        .then(|| list.data.last().map(|e| e.id))
        .flatten()
        .map(|last| {
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
            pairs.append_pair("after", &last.to_string());
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
    let auth = session.tenant()?.clone();
    let id = path_id(&id)?;
    let Json(email) = email_api::get_email(auth, State(state.clone()), ApiPath(id)).await?;
    views::page(
        &session,
        "email",
        "emails",
        json!({ "email": value(&email) }),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct Paging {
    after: Option<String>,
}

impl Paging {
    fn cursor(&self) -> Result<Option<Uuid>, ConsoleError> {
        uuid_param("after", self.after.as_ref())
    }
}

/// A page of one of the API's lists (`data`, `has_more`), with links to the next page and back
/// to the first.
fn list_page<T: serde::Serialize>(
    session: &Session,
    section: &str,
    list: &T,
    paging: &Paging,
) -> Result<Response, ConsoleError> {
    let list = value(list);
    views::page(
        session,
        section,
        section,
        json!({ "next": next_after(&list), "list": list, "paged": paging.after.is_some() }),
    )
}

/// The tenant's templates (and the shipped ones).
pub async fn templates(
    State(state): State<AppState>,
    session: Session,
    Query(paging): Query<Paging>,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?.clone();
    let query = ListTemplatesQuery {
        limit: Some(PAGE),
        after: paging.cursor()?,
        before: None,
    };
    let Json(list) =
        template_api::list_templates(auth, State(state.clone()), ApiQuery(query)).await?;
    list_page(&session, "templates", &list, &paging)
}

/// Variables to preview a template with: each declared variable's fallback, or a sample of its
/// type.
fn sample_variables(variables: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for variable in variables.as_array().into_iter().flatten() {
        let Some(key) = variable.get("key").and_then(Value::as_str) else {
            continue;
        };
        let sample = variable.get("fallback_value").cloned().unwrap_or_else(|| {
            match variable.get("type").and_then(Value::as_str) {
                Some("number") => json!(42),
                Some("boolean") => json!(true),
                Some("list" | "array") => json!([]),
                Some("object") => json!({}),
                _ => json!(format!("sample {key}")),
            }
        });
        out.insert(key.to_owned(), sample);
    }
    out
}

/// What a preview shows: the draft rendered, or why it does not render.
async fn render_preview(
    state: &AppState,
    session: &Session,
    id: &str,
    variables: Map<String, Value>,
) -> Result<Value, ConsoleError> {
    let auth = session.tenant()?.clone();
    let rendered = template_api::render_template(
        auth,
        State(state.clone()),
        ApiPath(id.to_owned()),
        ApiJson(RenderRequest {
            variables,
            draft: true,
        }),
    )
    .await;
    Ok(match rendered {
        Ok(Json(r)) => json!({ "ok": true, "subject": r.subject, "html": r.html, "text": r.text }),
        Err(err) if err.status().is_client_error() => {
            json!({ "ok": false, "error": err.to_string() })
        }
        Err(err) => return Err(err.into()),
    })
}

/// The editor: the draft's fields, and its preview through the render endpoint.
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
    let auth = session.tenant()?.clone();
    let Json(template) =
        template_api::get_template(auth, State(state.clone()), ApiPath(id.to_owned())).await?;
    let template = value(&template);
    let variables = sample_variables(&template["variables"]);
    let preview = render_preview(state, session, id, variables.clone()).await?;
    views::page(
        session,
        "template",
        "templates",
        json!({
            "template": template,
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
    session: &Session,
    id: &str,
    form: &TemplateForm,
) -> Result<(), ConsoleError> {
    let auth = session.tenant()?.clone();
    let optional = |s: &str| Some((!s.trim().is_empty()).then(|| s.to_owned()));
    let patch = template_api::UpdateTemplateRequest {
        subject: optional(&form.subject),
        html: Some(form.html.clone()),
        text: optional(&form.text),
        ..Default::default()
    };
    let _saved = template_api::update_template(
        auth,
        State(state.clone()),
        ApiPath(id.to_owned()),
        ApiJson(patch),
    )
    .await?;
    Ok(())
}

/// Saves the draft and shows the editor again.
pub async fn save_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<TemplateForm>,
) -> Result<Response, ConsoleError> {
    match save_draft(&state, &posted.session, &id, &posted.form).await {
        Ok(()) => Ok(Redirect::to(&format!("/console/templates/{id}")).into_response()),
        Err(ConsoleError::Api(err)) if err.status().is_client_error() => {
            let mut response =
                template_page(&state, &posted.session, &id, Some(&err.to_string())).await?;
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(response)
        }
        Err(err) => Err(err),
    }
}

/// The live preview: saves the draft as typed and answers with its rendering, a fragment the
/// editor's script puts in place.
pub async fn preview_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<TemplateForm>,
) -> Result<Response, ConsoleError> {
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
    let preview = match save_draft(&state, &posted.session, &id, &posted.form).await {
        Ok(()) => render_preview(&state, &posted.session, &id, variables).await?,
        Err(ConsoleError::Api(err)) if err.status().is_client_error() => {
            json!({ "ok": false, "error": err.to_string() })
        }
        Err(err) => return Err(err),
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
    let auth = posted.session.tenant()?.clone();
    let _published =
        template_api::publish_template(auth, State(state.clone()), ApiPath(id.clone())).await?;
    Ok(Redirect::to(&format!("/console/templates/{id}")).into_response())
}

/// The tenant's webhook endpoints.
pub async fn webhooks(
    State(state): State<AppState>,
    session: Session,
    Query(paging): Query<Paging>,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?.clone();
    let query = ListWebhooksQuery {
        limit: Some(PAGE),
        after: paging.cursor()?,
        before: None,
    };
    let Json(list) =
        webhook_api::list_webhooks(auth, State(state.clone()), ApiQuery(query)).await?;
    list_page(&session, "webhooks", &list, &paging)
}

/// An endpoint and its recent events.
pub async fn webhook(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?.clone();
    let id = path_id(&id)?;
    let Json(endpoint) =
        webhook_api::get_webhook(auth.clone(), State(state.clone()), ApiPath(id)).await?;
    let query = ListWebhookEventsQuery {
        limit: Some(PAGE),
        after: paging.cursor()?,
    };
    let Json(events) =
        webhook_api::list_webhook_events(auth, State(state.clone()), ApiPath(id), ApiQuery(query))
            .await?;
    views::page(
        &session,
        "webhook",
        "webhooks",
        json!({
            "endpoint": value(&endpoint),
            "next": next_after(&value(&events)),
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
    let auth = session.tenant()?.clone();
    let (id, event_id) = (path_id(&id)?, path_id(&event_id)?);
    let Json(event) =
        webhook_api::get_webhook_event(auth.clone(), State(state.clone()), ApiPath((id, event_id)))
            .await?;
    let Json(attempts) =
        webhook_api::list_webhook_attempts(auth, State(state.clone()), ApiPath((id, event_id)))
            .await?;
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
    let auth = posted.session.tenant()?.clone();
    let (id, event_id) = (path_id(&id)?, path_id(&event_id)?);
    let Json(replayed) =
        webhook_api::replay_webhook_event(auth, State(state.clone()), ApiPath((id, event_id)))
            .await?;
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
    let auth = session.tenant()?.clone();
    let query = domain_api::ListDomainsQuery {
        limit: Some(PAGE),
        after: paging.cursor()?,
        before: None,
    };
    let Json(list) = domain_api::list_domains(auth, State(state.clone()), ApiQuery(query)).await?;
    list_page(&session, "domains", &list, &paging)
}

/// A domain with the records to publish and a verify button.
pub async fn domain(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?.clone();
    let id = path_id(&id)?;
    let Json(domain) = domain_api::get_domain(auth, State(state.clone()), ApiPath(id)).await?;
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
    let auth = posted.session.tenant()?.clone();
    let id = path_id(&id)?;
    let _checked = domain_api::verify_domain(auth, State(state.clone()), ApiPath(id)).await?;
    Ok(Redirect::to(&format!("/console/domains/{id}")).into_response())
}

/// This month's usage, a bar a day, and the quotas.
pub async fn usage(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?.clone();
    let today = OffsetDateTime::now_utc().date();
    let first = today.replace_day(1).unwrap_or(today);
    let query = usage_api::UsageQuery {
        from: Some(first.to_string()),
        to: Some(today.to_string()),
    };
    let Json(usage) = usage_api::get_usage(auth, State(state.clone()), ApiQuery(query)).await?;
    let usage = value(&usage);
    // Every day of the month so far, days without activity as empty bars.
    let mut by_day = std::collections::HashMap::new();
    for day in usage["days"].as_array().into_iter().flatten() {
        if let Some(date) = day["date"].as_str() {
            by_day.insert(date.to_owned(), day.clone());
        }
    }
    let mut bars = Vec::new();
    let mut day = first;
    while day <= today {
        let figures = by_day.get(&day.to_string());
        let n = |k: &str| figures.and_then(|f| f[k].as_i64()).unwrap_or(0);
        bars.push(Bar {
            label: format!("{:02}", day.day()),
            values: vec![n("delivered"), n("bounced"), n("failed")],
        });
        let Some(next) = day.next_day() else { break };
        day = next;
    }
    let chart = charts::bars(&bars, &["delivered", "bounced", "failed"], 1);
    views::page(
        &session,
        "usage",
        "usage",
        json!({ "usage": usage, "chart": chart, "month": format!("{}-{:02}", today.year(), u8::from(today.month())) }),
    )
}
