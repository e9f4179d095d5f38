//! Mail received for tenants' receiving domains: which tenant a domain receives for, and the
//! received message stored whole (with the few headers listings show) before the MX's 250.

use missive_core::sending_domain::{Capability, RECEIVING_MX, VerificationStatus};
use missive_core::{DomainId, TenantId};
use uuid::Uuid;

use crate::{Store, StoreError};

/// The tenant a domain receives for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivingDomain {
    pub tenant_id: TenantId,
    pub id: DomainId,
}

/// A received message to store.
#[derive(Debug)]
pub struct NewReceivedEmail<'a> {
    pub tenant_id: TenantId,
    pub domain_id: DomainId,
    /// `""` for the null reverse path.
    pub mail_from: &'a str,
    pub rcpt_to: &'a [String],
    pub message_id: Option<&'a str>,
    pub from_address: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub raw: &'a [u8],
}

impl Store {
    /// The tenant `name` receives for: a domain with receiving enabled whose MX record was
    /// found at its last check (or, with `allow_unverified`, whatever its records say).
    ///
    /// # Errors
    /// Database failures.
    pub async fn receiving_domain(
        &self,
        name: &str,
        allow_unverified: bool,
    ) -> Result<Option<ReceivingDomain>, StoreError> {
        let found = sqlx::query!(
            r#"SELECT tenant_id AS "tenant_id: TenantId", id AS "id: DomainId"
               FROM domains
               WHERE name = lower($1) AND receiving = $2
                 AND ($3 OR record_checks -> $4 ->> 'status' = $5)"#,
            name,
            Capability::Enabled.as_str(),
            allow_unverified,
            RECEIVING_MX,
            VerificationStatus::Verified.as_str(),
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.map(|r| ReceivingDomain {
            tenant_id: r.tenant_id,
            id: r.id,
        }))
    }

    /// Stores a received message for its tenant's default project; its id.
    ///
    /// # Errors
    /// Database failures; nothing is stored then.
    pub async fn insert_received_email(
        &self,
        new: &NewReceivedEmail<'_>,
    ) -> Result<Uuid, StoreError> {
        let id = Uuid::now_v7();
        let size = i32::try_from(new.raw.len()).unwrap_or(i32::MAX);
        // The default project's id is the tenant's.
        sqlx::query!(
            "INSERT INTO received_emails (tenant_id, project_id, id, domain_id, mail_from, rcpt_to,
                                          message_id, from_address, subject, size, raw)
             VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            new.tenant_id.as_uuid(),
            id,
            new.domain_id.as_uuid(),
            new.mail_from,
            new.rcpt_to,
            new.message_id,
            new.from_address,
            new.subject,
            size,
            new.raw,
        )
        .execute(&self.pool)
        .await?;
        Ok(id)
    }
}
