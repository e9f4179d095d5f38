//! Authentication as extractors.
//!
//! - [`AdminAuth`]: the operator's `MISSIVE_ADMIN_KEY`, compared in constant time.
//! - [`TenantAuth`]: a tenant API key, checked by [`crate::tenancy::credentials`]. Unknown, revoked or
//!   expired keys and disabled tenants are all 401; a missing scope is 403 naming the scope. The
//!   tenant id is recorded on the request's tracing span. The request then counts against the
//!   tenant's and the key's rate limits (429 past either) and towards the tenant's usage.

use std::sync::{Arc, OnceLock};

use super::error::ApiError;
use crate::edge::rate_limit::RateState;
use crate::edge::state::AppState;
pub use crate::tenancy::caller::TenantAuth;
use crate::tenancy::credentials::{self, CredentialError};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::MissingApiKey)?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::InvalidApiKey("the Authorization header is not valid text"))?;
    // A scheme with nothing after it (header parsers trim the space) is a missing key.
    if value.trim().eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingApiKey);
    }
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::InvalidApiKey(
        "expected `Authorization: Bearer <key>`",
    ))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::InvalidApiKey(
            "expected `Authorization: Bearer <key>`",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::MissingApiKey);
    }
    Ok(token)
}

/// Where a tenant request's rate limit state is left for the edge to put in the response's
/// `ratelimit-*` headers (extractors cannot reach the response).
#[derive(Clone, Debug, Default)]
pub struct RateHeaders(Arc<OnceLock<RateState>>);

impl RateHeaders {
    fn set(&self, state: RateState) {
        let _ = self.0.set(state);
    }

    /// The state the request's tenant authentication left, if any.
    #[must_use]
    pub fn get(&self) -> Option<&RateState> {
        self.0.get()
    }
}

/// Proof that the request carries the admin key.
#[derive(Debug, Clone, Copy)]
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let admin = state.admin_key.as_ref().ok_or(ApiError::AdminDisabled)?;
        if admin.verify(bearer(parts)?) {
            Ok(Self)
        } else {
            Err(ApiError::InvalidApiKey("invalid admin key"))
        }
    }
}

impl FromRequestParts<AppState> for TenantAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        let key = credentials::authenticate(&state.keys, &state.store, token)
            .await
            .map_err(|err| match err {
                CredentialError::Store(err) => ApiError::from(err),
                other => ApiError::InvalidApiKey(other.message()),
            })?;
        tracing::Span::current().record("tenant_id", tracing::field::display(key.tenant_id));
        match state
            .rates
            .check(key.tenant_id, Some(key.key_id), key.rates)
        {
            Ok(Some(rate)) => {
                if let Some(slot) = parts.extensions.get::<RateHeaders>() {
                    slot.set(rate);
                }
            }
            Ok(None) => {}
            Err(rate) => {
                metrics::counter!("missive_rate_limited_total", "protocol" => "http").increment(1);
                return Err(ApiError::RateLimited(rate));
            }
        }
        state.requests.count(key.tenant_id);
        Ok(Self::from(key))
    }
}
