//! Cursor paging, as Resend's list routes do it: ids are time-ordered UUIDv7, so "older than" and
//! "newer than" an id are pages.

use uuid::Uuid;

/// Which page: rows older than `after`, newer than `before`, or both (a window between
/// two ids). A page given by `before` alone is the one nearest to it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cursor {
    pub after: Option<Uuid>,
    pub before: Option<Uuid>,
}

impl Cursor {
    /// Whether the page reads upwards from `before` (its query orders by id ascending, and
    /// [`finish_page`] turns the rows back to newest first).
    pub(crate) const fn upwards(self) -> bool {
        self.after.is_none() && self.before.is_some()
    }
}

/// Reads one page of a tenant table's rows as `$record` on `$conn`, with the two fixed checked
/// statements of a page: upwards from `before` alone, and downwards (newest first) otherwise.
/// `$columns` are the record's, `$filter` a condition of the table's own (it may use `$5`, bound
/// to the first of `$extra`). One row more than `$limit` is read, to tell whether more follow;
/// [`finish_page`] takes it off.
macro_rules! fetch_page {
    (
        $conn:expr, $record:path, $columns:literal, $table:literal, $filter:literal,
        $tenant:expr, $cursor:expr, $limit:expr $(, $extra:expr)* $(,)?
    ) => {{
        let cursor: $crate::Cursor = $cursor;
        if cursor.upwards() {
            sqlx::query_as!(
                $record,
                "SELECT " + $columns + " FROM " + $table
                    + " WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) AND id > $3 "
                    + $filter
                    + " ORDER BY id ASC LIMIT $4",
                $tenant.as_uuid(),
                cursor.after,
                cursor.before,
                $limit + 1
                $(, $extra)*
            )
            .fetch_all($conn)
            .await?
        } else {
            sqlx::query_as!(
                $record,
                "SELECT " + $columns + " FROM " + $table
                    + " WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2)
                        AND ($3::uuid IS NULL OR id > $3) "
                    + $filter
                    + " ORDER BY id DESC LIMIT $4",
                $tenant.as_uuid(),
                cursor.after,
                cursor.before,
                $limit + 1
                $(, $extra)*
            )
            .fetch_all($conn)
            .await?
        }
    }};
}
pub(crate) use fetch_page;

/// A page read by [`fetch_page`], newest first, and whether more rows follow.
pub(crate) fn finish_page<T>(mut rows: Vec<T>, cursor: Cursor, limit: i64) -> (Vec<T>, bool) {
    let has_more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    if cursor.upwards() {
        rows.reverse();
    }
    (rows, has_more)
}
