//! The console's received mail: the tenant's list, and one message with its envelope, its
//! SPF, DKIM and DMARC verdicts, its text, and its attachments with download links (the same
//! signed, expiring links the Receiving API hands out).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

use super::session::{ConsoleError, Session};
use super::tenant::{Paging, list_page, next_after};
use super::views::{self, path_id, value};
use crate::edge::state::AppState;
use crate::tenancy::receiving::{self, ListReceivedQuery};

/// Received messages per page.
const PAGE: u32 = 25;

/// The tenant's received mail, newest first.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(paging): Query<Paging>,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?;
    let query = ListReceivedQuery {
        limit: Some(PAGE),
        after: paging.cursor()?,
        before: None,
    };
    let list = receiving::list(&state.store, auth.into(), &query).await?;
    let next = next_after(list.has_more, list.data.last().map(|r| r.id));
    list_page(&session, "received", &list, next.as_deref(), &paging)
}

/// One received message with its verdicts and attachments.
pub async fn view(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?;
    let id: uuid::Uuid = path_id(&id)?;
    let email = receiving::get(&state.store, auth.into(), id, None).await?;
    let query = ListReceivedQuery {
        limit: Some(100),
        after: None,
        before: None,
    };
    let attachments = state
        .receiving
        .attachments(
            &state.store,
            auth.into(),
            &crate::edge::request_origin(&headers),
            id,
            &query,
        )
        .await?;
    views::page(
        &session,
        "received_email",
        "received",
        json!({ "email": value(&email), "attachments": value(&attachments.data) }),
    )
}
