//! Each tenant's suppression list: addresses its mail is never sent to.
//!
//! Entries come from hard bounces (written by the statement that records the bounce, see
//! [`Store::record_delivery_results`]) and from the API. Accepts look every recipient up in the
//! statement that stores the email. Addresses are compared lower-cased, with the database's
//! `lower()` on both sides, so the lookup and the unique index agree.

use missive_core::{EmailId, SuppressionOrigin, TenantId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::checked::records;
use crate::cursor::{fetch_page, finish_page};
use crate::{Cursor, Store, StoreError};

/// One suppressed address.
#[derive(Clone, Debug)]
pub struct SuppressionRecord {
    pub tenant_id: TenantId,
    pub id: Uuid,
    pub email: String,
    pub origin: SuppressionOrigin,
    /// The email that bounced.
    pub source_id: Option<EmailId>,
    /// The refusal that put the address here.
    pub reason: Option<String>,
    /// A bounce report's enhanced status (`5.1.1`).
    pub status: Option<String>,
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

/// Calls `$then!` with `$before`, the columns of [`SuppressionRecord`], and `$after`.
macro_rules! suppression_columns {
    ($then:ident!($($before:tt)*) $($after:tt)*) => {
        $then!(
            $($before)*
            r#"tenant_id AS "tenant_id!: TenantId", id AS "id!", email AS "email!",
               origin AS "origin!: SuppressionOrigin", source_id AS "source_id: EmailId",
               reason, status AS "status?", created_at AS "created_at!""#
            $($after)*
        )
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
        sqlx::query!(
            "INSERT INTO suppressions (tenant_id, id, email, origin)
             SELECT $1, id, lower(email), $4
             FROM UNNEST($2::uuid[], $3::text[]) AS u(id, email)
             ON CONFLICT (tenant_id, email) DO NOTHING",
            tenant_id.as_uuid(),
            &ids,
            emails as &[&str],
            SuppressionOrigin::Manual.as_str(),
        )
        .execute(&mut *tx)
        .await?;
        // A second statement sees what the first inserted, and what a concurrent insert of the
        // same address committed meanwhile.
        let rows = suppression_columns!(
            records!(
                SuppressionRecord,
                "SELECT s.* FROM (SELECT min(n) AS n, lower(email) AS email
                        FROM UNNEST($2::text[]) WITH ORDINALITY AS u(email, n)
                        GROUP BY lower(email)) u
                  JOIN LATERAL (SELECT ",
            ),
            " FROM suppressions WHERE tenant_id = $1 AND email = u.email) s ON true
              ORDER BY u.n",
            tenant_id.as_uuid(),
            emails as &[&str],
        )
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
        let rows = self
            .confined_read(tenant_id, async |conn| {
                Ok(suppression_columns!(
                    fetch_page!(&mut *conn, SuppressionRecord,),
                    "suppressions",
                    "AND ($5::text IS NULL OR origin = $5)",
                    tenant_id,
                    cursor,
                    limit,
                    origin.map(SuppressionOrigin::as_str),
                ))
            })
            .await?;
        let (suppressions, has_more) = finish_page(rows, cursor, limit);
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
            suppression_columns!(
                records!(SuppressionRecord, "SELECT ",),
                " FROM suppressions WHERE tenant_id = $1 AND (id = $2 OR email = lower($3))",
                tenant_id.as_uuid(),
                id,
                email,
            )
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
            Ok(sqlx::query_scalar!(
                "DELETE FROM suppressions
                 WHERE tenant_id = $1
                   AND (id = ANY ($2) OR email IN (SELECT lower(e) FROM UNNEST($3::text[]) AS e))
                 RETURNING id",
                tenant_id.as_uuid(),
                &ids,
                &emails as &[&str],
            )
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
