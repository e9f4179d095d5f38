//! Tenant rows: create (with the first key, atomically), list, read, update, disable.

use std::net::IpAddr;

use missive_core::routing::TenantRelay;
use missive_core::{
    Domain, IpNetwork, Limits, Mailbox, SendingPolicy, TenantId, TenantName, TenantSettings,
    TenantStatus,
};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api_keys::{ApiKeyRecord, NewApiKeyRow, insert_api_key};
use crate::error::map_unique;
use crate::usage::limits_from_columns;
use crate::{SealedSecret, Store, StoreError};

const TENANT_CONFLICTS: &[(&str, &str)] =
    &[("tenants_name_key", "a tenant with this name already exists")];

/// The columns [`TenantRecord`] reads, as a literal so it can join `concat!`.
macro_rules! tenant_columns {
    () => {
        "id, name, status, domain, default_from, reply_to, from_name, allowed_sender_domains, \
         ARRAY(SELECT n.network::text FROM trusted_networks n \
               WHERE n.tenant_id = tenants.id ORDER BY n.network) AS trusted_networks, \
         created_at, updated_at, disabled_at, smtp_host, smtp_port, smtp_tls, smtp_username, \
         smtp_enabled, (smtp_password IS NOT NULL) AS smtp_has_password, requests_per_minute, \
         emails_per_day, emails_per_month, require_verified_domains"
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
    /// The primary sending domain.
    pub domain: Option<String>,
    pub default_from: Option<String>,
    pub reply_to: Option<String>,
    pub from_name: Option<String>,
    pub allowed_sender_domains: Vec<String>,
    /// Whether senders must use one of the tenant's verified domains (or an allowed one).
    pub require_verified_domains: bool,
    pub trusted_networks: Vec<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub disabled_at: Option<OffsetDateTime>,
    /// The tenant's own upstream server, when one is set (never its password).
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i32>,
    pub smtp_tls: Option<String>,
    pub smtp_username: Option<String>,
    pub smtp_enabled: bool,
    pub smtp_has_password: bool,
    /// The tenant's limits as set (null: the configured default).
    pub requests_per_minute: Option<i32>,
    pub emails_per_day: Option<i64>,
    pub emails_per_month: Option<i64>,
}

impl TenantRecord {
    /// The tenant's limits as set (`None`: the configured default).
    #[must_use]
    pub fn limits(&self) -> Limits {
        limits_from_columns(
            self.requests_per_minute,
            self.emails_per_day,
            self.emails_per_month,
        )
    }

    /// The tenant's own upstream server as set, if any.
    #[must_use]
    pub fn relay(&self) -> Option<TenantRelay> {
        relay_of(
            self.smtp_host.as_ref(),
            self.smtp_port,
            self.smtp_tls.as_deref(),
            self.smtp_username.as_ref(),
            self.smtp_enabled,
        )
    }
}

/// A [`TenantRelay`] from its columns; `None` without a host (or with a damaged row).
pub(crate) fn relay_of(
    host: Option<&String>,
    port: Option<i32>,
    tls: Option<&str>,
    username: Option<&String>,
    enabled: bool,
) -> Option<TenantRelay> {
    Some(TenantRelay {
        host: host?.clone(),
        port: u16::try_from(port?).ok()?,
        tls: tls?.parse().ok()?,
        username: username.cloned(),
        enabled,
    })
}

/// A tenant's upstream server with its sealed password, as a delivery or a check needs it.
#[derive(Clone, Debug)]
pub struct StoredRelay {
    pub relay: TenantRelay,
    pub password: Option<SealedSecret>,
    /// Moves with every change: the version a cached transport is built from.
    pub changed_at: OffsetDateTime,
}

/// What a patch does to the password of a tenant's upstream server.
#[derive(Clone, Debug)]
pub enum PasswordChange {
    Keep,
    Clear,
    Set(SealedSecret),
}

/// A tenant's upstream server as a patch sets it (validated, the password sealed).
#[derive(Clone, Debug)]
pub struct RelayPatch {
    pub relay: TenantRelay,
    pub password: PasswordChange,
}

/// A tenant to create; fields are already validated.
#[derive(Debug)]
pub struct NewTenant<'a> {
    pub id: TenantId,
    pub name: &'a TenantName,
    /// The primary sending domain; it is added to the allowed sender domains.
    pub domain: Option<&'a Domain>,
    pub settings: &'a TenantSettings,
}

