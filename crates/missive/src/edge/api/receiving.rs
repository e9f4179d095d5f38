//! `/v1/emails/receiving`: Resend's Receiving API for mail the MX took for the tenant's domains
//! (list, get, attachments with signed links), the raw message (ours), and the download links
//! themselves, served without an API key. Served by [`crate::tenancy::receiving`]. Scope
//! `receiving:read`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::auth::TenantAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery};
use crate::edge::state::AppState;
use crate::tenancy::receiving::{
    self, AttachmentLinkView, AttachmentList, DownloadQuery, GetReceivedQuery, ListReceivedQuery,
    ReceivedEmailView, ReceivedList,
};

/// List the mail received for the tenant's domains, newest first.
#[utoipa::path(
    get, path = "/v1/emails/receiving", tag = "receiving",
    params(ListReceivedQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One page", body = ReceivedList),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `receiving:read`", body = ErrorBody),
        (status = 422, description = "A bad limit or cursor", body = ErrorBody),
    )
)]
pub async fn list_received(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListReceivedQuery>,
) -> Result<Json<ReceivedList>, ApiError> {
    Ok(Json(
        receiving::list(&state.store, (&auth).into(), &query).await?,
    ))
}

/// One received message: addresses, bodies, headers, attachments' metadata and the SPF, DKIM
/// and DMARC verdicts.
#[utoipa::path(
    get, path = "/v1/emails/receiving/{id}", tag = "receiving",
    params(("id" = Uuid, Path, description = "Received email id"), GetReceivedQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The message", body = ReceivedEmailView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `receiving:read`", body = ErrorBody),
        (status = 404, description = "No such message for this tenant", body = ErrorBody),
    )
)]
pub async fn get_received(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<GetReceivedQuery>,
) -> Result<Json<ReceivedEmailView>, ApiError> {
    Ok(Json(
        receiving::get(&state.store, (&auth).into(), id, query.html_format).await?,
    ))
}

/// The message exactly as received (`message/rfc822`).
#[utoipa::path(
    get, path = "/v1/emails/receiving/{id}/raw", tag = "receiving",
    params(("id" = Uuid, Path, description = "Received email id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The raw message", content_type = "message/rfc822", body = String),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `receiving:read`", body = ErrorBody),
        (status = 404, description = "No such message for this tenant", body = ErrorBody),
    )
)]
pub async fn get_received_raw(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let raw = receiving::raw(&state.store, (&auth).into(), id).await?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], raw).into_response())
}

/// A received message's attachments, each with a signed `download_url` that works without an
/// API key until `expires_at`.
#[utoipa::path(
    get, path = "/v1/emails/receiving/{id}/attachments", tag = "receiving",
    params(("id" = Uuid, Path, description = "Received email id"), ListReceivedQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The attachments", body = AttachmentList),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `receiving:read`", body = ErrorBody),
        (status = 404, description = "No such message for this tenant", body = ErrorBody),
    )
)]
pub async fn list_received_attachments(
    auth: TenantAuth,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<ListReceivedQuery>,
) -> Result<Json<AttachmentList>, ApiError> {
    Ok(Json(
        state
            .receiving
            .attachments(
                &state.store,
                (&auth).into(),
                &crate::edge::request_origin(&headers),
                id,
                &query,
            )
            .await?,
    ))
}

/// One attachment of a received message, with a signed `download_url`.
#[utoipa::path(
    get, path = "/v1/emails/receiving/{id}/attachments/{attachment_id}", tag = "receiving",
    params(
        ("id" = Uuid, Path, description = "Received email id"),
        ("attachment_id" = Uuid, Path, description = "Attachment id"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The attachment", body = AttachmentLinkView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `receiving:read`", body = ErrorBody),
        (status = 404, description = "No such message or attachment for this tenant", body = ErrorBody),
    )
)]
pub async fn get_received_attachment(
    auth: TenantAuth,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath((id, attachment_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<AttachmentLinkView>, ApiError> {
    Ok(Json(
        state
            .receiving
            .attachment(
                &state.store,
                (&auth).into(),
                &crate::edge::request_origin(&headers),
                id,
                attachment_id,
            )
            .await?,
    ))
}

/// An attachment's bytes, by the signed link the attachment routes hand out; no API key.
#[utoipa::path(
    get, path = "/v1/emails/receiving/{id}/attachments/{attachment_id}/content", tag = "receiving",
    params(
        ("id" = Uuid, Path, description = "Received email id"),
        ("attachment_id" = Uuid, Path, description = "Attachment id"),
        DownloadQuery,
    ),
    // The link's signature is its authentication: no API key.
    security(()),
    responses(
        (status = 200, description = "The attachment's bytes", content_type = "application/octet-stream", body = String),
        (status = 404, description = "A link that does not check, has expired, or names nothing", body = ErrorBody),
        (status = 422, description = "A link missing its tenant, expiry or signature", body = ErrorBody),
    )
)]
pub async fn download_received_attachment(
    State(state): State<AppState>,
    ApiPath((id, attachment_id)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(query): ApiQuery<DownloadQuery>,
) -> Result<Response, ApiError> {
    let (meta, bytes) = state
        .receiving
        .download(&state.store, id, attachment_id, &query)
        .await?;
    let content_type = HeaderValue::from_str(&meta.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    // Only a plain name goes into the header; anything else is left to the client.
    let filename: String = meta
        .filename
        .as_deref()
        .unwrap_or("attachment")
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | ';'))
        .collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
        ],
        bytes,
    )
        .into_response())
}
