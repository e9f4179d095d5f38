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
    /// [`page`] turns the rows back to newest first).
    pub(crate) const fn upwards(self) -> bool {
        self.after.is_none() && self.before.is_some()
    }
}

/// The two fixed statements of a tenant table's pages: upwards from `before` alone, and
/// downwards (newest first) otherwise. `$1` tenant, `$2` after, `$3` before, `$4` the limit;
/// an optional condition of its own may use `$5` (see [`fetch_filtered_page`]).
macro_rules! page_statements {
    ($columns:expr, $table:literal) => {
        $crate::cursor::page_statements!($columns, $table, "")
    };
    ($columns:expr, $table:literal, $filter:literal) => {
        $crate::cursor::PageStatements {
            upwards: concat!(
                "SELECT ",
                $columns,
                " FROM ",
                $table,
                " WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) AND id > $3 ",
                $filter,
                " ORDER BY id ASC LIMIT $4"
            ),
            downwards: concat!(
                "SELECT ",
                $columns,
                " FROM ",
                $table,
                " WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2)
                    AND ($3::uuid IS NULL OR id > $3) ",
                $filter,
                " ORDER BY id DESC LIMIT $4"
            ),
        }
    };
}
pub(crate) use page_statements;

pub(crate) struct PageStatements {
    pub upwards: &'static str,
    pub downwards: &'static str,
}

/// One page of a tenant's rows, newest first, and whether more follow; read as the tenant
/// ([`crate::Store::begin_for_tenant`]).
pub(crate) async fn fetch_page<T>(
    store: &crate::Store,
    statements: &PageStatements,
    tenant_id: missive_core::TenantId,
    cursor: Cursor,
    limit: i64,
) -> Result<(Vec<T>, bool), crate::StoreError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    fetch(store, statements, tenant_id, cursor, limit, None).await
}

/// [`fetch_page`] for statements whose condition takes `$5`, bound to `filter`.
pub(crate) async fn fetch_filtered_page<T>(
    store: &crate::Store,
    statements: &PageStatements,
    tenant_id: missive_core::TenantId,
    cursor: Cursor,
    limit: i64,
    filter: Option<&str>,
) -> Result<(Vec<T>, bool), crate::StoreError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    fetch(store, statements, tenant_id, cursor, limit, Some(filter)).await
}

async fn fetch<T>(
    store: &crate::Store,
    statements: &PageStatements,
    tenant_id: missive_core::TenantId,
    cursor: Cursor,
    limit: i64,
    filter: Option<Option<&str>>,
) -> Result<(Vec<T>, bool), crate::StoreError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let statement = if cursor.upwards() {
        statements.upwards
    } else {
        statements.downwards
    };
    let mut query = sqlx::query_as::<_, T>(statement)
        .bind(tenant_id.as_uuid())
        .bind(cursor.after)
        .bind(cursor.before)
        .bind(limit + 1);
    if let Some(filter) = filter {
        query = query.bind(filter);
    }
    let mut rows = store
        .confined_read(tenant_id, async |conn| Ok(query.fetch_all(conn).await?))
        .await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    if cursor.upwards() {
        rows.reverse();
    }
    Ok((rows, has_more))
}
