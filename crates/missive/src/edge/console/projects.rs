//! A tenant's projects in the console: a key with `projects:manage` sees every project of its
//! tenant with this month's figures and the tenant's totals, and switches the session to the
//! project whose emails, templates and webhooks it wants to see. The operator sees the same list
//! on a tenant's page.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use missive_core::{MonthPeriod, ProjectId, ProjectRef, Scope};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::session::{ConsoleError, Posted, Session};
use super::views::{self, path_id, value};
use crate::edge::state::AppState;
use crate::tenancy::caller::Caller;
use crate::tenancy::projects;

/// The projects page of a key with `projects:manage`.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?;
    let caller = Caller::Key(auth);
    state.requests.flush_logged(&state.store).await;
    let usage = projects::usage(
        &state.store,
        caller,
        MonthPeriod::of(OffsetDateTime::now_utc()),
    )
    .await?;
    views::page(
        &session,
        "projects",
        "projects",
        json!({
            "usage": value(&usage),
            "current": auth.project_id,
        }),
    )
}

/// The project to switch to.
#[derive(Debug, Deserialize)]
pub struct SwitchForm {
    pub project_id: String,
}

/// Moves the session to another live project of its tenant (needs `projects:manage`).
pub async fn switch(
    State(state): State<AppState>,
    posted: Posted<SwitchForm>,
) -> Result<Response, ConsoleError> {
    let auth = posted.session.tenant()?;
    auth.require(Scope::ProjectsManage)
        .map_err(crate::tenancy::error::ServiceError::from)?;
    let project = ProjectRef {
        tenant_id: auth.tenant_id,
        project_id: path_id::<ProjectId>(&posted.form.project_id)?,
    };
    // A project of another tenant, or one deleted, is a 404 like any id the key cannot see.
    projects::get(&state.store, Caller::Key(auth), project.project_id).await?;
    state
        .store
        .switch_console_project(posted.session.token_hash(), project)
        .await
        .map_err(crate::tenancy::error::ServiceError::from)?;
    Ok(Redirect::to("/console/emails").into_response())
}
