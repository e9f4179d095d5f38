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
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use missive_core::{ProjectId, ProjectRef, Reach, TenantId};

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

/// StackForDevs's `x-tenant-id` and `x-project-id` headers, sent beside a key: optional, and
/// when present they must name the key's own tenant and project.
pub const TENANT_HEADER: &str = "x-tenant-id";
pub const PROJECT_HEADER: &str = "x-project-id";

/// The id a header names, if it is present.
fn header_id(headers: &HeaderMap, name: &'static str) -> Result<Option<uuid::Uuid>, ApiError> {
    headers
        .get(name)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|v| uuid::Uuid::parse_str(v.trim()).ok())
                .ok_or_else(|| ApiError::Validation(format!("`{name}` must be a UUID")))
        })
        .transpose()
}

/// Refuses a header naming another id than `expected` (`what`, `whose`: for the message).
fn header_matches(
    headers: &HeaderMap,
    name: &'static str,
    expected: uuid::Uuid,
    what: &str,
    whose: &str,
) -> Result<(), ApiError> {
    if header_id(headers, name)?.is_some_and(|id| id != expected) {
        return Err(ApiError::Mismatch(format!(
            "`{name}` names another {what} than {whose} ({expected})"
        )));
    }
    Ok(())
}

/// Refuses a request whose `x-tenant-id` or `x-project-id` names another tenant or project
/// than its key's.
fn matching_headers(headers: &HeaderMap, project: ProjectRef) -> Result<(), ApiError> {
    let key = "this API key's";
    header_matches(
        headers,
        TENANT_HEADER,
        project.tenant_id.as_uuid(),
        "tenant",
        key,
    )?;
    header_matches(
        headers,
        PROJECT_HEADER,
        project.project_id.as_uuid(),
        "project",
        key,
    )
}

/// The project an admin request narrows its per-tenant reads to: `x-project-id`, when sent.
/// `x-tenant-id`, when sent, must name the tenant of the path.
///
/// # Errors
/// A header that is not a UUID (422), or an `x-tenant-id` naming another tenant (403).
pub fn admin_reach(headers: &HeaderMap, tenant: TenantId) -> Result<Reach, ApiError> {
    header_matches(
        headers,
        TENANT_HEADER,
        tenant.as_uuid(),
        "tenant",
        "the path's",
    )?;
    Ok(Reach {
        tenant_id: tenant,
        project_id: header_id(headers, PROJECT_HEADER)?.map(ProjectId::from_uuid),
    })
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
        let auth = Self::from(key);
        matching_headers(&parts.headers, auth.project())?;
        match state
            .rates
            .check(auth.project(), Some(auth.key_id), auth.rates)
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
        state.requests.count(auth.project());
        Ok(auth)
    }
}
