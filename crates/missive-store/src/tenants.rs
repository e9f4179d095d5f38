//! Tenant rows: create (with the first key, atomically), list, read, update, disable.

use std::net::IpAddr;

use missive_core::routing::{RelayTls, TenantRelay};
use missive_core::{
    DEFAULT_PROJECT_NAME, Domain, IpNetwork, Limits, Mailbox, ProjectId, ProjectRef, SendingPolicy,
    TenantId, TenantName, TenantSettings, TenantStatus,
};
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::api_keys::{ApiKeyRecord, NewApiKeyRow, insert_api_key};
use crate::error::map_unique;
use crate::relays::{PasswordChange, RelayPatch, relay_of};
use crate::usage::limits_from_columns;
use crate::{Store, StoreError};

const TENANT_CONFLICTS: &[(&str, &str)] =
    &[("tenants_name_key", "a tenant with this name already exists")];

/// A checked statement reading [`TenantRecord`]s: `$head`, the record's columns, `$tail`.
macro_rules! query_tenants {
    ($head:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            TenantRecord,
            $head
                + r#"id AS "id: TenantId", name, status AS "status: TenantStatus", domain,
                     default_from, reply_to, from_name, allowed_sender_domains,
                     ARRAY(SELECT n.network::text FROM trusted_networks n
                           WHERE n.tenant_id = tenants.id AND n.project_id = tenants.id
                           ORDER BY n.network)
                         AS "trusted_networks!",
                     created_at, updated_at, disabled_at, smtp_host, smtp_port,
                     smtp_tls AS "smtp_tls: RelayTls", smtp_username, smtp_enabled,
                     (smtp_password IS NOT NULL) AS "smtp_has_password!", requests_per_minute,
                     emails_per_day, emails_per_month, require_verified_domains,
                     received_per_day, received_stored_bytes"#
                + $tail
            $(, $arg)*
        )
    };
}

/// A tenant as stored.
#[derive(Clone, Debug)]
pub struct TenantRecord {
    pub id: TenantId,
    pub name: String,
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
    pub smtp_tls: Option<RelayTls>,
    pub smtp_username: Option<String>,
    pub smtp_enabled: bool,
    pub smtp_has_password: bool,
    /// The tenant's limits as set (null: the configured default).
    pub requests_per_minute: Option<i32>,
    pub emails_per_day: Option<i64>,
    pub emails_per_month: Option<i64>,
    /// The tenant's inbound caps as set (null: the operator's).
    pub received_per_day: Option<i64>,
    pub received_stored_bytes: Option<i64>,
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
            self.smtp_tls,
            self.smtp_username.as_ref(),
            self.smtp_enabled,
        )
    }
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
    /// Inbound caps: `Some(None)` returns one to the operator's.
    pub received_per_day: Option<Option<u64>>,
    pub received_stored_bytes: Option<Option<u64>>,
}

/// Changes to a tenant's limits: `None` leaves one alone, `Some(None)` returns it to the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitsPatch {
    pub requests_per_minute: Option<Option<u32>>,
    pub emails_per_day: Option<Option<u64>>,
    pub emails_per_month: Option<Option<u64>>,
}

/// The tenant a trusted network submits for, with what ingest needs to know about it.
#[derive(Clone, Debug)]
pub struct TrustedSender {
    pub tenant_id: TenantId,
    /// The project the network sends as.
    pub project_id: ProjectId,
    pub tenant_status: TenantStatus,
    pub network: String,
    pub sending: SendingPolicy,
    /// The project's request rate limit, else the tenant's (null: the default).
    pub requests_per_minute: Option<i32>,
}

/// [`TrustedSender`] as read, before the sending settings are parsed.
struct TrustedSenderRow {
    tenant_id: TenantId,
    project_id: ProjectId,
    tenant_status: TenantStatus,
    network: String,
    default_from: Option<String>,
    reply_to: Option<String>,
    from_name: Option<String>,
    allowed_sender_domains: Vec<String>,
    require_verified_domains: bool,
    requests_per_minute: Option<i32>,
}

