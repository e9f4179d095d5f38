//! The delivery model every crate agrees on: the states one recipient's delivery moves through,
//! and the kinds of event an email's history records.
//!
//! These are the only spellings of them. The store maps them to and from its columns (and a
//! `CHECK` constraint on each column lists the same names, compared with the model by the
//! store's tests: see [`crate::named`]); the API shows and filters by them; nothing builds a
//! status or an event name out of strings.

use serde::{Deserialize, Serialize};

use crate::named::named;

/// Where one recipient's delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for a worker (or for its scheduled time).
    Queued,
    /// Leased by a worker: an attempt is under way.
    Sending,
    /// The relay took it (2xx).
    Delivered,
    /// A temporary failure; tried again after a backoff.
    Deferred,
    /// A permanent refusal (5xx).
    Bounced,
    /// Temporary failures until the maximum age: given up.
    Failed,
    /// Canceled before sending began.
    Canceled,
    /// Never sent: the recipient was on the tenant's suppression list when the email was
    /// accepted.
    Suppressed,
}

impl DeliveryStatus {
    pub const ALL: [Self; 8] = [
        Self::Queued,
        Self::Sending,
        Self::Delivered,
        Self::Deferred,
        Self::Bounced,
        Self::Failed,
        Self::Canceled,
        Self::Suppressed,
    ];

    /// The name in columns, filters and API responses.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::Deferred => "deferred",
            Self::Bounced => "bounced",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Suppressed => "suppressed",
        }
    }

    /// The event recorded when a delivery enters this status.
    #[must_use]
    pub const fn event(self) -> EventKind {
        match self {
            Self::Queued => EventKind::Queued,
            Self::Sending => EventKind::Sending,
            Self::Delivered => EventKind::Delivered,
            Self::Deferred => EventKind::Deferred,
            Self::Bounced => EventKind::Bounced,
            Self::Failed => EventKind::Failed,
            Self::Canceled => EventKind::Canceled,
            Self::Suppressed => EventKind::Suppressed,
        }
    }

    /// Whether nothing more will happen to the delivery.
    #[must_use]
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::Bounced | Self::Failed | Self::Canceled | Self::Suppressed
        )
    }
}

named!(DeliveryStatus, "delivery status", parse);

/// One entry of an email's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventKind {
    /// Accepted and queued for delivery.
    #[serde(rename = "email.queued")]
    Queued,
    /// Accepted, waiting for its scheduled time.
    #[serde(rename = "email.scheduled")]
    Scheduled,
    /// A worker started an attempt.
    #[serde(rename = "email.sending")]
    Sending,
    #[serde(rename = "email.delivered")]
    Delivered,
    /// A temporary failure; another attempt follows.
    #[serde(rename = "email.deferred")]
    Deferred,
    #[serde(rename = "email.bounced")]
    Bounced,
    #[serde(rename = "email.failed")]
    Failed,
    #[serde(rename = "email.canceled")]
    Canceled,
    /// Not sent because the recipient is on the tenant's suppression list.
    #[serde(rename = "email.suppressed")]
    Suppressed,
    /// A delivery report said the message reached the mailbox (or left the last system that
    /// reports); the relay's acceptance is the `email.delivered` before it.
    #[serde(rename = "email.confirmed")]
    Confirmed,
    /// The recipient marked the message as spam (a feedback report).
    #[serde(rename = "email.complained")]
    Complained,
}

impl EventKind {
    pub const ALL: [Self; 11] = [
        Self::Queued,
        Self::Scheduled,
        Self::Sending,
        Self::Delivered,
        Self::Deferred,
        Self::Bounced,
        Self::Failed,
        Self::Canceled,
        Self::Suppressed,
        Self::Confirmed,
        Self::Complained,
    ];

    /// The name in the events table and in API responses.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "email.queued",
            Self::Scheduled => "email.scheduled",
            Self::Sending => "email.sending",
            Self::Delivered => "email.delivered",
            Self::Deferred => "email.deferred",
            Self::Bounced => "email.bounced",
            Self::Failed => "email.failed",
            Self::Canceled => "email.canceled",
            Self::Suppressed => "email.suppressed",
            Self::Confirmed => "email.confirmed",
            Self::Complained => "email.complained",
        }
    }

    /// The first event of a newly accepted delivery.
    #[must_use]
    pub const fn accepted(scheduled: bool) -> Self {
        if scheduled {
            Self::Scheduled
        } else {
            Self::Queued
        }
    }
}

