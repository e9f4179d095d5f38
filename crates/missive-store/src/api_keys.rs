//! API key rows. Only the SHA-256 of a key is stored; lookups go by that hash.

use missive_core::{
    ApiKeyHash, ApiKeyId, ProjectId, ProjectRef, Reach, Scopes, SendingPolicy, TenantId,
    TenantStatus,
};
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::error::map_unique;
use crate::tenants::sending_policy;
use crate::{Store, StoreError};

const KEY_CONFLICTS: &[(&str, &str)] = &[(
    "api_keys_live_name_key",
    "this project already has a live API key with this name",
)];

/// A checked statement reading [`ApiKeyRecord`]s: `$head`, the record's columns, `$tail`.
macro_rules! query_keys {
    ($head:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            ApiKeyRecord,
            $head
                + r#"tenant_id AS "tenant_id: TenantId", project_id AS "project_id: ProjectId",
                     id AS "id: ApiKeyId", name, prefix,
                     scopes AS "scopes: Scopes", created_at, last_used_at, expires_at,
                     revoked_at, requests_per_minute"#
                + $tail
            $(, $arg)*
        )
    };
}

/// A key as listed: everything but the secret, which is never stored.
#[derive(Clone, Debug)]
pub struct ApiKeyRecord {
    pub tenant_id: TenantId,
    pub project_id: ProjectId,
    pub id: ApiKeyId,
    pub name: String,
    pub prefix: String,
    pub scopes: Scopes,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    /// The key's own request rate limit, below its tenant's.
    pub requests_per_minute: Option<i32>,
}

/// A key to insert; the hash and prefix come from [`missive_core::NewApiKey`].
#[derive(Debug)]
pub struct NewApiKeyRow<'a> {
    /// The project the key acts for.
    pub project: ProjectRef,
    pub id: ApiKeyId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub hash: ApiKeyHash,
    pub scopes: &'a Scopes,
    pub expires_at: Option<OffsetDateTime>,
    pub requests_per_minute: Option<u32>,
}

/// What authentication needs to know about a presented key, in one round trip.
#[derive(Clone, Debug)]
pub struct KeyForAuth {
    pub tenant_id: TenantId,
    /// The project the key acts for.
    pub project_id: ProjectId,
    pub id: ApiKeyId,
    pub key_hash: Vec<u8>,
    pub scopes: Scopes,
    pub last_used_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub tenant_status: TenantStatus,
    /// The tenant's sending settings, read in the same round trip because every send needs them.
    pub sending: SendingPolicy,
    /// The request rate limit of the key's project (else its tenant's) and the key's own
    /// (null: the default, and none).
    pub tenant_requests_per_minute: Option<i32>,
    pub key_requests_per_minute: Option<i32>,
}

/// [`KeyForAuth`] as read, before its tenant's sending settings are parsed.
struct KeyForAuthRow {
    tenant_id: TenantId,
    project_id: ProjectId,
    id: ApiKeyId,
    key_hash: Vec<u8>,
    scopes: Scopes,
    last_used_at: Option<OffsetDateTime>,
    expires_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
    tenant_status: TenantStatus,
    default_from: Option<String>,
    reply_to: Option<String>,
    from_name: Option<String>,
    allowed_sender_domains: Vec<String>,
    require_verified_domains: bool,
    tenant_requests_per_minute: Option<i32>,
    key_requests_per_minute: Option<i32>,
}

impl TryFrom<KeyForAuthRow> for KeyForAuth {
    type Error = StoreError;
    fn try_from(row: KeyForAuthRow) -> Result<Self, StoreError> {
        Ok(Self {
            sending: sending_policy(
                row.default_from.as_deref(),
                row.reply_to.as_deref(),
                row.from_name.as_deref(),
                &row.allowed_sender_domains,
                row.require_verified_domains,
            )?,
            tenant_id: row.tenant_id,
            project_id: row.project_id,
            id: row.id,
            key_hash: row.key_hash,
            scopes: row.scopes,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            tenant_status: row.tenant_status,
            tenant_requests_per_minute: row.tenant_requests_per_minute,
            key_requests_per_minute: row.key_requests_per_minute,
        })
    }
}

pub(crate) async fn insert_api_key(
    conn: &mut PgConnection,
    key: &NewApiKeyRow<'_>,
) -> Result<ApiKeyRecord, StoreError> {
    query_keys!(
        "INSERT INTO api_keys (tenant_id, project_id, id, name, prefix, key_hash, scopes,
                               expires_at, requests_per_minute)
         VALUES ($1, $9, $2, $3, $4, $5, $6, $7, $8)
         RETURNING ",
        "",
        key.project.tenant_id.as_uuid(),
        key.id.as_uuid(),
        key.name,
        key.prefix,
        key.hash.as_bytes(),
        &key.scopes.names(),
        key.expires_at,
        key.requests_per_minute.and_then(|n| i32::try_from(n).ok()),
        key.project.project_id.as_uuid(),
    )
    .fetch_one(conn)
    .await
    .map_err(|e| map_unique(e, KEY_CONFLICTS))
}

