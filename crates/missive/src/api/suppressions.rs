//! `/v1/suppressions`: Resend's Suppressions API for a tenant's suppression list (add, list,
//! get and remove by id or address, and the batch forms). Scope `suppressions:manage`.
//!
//! A suppressed address still gets accepted mail: its recipient is `suppressed` at once, with its
//! `email.suppressed` event, and never sent; the email's other recipients are delivered.

use axum::Json;
use axum::extract::State;
use missive_core::{EmailAddress, Scope, SuppressionOrigin};
use missive_store::{SuppressionKey, SuppressionRecord};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::TenantAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, page};
use crate::state::AppState;

/// Addresses one batch call adds or removes at most (Resend's limit).
const MAX_BATCH: usize = 100;

/// `POST /v1/suppressions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSuppressionRequest {
    /// The address to suppress.
    #[schema(max_length = 320)]
    pub email: String,
}

/// `POST /v1/suppressions/batch/add`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSuppressionsRequest {
    /// 1 to 100 addresses.
    #[schema(min_items = 1, max_items = 100)]
    pub emails: Vec<String>,
}

/// `POST /v1/suppressions/batch/remove`: addresses or ids, not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveSuppressionsRequest {
    #[schema(min_items = 1, max_items = 100)]
    pub emails: Option<Vec<String>>,
    #[schema(min_items = 1, max_items = 100)]
    pub ids: Option<Vec<Uuid>>,
}

/// A suppressed address (Resend's shape, with our `tenant_id` and the refusal that put it
/// there).
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionView {
    /// Always `suppression`.
    #[schema(example = "suppression")]
    pub object: &'static str,
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// Lower-cased.
    pub email: String,
    pub origin: SuppressionOrigin,
    /// The email that bounced; null for manual entries.
    pub source_id: Option<Uuid>,
    /// The upstream server's reply, for a bounce.
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

fn view(record: SuppressionRecord) -> SuppressionView {
    SuppressionView {
        object: "suppression",
        id: record.id,
        tenant_id: record.tenant_id,
        email: record.email,
        origin: record.origin,
        source_id: record.source_id,
        reason: record.reason,
        created_at: record.created_at,
    }
}

/// The answer to an add: the entry's id (an address already listed keeps its entry).
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionRefView {
    #[schema(example = "suppression")]
    pub object: &'static str,
    pub id: Uuid,
}

/// The answer to a removal.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemovedSuppression {
    #[schema(example = "suppression")]
    pub object: &'static str,
    pub id: Uuid,
    pub deleted: bool,
}

/// The answer to a batch add.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddedSuppressions {
    pub data: Vec<SuppressionRefView>,
}

/// The answer to a batch removal: the entries that were on the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemovedSuppressions {
    pub data: Vec<RemovedSuppression>,
}

/// A page of the list, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<SuppressionView>,
    pub has_more: bool,
}

/// Filter and paging for `GET /v1/suppressions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSuppressionsQuery {
    /// Only entries of this origin.
    pub origin: Option<SuppressionOrigin>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// Entries older than this id (the last id of the previous page).
    pub after: Option<Uuid>,
    /// Entries newer than this id. With `after` too, the entries between the two.
    pub before: Option<Uuid>,
}

/// Checks each address; the whole request is refused for one bad address.
fn addresses(emails: &[String]) -> Result<Vec<&str>, ApiError> {
    if emails.is_empty() || emails.len() > MAX_BATCH {
        return Err(ApiError::Validation(format!(
            "emails: from 1 to {MAX_BATCH} addresses"
        )));
    }
    emails
        .iter()
        .map(|email| {
            EmailAddress::parse(email.trim())
                .map(|_| email.trim())
                .map_err(|e| ApiError::Validation(format!("email `{email}`: {e}")))
        })
        .collect()
}

fn ref_view(record: &SuppressionRecord) -> SuppressionRefView {
    SuppressionRefView {
        object: "suppression",
        id: record.id,
    }
}

/// An id or an address, as the routes take them.
fn key(id_or_email: &str) -> SuppressionKey<'_> {
    id_or_email
        .parse::<Uuid>()
        .map_or(SuppressionKey::Email(id_or_email), SuppressionKey::Id)
}

/// Suppress an address; adding one already listed answers its entry.
#[utoipa::path(
    post, path = "/v1/suppressions", tag = "suppressions",
    request_body = AddSuppressionRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "On the list", body = SuppressionRefView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `suppressions:manage`", body = ErrorBody),
        (status = 422, description = "Not an email address", body = ErrorBody),
    )
)]
pub async fn add_suppression(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<AddSuppressionRequest>,
) -> Result<Json<SuppressionRefView>, ApiError> {
    auth.require(Scope::SuppressionsManage)?;
    let emails = [request.email];
    let added = state
        .store
        .add_suppressions(auth.tenant_id, &addresses(&emails)?)
        .await?;
    let first = added.first().ok_or_else(|| {
        ApiError::Internal("an added suppression was not found after its insert".to_owned())
    })?;
    Ok(Json(ref_view(first)))
}

