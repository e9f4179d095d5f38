//! Tenant sending domains: the name, the DKIM key in use (and the next one during a rotation),
//! its private half sealed, and each record's last verdict from DNS.
//!
//! The private keys leave this module only in [`SigningKeyRow`] and [`DomainToCheck`] rows,
//! still sealed; [`DomainRecord`], which the API shows, has no column for them.

use missive_core::sending_domain::{
    Capability, DkimAlgorithm, DomainTls, InboundDmarc, Region, VerificationStatus,
};
use missive_core::{DomainId, TenantId};
use time::OffsetDateTime;

use crate::checked::records;
use crate::cursor::{fetch_page, finish_page};
use crate::error::map_unique;
use crate::webhooks::SealedSecret;
use crate::{Cursor, Store, StoreError};

/// A domain as the API shows it: no private key.
#[derive(Clone, Debug)]
pub struct DomainRecord {
    pub tenant_id: TenantId,
    pub id: DomainId,
    pub name: String,
    pub status: VerificationStatus,
    pub region: Region,
    pub open_tracking: bool,
    pub click_tracking: bool,
    pub tls: DomainTls,
    pub dkim_algorithm: DkimAlgorithm,
    pub selector: String,
    pub public_key: String,
    pub next_selector: Option<String>,
    pub next_public_key: Option<String>,
    /// The subdomain return paths use (Resend's `custom_return_path`).
    pub custom_return_path: String,
    /// Resend's `capabilities`: a domain whose sending is disabled neither signs nor passes as
    /// a verified sender domain; one whose receiving is enabled lists its MX record.
    pub sending: Capability,
    pub receiving: Capability,
    /// What receiving does with mail that fails DMARC.
    pub inbound_dmarc: InboundDmarc,
    /// Each record's last verdict, by its kind (`{"DKIM": {"status", "reason"}}`).
    pub record_checks: serde_json::Value,
    pub checked_at: Option<OffsetDateTime>,
    pub verified_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Calls `$then!` with `$before`, the columns of [`DomainRecord`], and `$after`.
macro_rules! domain_columns {
    ($then:ident!($($before:tt)*) $($after:tt)*) => {
        $then!(
            $($before)*
            r#"tenant_id AS "tenant_id: TenantId", id AS "id: DomainId", name,
               status AS "status: VerificationStatus", region AS "region: Region",
               open_tracking, click_tracking, tls AS "tls: DomainTls",
               dkim_algorithm AS "dkim_algorithm: DkimAlgorithm", selector, public_key,
               next_selector, next_public_key, custom_return_path,
               sending AS "sending: Capability", receiving AS "receiving: Capability",
               inbound_dmarc AS "inbound_dmarc: InboundDmarc", record_checks, checked_at, verified_at,
               created_at, updated_at"#
            $($after)*
        )
    };
}

/// The key a verified domain signs with, sealed.
#[derive(Clone, Debug)]
pub struct SigningKeyRow {
    pub id: DomainId,
    pub name: String,
    pub dkim_algorithm: DkimAlgorithm,
    pub selector: String,
    pub private_key_id: String,
    pub private_key: Vec<u8>,
}

impl SigningKeyRow {
    #[must_use]
    pub fn sealed(&self) -> SealedSecret {
        SealedSecret {
            key_id: self.private_key_id.clone(),
            bytes: self.private_key.clone(),
        }
    }
}

/// A new domain and its first key.
#[derive(Debug)]
pub struct NewDomain<'a> {
    pub id: DomainId,
    pub name: &'a str,
    pub region: Region,
    pub open_tracking: bool,
    pub click_tracking: bool,
    pub tls: DomainTls,
    /// The subdomain return paths use: one lower-case DNS label.
    pub custom_return_path: &'a str,
    pub sending: Capability,
    pub receiving: Capability,
    pub inbound_dmarc: InboundDmarc,
    pub key: NewDkimKey<'a>,
    /// The most domains the tenant may have; past it the insert is a `Conflict`.
    pub max_per_tenant: i64,
}

/// A DKIM key pair as stored: the public half in the clear, the private half sealed.
#[derive(Debug)]
pub struct NewDkimKey<'a> {
    pub algorithm: DkimAlgorithm,
    pub selector: &'a str,
    pub public_key: &'a str,
    pub private_key: &'a SealedSecret,
}

/// What `PATCH /v1/domains/{id}` may change.
#[derive(Debug, Default)]
pub struct DomainPatch {
    pub open_tracking: Option<bool>,
    pub click_tracking: Option<bool>,
    pub tls: Option<DomainTls>,
    pub sending: Option<Capability>,
    pub receiving: Option<Capability>,
    pub inbound_dmarc: Option<InboundDmarc>,
}