impl Store {
    /// Adds a key to a live project of an active tenant.
    ///
    /// # Errors
    /// `NotFound` for an unknown tenant or project, `Conflict` for a disabled tenant or a taken
    /// name.
    #[tracing::instrument(skip_all, fields(tenant_id = %key.project.tenant_id))]
    pub async fn create_api_key(&self, key: &NewApiKeyRow<'_>) -> Result<ApiKeyRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Lock the tenant row so a concurrent delete cannot slip a live key past its revocation.
        let status = sqlx::query_scalar!(
            r#"SELECT status AS "status: TenantStatus" FROM tenants
               WHERE id = $1 AND deleted_at IS NULL FOR SHARE"#,
            key.project.tenant_id.as_uuid(),
        )
        .fetch_optional(&mut *tx)
        .await?;
        // And the project's, so a concurrent project delete cannot miss this key.
        let project = sqlx::query_scalar!(
            r#"SELECT true AS "live!" FROM projects
               WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL FOR SHARE"#,
            key.project.tenant_id.as_uuid(),
            key.project.project_id.as_uuid(),
        )
        .fetch_optional(&mut *tx)
        .await?;
        if project.is_none() {
            return Err(StoreError::NotFound);
        }
        match status {
            None => return Err(StoreError::NotFound),
            Some(TenantStatus::Active) => {}
            Some(TenantStatus::Disabled) => {
                return Err(StoreError::Conflict("the tenant is disabled"));
            }
        }
        let record = insert_api_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// The keys within `reach` (a project's, or all of a tenant's), newest first, revoked ones
    /// included.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_api_keys(&self, reach: Reach) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let tenant_id = reach.tenant_id;
        self.confined_read(reach, async |conn| {
            let rows = query_keys!(
                "SELECT ",
                " FROM api_keys WHERE tenant_id = $1 ORDER BY id DESC",
                tenant_id.as_uuid(),
            )
            .fetch_all(&mut *conn)
            .await?;
            Ok(rows)
        })
        .await
    }

    /// Revokes one key within `reach`.
    ///
    /// # Errors
    /// `NotFound` when the reach has no such key (whoever else might), `Conflict` when it is
    /// already revoked.
    #[tracing::instrument(skip_all, fields(tenant_id = %reach.tenant_id, api_key_id = %key_id))]
    pub async fn revoke_api_key(
        &self,
        reach: Reach,
        key_id: ApiKeyId,
    ) -> Result<ApiKeyRecord, StoreError> {
        let tenant_id = reach.tenant_id;
        self.confined(reach, async |conn| {
            let revoked = query_keys!(
                "UPDATE api_keys SET revoked_at = now()
                 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL
                 RETURNING ",
                "",
                tenant_id.as_uuid(),
                key_id.as_uuid(),
            )
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(record) = revoked {
                return Ok(record);
            }
            let exists = sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
                                  WHERE k.tenant_id = $1 AND k.id = $2 AND t.deleted_at IS NULL)
                   AS "exists!""#,
                tenant_id.as_uuid(),
                key_id.as_uuid(),
            )
            .fetch_one(&mut *conn)
            .await?;
            Err(if exists {
                StoreError::Conflict("this API key is already revoked")
            } else {
                StoreError::NotFound
            })
        })
        .await
    }

    /// Finds the key with this hash and its tenant's status.
    ///
    /// # Errors
    /// Database failures; an unknown hash is `Ok(None)`.
    pub async fn find_api_key_by_hash(
        &self,
        hash: &ApiKeyHash,
    ) -> Result<Option<KeyForAuth>, StoreError> {
        let row = sqlx::query_as!(
            KeyForAuthRow,
            r#"SELECT k.tenant_id AS "tenant_id: TenantId", k.project_id AS "project_id: ProjectId",
                      k.id AS "id: ApiKeyId", k.key_hash,
                      k.scopes AS "scopes: Scopes", k.last_used_at, k.expires_at, k.revoked_at,
                      t.status AS "tenant_status: TenantStatus", t.default_from, t.reply_to,
                      t.from_name, t.allowed_sender_domains, t.require_verified_domains,
                      COALESCE(p.requests_per_minute, t.requests_per_minute)
                          AS tenant_requests_per_minute,
                      k.requests_per_minute AS key_requests_per_minute
               FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
               JOIN projects p ON p.tenant_id = k.tenant_id AND p.id = k.project_id
               WHERE k.key_hash = $1"#,
            hash.as_bytes(),
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(KeyForAuth::try_from).transpose()
    }

    /// Records that a key was used. Callers throttle this so a busy key costs one write a minute,
    /// not one per request.
    ///
    /// # Errors
    /// Database failures.
    pub async fn touch_api_key(
        &self,
        tenant_id: TenantId,
        key_id: ApiKeyId,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE api_keys SET last_used_at = now()
             WHERE tenant_id = $1 AND id = $2
               AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
            tenant_id.as_uuid(),
            key_id.as_uuid(),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
