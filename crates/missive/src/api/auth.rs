//! Authentication as extractors.
//!
//! - [`AdminAuth`]: the operator's `MISSIVE_ADMIN_KEY`, compared in constant time.
//! - [`TenantAuth`]: a tenant API key. The key's checksum is verified before any query, so
//!   garbage costs no database round trip; then the key and its tenant's status come from the key cache or one
//!   indexed lookup by SHA-256. Unknown, revoked or expired keys and disabled tenants are all 401; a missing
//!   scope is 403 naming the scope. The tenant id is recorded on the request's tracing span.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use missive_core::{ApiKeyId, Scope, Scopes, TenantId, TenantStatus, parse_api_key};
use time::{Duration, OffsetDateTime};

use super::error::ApiError;
use crate::ingest::SendingSettings;
use crate::state::AppState;

/// How stale `last_used_at` may get before a request refreshes it.
const LAST_USED_RESOLUTION: Duration = Duration::minutes(1);

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

/// The tenant a request acts for, established from its API key.
#[derive(Debug, Clone)]
pub struct TenantAuth {
    pub tenant_id: TenantId,
    pub key_id: ApiKeyId,
    pub scopes: Scopes,
    /// The tenant's sending settings, loaded with the key.
    pub sending: SendingSettings,
}

impl TenantAuth {
    /// Refuses with 403 unless the key carries `scope` (or `full_access`).
    ///
    /// # Errors
    /// [`ApiError::MissingScope`] naming the scope.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::MissingScope(scope))
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
        // Offline check first: a mistyped or foreign key never reaches the database.
        let hash =
            parse_api_key(token).map_err(|_| ApiError::InvalidApiKey("API key is malformed"))?;
        let key = state
            .keys
            .find(&hash)
            .await?
            .ok_or(ApiError::InvalidApiKey("API key is not valid"))?;
        // The index lookup already matched; comparing again in constant time costs nothing and
        // keeps the check honest if the lookup ever changes.
        let stored: [u8; 32] =
            key.key_hash.as_slice().try_into().map_err(|_| {
                ApiError::Internal("stored key hash has the wrong length".to_owned())
            })?;
        if !hash.ct_eq(&missive_core::ApiKeyHash(stored)) {
            return Err(ApiError::InvalidApiKey("API key is not valid"));
        }
        let now = OffsetDateTime::now_utc();
        if key.revoked_at.is_some() {
            return Err(ApiError::InvalidApiKey("API key has been revoked"));
        }
        if key.expires_at.is_some_and(|at| at <= now) {
            return Err(ApiError::InvalidApiKey("API key has expired"));
        }
        if key.tenant_status != TenantStatus::Active {
            return Err(ApiError::InvalidApiKey(
                "the tenant of this API key is disabled",
            ));
        }
        tracing::Span::current().record("tenant_id", tracing::field::display(key.tenant_id));
        if key
            .last_used_at
            .is_none_or(|at| now - at > LAST_USED_RESOLUTION)
        {
            // Off the request path: a slow write must not slow the request.
            state.keys.note_used(&hash, now);
            let store = state.store.clone();
            let (tenant_id, key_id) = (key.tenant_id, key.id);
            tokio::spawn(async move {
                if let Err(err) = store.touch_api_key(tenant_id, key_id).await {
                    tracing::warn!(%tenant_id, error = %err, "could not record API key use");
                }
            });
        }
        Ok(Self {
            tenant_id: key.tenant_id,
            key_id: key.id,
            scopes: key.scopes.0,
            sending: SendingSettings {
                default_from: key.default_from,
                reply_to: key.reply_to,
                allowed_sender_domains: key.allowed_sender_domains,
            },
        })
    }
}
