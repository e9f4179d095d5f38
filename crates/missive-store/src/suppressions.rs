//! Each tenant's suppression list: addresses its mail is never sent to.
//!
//! Entries come from hard bounces (written by the statement that records the bounce, see
//! [`Store::record_delivery_results`]) and from the API. Accepts look every recipient up in the
//! statement that stores the email. Addresses are compared lower-cased, with the database's
//! `lower()` on both sides, so the lookup and the unique index agree.

use missive_core::{SuppressionOrigin, TenantId};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::cursor::{fetch_filtered_page, page_statements};
use crate::{Cursor, Store, StoreError};

/// One suppressed address.
#[derive(Clone, Debug, FromRow)]
pub struct SuppressionRecord {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub origin: SuppressionOrigin,
    /// The email that bounced.
    pub source_id: Option<Uuid>,
    /// The refusal that put the address here.
    pub reason: Option<String>,
    pub created_at: OffsetDateTime,
}

/// A page of a tenant's list, newest first.
#[derive(Debug)]
pub struct SuppressionPage {
    pub suppressions: Vec<SuppressionRecord>,
    pub has_more: bool,
}

/// How the API names one entry: Resend's routes take an id or the address.
#[derive(Clone, Copy, Debug)]
pub enum SuppressionKey<'a> {
    Id(Uuid),
    Email(&'a str),
}

macro_rules! suppression_columns {
    () => {
        "tenant_id, id, email, origin, source_id, reason, created_at"
    };
}

impl Store {
    /// Suppresses addresses by hand; an address already on the list keeps its entry. Returns
    /// the entry of each address, in the order given (duplicates once).
    ///
    /// # Errors
    /// Database failures.
    pub async fn add_suppressions(
        &self,
        tenant_id: TenantId,
        emails: &[&str],
    ) -> Result<Vec<SuppressionRecord>, StoreError> {
        let ids: Vec<Uuid> = emails.iter().map(|_| Uuid::now_v7()).collect();
        let mut tx = self.begin_for_tenant(tenant_id).await?;
        sqlx::query(
            "INSERT INTO suppressions (tenant_id, id, email, origin)
             SELECT $1, id, lower(email), $4
             FROM UNNEST($2::uuid[], $3::text[]) AS u(id, email)
             ON CONFLICT (tenant_id, email) DO NOTHING",
        )
        .bind(tenant_id.as_uuid())
        .bind(&ids)
        .bind(emails)
        .bind(SuppressionOrigin::Manual.as_str())
        .execute(&mut *tx)
        .await?;
        // A second statement sees what the first inserted, and what a concurrent insert of the
        // same address committed meanwhile.
        let rows = sqlx::query_as::<_, SuppressionRecord>(concat!(
            "SELECT s.* FROM (SELECT min(n) AS n, lower(email) AS email
                    FROM UNNEST($2::text[]) WITH ORDINALITY AS u(email, n) GROUP BY lower(email)) u
              JOIN LATERAL (SELECT ",
            suppression_columns!(),
            " FROM suppressions WHERE tenant_id = $1 AND email = u.email) s ON true
              ORDER BY u.n"
        ))
        .bind(tenant_id.as_uuid())
        .bind(emails)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// One page of the tenant's list, newest first, of one origin or all.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_suppressions(
        &self,
        tenant_id: TenantId,
        origin: Option<SuppressionOrigin>,
        cursor: Cursor,
        limit: i64,
    ) -> Result<SuppressionPage, StoreError> {
        let (suppressions, has_more) = fetch_filtered_page(
            self,
            &page_statements!(
                suppression_columns!(),
                "suppressions",
                "AND ($5::text IS NULL OR origin = $5)"
            ),
            tenant_id,
            cursor,
            limit,
            origin.map(SuppressionOrigin::as_str),
        )
        .await?;
        Ok(SuppressionPage {
            suppressions,
            has_more,
        })
    }

    /// One entry, by id or address.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the tenant has no such entry.
    pub async fn suppression(
        &self,
        tenant_id: TenantId,
        key: SuppressionKey<'_>,
    ) -> Result<SuppressionRecord, StoreError> {
        self.confined_read(tenant_id, async |conn| {
            let (id, email) = key.parts();
            sqlx::query_as::<_, SuppressionRecord>(concat!(
                "SELECT ",
                suppression_columns!(),
                " FROM suppressions WHERE tenant_id = $1 AND (id = $2 OR email = lower($3))"
            ))
            .bind(tenant_id.as_uuid())
            .bind(id)
            .bind(email)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    /// Takes entries off the list, by ids or addresses; returns the ids of those that were on
    /// it. Mail accepted from now on reaches these addresses again.
    ///
    /// # Errors
    /// Database failures.
    pub async fn remove_suppressions(
        &self,
        tenant_id: TenantId,
        keys: &[SuppressionKey<'_>],
    ) -> Result<Vec<Uuid>, StoreError> {
        self.confined(tenant_id, async |conn| {
            let (ids, emails): (Vec<Option<Uuid>>, Vec<Option<&str>>) =
                keys.iter().map(SuppressionKey::parts).unzip();
            let ids: Vec<Uuid> = ids.into_iter().flatten().collect();
            let emails: Vec<&str> = emails.into_iter().flatten().collect();
            Ok(sqlx::query_scalar(
                "DELETE FROM suppressions
                 WHERE tenant_id = $1
                   AND (id = ANY ($2) OR email IN (SELECT lower(e) FROM UNNEST($3::text[]) AS e))
                 RETURNING id",
            )
            .bind(tenant_id.as_uuid())
            .bind(&ids)
            .bind(&emails)
            .fetch_all(&mut *conn)
            .await?)
        })
        .await
    }
}

impl SuppressionKey<'_> {
    fn parts(&self) -> (Option<Uuid>, Option<&str>) {
        match *self {
            Self::Id(id) => (Some(id), None),
            Self::Email(email) => (None, Some(email)),
        }
    }
}