/// A tenant's sending settings from its columns (`default_from`, `reply_to`, `from_name`,
/// `allowed_sender_domains`, `require_verified_domains`), parsed once, as they are loaded.
///
/// # Errors
/// [`StoreError::Corrupt`]: they are written only after the same parsing, so a failure here is
/// a hand-edited row.
pub(crate) fn sending_policy(
    default_from: Option<&str>,
    reply_to: Option<&str>,
    from_name: Option<&str>,
    domains: &[String],
    require_verified_domains: bool,
) -> Result<SendingPolicy, StoreError> {
    SendingPolicy::from_stored(default_from, reply_to, from_name, domains)
        .map(|policy| SendingPolicy {
            require_verified_domains,
            ..policy
        })
        .map_err(|err| StoreError::Corrupt(format!("a tenant's sending settings: {err}")))
}

const NETWORK_CONFLICTS: &[(&str, &str)] = &[(
    "trusted_networks_no_overlap",
    "a trusted network overlaps one already listed, by this tenant or another",
)];

/// Replaces a project's trusted networks within the caller's transaction.
pub(crate) async fn replace_trusted_networks(
    conn: &mut PgConnection,
    project: ProjectRef,
    networks: &[IpNetwork],
) -> Result<(), StoreError> {
    sqlx::query!(
        "DELETE FROM trusted_networks WHERE tenant_id = $1 AND project_id = $2",
        project.tenant_id.as_uuid(),
        project.project_id.as_uuid(),
    )
    .execute(&mut *conn)
    .await?;
    let networks: Vec<String> = networks.iter().map(ToString::to_string).collect();
    sqlx::query!(
        "INSERT INTO trusted_networks (tenant_id, project_id, network)
         SELECT $1, $3, n::cidr FROM unnest($2::text[]) AS n",
        project.tenant_id.as_uuid(),
        &networks,
        project.project_id.as_uuid(),
    )
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
    query_tenants!(
        "SELECT ",
        " FROM tenants WHERE id = $1 AND deleted_at IS NULL",
        id.as_uuid()
    )
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
        let record = query_tenants!(
            "INSERT INTO tenants (id, name, default_from, reply_to, allowed_sender_domains, domain,
                                  from_name)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING ",
            "",
            tenant.id.as_uuid(),
            tenant.name.as_str(),
            tenant
                .settings
                .default_from
                .as_ref()
                .map(ToString::to_string),
            tenant.settings.reply_to.as_ref().map(ToString::to_string),
            &with_primary(&tenant.settings.allowed_sender_domains, tenant.domain),
            tenant.domain.map(Domain::as_str),
            tenant.settings.from_name.as_deref(),
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| map_unique(e, TENANT_CONFLICTS))?;
        sqlx::query!(
            "INSERT INTO projects (tenant_id, id, name) VALUES ($1, $1, $2)",
            tenant.id.as_uuid(),
            DEFAULT_PROJECT_NAME,
        )
        .execute(&mut *tx)
        .await?;
        let record = if tenant.settings.trusted_networks.is_empty() {
            record
        } else {
            replace_trusted_networks(
                &mut tx,
                ProjectRef::default_of(tenant.id),
                &tenant.settings.trusted_networks,
            )
            .await?;
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
        let rows = query_tenants!(
            "SELECT ",
            " FROM tenants
             WHERE deleted_at IS NULL AND ($1::uuid IS NULL OR id > $1)
             ORDER BY id
             LIMIT $2",
            after.map(|id| id.as_uuid()),
            limit,
        )
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
        let row = sqlx::query_as!(
            TrustedSenderRow,
            r#"SELECT t.id AS "tenant_id: TenantId", n.project_id AS "project_id: ProjectId",
                      t.status AS "tenant_status: TenantStatus",
                      n.network::text AS "network!", t.default_from, t.reply_to, t.from_name,
                      t.allowed_sender_domains, t.require_verified_domains,
                      COALESCE(p.requests_per_minute, t.requests_per_minute) AS requests_per_minute
               FROM trusted_networks n JOIN tenants t ON t.id = n.tenant_id
               JOIN projects p ON p.tenant_id = n.tenant_id AND p.id = n.project_id
               WHERE n.network >>= $1::text::inet"#,
            ip.to_string(),
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(TrustedSender {
                sending: sending_policy(
                    row.default_from.as_deref(),
                    row.reply_to.as_deref(),
                    row.from_name.as_deref(),
                    &row.allowed_sender_domains,
                    row.require_verified_domains,
                )?,
                tenant_id: row.tenant_id,
                project_id: row.project_id,
                tenant_status: row.tenant_status,
                network: row.network,
                requests_per_minute: row.requests_per_minute,
            })
        })
        .transpose()
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
        let live = sqlx::query_scalar!(
            r#"SELECT true AS "live!" FROM tenants WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"#,
            id.as_uuid(),
        )
        .fetch_optional(&mut *tx)
        .await?;
        if live.is_none() {
            return Err(StoreError::NotFound);
        }
        if let Some(networks) = &patch.trusted_networks {
            // An unknown tenant fails the foreign key; report it as not found.
            replace_trusted_networks(&mut tx, ProjectRef::default_of(id), networks)
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
        let allowed = patch.allowed_sender_domains.as_deref().map(domain_strings);
        let record = query_tenants!(
            "UPDATE tenants SET
                name = COALESCE($2, name),
                status = COALESCE($3, status),
                disabled_at = CASE
                    WHEN $29::bool THEN COALESCE(disabled_at, now())
                    WHEN NOT $29::bool THEN NULL
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
                received_per_day = CASE WHEN $30 THEN $31 ELSE received_per_day END,
                received_stored_bytes = CASE WHEN $32 THEN $33 ELSE received_stored_bytes END,
                updated_at = now()
             WHERE id = $1
             RETURNING ",
            "",
            id.as_uuid(),
            patch.name.as_ref().map(TenantName::as_str),
            patch.status.map(TenantStatus::as_str),
            patch.default_from.is_some(),
            patch
                .default_from
                .as_ref()
                .and_then(|m| m.as_ref().map(ToString::to_string)),
            patch.reply_to.is_some(),
            patch
                .reply_to
                .as_ref()
                .and_then(|m| m.as_ref().map(ToString::to_string)),
            allowed.as_deref(),
            patch.domain.is_some(),
            patch
                .domain
                .as_ref()
                .and_then(|d| d.as_ref().map(|d| d.as_str().to_owned())),
            patch.from_name.is_some(),
            patch.from_name.as_ref().and_then(Clone::clone),
            patch.smtp.is_some(),
            smtp.map(|s| s.relay.host.as_str()),
            smtp.map(|s| i32::from(s.relay.port)),
            smtp.map(|s| s.relay.tls.as_str()),
            smtp.and_then(|s| s.relay.username.as_deref()),
            smtp.is_some_and(|s| s.relay.enabled),
            !matches!(password, PasswordChange::Keep),
            new_password.map(|p| p.key_id.as_str()),
            new_password.map(|p| p.bytes.as_slice()),
            patch.limits.requests_per_minute.is_some(),
            patch
                .limits
                .requests_per_minute
                .flatten()
                .and_then(|n| i32::try_from(n).ok()),
            patch.limits.emails_per_day.is_some(),
            patch
                .limits
                .emails_per_day
                .flatten()
                .and_then(|n| i64::try_from(n).ok()),
            patch.limits.emails_per_month.is_some(),
            patch
                .limits
                .emails_per_month
                .flatten()
                .and_then(|n| i64::try_from(n).ok()),
            patch.require_verified_domains,
            // Whether the tenant is being disabled (true), enabled again (false), or neither.
            patch.status.map(|status| status == TenantStatus::Disabled),
            patch.received_per_day.is_some(),
            patch
                .received_per_day
                .flatten()
                .and_then(|n| i64::try_from(n).ok()),
            patch.received_stored_bytes.is_some(),
            patch
                .received_stored_bytes
                .flatten()
                .and_then(|n| i64::try_from(n).ok()),
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| map_unique(e, TENANT_CONFLICTS))?
        .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(record)
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
        let record = query_tenants!(
            "UPDATE tenants SET status = $2, disabled_at = COALESCE(disabled_at, now()),
                                deleted_at = now(), updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL
             RETURNING ",
            "",
            id.as_uuid(),
            TenantStatus::Disabled.as_str(),
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        sqlx::query!(
            "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1 AND revoked_at IS NULL",
            id.as_uuid(),
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "DELETE FROM trusted_networks WHERE tenant_id = $1",
            id.as_uuid()
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(record)
    }
}
