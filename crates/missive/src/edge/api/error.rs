//! The one error shape of the HTTP edge, compatible with Resend's:
//! `{"statusCode": 422, "name": "validation_error", "message": "..."}`.
//!
//! Policy: handlers return [`ApiError`]; client errors carry a message safe to show; server errors
//! carry their detail in a response extension that the logging middleware writes once, so the
//! client never sees internals and every 500 is logged exactly once.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use missive_core::limits::resets_at;
use missive_core::{QuotaPeriod, Scope};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::edge::rate_limit::RateState;
use crate::tenancy::accounts::AccountsError;
use crate::tenancy::caller::MissingScope;
use crate::tenancy::error::ServiceError;

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[serde(rename = "statusCode")]
    #[schema(example = 422)]
    pub status_code: u16,
    /// Machine-readable kind, e.g. `validation_error`, `invalid_api_key`, `not_found`.
    #[schema(example = "validation_error")]
    pub name: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

/// An error that becomes an HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("request body is larger than the limit")]
    PayloadTooLarge,
    #[error("missing API key: send `Authorization: Bearer <key>`")]
    MissingApiKey,
    #[error("{0}")]
    InvalidApiKey(&'static str),
    #[error("this API key lacks the `{0}` scope")]
    MissingScope(Scope),
    #[error("the admin API is disabled: set MISSIVE_ADMIN_KEY to enable it")]
    AdminDisabled,
    /// An `x-tenant-id` or `x-project-id` header naming another tenant or project than the
    /// API key's.
    #[error("{0}")]
    Mismatch(String),
    #[error("{0}")]
    InvalidFrom(String),
    /// The sender's domain must be verified and is not (Resend answers 403).
    #[error("{0}")]
    DomainNotVerified(String),
    #[error("{0}")]
    InvalidIdempotencyKey(String),
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyConflict,
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(std::borrow::Cow<'static, str>),
    #[error("too many requests: the limit is {} per minute; retry after {} s", .0.limit, .0.reset_secs())]
    RateLimited(RateState),
    #[error(
        "the {0} sending quota of this account has no room for this send (quotas count recipients and reset at midnight UTC, monthly ones on the 1st)"
    )]
    OverQuota(QuotaPeriod),
    #[error("the service is temporarily unavailable")]
    Unavailable(String),
    #[error("internal server error")]
    Internal(String),
}

/// Detail of a server error, for the logging middleware only.
#[derive(Clone, Debug)]
pub struct ServerErrorDetail(pub String);

impl ApiError {
    /// The standard 404 for a resource id the caller cannot see.
    #[must_use]
    pub fn not_found() -> Self {
        Self::NotFound("not found".to_owned())
    }

    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::InvalidFrom(_) | Self::InvalidIdempotencyKey(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::IdempotencyConflict => StatusCode::CONFLICT,
            Self::InvalidJson(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MissingApiKey | Self::InvalidApiKey(_) => StatusCode::UNAUTHORIZED,
            Self::MissingScope(_)
            | Self::AdminDisabled
            | Self::DomainNotVerified(_)
            | Self::Mismatch(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RateLimited(_) | Self::OverQuota(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Validation(_) | Self::DomainNotVerified(_) => "validation_error",
            Self::InvalidFrom(_) => "invalid_from_address",
            Self::InvalidIdempotencyKey(_) => "invalid_idempotency_key",
            Self::IdempotencyConflict => "invalid_idempotent_request",
            Self::InvalidJson(_) => "invalid_json",
            Self::UnsupportedMediaType(_) => "invalid_content_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::MissingApiKey => "missing_api_key",
            Self::InvalidApiKey(_) => "invalid_api_key",
            Self::MissingScope(_) => "restricted_api_key",
            Self::AdminDisabled => "admin_api_disabled",
            Self::Mismatch(_) => "invalid_scope",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::RateLimited(_) => "rate_limit_exceeded",
            Self::OverQuota(period) => period.error_name(),
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) => "internal_server_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            status_code: status.as_u16(),
            name: self.name(),
            message: self.to_string(),
        };
        let mut response = (status, Json(body)).into_response();
        match self {
            Self::Internal(detail) | Self::Unavailable(detail) => {
                response.extensions_mut().insert(ServerErrorDetail(detail));
            }
            Self::RateLimited(state) => {
                rate_limit_headers(response.headers_mut(), &state);
                set_number(response.headers_mut(), "retry-after", state.reset_secs());
            }
            Self::OverQuota(period) => {
                let (day, month) = resets_at(OffsetDateTime::now_utc());
                let at = if period == QuotaPeriod::Daily {
                    day
                } else {
                    month
                };
                let wait = (at - OffsetDateTime::now_utc()).whole_seconds().max(1);
                set_number(
                    response.headers_mut(),
                    "retry-after",
                    u64::try_from(wait).unwrap_or(1),
                );
            }
            _ => {}
        }
        response
    }
}

/// `ratelimit-limit`, `ratelimit-remaining` and `ratelimit-reset` (seconds), as Resend sends
/// them.
pub fn rate_limit_headers(headers: &mut HeaderMap, state: &RateState) {
    set_number(headers, "ratelimit-limit", u64::from(state.limit));
    set_number(headers, "ratelimit-remaining", u64::from(state.remaining));
    set_number(headers, "ratelimit-reset", state.reset_secs());
}

fn set_number(headers: &mut HeaderMap, name: &'static str, value: u64) {
    headers.insert(name, HeaderValue::from(value));
}

impl From<missive_store::StoreError> for ApiError {
    fn from(err: missive_store::StoreError) -> Self {
        ServiceError::from(err).into()
    }
}

/// The service layer's errors, as the HTTP edge answers them.
impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::MissingScope(scope) => Self::MissingScope(scope),
            ServiceError::Invalid(message) => Self::Validation(message),
            ServiceError::NotFound => Self::not_found(),
            ServiceError::Conflict(message) => Self::Conflict(message),
            ServiceError::Unavailable(message) => Self::Unavailable(message),
            ServiceError::Internal(detail) => Self::Internal(detail),
            ServiceError::Store(missive_store::StoreError::OverQuota(period)) => {
                Self::OverQuota(period)
            }
            ServiceError::Store(store) if store.is_unavailable() => {
                Self::Unavailable(store.to_string())
            }
            ServiceError::Store(store) => Self::Internal(store.to_string()),
        }
    }
}

impl From<MissingScope> for ApiError {
    fn from(MissingScope(scope): MissingScope) -> Self {
        Self::MissingScope(scope)
    }
}

impl From<AccountsError> for ApiError {
    fn from(err: AccountsError) -> Self {
        ServiceError::from(err).into()
    }
}
