//! The storage layer's error type. Callers map `NotFound` and `Conflict` to client errors and
//! everything else to a 500 that is logged once at the edge.

/// What went wrong in a store call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No row matched, including rows that belong to another tenant.
    #[error("not found")]
    NotFound,
    /// A uniqueness or state rule refused the change; the message is safe to show the client.
    #[error("{0}")]
    Conflict(&'static str),
    /// A stored value no longer parses: a bug or a hand-edited row.
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The tenant's sending quota for the period would be exceeded; nothing was stored.
    #[error("the {0} sending quota would be exceeded")]
    OverQuota(missive_core::QuotaPeriod),
    /// The process is shutting down and no longer stores anything.
    #[error("the store is shutting down")]
    Stopped,
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the database could not be reached (as opposed to refusing the statement).
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Stopped
                | Self::Database(
                    sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
                )
        )
    }
}

/// Turns a unique violation on a known index into a client-facing conflict.
pub(crate) fn map_unique(err: sqlx::Error, conflicts: &[(&str, &'static str)]) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        // 23P01: an exclusion constraint, the "no overlap" form of uniqueness.
        && (db.is_unique_violation() || db.code().as_deref() == Some("23P01"))
        && let Some(constraint) = db.constraint()
        && let Some((_, message)) = conflicts.iter().find(|(name, _)| *name == constraint)
    {
        return StoreError::Conflict(message);
    }
    StoreError::Database(err)
}
