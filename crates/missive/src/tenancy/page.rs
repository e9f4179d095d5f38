//! Paging of the listings every front end shows: a page size and Resend's `after`/`before`
//! cursors (time-ordered ids).

use missive_store::Cursor;
use uuid::Uuid;

use crate::tenancy::error::ServiceError;

/// The most rows one page of a listing holds.
pub const MAX_PAGE: u32 = 100;

/// A listing's page size: `limit`, 1 to [`MAX_PAGE`] (20 when absent).
///
/// # Errors
/// [`ServiceError::Invalid`] outside that range.
pub fn page_limit(limit: Option<u32>) -> Result<i64, ServiceError> {
    let limit = limit.unwrap_or(20);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ServiceError::Invalid(format!(
            "limit must be from 1 to {MAX_PAGE}"
        )));
    }
    Ok(i64::from(limit))
}

/// A cursor listing's page: its size ([`page_limit`]) and the ids it starts after or before.
///
/// # Errors
/// [`ServiceError::Invalid`] for a bad limit.
pub fn page(
    limit: Option<u32>,
    after: Option<impl Into<Uuid>>,
    before: Option<impl Into<Uuid>>,
) -> Result<(Cursor, i64), ServiceError> {
    let cursor = Cursor {
        after: after.map(Into::into),
        before: before.map(Into::into),
    };
    Ok((cursor, page_limit(limit)?))
}
