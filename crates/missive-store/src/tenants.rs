//! Tenant rows: create (with the first key, atomically), list, read, update, disable.

use missive_core::{Domain, Mailbox, TenantId, TenantName, TenantSettings, TenantStatus};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api_keys::{ApiKeyRecord, NewApiKeyRow, insert_api_key};
use crate::error::map_unique;
use crate::{Store, StoreError};

const TENANT_CONFLICTS: &[(&str, &str)] =
    &[("tenants_name_key", "a tenant with this name already exists")];

/// The columns [`TenantRecord`] reads, as a literal so it can join `concat!`.
macro_rules! tenant_columns {
    () => {
        "id, name, status, default_from, reply_to, allowed_sender_domains, \
         created_at, updated_at, disabled_at"
    };
}

/// A tenant as stored.
#[derive(Clone, Debug, FromRow)]
pub struct TenantRecord {
    #[sqlx(try_from = "Uuid")]
    pub id: TenantId,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub status: TenantStatus,
    pub default_from: Option<String>,
    pub reply_to: Option<String>,
    pub allowed_sender_domains: Vec<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub disabled_at: Option<OffsetDateTime>,
}

/// A tenant to create; fields are already validated.
#[derive(Debug)]
pub struct NewTenant<'a> {
    pub id: TenantId,
    pub name: &'a TenantName,
    pub settings: &'a TenantSettings,
}

/// A partial update. `None` leaves a field alone; `Some(None)` clears an optional one.
#[derive(Debug, Default)]
pub struct TenantPatch {
    pub name: Option<TenantName>,
    pub status: Option<TenantStatus>,
    pub default_from: Option<Option<Mailbox>>,
    pub reply_to: Option<Option<Mailbox>>,
    pub allowed_sender_domains: Option<Vec<Domain>>,
}

fn domain_strings(domains: &[Domain]) -> Vec<String> {
    domains.iter().map(|d| d.as_str().to_owned()).collect()
}

impl Store {
    /// Creates a tenant and its first API key in one transaction: a tenant without a key would be
    /// unreachable, and a key without its tenant impossible.
    ///
    /// # Errors
    /// `Conflict` when the name is taken.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn create_tenant_with_key(
        &self,
        tenant: &NewTenant<'_>,
        key: &NewApiKeyRow<'_>,
    ) -> Result<(TenantRecord, ApiKeyRecord), StoreError> {
        let mut tx = self.pool.begin().await?;
        let record = sqlx::query_as::<_, TenantRecord>(concat!(
            "INSERT INTO tenants (id, name, default_from, reply_to, allowed_sender_domains)
             VALUES ($1, $2, $3, $4, $5)
             RETURNING ",
            tenant_columns!()
        ))
        .bind(tenant.id.as_uuid())
        .bind(tenant.name.as_str())
        .bind(
            tenant
                .settings
                .default_from
                .as_ref()
                .map(ToString::to_string),
        )
        .bind(tenant.settings.reply_to.as_ref().map(ToString::to_string))
        .bind(domain_strings(&tenant.settings.allowed_sender_domains))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| map_unique(e, TENANT_CONFLICTS))?;
        let key = insert_api_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok((record, key))
    }

    /// Tenants in creation order, after the cursor. Fetches `limit` rows.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_tenants(
        &self,
        after: Option<TenantId>,
        limit: i64,
    ) -> Result<Vec<TenantRecord>, StoreError> {
        let rows = sqlx::query_as::<_, TenantRecord>(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants
             WHERE $1::uuid IS NULL OR id > $1
             ORDER BY id
             LIMIT $2"
        ))
        .bind(after.map(|id| id.as_uuid()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn get_tenant(&self, id: TenantId) -> Result<TenantRecord, StoreError> {
        sqlx::query_as::<_, TenantRecord>(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE id = $1"
        ))
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)
    }

    /// Applies a partial update in one statement.
    ///
    /// # Errors
    /// `NotFound` for an unknown id, `Conflict` when the new name is taken.
    #[tracing::instrument(skip_all, fields(tenant_id = %id))]
    pub async fn update_tenant(
        &self,
        id: TenantId,
        patch: &TenantPatch,
    ) -> Result<TenantRecord, StoreError> {
        sqlx::query_as::<_, TenantRecord>(concat!(
            "UPDATE tenants SET
                name = COALESCE($2, name),
                status = COALESCE($3, status),
                disabled_at = CASE
                    WHEN $3 = 'disabled' THEN COALESCE(disabled_at, now())
                    WHEN $3 = 'active' THEN NULL
                    ELSE disabled_at END,
                default_from = CASE WHEN $4 THEN $5 ELSE default_from END,
                reply_to = CASE WHEN $6 THEN $7 ELSE reply_to END,
                allowed_sender_domains = COALESCE($8, allowed_sender_domains),
                updated_at = now()
             WHERE id = $1
             RETURNING ",
            tenant_columns!()
        ))
        .bind(id.as_uuid())
        .bind(patch.name.as_ref().map(TenantName::as_str))
        .bind(patch.status.map(TenantStatus::as_str))
        .bind(patch.default_from.is_some())
        .bind(
            patch
                .default_from
                .as_ref()
                .and_then(|m| m.as_ref().map(ToString::to_string)),
        )
        .bind(patch.reply_to.is_some())
        .bind(
            patch
                .reply_to
                .as_ref()
                .and_then(|m| m.as_ref().map(ToString::to_string)),
        )
        .bind(patch.allowed_sender_domains.as_deref().map(domain_strings))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| map_unique(e, TENANT_CONFLICTS))?
        .ok_or(StoreError::NotFound)
    }

    /// Disables a tenant and revokes every live key in one transaction. Rows are kept: history
    /// and usage stay readable by the operator.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    #[tracing::instrument(skip_all, fields(tenant_id = %id))]
    pub async fn disable_tenant_and_revoke_keys(
        &self,
        id: TenantId,
    ) -> Result<TenantRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let record = sqlx::query_as::<_, TenantRecord>(concat!(
            "UPDATE tenants SET status = 'disabled', disabled_at = COALESCE(disabled_at, now()),
                                updated_at = now()
             WHERE id = $1
             RETURNING ",
            tenant_columns!()
        ))
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        sqlx::query(
            "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1 AND revoked_at IS NULL",
        )
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(record)
    }
}