/// A partial update. `None` leaves a field alone; `Some(None)` clears an optional one.
#[derive(Debug, Default)]
pub struct TenantPatch {
    pub name: Option<TenantName>,
    pub status: Option<TenantStatus>,
    /// The primary sending domain; a new one is added to the allowed sender domains.
    pub domain: Option<Option<Domain>>,
    pub default_from: Option<Option<Mailbox>>,
    pub reply_to: Option<Option<Mailbox>>,
    pub from_name: Option<Option<String>>,
    pub allowed_sender_domains: Option<Vec<Domain>>,
    pub require_verified_domains: Option<bool>,
    /// Replaces the whole list when given.
    pub trusted_networks: Option<Vec<IpNetwork>>,
    /// The tenant's own upstream server: set, or removed with `Some(None)`.
    pub smtp: Option<Option<RelayPatch>>,
    pub limits: LimitsPatch,
}

/// Changes to a tenant's limits: `None` leaves one alone, `Some(None)` returns it to the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitsPatch {
    pub requests_per_minute: Option<Option<u32>>,
    pub emails_per_day: Option<Option<u64>>,
    pub emails_per_month: Option<Option<u64>>,
}

/// The tenant a trusted network submits for, with what ingest needs to know about it.
#[derive(Clone, Debug, FromRow)]
pub struct TrustedSender {
    #[sqlx(try_from = "Uuid")]
    pub tenant_id: TenantId,
    #[sqlx(try_from = "String")]
    pub tenant_status: TenantStatus,
    pub network: String,
    #[sqlx(flatten)]
    pub sending: StoredSending,
    /// The tenant's request rate limit (null: the default).
    pub requests_per_minute: Option<i32>,
}

/// A tenant's sending settings read from its row (`default_from`, `reply_to`, `from_name`,
/// `allowed_sender_domains`) and parsed once, as they are loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredSending(pub SendingPolicy);

impl<'r> FromRow<'r, PgRow> for StoredSending {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let default_from: Option<String> = row.try_get("default_from")?;
        let reply_to: Option<String> = row.try_get("reply_to")?;
        let from_name: Option<String> = row.try_get("from_name")?;
        let domains: Vec<String> = row.try_get("allowed_sender_domains")?;
        let require_verified_domains: bool = row.try_get("require_verified_domains")?;
        // Written only after the same parsing, so a failure here is a hand-edited row.
        SendingPolicy::from_stored(
            default_from.as_deref(),
            reply_to.as_deref(),
            from_name.as_deref(),
            &domains,
        )
        .map(|policy| {
            Self(SendingPolicy {
                require_verified_domains,
                ..policy
            })
        })
        .map_err(|err| sqlx::Error::ColumnDecode {
            index: "default_from, reply_to, allowed_sender_domains".to_owned(),
            source: Box::new(err),
        })
    }
}

const NETWORK_CONFLICTS: &[(&str, &str)] = &[(
    "trusted_networks_no_overlap",
    "a trusted network overlaps one already listed, by this tenant or another",
)];

/// Replaces a tenant's trusted networks within the caller's transaction.
async fn replace_trusted_networks(
    conn: &mut PgConnection,
    tenant: TenantId,
    networks: &[IpNetwork],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM trusted_networks WHERE tenant_id = $1")
        .bind(tenant.as_uuid())
        .execute(&mut *conn)
        .await?;
    let networks: Vec<String> = networks.iter().map(ToString::to_string).collect();
    sqlx::query(
        "INSERT INTO trusted_networks (tenant_id, network)
         SELECT $1, n::cidr FROM unnest($2::text[]) AS n",
    )
    .bind(tenant.as_uuid())
    .bind(&networks)
    .execute(&mut *conn)
    .await
    .map_err(|e| map_unique(e, NETWORK_CONFLICTS))?;
    Ok(())
}

fn domain_strings(domains: &[Domain]) -> Vec<String> {
    domains.iter().map(|d| d.as_str().to_owned()).collect()
}

/// The allowed sender domains with the primary domain among them.
fn with_primary(domains: &[Domain], primary: Option<&Domain>) -> Vec<String> {
    let mut all = domain_strings(domains);
    if let Some(primary) = primary
        && !domains.contains(primary)
    {
        all.push(primary.as_str().to_owned());
        all.sort();
    }
    all
}