named!(EventKind, "event kind", parse);

/// What a webhook reports: Resend's event types. Each stands for one [`EventKind`] of the
/// email's own log; `email.sending` is not reported (Resend has no such event).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum WebhookEventType {
    /// Accepted and queued (the log's `email.queued`).
    #[serde(rename = "email.sent")]
    Sent,
    #[serde(rename = "email.scheduled")]
    Scheduled,
    #[serde(rename = "email.delivered")]
    Delivered,
    /// A temporary failure; another attempt follows (the log's `email.deferred`).
    #[serde(rename = "email.delivery_delayed")]
    DeliveryDelayed,
    #[serde(rename = "email.bounced")]
    Bounced,
    /// The recipient marked the message as spam.
    #[serde(rename = "email.complained")]
    Complained,
    #[serde(rename = "email.failed")]
    Failed,
    #[serde(rename = "email.suppressed")]
    Suppressed,
    #[serde(rename = "email.canceled")]
    Canceled,
    /// Mail arrived for one of the tenant's receiving domains.
    #[serde(rename = "email.received")]
    Received,
}

impl WebhookEventType {
    pub const ALL: [Self; 10] = [
        Self::Sent,
        Self::Scheduled,
        Self::Delivered,
        Self::DeliveryDelayed,
        Self::Bounced,
        Self::Complained,
        Self::Failed,
        Self::Suppressed,
        Self::Canceled,
        Self::Received,
    ];

    /// Resend's name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "email.sent",
            Self::Scheduled => "email.scheduled",
            Self::Delivered => "email.delivered",
            Self::DeliveryDelayed => "email.delivery_delayed",
            Self::Bounced => "email.bounced",
            Self::Complained => "email.complained",
            Self::Failed => "email.failed",
            Self::Suppressed => "email.suppressed",
            Self::Canceled => "email.canceled",
            Self::Received => "email.received",
        }
    }

    /// The webhook event a log event is reported as, if any.
    #[must_use]
    pub const fn of(kind: EventKind) -> Option<Self> {
        Some(match kind {
            EventKind::Queued => Self::Sent,
            EventKind::Scheduled => Self::Scheduled,
            EventKind::Sending => return None,
            EventKind::Delivered => Self::Delivered,
            EventKind::Deferred => Self::DeliveryDelayed,
            EventKind::Bounced => Self::Bounced,
            EventKind::Failed => Self::Failed,
            EventKind::Canceled => Self::Canceled,
            EventKind::Suppressed => Self::Suppressed,
            EventKind::Complained => Self::Complained,
            // A confirmation follows the relay's acceptance, which `email.delivered` reported.
            EventKind::Confirmed => return None,
        })
    }
}

named!(WebhookEventType, "webhook event type", parse);

/// Why an address is on a tenant's suppression list (Resend's origins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SuppressionOrigin {
    /// A hard bounce.
    Bounce,
    /// A recipient's complaint.
    Complaint,
    /// Added through the API.
    Manual,
}

impl SuppressionOrigin {
    pub const ALL: [Self; 3] = [Self::Bounce, Self::Complaint, Self::Manual];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Bounce => "bounce",
            Self::Complaint => "complaint",
            Self::Manual => "manual",
        }
    }
}

named!(SuppressionOrigin, "suppression origin", parse);

/// An email's overall state, summarised from its recipients' statuses (`last_event` in the API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmailState {
    /// Waiting for its scheduled time; no attempt made yet.
    Scheduled,
    Queued,
    Sending,
    Deferred,
    Delivered,
    Bounced,
    Failed,
    Canceled,
    /// Every recipient not delivered was on the suppression list.
    Suppressed,
}

