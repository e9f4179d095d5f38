//! `/v1/suppressions`: Resend's Suppressions API for a tenant's suppression list (add, list,
//! get and remove by id or address, and the batch forms), served by
//! [`crate::tenancy::suppressions`]. Scope `suppressions:manage`.

use axum::Json;
use axum::extract::State;

use super::auth::TenantAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::edge::state::AppState;
use crate::tenancy::suppressions::{
    self, AddSuppressionRequest, AddSuppressionsRequest, AddedSuppressions, ListSuppressionsQuery,
    RemoveSuppressionsRequest, RemovedSuppression, RemovedSuppressions, SuppressionList,
    SuppressionRefView, SuppressionView,
};

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
    Ok(Json(
        suppressions::add(&state.store, (&auth).into(), request).await?,
    ))
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
    Ok(Json(
        suppressions::add_many(&state.store, (&auth).into(), &request).await?,
    ))
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
    Ok(Json(
        suppressions::list(&state.store, (&auth).into(), &query).await?,
    ))
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
    Ok(Json(
        suppressions::get(&state.store, (&auth).into(), &id_or_email).await?,
    ))
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
    Ok(Json(
        suppressions::remove(&state.store, (&auth).into(), &id_or_email).await?,
    ))
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
    Ok(Json(
        suppressions::remove_many(&state.store, (&auth).into(), &request).await?,
    ))
}