/// A verification's outcome, to record.
#[derive(Debug)]
pub struct DomainCheck<'a> {
    pub status: VerificationStatus,
    pub record_checks: &'a serde_json::Value,
    /// The next key's record was found: it becomes the key in use.
    pub promote_next: bool,
}

#[derive(Debug)]
pub struct DomainPage {
    pub domains: Vec<DomainRecord>,
    pub has_more: bool,
}

const DOMAIN_CONFLICTS: &[(&str, &str)] = &[
    (
        "domains_tenant_id_name_key",
        "this domain has already been added",
    ),
    (
        "domains_receiving_name",
        "another account receives mail for this domain; a domain receives for one account",
    ),
];

impl Store {
    /// Adds a domain with its first key.
    ///
    /// # Errors
    /// `Conflict` when the tenant already has it, or has as many as it may.
    pub async fn insert_domain(
        &self,
        tenant_id: TenantId,
        new: &NewDomain<'_>,
    ) -> Result<DomainRecord, StoreError> {
        self.confined(tenant_id, async |conn| {
            domain_columns!(
                records!(
                    DomainRecord,
                    "INSERT INTO domains (tenant_id, id, name, region, open_tracking,
                                          click_tracking, tls, dkim_algorithm, selector,
                                          public_key, private_key_id, private_key,
                                          custom_return_path, sending, receiving,
                                          inbound_dmarc)
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $14, $15, $16,
                            $17
                     WHERE (SELECT count(*) FROM domains WHERE tenant_id = $1) < $13
                     RETURNING ",
                ),
                "",
                tenant_id.as_uuid(),
                new.id.as_uuid(),
                new.name,
                new.region.as_str(),
                new.open_tracking,
                new.click_tracking,
                new.tls.as_str(),
                new.key.algorithm.as_str(),
                new.key.selector,
                new.key.public_key,
                &new.key.private_key.key_id,
                &new.key.private_key.bytes,
                new.max_per_tenant,
                new.custom_return_path,
                new.sending.as_str(),
                new.receiving.as_str(),
                new.inbound_dmarc.as_str(),
            )
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| map_unique(e, DOMAIN_CONFLICTS))?
            .ok_or(StoreError::Conflict(
                "this tenant has as many domains as it may have; delete one first",
            ))
        })
        .await
    }

    /// One of the tenant's domains.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], also for another tenant's.
    pub async fn get_domain(
        &self,
        tenant_id: TenantId,
        id: DomainId,
    ) -> Result<DomainRecord, StoreError> {
        self.confined_read(tenant_id, async |conn| {
            domain_columns!(
                records!(DomainRecord, "SELECT ",),
                " FROM domains WHERE tenant_id = $1 AND id = $2",
                tenant_id.as_uuid(),
                id.as_uuid(),
            )
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    /// A page of the tenant's domains, newest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_domains(
        &self,
        tenant_id: TenantId,
        cursor: Cursor,
        limit: i64,
    ) -> Result<DomainPage, StoreError> {
        let rows = self
            .confined_read(tenant_id, async |conn| {
                Ok(domain_columns!(
                    fetch_page!(&mut *conn, DomainRecord,),
                    "domains",
                    "",
                    tenant_id,
                    cursor,
                    limit,
                ))
            })
            .await?;
        let (domains, has_more) = finish_page(rows, cursor, limit);
        Ok(DomainPage { domains, has_more })
    }

    /// Changes what the patch names.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn update_domain(
        &self,
        tenant_id: TenantId,
        id: DomainId,
        patch: &DomainPatch,
    ) -> Result<DomainRecord, StoreError> {
        self.confined(tenant_id, async |conn| {
            domain_columns!(
                records!(
                    DomainRecord,
                    "UPDATE domains
                     SET open_tracking = coalesce($3, open_tracking),
                         click_tracking = coalesce($4, click_tracking),
                         tls = coalesce($5, tls), sending = coalesce($6, sending),
                         receiving = coalesce($7, receiving),
                         inbound_dmarc = coalesce($8, inbound_dmarc), updated_at = now()
                     WHERE tenant_id = $1 AND id = $2
                     RETURNING ",
                ),
                "",
                tenant_id.as_uuid(),
                id.as_uuid(),
                patch.open_tracking,
                patch.click_tracking,
                patch.tls.map(DomainTls::as_str),
                patch.sending.map(Capability::as_str),
                patch.receiving.map(Capability::as_str),
                patch.inbound_dmarc.map(InboundDmarc::as_str),
            )
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| map_unique(e, DOMAIN_CONFLICTS))?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    /// Deletes a domain; its mail is no longer signed from the next send on.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn delete_domain(&self, tenant_id: TenantId, id: DomainId) -> Result<(), StoreError> {
        self.confined(tenant_id, async |conn| {
            let deleted = sqlx::query!(
                "DELETE FROM domains WHERE tenant_id = $1 AND id = $2",
                tenant_id.as_uuid(),
                id.as_uuid(),
            )
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if deleted == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    /// Records a verification: the domain's status, each record's verdict, and the next key
    /// taking over when its record was found.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the domain is gone.
    pub async fn record_domain_check(
        &self,
        tenant_id: TenantId,
        id: DomainId,
        check: &DomainCheck<'_>,
    ) -> Result<DomainRecord, StoreError> {
        self.confined(tenant_id, async |conn| {
            domain_columns!(
                records!(
                    DomainRecord,
                    "UPDATE domains
                 SET status = $3, record_checks = $4, checked_at = now(), updated_at = now(),
                     verified_at = CASE WHEN $6 THEN now() ELSE verified_at END,
                     selector = CASE WHEN $5 THEN next_selector ELSE selector END,
                     public_key = CASE WHEN $5 THEN next_public_key ELSE public_key END,
                     private_key_id = CASE WHEN $5 THEN next_private_key_id
                                           ELSE private_key_id END,
                     private_key = CASE WHEN $5 THEN next_private_key ELSE private_key END,
                     next_selector = CASE WHEN $5 THEN NULL ELSE next_selector END,
                     next_public_key = CASE WHEN $5 THEN NULL ELSE next_public_key END,
                     next_private_key_id = CASE WHEN $5 THEN NULL ELSE next_private_key_id END,
                     next_private_key = CASE WHEN $5 THEN NULL ELSE next_private_key END
                 WHERE tenant_id = $1 AND id = $2
                   AND (NOT $5 OR next_selector IS NOT NULL)
                 RETURNING ",
                ),
                "",
                tenant_id.as_uuid(),
                id.as_uuid(),
                check.status.as_str(),
                check.record_checks,
                check.promote_next,
                check.status == VerificationStatus::Verified,
            )
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    /// Starts a key rotation: `key` is published beside the key in use and takes over once a
    /// verification finds its record. A rotation already under way is replaced.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn begin_domain_rotation(
        &self,
        tenant_id: TenantId,
        id: DomainId,
        key: &NewDkimKey<'_>,
    ) -> Result<DomainRecord, StoreError> {
        self.confined(tenant_id, async |conn| {
            domain_columns!(
                records!(
                    DomainRecord,
                    "UPDATE domains
                     SET next_selector = $3, next_public_key = $4, next_private_key_id = $5,
                         next_private_key = $6, updated_at = now()
                     WHERE tenant_id = $1 AND id = $2 AND dkim_algorithm = $7
                     RETURNING ",
                ),
                "",
                tenant_id.as_uuid(),
                id.as_uuid(),
                key.selector,
                key.public_key,
                &key.private_key.key_id,
                &key.private_key.bytes,
                key.algorithm.as_str(),
            )
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    /// The keys of the tenant's verified domains, sealed: what its mail is signed with.
    ///
    /// # Errors
    /// Database failures.
    pub async fn signing_keys(
        &self,
        tenant_id: TenantId,
    ) -> Result<Vec<SigningKeyRow>, StoreError> {
        self.confined_read(tenant_id, async |conn| {
            Ok(sqlx::query_as!(
                SigningKeyRow,
                r#"SELECT id AS "id: DomainId", name,
                          dkim_algorithm AS "dkim_algorithm: DkimAlgorithm", selector,
                          private_key_id, private_key
                   FROM domains WHERE tenant_id = $1 AND status = $2 AND sending = $3"#,
                tenant_id.as_uuid(),
                VerificationStatus::Verified.as_str(),
                Capability::Enabled.as_str(),
            )
            .fetch_all(&mut *conn)
            .await?)
        })
        .await
    }

    /// Domains, of every tenant, whose last verification is older than `interval` (and that were
    /// verified at least once, or asked to be), oldest first: the background re-check's work.
    ///
    /// # Errors
    /// Database failures.
    pub async fn domains_due_for_check(
        &self,
        interval: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<(TenantId, DomainId)>, StoreError> {
        let rows = sqlx::query!(
            r#"SELECT tenant_id AS "tenant_id: TenantId", id AS "id: DomainId" FROM domains
               WHERE status <> $3
                 AND checked_at < now() - make_interval(secs => $1)
               ORDER BY checked_at
               LIMIT $2"#,
            interval.as_secs_f64(),
            limit,
            VerificationStatus::NotStarted.as_str(),
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.tenant_id, row.id))
            .collect())
    }
}