async fn select_tenant(conn: &mut PgConnection, id: TenantId) -> Result<TenantRecord, StoreError> {
    sqlx::query_as::<_, TenantRecord>(concat!(
        "SELECT ",
        tenant_columns!(),
        " FROM tenants WHERE id = $1 AND deleted_at IS NULL"
    ))
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound)
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
            "INSERT INTO tenants (id, name, default_from, reply_to, allowed_sender_domains, domain,
                                  from_name)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
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
        .bind(with_primary(
            &tenant.settings.allowed_sender_domains,
            tenant.domain,
        ))
        .bind(tenant.domain.map(Domain::as_str))
        .bind(tenant.settings.from_name.as_deref())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| map_unique(e, TENANT_CONFLICTS))?;
        let record = if tenant.settings.trusted_networks.is_empty() {
            record
        } else {
            replace_trusted_networks(&mut tx, tenant.id, &tenant.settings.trusted_networks).await?;
            select_tenant(&mut tx, tenant.id).await?
        };
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
             WHERE deleted_at IS NULL AND ($1::uuid IS NULL OR id > $1)
             ORDER BY id
             LIMIT $2"
        ))
        .bind(after.map(|id| id.as_uuid()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// One tenant, read as that tenant: the tenant's own view of itself and the admin's view
    /// of it are the same statement.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn get_tenant(&self, id: TenantId) -> Result<TenantRecord, StoreError> {
        self.confined_read(id, async |conn| select_tenant(conn, id).await)
            .await
    }

    /// The tenant whose trusted networks hold `ip`, if any.
    ///
    /// # Errors
    /// Database failures.
    pub async fn tenant_for_trusted_address(
        &self,
        ip: IpAddr,
    ) -> Result<Option<TrustedSender>, StoreError> {
        Ok(sqlx::query_as::<_, TrustedSender>(
            "SELECT t.id AS tenant_id, t.status AS tenant_status, n.network::text AS network,
                    t.default_from, t.reply_to, t.from_name, t.allowed_sender_domains,
                    t.require_verified_domains,
                    t.requests_per_minute
             FROM trusted_networks n JOIN tenants t ON t.id = n.tenant_id
             WHERE n.network >>= $1::inet",
        )
        .bind(ip.to_string())
        .fetch_optional(&self.pool)
        .await?)
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
        let smtp = patch.smtp.as_ref().and_then(Option::as_ref);
        // Removing the server removes its password; otherwise the patch says.
        let password = match &patch.smtp {
            None => &PasswordChange::Keep,
            Some(None) => &PasswordChange::Clear,
            Some(Some(relay)) => &relay.password,
        };
        let new_password = match password {
            PasswordChange::Set(sealed) => Some(sealed),
            PasswordChange::Keep | PasswordChange::Clear => None,
        };
        let mut tx = self.pool.begin().await?;
        // A deleted tenant is gone for updates too; locked so a delete cannot slip in between.
        let live: Option<bool> = sqlx::query_scalar(
            "SELECT true FROM tenants WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        )
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        if live.is_none() {
            return Err(StoreError::NotFound);
        }
        if let Some(networks) = &patch.trusted_networks {
            // An unknown tenant fails the foreign key; report it as not found.
            replace_trusted_networks(&mut tx, id, networks)
                .await
                .map_err(|e| match e {
                    StoreError::Database(sqlx::Error::Database(db))
                        if db.is_foreign_key_violation() =>
                    {
                        StoreError::NotFound
                    }
                    other => other,
                })?;
        }
        let record = sqlx::query_as::<_, TenantRecord>(concat!(
            "UPDATE tenants SET
                name = COALESCE($2, name),
                status = COALESCE($3, status),
                disabled_at = CASE
                    WHEN $3 = 'disabled' THEN COALESCE(disabled_at, now())
                    WHEN $3 = 'active' THEN NULL
                    ELSE disabled_at END,
                default_from = CASE WHEN $4 THEN $5 ELSE default_from END,
                reply_to = CASE WHEN $6 THEN $7 ELSE reply_to END,
                domain = CASE WHEN $9 THEN $10 ELSE domain END,
                from_name = CASE WHEN $11 THEN $12 ELSE from_name END,
                -- The primary domain stays among the allowed ones.
                allowed_sender_domains = (
                    SELECT COALESCE(array_agg(DISTINCT d ORDER BY d), '{}')
                    FROM unnest(COALESCE($8, allowed_sender_domains)
                                || CASE WHEN $9 THEN ARRAY[$10]::text[] ELSE ARRAY[domain] END) AS d
                    WHERE d IS NOT NULL),
                smtp_host = CASE WHEN $13 THEN $14 ELSE smtp_host END,
                smtp_port = CASE WHEN $13 THEN $15 ELSE smtp_port END,
                smtp_tls = CASE WHEN $13 THEN $16 ELSE smtp_tls END,
                smtp_username = CASE WHEN $13 THEN $17 ELSE smtp_username END,
                smtp_enabled = CASE WHEN $13 THEN $18 ELSE smtp_enabled END,
                smtp_password_key_id = CASE WHEN $19 THEN $20 ELSE smtp_password_key_id END,
                smtp_password = CASE WHEN $19 THEN $21 ELSE smtp_password END,
                smtp_changed_at = CASE WHEN $13 THEN clock_timestamp() ELSE smtp_changed_at END,
                requests_per_minute = CASE WHEN $22 THEN $23 ELSE requests_per_minute END,
                emails_per_day = CASE WHEN $24 THEN $25 ELSE emails_per_day END,
                emails_per_month = CASE WHEN $26 THEN $27 ELSE emails_per_month END,
                require_verified_domains = COALESCE($28, require_verified_domains),
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
        .bind(patch.domain.is_some())
        .bind(
            patch
                .domain
                .as_ref()
                .and_then(|d| d.as_ref().map(|d| d.as_str().to_owned())),
        )
        .bind(patch.from_name.is_some())
        .bind(patch.from_name.as_ref().and_then(Clone::clone))
        .bind(patch.smtp.is_some())
        .bind(smtp.map(|s| s.relay.host.as_str()))
        .bind(smtp.map(|s| i32::from(s.relay.port)))
        .bind(smtp.map(|s| s.relay.tls.as_str()))
        .bind(smtp.and_then(|s| s.relay.username.as_deref()))
        .bind(smtp.is_some_and(|s| s.relay.enabled))
        .bind(!matches!(password, PasswordChange::Keep))
        .bind(new_password.map(|p| p.key_id.as_str()))
        .bind(new_password.map(|p| p.bytes.as_slice()))
        .bind(patch.limits.requests_per_minute.is_some())
        .bind(
            patch
                .limits
                .requests_per_minute
                .flatten()
                .and_then(|n| i32::try_from(n).ok()),
        )
        .bind(patch.limits.emails_per_day.is_some())
        .bind(
            patch
                .limits
                .emails_per_day
                .flatten()
                .and_then(|n| i64::try_from(n).ok()),
        )
        .bind(patch.limits.emails_per_month.is_some())
        .bind(
            patch
                .limits
                .emails_per_month
                .flatten()
                .and_then(|n| i64::try_from(n).ok()),
        )
        .bind(patch.require_verified_domains)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| map_unique(e, TENANT_CONFLICTS))?
        .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(record)
    }

    /// A live tenant's upstream server with its sealed password, if one is set.
    ///
    /// # Errors
    /// `NotFound` for an unknown or deleted tenant.
    pub async fn tenant_relay(&self, id: TenantId) -> Result<Option<StoredRelay>, StoreError> {
        let row = sqlx::query(
            "SELECT smtp_host, smtp_port, smtp_tls, smtp_username, smtp_enabled,
                    smtp_password_key_id, smtp_password, smtp_changed_at
             FROM tenants WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        stored_relay(&row)
    }

    /// Deletes a tenant as far as the API can tell, in one transaction: it answers 404 from now
    /// on and leaves the listing, every live key is revoked and its trusted networks are freed.
    /// Its rows (emails, events) are kept for the operator's records. Returns it as it was.
    ///
    /// # Errors
    /// `NotFound` for an unknown or already deleted id.
    #[tracing::instrument(skip_all, fields(tenant_id = %id))]
    pub async fn delete_tenant(&self, id: TenantId) -> Result<TenantRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let record = sqlx::query_as::<_, TenantRecord>(concat!(
            "UPDATE tenants SET status = 'disabled', disabled_at = COALESCE(disabled_at, now()),
                                deleted_at = now(), updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL
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
        sqlx::query("DELETE FROM trusted_networks WHERE tenant_id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(record)
    }
}

/// A [`StoredRelay`] from a row with the `smtp_*` columns of a tenant.
pub(crate) fn stored_relay(row: &PgRow) -> Result<Option<StoredRelay>, StoreError> {
    let host: Option<String> = row.try_get("smtp_host")?;
    let username: Option<String> = row.try_get("smtp_username")?;
    let Some(relay) = relay_of(
        host.as_ref(),
        row.try_get("smtp_port")?,
        row.try_get::<Option<String>, _>("smtp_tls")?.as_deref(),
        username.as_ref(),
        row.try_get("smtp_enabled")?,
    ) else {
        return Ok(None);
    };
    let key_id: Option<String> = row.try_get("smtp_password_key_id")?;
    let bytes: Option<Vec<u8>> = row.try_get("smtp_password")?;
    Ok(Some(StoredRelay {
        relay,
        password: key_id
            .zip(bytes)
            .map(|(key_id, bytes)| SealedSecret { key_id, bytes }),
        changed_at: row
            .try_get::<Option<OffsetDateTime>, _>("smtp_changed_at")?
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
    }))
}
