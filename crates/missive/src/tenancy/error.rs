//! The service layer's error: what a call of a tenant-facing service ([`crate::tenancy`]) can
//! fail with, whichever resource it serves. The edges turn it into their own answers (an HTTP
//! status and JSON body, a console error page); a message here is safe to show the caller, and a
//! server fault keeps its detail for the edge to log once.

use std::borrow::Cow;

use missive_core::Scope;
use missive_store::StoreError;

use crate::tenancy::caller::MissingScope;

/// Why a service call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("this API key lacks the `{0}` scope")]
    MissingScope(Scope),
    /// A field that did not hold up; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// Nothing of that id the caller may see, another tenant's included.
    #[error("not found")]
    NotFound,
    /// The change conflicts with what is stored; the message says how.
    #[error("{0}")]
    Conflict(Cow<'static, str>),
    /// Something this process lacks (`MISSIVE_SECRET_KEY`), or a dependency that is down.
    #[error("{0}")]
    Unavailable(String),
    /// A server fault with a detail for the log, never for the caller.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(StoreError),
}

impl ServiceError {
    /// Whether the caller's request is at fault (and the message is for it), not the server.
    #[must_use]
    pub const fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::MissingScope(_) | Self::Invalid(_) | Self::NotFound | Self::Conflict(_)
        ) || matches!(self, Self::Store(StoreError::OverQuota(_)))
    }
}

impl From<MissingScope> for ServiceError {
    fn from(MissingScope(scope): MissingScope) -> Self {
        Self::MissingScope(scope)
    }
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict(message) => Self::Conflict(Cow::Borrowed(message)),
            other => Self::Store(other),
        }
    }
}

impl From<crate::tenancy::accounts::AccountsError> for ServiceError {
    fn from(err: crate::tenancy::accounts::AccountsError) -> Self {
        use crate::tenancy::accounts::AccountsError;
        match err {
            AccountsError::Invalid(message) => Self::Invalid(message),
            AccountsError::NotFound => Self::NotFound,
            AccountsError::MissingScope(scope) => Self::MissingScope(scope),
            AccountsError::Conflict(message) => Self::Conflict(Cow::Borrowed(message)),
            AccountsError::Unavailable(message) => Self::Unavailable(message),
            AccountsError::Internal(detail) => Self::Internal(detail),
            AccountsError::Store(store) => Self::Store(store),
        }
    }
}
