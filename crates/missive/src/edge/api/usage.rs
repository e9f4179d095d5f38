//! Usage: `GET /v1/usage` for the calling tenant (scope `usage:read`) in Resend's shape, and
//! `GET /v1/tenants/{id}/usage?period=YYYY-MM` for the operator in SelfMX's, served by
//! [`crate::tenancy::usage`].

use axum::Json;
use axum::extract::State;
use missive_core::TenantId;

use super::auth::{AdminAuth, TenantAuth};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery};
use crate::edge::state::AppState;
use crate::tenancy::usage::{self, PeriodQuery, TenantUsageView, UsageQuery, UsageView};

/// Get the calling tenant's usage and quotas.
#[utoipa::path(
    get, path = "/v1/usage", tag = "usage",
    params(UsageQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Usage today and this month", body = UsageView),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks `usage:read`", body = ErrorBody),
        (status = 422, description = "A date that does not parse", body = ErrorBody),
    )
)]
pub async fn get_usage(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<UsageView>, ApiError> {
    let default_rate = state.rates.tenant_limit(None);
    Ok(Json(
        usage::get(&state.store, &state.requests, &auth, &query, default_rate).await?,
    ))
}

/// Get any tenant's usage for a month.
#[utoipa::path(
    get, path = "/v1/tenants/{id}/usage", tag = "admin",
    params(("id" = TenantId, Path, description = "Tenant id"), PeriodQuery),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The month's figures", body = TenantUsageView),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 422, description = "Invalid period", body = ErrorBody),
    )
)]
pub async fn get_tenant_usage(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<TenantId>,
    ApiQuery(query): ApiQuery<PeriodQuery>,
) -> Result<Json<TenantUsageView>, ApiError> {
    let period = query.month()?;
    state.requests.flush_logged(&state.store).await;
    Ok(Json(usage::tenant_month(&state.store, id, period).await?))
}