impl EmailState {
    /// The state of an email from its deliveries' `(status, attempts)`. The most pressing state
    /// wins: anything still moving (sending, queued, deferred) before any final one, then the
    /// worst final one.
    #[must_use]
    pub fn of(scheduled: bool, deliveries: &[(DeliveryStatus, i32)]) -> Self {
        let any = |s: DeliveryStatus| deliveries.iter().any(|(status, _)| *status == s);
        if !deliveries.is_empty()
            && deliveries
                .iter()
                .all(|(status, _)| *status == DeliveryStatus::Canceled)
        {
            Self::Canceled
        } else if any(DeliveryStatus::Sending) {
            Self::Sending
        } else if any(DeliveryStatus::Queued) {
            let waiting = scheduled && deliveries.iter().all(|(_, attempts)| *attempts == 0);
            if waiting {
                Self::Scheduled
            } else {
                Self::Queued
            }
        } else if any(DeliveryStatus::Deferred) {
            Self::Deferred
        } else if any(DeliveryStatus::Bounced) {
            Self::Bounced
        } else if any(DeliveryStatus::Failed) {
            Self::Failed
        } else if any(DeliveryStatus::Suppressed) {
            Self::Suppressed
        } else {
            Self::Delivered
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for status in DeliveryStatus::ALL {
            assert_eq!(status.as_str().parse::<DeliveryStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        for origin in SuppressionOrigin::ALL {
            assert_eq!(origin.as_str().parse::<SuppressionOrigin>(), Ok(origin));
        }
        for kind in WebhookEventType::ALL {
            assert_eq!(kind.as_str().parse::<WebhookEventType>(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        let err = "sent".parse::<DeliveryStatus>().unwrap_err().to_string();
        assert!(err.contains("queued, sending"), "{err}");
        assert!("email.sent".parse::<EventKind>().is_err());
    }

    #[test]
    fn each_status_records_its_own_event() {
        for status in DeliveryStatus::ALL {
            assert_eq!(
                status.event().as_str(),
                format!("email.{}", status.as_str())
            );
        }
        assert_eq!(EventKind::accepted(true), EventKind::Scheduled);
        assert_eq!(EventKind::accepted(false), EventKind::Queued);
    }

    #[test]
    fn every_webhook_event_reports_exactly_one_log_event() {
        let reported: Vec<WebhookEventType> = EventKind::ALL
            .into_iter()
            .filter_map(WebhookEventType::of)
            .collect();
        let mut sorted = reported.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), reported.len(), "two log events report alike");
        // `email.received` reports received mail, which has no log events.
        assert_eq!(
            sorted.len(),
            WebhookEventType::ALL.len() - 1,
            "a webhook event nothing reports"
        );
        assert!(!reported.contains(&WebhookEventType::Received));
        assert_eq!(
            WebhookEventType::of(EventKind::Queued),
            Some(WebhookEventType::Sent)
        );
        assert_eq!(
            WebhookEventType::of(EventKind::Deferred),
            Some(WebhookEventType::DeliveryDelayed)
        );
        assert_eq!(WebhookEventType::of(EventKind::Sending), None);
    }

    #[test]
    fn an_email_shows_its_most_pressing_state() {
        use DeliveryStatus as S;
        type Case = (bool, &'static [(S, i32)], EmailState);
        let cases: [Case; 9] = [
            (
                false,
                &[(S::Delivered, 1), (S::Sending, 1)],
                EmailState::Sending,
            ),
            (true, &[(S::Queued, 0)], EmailState::Scheduled),
            (true, &[(S::Queued, 1)], EmailState::Queued),
            (
                false,
                &[(S::Bounced, 1), (S::Deferred, 2)],
                EmailState::Deferred,
            ),
            (
                false,
                &[(S::Bounced, 1), (S::Delivered, 1)],
                EmailState::Bounced,
            ),
            (
                false,
                &[(S::Canceled, 0), (S::Canceled, 0)],
                EmailState::Canceled,
            ),
            (false, &[(S::Delivered, 1)], EmailState::Delivered),
            (
                false,
                &[(S::Suppressed, 0), (S::Delivered, 1)],
                EmailState::Suppressed,
            ),
            (
                false,
                &[(S::Suppressed, 0), (S::Queued, 0)],
                EmailState::Queued,
            ),
        ];
        for (scheduled, deliveries, expected) in cases {
            assert_eq!(
                EmailState::of(scheduled, deliveries),
                expected,
                "{deliveries:?}"
            );
        }
    }
}
