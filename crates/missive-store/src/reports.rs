//! Reports that came back to a return path: what a delivery report, a plain bounce or a
//! complaint says becomes events of the email, a late bounce's delivery status, suppressions and
//! webhook outbox rows, in one statement (as an attempt's result is).
//!
//! Which email a report is about was decided by the caller from an authenticated return path;
//! which of its recipients, here, from what the report names: a finding for an address that is
//! not among the email's recipients changes nothing (except that, for an email with a single
//! recipient, a report that names none, or another, is about that one: a forwarding hop may
//! report the final address). A report sent twice records nothing twice: a bounce moves a
//! delivery once, and a complaint or a confirmation is recorded once per recipient.

use std::time::Duration;

use missive_core::outcome::BounceClass;
use missive_core::report::{FindingKind, Reading};
use missive_core::{DeliveryId, DeliveryStatus, EmailId, EventKind, SuppressionOrigin, TenantId};
use uuid::Uuid;

use crate::composite::composite;
use crate::outbox::{EVENT_HOOKS, reporting_events};
use crate::{Store, StoreError};

/// When soft bounces suppress an address: `limit` of them within `window`.
#[derive(Clone, Copy, Debug)]
pub struct SoftBounceRule {
    pub limit: u32,
    pub window: Duration,
}

impl Default for SoftBounceRule {
    /// Three within seven days, the operator's default.
    fn default() -> Self {
        Self {
            limit: 3,
            window: Duration::from_secs(7 * 86_400),
        }
    }
}

composite! {
    /// One finding for one delivery (the `report_finding` type).
    FindingRow<'a> = "report_finding" {
        delivery_id: Uuid,
        event: &'a str,
        set_status: Option<&'a str>,
        bounce_class: Option<&'a str>,
        code: Option<i32>,
        response: &'a str,
        report_status: Option<&'a str>,
        reporting_mta: Option<&'a str>,
        suppress: Option<&'a str>,
        soft: bool,
        suppression_id: Uuid,
    }
}

/// A delivery of the reported email, as matching needs it.
struct Target {
    id: DeliveryId,
    recipient: String,
    status: DeliveryStatus,
}

/// The deliveries a finding for `named` is about.
fn targets<'t>(
    targets: &'t [Target],
    named: Option<&str>,
    candidates: &[String],
) -> Vec<&'t Target> {
    let matching: Vec<&Target> = match named {
        Some(named) => targets
            .iter()
            .filter(|t| t.recipient.eq_ignore_ascii_case(named))
            .collect(),
        None => targets
            .iter()
            .filter(|t| {
                candidates
                    .iter()
                    .any(|c| t.recipient.eq_ignore_ascii_case(c))
            })
            .collect(),
    };
    if matching.is_empty() && targets.len() == 1 {
        return vec![&targets[0]];
    }
    matching
}

/// What a finding does to one delivery: `None` when it changes nothing (a bounce for a
/// delivery already bounced, or one never sent).
fn effect(
    kind: FindingKind,
    status: DeliveryStatus,
) -> Option<(EventKind, Option<DeliveryStatus>)> {
    let sent = matches!(
        status,
        DeliveryStatus::Delivered
            | DeliveryStatus::Deferred
            | DeliveryStatus::Failed
            | DeliveryStatus::Sending
    );
    match kind {
        FindingKind::Bounced(_) if sent => {
            Some((EventKind::Bounced, Some(DeliveryStatus::Bounced)))
        }
        FindingKind::Delayed if sent => Some((EventKind::Deferred, None)),
        FindingKind::Delivered if sent => Some((EventKind::Confirmed, None)),
        FindingKind::Complained if sent || status == DeliveryStatus::Bounced => {
            Some((EventKind::Complained, None))
        }
        _ => None,
    }
}