/// Suppress up to 100 addresses at once.
#[utoipa::path(
    post, path = "/v1/suppressions/batch/add", tag = "suppressions",
    request_body = AddSuppressionsRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "All on the list", body = AddedSuppressions),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `suppressions:manage`", body = ErrorBody),
        (status = 422, description = "No address, more than 100, or one that is not an email address", body = ErrorBody),
    )
)]
pub async fn add_suppressions(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<AddSuppressionsRequest>,
) -> Result<Json<AddedSuppressions>, ApiError> {
    auth.require(Scope::SuppressionsManage)?;
    let added = state
        .store
        .add_suppressions(auth.tenant_id, &addresses(&request.emails)?)
        .await?;
    Ok(Json(AddedSuppressions {
        data: added.iter().map(ref_view).collect(),
    }))
}

/// List the tenant's suppressed addresses, newest first.
#[utoipa::path(
    get, path = "/v1/suppressions", tag = "suppressions",
    params(ListSuppressionsQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One page", body = SuppressionList),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `suppressions:manage`", body = ErrorBody),
        (status = 422, description = "A bad origin or limit", body = ErrorBody),
    )
)]
pub async fn list_suppressions(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListSuppressionsQuery>,
) -> Result<Json<SuppressionList>, ApiError> {
    auth.require(Scope::SuppressionsManage)?;
    let (cursor, limit) = page(query.limit, query.after, query.before)?;
    let page = state
        .store
        .list_suppressions(auth.tenant_id, query.origin, cursor, limit)
        .await?;
    Ok(Json(SuppressionList {
        object: "list",
        data: page.suppressions.into_iter().map(view).collect(),
        has_more: page.has_more,
    }))
}

/// Read one entry, by id or by address.
#[utoipa::path(
    get, path = "/v1/suppressions/{id_or_email}", tag = "suppressions",
    params(("id_or_email" = String, Path, description = "Suppression id or the suppressed address")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The entry", body = SuppressionView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `suppressions:manage`", body = ErrorBody),
        (status = 404, description = "Not on the tenant's list", body = ErrorBody),
    )
)]
pub async fn get_suppression(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id_or_email): ApiPath<String>,
) -> Result<Json<SuppressionView>, ApiError> {
    auth.require(Scope::SuppressionsManage)?;
    let record = state
        .store
        .suppression(auth.tenant_id, key(&id_or_email))
        .await?;
    Ok(Json(view(record)))
}

/// Take an entry off the list, by id or by address: mail accepted from now on reaches it.
#[utoipa::path(
    delete, path = "/v1/suppressions/{id_or_email}", tag = "suppressions",
    params(("id_or_email" = String, Path, description = "Suppression id or the suppressed address")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Removed", body = RemovedSuppression),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `suppressions:manage`", body = ErrorBody),
        (status = 404, description = "Not on the tenant's list", body = ErrorBody),
    )
)]
pub async fn remove_suppression(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id_or_email): ApiPath<String>,
) -> Result<Json<RemovedSuppression>, ApiError> {
    auth.require(Scope::SuppressionsManage)?;
    let removed = state
        .store
        .remove_suppressions(auth.tenant_id, &[key(&id_or_email)])
        .await?;
    let id = removed.first().copied().ok_or_else(ApiError::not_found)?;
    Ok(Json(RemovedSuppression {
        object: "suppression",
        id,
        deleted: true,
    }))
}

/// Take up to 100 entries off the list, by addresses or by ids.
#[utoipa::path(
    post, path = "/v1/suppressions/batch/remove", tag = "suppressions",
    request_body = RemoveSuppressionsRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The entries that were on the list", body = RemovedSuppressions),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `suppressions:manage`", body = ErrorBody),
        (status = 422, description = "Neither or both of `emails` and `ids`, or more than 100", body = ErrorBody),
    )
)]
pub async fn remove_suppressions(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RemoveSuppressionsRequest>,
) -> Result<Json<RemovedSuppressions>, ApiError> {
    auth.require(Scope::SuppressionsManage)?;
    let keys: Vec<SuppressionKey<'_>> = match (&request.emails, &request.ids) {
        (Some(emails), None) if (1..=MAX_BATCH).contains(&emails.len()) => {
            emails.iter().map(|e| SuppressionKey::Email(e)).collect()
        }
        (None, Some(ids)) if (1..=MAX_BATCH).contains(&ids.len()) => {
            ids.iter().copied().map(SuppressionKey::Id).collect()
        }
        _ => {
            return Err(ApiError::Validation(format!(
                "give either `emails` or `ids`, from 1 to {MAX_BATCH}"
            )));
        }
    };
    let removed = state
        .store
        .remove_suppressions(auth.tenant_id, &keys)
        .await?;
    Ok(Json(RemovedSuppressions {
        data: removed
            .into_iter()
            .map(|id| RemovedSuppression {
                object: "suppression",
                id,
                deleted: true,
            })
            .collect(),
    }))
}
