//! What a webhook posts: Resend's body for an event, built from what the outbox row reports. The
//! same bytes on every attempt, as the rows it is built from do not change; the dispatcher signs
//! them and the events API shows them.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::event::WebhookEventType;
use crate::ids::{EmailId, ProjectId, TenantId};
use crate::outcome::BounceClass;

/// One event as its outbox row and the email event it reports tell it.
#[derive(Clone, Copy, Debug)]
pub struct Payload<'a> {
    pub kind: WebhookEventType,
    pub created_at: OffsetDateTime,
    pub tenant_id: TenantId,
    /// The project whose endpoint it goes to.
    pub project_id: ProjectId,
    /// The email it is about; none for a test event.
    pub email_id: Option<EmailId>,
    pub from: Option<&'a str>,
    pub to: Option<&'a [String]>,
    pub subject: Option<&'a str>,
    /// As stored: `[{name, value}]`.
    pub tags: Option<&'a serde_json::Value>,
    pub email_created_at: Option<OffsetDateTime>,
    pub recipient: Option<&'a str>,
    pub smtp_code: Option<i32>,
    pub smtp_response: Option<&'a str>,
    pub bounce_class: Option<BounceClass>,
    /// For what a report said after the relay's acceptance: its status and who reported.
    pub report_status: Option<&'a str>,
    pub reporting_mta: Option<&'a str>,
    /// For `email.received`: the received message.
    pub received: Option<Received<'a>>,
}

/// What an `email.received` event says of the message: metadata, never the body.
#[derive(Clone, Copy, Debug)]
pub struct Received<'a> {
    /// [`crate::received::Summary`] as stored.
    pub summary: &'a serde_json::Value,
    /// The envelope recipients it was received for.
    pub received_for: &'a [String],
    pub message_id: Option<&'a str>,
}

/// Resend's `data` of an `email.received` event.
#[derive(Debug, Serialize)]
struct ReceivedData<'a> {
    email_id: Option<EmailId>,
    tenant_id: TenantId,
    project_id: ProjectId,
    created_at: Option<String>,
    from: &'a serde_json::Value,
    to: &'a serde_json::Value,
    cc: &'a serde_json::Value,
    bcc: &'a serde_json::Value,
    received_for: &'a [String],
    message_id: &'a str,
    subject: &'a str,
    attachments: Vec<ReceivedAttachment<'a>>,
}

#[derive(Debug, Serialize)]
struct ReceivedAttachment<'a> {
    id: &'a serde_json::Value,
    filename: &'a serde_json::Value,
    content_type: &'a serde_json::Value,
    content_disposition: &'a serde_json::Value,
    content_id: &'a serde_json::Value,
}

/// A webhook body, Resend's shape.
#[derive(Debug, Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: WebhookEventType,
    created_at: String,
    data: Data<'a>,
}

#[derive(Debug, Serialize)]
struct Data<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    email_id: Option<EmailId>,
    tenant_id: TenantId,
    project_id: ProjectId,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    smtp_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    smtp_response: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bounce: Option<Bounce<'a>>,
    /// Set on `POST /v1/webhooks/{id}/test` events, which report no email.
    #[serde(skip_serializing_if = "Option::is_none")]
    test: Option<bool>,
}

#[derive(Debug, Serialize)]
struct Bounce<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
    /// A late bounce's enhanced status, from the delivery report.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    /// A late bounce's reporting MTA.
    #[serde(skip_serializing_if = "Option::is_none")]
    reporting_mta: Option<&'a str>,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

impl Payload<'_> {
    /// The JSON body every attempt posts.
    #[must_use]
    pub fn body(&self) -> Vec<u8> {
        if let Some(received) = self.received {
            return self.received_body(received);
        }
        // Stored tags are `[{name, value}]`; Resend's webhooks carry them as an object.
        let tags = self.tags.map(|tags| {
            tags.as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| Some((t["name"].as_str()?.to_owned(), t["value"].clone())))
                .collect()
        });
        let body = Body {
            kind: self.kind,
            created_at: rfc3339(self.created_at),
            data: Data {
                email_id: self.email_id,
                tenant_id: self.tenant_id,
                project_id: self.project_id,
                from: self.from,
                to: self.to,
                subject: self.subject,
                tags,
                created_at: self.email_created_at.map(rfc3339),
                recipient: self.recipient,
                smtp_code: self.smtp_code,
                smtp_response: self.smtp_response,
                bounce: (self.kind == WebhookEventType::Bounced).then(|| Bounce {
                    // Resend's names for the class: a hard bounce is permanent, a soft one (a
                    // refusal that says nothing final about the address) transient, and a
                    // report that says neither undetermined.
                    kind: self
                        .bounce_class
                        .map_or("Undetermined", BounceClass::resend_type),
                    message: self.smtp_response.unwrap_or_default(),
                    status: self.report_status,
                    reporting_mta: self.reporting_mta,
                }),
                test: self.email_id.is_none().then_some(true),
            },
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl Payload<'_> {
    fn received_body(&self, received: Received<'_>) -> Vec<u8> {
        const EMPTY: &serde_json::Value = &serde_json::Value::Null;
        let field = |name: &str| received.summary.get(name).unwrap_or(EMPTY);
        let list = |name: &str| match received.summary.get(name) {
            Some(v @ serde_json::Value::Array(_)) => v,
            _ => &EMPTY_LIST,
        };
        let attachments = field("attachments")
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| ReceivedAttachment {
                id: a.get("id").unwrap_or(EMPTY),
                filename: a.get("filename").unwrap_or(EMPTY),
                content_type: a.get("content_type").unwrap_or(EMPTY),
                content_disposition: a.get("content_disposition").unwrap_or(EMPTY),
                content_id: a.get("content_id").unwrap_or(EMPTY),
            })
            .collect();
        let body = serde_json::json!({
            "type": self.kind,
            "created_at": rfc3339(self.created_at),
            "data": ReceivedData {
                email_id: self.email_id,
                tenant_id: self.tenant_id,
                project_id: self.project_id,
                created_at: self.email_created_at.map(rfc3339),
                from: field("from"),
                to: list("to"),
                cc: list("cc"),
                bcc: list("bcc"),
                received_for: received.received_for,
                message_id: received.message_id.unwrap_or_default(),
                subject: self.subject.unwrap_or_default(),
                attachments,
            },
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

static EMPTY_LIST: serde_json::Value = serde_json::Value::Array(Vec::new());
