//! A tenant's own upstream SMTP server, as stored in its `smtp_*` columns: read for a delivery
//! or a check, with its password sealed; changed through a tenant patch (`tenants.rs`).

use missive_core::TenantId;
use missive_core::routing::{RelayTls, TenantRelay};
use time::OffsetDateTime;

use crate::{SealedSecret, Store, StoreError};

/// A [`TenantRelay`] from its columns; `None` without a host (or with a damaged row).
pub(crate) fn relay_of(
    host: Option<&String>,
    port: Option<i32>,
    tls: Option<RelayTls>,
    username: Option<&String>,
    enabled: bool,
) -> Option<TenantRelay> {
    Some(TenantRelay {
        host: host?.clone(),
        port: u16::try_from(port?).ok()?,
        tls: tls?,
        username: username.cloned(),
        enabled,
    })
}

/// A tenant's `smtp_*` columns as a statement reads them beside other rows (the delivery
/// worker's message reads, the verify route's).
#[derive(Debug)]
pub(crate) struct RelayColumns {
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i32>,
    pub smtp_tls: Option<RelayTls>,
    pub smtp_username: Option<String>,
    pub smtp_enabled: bool,
    pub smtp_password_key_id: Option<String>,
    pub smtp_password: Option<Vec<u8>>,
    pub smtp_changed_at: Option<OffsetDateTime>,
}

impl RelayColumns {
    /// The tenant's server with its sealed password, when one is set.
    pub(crate) fn stored(self) -> Option<StoredRelay> {
        let relay = relay_of(
            self.smtp_host.as_ref(),
            self.smtp_port,
            self.smtp_tls,
            self.smtp_username.as_ref(),
            self.smtp_enabled,
        )?;
        Some(StoredRelay {
            relay,
            password: self
                .smtp_password_key_id
                .zip(self.smtp_password)
                .map(|(key_id, bytes)| SealedSecret { key_id, bytes }),
            changed_at: self.smtp_changed_at.unwrap_or(OffsetDateTime::UNIX_EPOCH),
        })
    }
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

impl Store {
    /// A live tenant's upstream server with its sealed password, if one is set.
    ///
    /// # Errors
    /// `NotFound` for an unknown or deleted tenant.
    pub async fn tenant_relay(&self, id: TenantId) -> Result<Option<StoredRelay>, StoreError> {
        let columns = sqlx::query_as!(
            RelayColumns,
            r#"SELECT smtp_host, smtp_port, smtp_tls AS "smtp_tls: RelayTls", smtp_username,
                      smtp_enabled, smtp_password_key_id, smtp_password, smtp_changed_at
               FROM tenants WHERE id = $1 AND deleted_at IS NULL"#,
            id.as_uuid(),
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(columns.stored())
    }
}