impl Store {
    /// Records what `reading` says about `email` of `tenant`; how many events it wrote. Zero
    /// for an email that does not exist (any more) and for a reading whose findings match no
    /// recipient.
    ///
    /// # Errors
    /// Database failures; nothing is recorded then.
    pub async fn record_report(
        &self,
        tenant: TenantId,
        email: EmailId,
        reading: &Reading,
        soft: SoftBounceRule,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Locked so two copies of one report, read at once, move a delivery once.
        let deliveries = sqlx::query_as!(
            Target,
            r#"SELECT id AS "id: DeliveryId", recipient, status AS "status: DeliveryStatus"
               FROM deliveries WHERE tenant_id = $1 AND email_id = $2
               ORDER BY id FOR UPDATE"#,
            tenant.as_uuid(),
            email.as_uuid(),
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut rows: Vec<FindingRow<'_>> = Vec::new();
        for finding in &reading.findings {
            for target in targets(
                &deliveries,
                finding.recipient.as_deref(),
                &reading.candidates,
            ) {
                let Some((event, set_status)) = effect(finding.kind, target.status) else {
                    continue;
                };
                if rows
                    .iter()
                    .any(|r| r.delivery_id == target.id.as_uuid() && r.event == event.as_str())
                {
                    continue;
                }
                let class = match finding.kind {
                    FindingKind::Bounced(class) => class,
                    _ => None,
                };
                let suppress = match (finding.kind, class) {
                    (FindingKind::Complained, _) => Some(SuppressionOrigin::Complaint),
                    (_, Some(BounceClass::Hard)) => Some(SuppressionOrigin::Bounce),
                    _ => None,
                };
                rows.push(FindingRow {
                    delivery_id: target.id.as_uuid(),
                    event: event.as_str(),
                    set_status: set_status.map(DeliveryStatus::as_str),
                    bounce_class: class.map(BounceClass::as_str),
                    code: finding.code.map(i32::from),
                    response: finding.detail.as_str(),
                    report_status: finding.status.as_deref(),
                    reporting_mta: finding.reporting_mta.as_deref(),
                    suppress: suppress.map(SuppressionOrigin::as_str),
                    soft: class == Some(BounceClass::Soft),
                    suppression_id: Uuid::now_v7(),
                });
            }
        }
        if rows.is_empty() {
            return Ok(0);
        }
        let window_secs = i64::try_from(soft.window.as_secs()).unwrap_or(i64::MAX);
        let written = reporting_events!(
            scalar:
            "WITH f AS (
                 SELECT * FROM UNNEST($1::report_finding[])
             ), found AS (
                 -- Complaints and confirmations are recorded once per recipient.
                 SELECT f.*, d.project_id, d.recipient
                 FROM f
                 JOIN deliveries d ON d.tenant_id = $2 AND d.email_id = $3 AND d.id = f.delivery_id
                 WHERE f.event NOT IN ($4, $5) OR NOT EXISTS (
                     SELECT 1 FROM email_events e
                     WHERE e.tenant_id = $2 AND e.email_id = $3 AND e.delivery_id = f.delivery_id
                       AND e.type = f.event)
             ), moved AS (
                 UPDATE deliveries d
                 SET status = found.set_status, bounce_class = found.bounce_class,
                     last_smtp_code = found.code, last_smtp_response = found.response,
                     updated_at = now()
                 FROM found
                 WHERE d.tenant_id = $2 AND d.email_id = $3 AND d.id = found.delivery_id
                   AND found.set_status IS NOT NULL
             ), ev AS (
                 INSERT INTO email_events (tenant_id, project_id, email_id, delivery_id, type,
                                           recipient, smtp_code, smtp_response, bounce_class,
                                           report_status, reporting_mta)
                 SELECT $2, project_id, $3, delivery_id, event, recipient, code, response,
                        bounce_class, report_status, reporting_mta
                 FROM found
                 RETURNING tenant_id, project_id, email_id, id, type
             ), counted AS (
                 -- Soft bounces per address, the count restarting when its window is over.
                 INSERT INTO soft_bounces AS s (tenant_id, email, first_at, count)
                 SELECT $2, lower(recipient), now(), count(*)::int FROM found WHERE soft
                 GROUP BY lower(recipient)
                 ON CONFLICT (tenant_id, email) DO UPDATE
                 SET count = CASE WHEN s.first_at < now() - make_interval(secs => $6)
                                  THEN excluded.count ELSE s.count + excluded.count END,
                     first_at = CASE WHEN s.first_at < now() - make_interval(secs => $6)
                                     THEN now() ELSE s.first_at END
                 RETURNING email, count
             ), suppressed AS (
                 INSERT INTO suppressions (tenant_id, id, email, origin, source_id, reason, status)
                 SELECT $2, found.suppression_id, lower(found.recipient),
                        coalesce(found.suppress, $8), $3, found.response, found.report_status
                 FROM found
                 LEFT JOIN counted ON counted.email = lower(found.recipient)
                 WHERE found.suppress IS NOT NULL OR counted.count >= $7
                 ON CONFLICT (tenant_id, email) DO NOTHING
             ), ",
            "$9",
            "$10",
            r#" SELECT count(*) AS "count!" FROM ev"#,
            &rows[..] as &[FindingRow<'_>],
            tenant.as_uuid(),
            email.as_uuid(),
            EventKind::Complained.as_str(),
            EventKind::Confirmed.as_str(),
            window_secs as f64,
            i32::try_from(soft.limit).unwrap_or(i32::MAX),
            SuppressionOrigin::Bounce.as_str(),
            &EVENT_HOOKS[..] as &[crate::outbox::EventHook<'_>],
            missive_core::WebhookStatus::Enabled.as_str(),
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(u64::try_from(written).unwrap_or(0))
    }

    /// The email a `Message-ID` of ours names (`<uuid>@domain`, as Missive writes them), when
    /// an email of that id carries exactly that Message-ID: how a complaint that reached the
    /// feedback address without a return path finds its email. One index probe per tenant.
    ///
    /// # Errors
    /// Database failures.
    pub async fn email_by_message_id(
        &self,
        message_id: &str,
    ) -> Result<Option<(TenantId, EmailId)>, StoreError> {
        let Some(id) = message_id
            .split('@')
            .next()
            .and_then(|local| Uuid::try_parse(local).ok())
        else {
            return Ok(None);
        };
        let found = sqlx::query!(
            r#"SELECT e.tenant_id AS "tenant_id: TenantId", e.id AS "id: EmailId"
               FROM tenants t
               JOIN emails e ON e.tenant_id = t.id AND e.id = $1
               WHERE e.message_id = $2
               LIMIT 1"#,
            id,
            message_id,
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.map(|r| (r.tenant_id, r.id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(recipient: &str) -> Target {
        Target {
            id: DeliveryId::new(),
            recipient: recipient.to_owned(),
            status: DeliveryStatus::Delivered,
        }
    }

    #[test]
    fn findings_match_the_recipient_they_name_in_any_case() {
        let all = [target("a@x.test"), target("b@x.test")];
        let found = targets(&all, Some("B@X.TEST"), &[]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].recipient, "b@x.test");
        assert!(targets(&all, Some("c@x.test"), &[]).is_empty());
        assert!(targets(&all, None, &[]).is_empty());
        let named = targets(&all, None, &["a@x.test".to_owned()]);
        assert_eq!(named[0].recipient, "a@x.test");
        // A single recipient is the one any report of its email is about.
        assert_eq!(targets(&all[..1], Some("fwd@y.test"), &[]).len(), 1);
    }

    #[test]
    fn a_bounce_moves_a_sent_delivery_once() {
        let bounced = FindingKind::Bounced(Some(BounceClass::Hard));
        assert_eq!(
            effect(bounced, DeliveryStatus::Delivered),
            Some((EventKind::Bounced, Some(DeliveryStatus::Bounced)))
        );
        assert_eq!(effect(bounced, DeliveryStatus::Bounced), None);
        assert_eq!(effect(bounced, DeliveryStatus::Queued), None);
        assert_eq!(
            effect(FindingKind::Complained, DeliveryStatus::Bounced),
            Some((EventKind::Complained, None))
        );
        assert_eq!(
            effect(FindingKind::Delivered, DeliveryStatus::Suppressed),
            None
        );
    }
}
