//! `GET /v1/tenant`: the calling tenant, so a key's holder can check what it belongs to.

use axum::Json;
use axum::extract::State;

use super::auth::TenantAuth;
use super::error::{ApiError, ErrorBody};
use crate::edge::state::AppState;
use crate::tenancy::accounts::{self, TenantView};

/// The tenant the presented key belongs to. Any valid key may call it.
#[utoipa::path(
    get, path = "/v1/tenant", tag = "tenant",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The calling tenant", body = TenantView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
    )
)]
pub async fn current_tenant(
    auth: TenantAuth,
    State(state): State<AppState>,
) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(
        accounts::get_tenant(&state.store, auth.tenant_id).await?,
    ))
}
