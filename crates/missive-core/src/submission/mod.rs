//! A structured message as a client submits it (REST's request, Resend's shape): the [`Draft`] a
//! protocol fills in with what it was sent, and the [`Submission`] that [`Submission::parse`]
//! makes of it.
//!
//! Parse, don't validate: a `Submission` exists only when every field held up (addresses parsed,
//! no header injection, subject, tags, attachments and schedule within bounds), and it holds typed
//! values, never strings to check again. What depends on the tenant (a default sender, the allowed
//! sender domains) and on the whole message (its final size, the recipient count) is decided by
//! the one accept path after this.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[allow(clippy::wildcard_imports)] // the parser applies every rule
use self::rules::*;
pub use self::rules::{
    check_custom_header, check_tag, is_reserved_header, parse_rfc3339, parse_schedule,
    parse_tag_filter, patterns,
};
use crate::address::{EmailAddress, Mailbox};
use crate::named::named;

mod rules;

/// Most addresses in each of `to`, `cc` and `bcc` (Resend's limit for `to`).
pub const MAX_RECIPIENTS_PER_FIELD: usize = 50;
/// Most tags on one message.
pub const MAX_TAGS: usize = 50;
/// Longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 998;
/// Longest custom header value, in octets.
pub const MAX_HEADER_VALUE_BYTES: usize = 16 * 1024;
/// Longest attachment file name, in characters.
pub const MAX_FILENAME_CHARS: usize = 255;
/// Furthest a message may be scheduled ahead.
pub const MAX_SCHEDULE_AHEAD: time::Duration = time::Duration::days(366);

/// Why a submission was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SubmissionError {
    pub field: String,
    pub message: String,
}

impl SubmissionError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Which header a recipient came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecipientKind {
    To,
    Cc,
    Bcc,
}

impl RecipientKind {
    pub const ALL: [Self; 3] = [Self::To, Self::Cc, Self::Bcc];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::To => "to",
            Self::Cc => "cc",
            Self::Bcc => "bcc",
        }
    }
}

named!(RecipientKind, "recipient kind", parse);

/// One envelope recipient and the header it shows in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub kind: RecipientKind,
    pub address: EmailAddress,
}

/// A file attached to the message, or shown inline when it has a content id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content: Vec<u8>,
    pub content_type: String,
    pub content_id: Option<String>,
}

/// A tag for filtering and webhooks: `[A-Za-z0-9_-]`, at most 256 characters each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tag {
    pub name: String,
    pub value: String,
}

/// Attachment bytes as a client sent them: base64 text, or an array of byte values (what
/// Resend's Python SDK sends). Deserialised straight from Resend's request shape.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(as = AttachmentContent)]
pub enum DraftContent {
    /// Base64 text (white space ignored, padding optional).
    Base64(String),
    /// The bytes themselves.
    Bytes(#[serde(deserialize_with = "byte_values")] Vec<u8>),
}

/// An array of byte values, each an integer from 0 to 255; `1.0` counts as the integer 1, as in
/// JSON Schema (a generator or another language may well send it so).
fn byte_values<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct Byte(u8);
    impl<'de> Deserialize<'de> for Byte {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl serde::de::Visitor<'_> for Visitor {
                type Value = Byte;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an integer from 0 to 255")
                }
                fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Byte, E> {
                    u8::try_from(v)
                        .map(Byte)
                        .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
                }
                fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Byte, E> {
                    u8::try_from(v)
                        .map(Byte)
                        .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
                }
                fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Byte, E> {
                    if v.fract() == 0.0 && (0.0..=255.0).contains(&v) {
                        // Exact: an integral value within a byte's range.
                        Ok(Byte(v as u8))
                    } else {
                        Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
                    }
                }
            }
            deserializer.deserialize_any(Visitor)
        }
    }
    Ok(Vec::<Byte>::deserialize(deserializer)?
        .into_iter()
        .map(|b| b.0)
        .collect())
}

/// An attachment as a client sent it; with `content_id` it is an inline part
/// (`<img src="cid:...">`). Deserialised straight from Resend's request shape.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[schema(as = AttachmentInput)]
pub struct DraftAttachment {
    pub filename: Option<String>,
    pub content: Option<DraftContent>,
    /// Remote attachments are not fetched; send `content`.
    pub path: Option<String>,
    pub content_type: Option<String>,
    pub content_id: Option<String>,
}

/// What a client asked for, field by field, before any check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Draft {
    pub from: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Vec<String>,
    /// Required by the time the draft is parsed (a template may supply it).
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub headers: Vec<(String, String)>,
    pub attachments: Vec<DraftAttachment>,
    pub tags: Vec<Tag>,
    /// When to send: ISO 8601 with a zone, or `in N minutes|hours|days` ([`parse_schedule`]).
    pub scheduled_at: Option<String>,
}

/// What a submission says beside its addresses, taken out once the message is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content {
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub tags: Vec<Tag>,
}

/// A structured message whose every field held up; built only by [`Submission::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    from: Option<Mailbox>,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    bcc: Vec<Mailbox>,
    reply_to: Vec<Mailbox>,
    subject: String,
    html: Option<String>,
    text: Option<String>,
    headers: Vec<(String, String)>,
    attachments: Vec<Attachment>,
    tags: Vec<Tag>,
    scheduled_at: Option<OffsetDateTime>,
}

impl Submission {
    /// Checks every field of `draft`; `now` bounds the schedule.
    ///
    /// # Errors
    /// The first field that does not hold up, named.
    pub fn parse(draft: Draft, now: OffsetDateTime) -> Result<Self, SubmissionError> {
        let from = draft
            .from
            .as_deref()
            .map(|raw| {
                Mailbox::parse(raw).map_err(|e| SubmissionError::field("from", e.to_string()))
            })
            .transpose()?;
        let to = mailboxes("to", &draft.to)?;
        let cc = mailboxes("cc", &draft.cc)?;
        let bcc = mailboxes("bcc", &draft.bcc)?;
        if to.is_empty() {
            return Err(SubmissionError::field("to", "at least one address"));
        }
        let reply_to = mailboxes("reply_to", &draft.reply_to)?;
        let subject = draft
            .subject
            .ok_or_else(|| SubmissionError::field("subject", "required"))?;
        if subject.chars().count() > MAX_SUBJECT_CHARS || !is_text_line(&subject) {
            return Err(SubmissionError::field(
                "subject",
                format!("at most {MAX_SUBJECT_CHARS} characters, no line breaks"),
            ));
        }
        if draft.html.is_none() && draft.text.is_none() {
            return Err(SubmissionError::field(
                "html or text",
                "at least one is required",
            ));
        }
        // No message may hold a NUL (RFC 5322), and no database text column can.
        for (field, body) in [("html", &draft.html), ("text", &draft.text)] {
            if body.as_deref().is_some_and(|b| b.contains('\0')) {
                return Err(SubmissionError::field(
                    field,
                    "must not contain NUL characters",
                ));
            }
        }
        for (name, value) in &draft.headers {
            check_custom_header(name, value)?;
        }
        if draft.tags.len() > MAX_TAGS {
            return Err(SubmissionError::field(
                "tags",
                format!("at most {MAX_TAGS}"),
            ));
        }
        for tag in &draft.tags {
            check_tag(tag)?;
        }
        let attachments = draft
            .attachments
            .into_iter()
            .enumerate()
            .map(|(i, a)| attachment(i, a))
            .collect::<Result<Vec<_>, _>>()?;
        let scheduled_at = match draft.scheduled_at.as_deref() {
            None => None,
            Some(raw) => {
                let at = parse_schedule(raw, now)?;
                if at > now + MAX_SCHEDULE_AHEAD {
                    return Err(SubmissionError::field(
                        "scheduled_at",
                        "at most one year ahead",
                    ));
                }
                // A time already past means "now".
                (at > now).then_some(at)
            }
        };
        Ok(Self {
            from,
            to,
            cc,
            bcc,
            reply_to,
            subject,
            html: draft.html,
            text: draft.text,
            headers: draft.headers,
            attachments,
            tags: draft.tags,
            scheduled_at,
        })
    }

    /// The sender the client named; the tenant's default applies when there is none.
    #[must_use]
    pub fn from(&self) -> Option<&Mailbox> {
        self.from.as_ref()
    }

    #[must_use]
    pub fn to(&self) -> &[Mailbox] {
        &self.to
    }

    #[must_use]
    pub fn cc(&self) -> &[Mailbox] {
        &self.cc
    }

    /// Delivered to, never written into the headers.
    #[must_use]
    pub fn bcc(&self) -> &[Mailbox] {
        &self.bcc
    }

    /// The client's Reply-To; the tenant's default applies when there is none.
    #[must_use]
    pub fn reply_to(&self) -> &[Mailbox] {
        &self.reply_to
    }

    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }

    #[must_use]
    pub fn html(&self) -> Option<&str> {
        self.html.as_deref()
    }

    #[must_use]
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// Extra headers, each checked by [`check_custom_header`].
    #[must_use]
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    #[must_use]
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    #[must_use]
    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }

    /// When to send, if later than now.
    #[must_use]
    pub fn scheduled_at(&self) -> Option<OffsetDateTime> {
        self.scheduled_at
    }

    /// Subject, bodies and tags, for storing beside the built message.
    #[must_use]
    pub fn into_content(self) -> Content {
        Content {
            subject: self.subject,
            html: self.html,
            text: self.text,
            tags: self.tags,
        }
    }

    /// Every envelope recipient once, in to, cc, bcc order; an address in several fields (or
    /// twice, in any case: [`EmailAddress::same_recipient`]) is delivered once, under its first
    /// field.
    #[must_use]
    pub fn recipients(&self) -> Vec<Recipient> {
        let mut recipients: Vec<Recipient> = Vec::with_capacity(self.to.len());
        let fields = [
            (RecipientKind::To, &self.to),
            (RecipientKind::Cc, &self.cc),
            (RecipientKind::Bcc, &self.bcc),
        ];
        for (kind, list) in fields {
            for mailbox in list {
                if !recipients
                    .iter()
                    .any(|r| r.address.same_recipient(&mailbox.email))
                {
                    recipients.push(Recipient {
                        kind,
                        address: mailbox.email.clone(),
                    });
                }
            }
        }
        recipients
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn draft() -> Draft {
        Draft {
            from: Some("a@x.test".into()),
            to: vec!["b@x.test".into()],
            subject: Some("s".into()),
            text: Some("hi".into()),
            ..Draft::default()
        }
    }

    fn parse(draft: Draft) -> Result<Submission, SubmissionError> {
        Submission::parse(draft, OffsetDateTime::now_utc())
    }

    #[test]
    fn recipients_are_deduplicated_across_fields() {
        let submission = parse(Draft {
            to: vec!["b@x.test".into(), "B@x.test".into()],
            cc: vec!["c@x.test".into(), "b@x.test".into()],
            bcc: vec!["d@x.test".into()],
            ..draft()
        })
        .unwrap();
        let recipients: Vec<(RecipientKind, String)> = submission
            .recipients()
            .into_iter()
            .map(|r| (r.kind, r.address.as_str().to_owned()))
            .collect();
        assert_eq!(
            recipients,
            [
                (RecipientKind::To, "b@x.test".to_owned()),
                (RecipientKind::Cc, "c@x.test".to_owned()),
                (RecipientKind::Bcc, "d@x.test".to_owned())
            ]
        );
    }

    #[test]
    fn every_field_is_checked_and_named() {
        let many: Vec<String> = (0..51).map(|i| format!("r{i}@x.test")).collect();
        let cases: Vec<(Draft, &str)> = vec![
            (
                Draft {
                    to: vec![],
                    ..draft()
                },
                "to",
            ),
            (
                Draft {
                    to: many,
                    ..draft()
                },
                "to",
            ),
            (
                Draft {
                    cc: vec!["nope".into()],
                    ..draft()
                },
                "cc",
            ),
            (
                Draft {
                    from: Some("nope".into()),
                    ..draft()
                },
                "from",
            ),
            (
                Draft {
                    text: None,
                    ..draft()
                },
                "html or text",
            ),
            (
                Draft {
                    subject: Some("a\r\nBcc: x@y.test".into()),
                    ..draft()
                },
                "subject",
            ),
            (
                Draft {
                    headers: vec![("X-A".into(), "1\r\nBcc: e@v.test".into())],
                    ..draft()
                },
                "headers.X-A",
            ),
            (
                Draft {
                    tags: vec![Tag {
                        name: "a b".into(),
                        value: "c".into(),
                    }],
                    ..draft()
                },
                "tags.name",
            ),
            (
                Draft {
                    attachments: vec![DraftAttachment {
                        filename: Some("a.txt".into()),
                        content: Some(DraftContent::Base64("***".into())),
                        ..DraftAttachment::default()
                    }],
                    ..draft()
                },
                "attachments[0].content",
            ),
            (
                Draft {
                    scheduled_at: Some("tomorrow".into()),
                    ..draft()
                },
                "scheduled_at",
            ),
            (
                Draft {
                    scheduled_at: Some("2999-01-01T00:00:00Z".into()),
                    ..draft()
                },
                "scheduled_at",
            ),
        ];
        for (draft, field) in cases {
            let err = parse(draft.clone()).unwrap_err();
            assert_eq!(err.field, field, "{draft:?}: {err}");
        }
    }

    #[test]
    fn a_missing_sender_is_left_to_the_tenant_and_a_past_schedule_means_now() {
        let submission = parse(Draft {
            from: None,
            scheduled_at: Some("2000-01-01T00:00:00Z".into()),
            ..draft()
        })
        .unwrap();
        assert!(submission.from().is_none());
        assert!(submission.scheduled_at().is_none());
    }

    #[test]
    fn schedules_take_resends_forms() {
        use time::macros::datetime;
        let now = datetime!(2026-11-29 10:00:00 UTC);
        let at = |raw: &str| parse_schedule(raw, now);
        for (raw, expected) in [
            ("in 1 min", datetime!(2026-11-29 10:01:00 UTC)),
            ("in 5 mins", datetime!(2026-11-29 10:05:00 UTC)),
            ("In 1 Minute", datetime!(2026-11-29 10:01:00 UTC)),
            ("in 2 hours", datetime!(2026-11-29 12:00:00 UTC)),
            ("in 1 hour", datetime!(2026-11-29 11:00:00 UTC)),
            ("in 3 days", datetime!(2026-12-02 10:00:00 UTC)),
            ("2026-12-01T08:30:00Z", datetime!(2026-12-01 08:30:00 UTC)),
            (
                "2026-12-01T08:30:00.858Z",
                datetime!(2026-12-01 08:30:00.858 UTC),
            ),
            (
                "2026-12-01T10:30:00+02:00",
                datetime!(2026-12-01 08:30:00 UTC),
            ),
            ("2026-12-01 08:30:00Z", datetime!(2026-12-01 08:30:00 UTC)),
            ("20261201T083000Z", datetime!(2026-12-01 08:30:00 UTC)),
        ] {
            assert_eq!(at(raw).unwrap(), expected, "{raw}");
        }
        for raw in [
            "tomorrow",
            "in a minute",
            "in 1 week",
            "in -1 hours",
            "in 1 hour please",
            "2026-12-01T08:30:00",
            "",
        ] {
            let err = at(raw).unwrap_err();
            assert_eq!(err.field, "scheduled_at", "{raw}");
        }
    }

    #[test]
    fn attachments_decode_and_get_a_content_type() {
        let submission = parse(Draft {
            attachments: vec![DraftAttachment {
                filename: Some("r.pdf".into()),
                content: Some(DraftContent::Base64("aGVs\nbG8".into())),
                ..DraftAttachment::default()
            }],
            ..draft()
        })
        .unwrap();
        let attachment = &submission.attachments()[0];
        assert_eq!(attachment.content, b"hello");
        assert_eq!(attachment.content_type, "application/pdf");
    }

    #[test]
    fn byte_arrays_take_integral_numbers_in_range() {
        let parse = |json: &str| serde_json::from_str::<DraftContent>(json);
        assert_eq!(
            parse("[0, 1.0, 255]").unwrap(),
            DraftContent::Bytes(vec![0, 1, 255])
        );
        for bad in ["[256]", "[-1]", "[1.5]"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse("\"aGk=\"").unwrap(),
            DraftContent::Base64("aGk=".into())
        );
    }

    #[test]
    fn custom_headers_cannot_inject_or_override() {
        assert!(check_custom_header("X-Campaign", "spring sale").is_ok());
        assert!(check_custom_header("List-Unsubscribe", "<mailto:u@x.test>").is_ok());
        for (name, value) in [
            ("X-A", "a\r\nBcc: evil@x.test"),
            ("X-A", "a\nb"),
            ("Bcc", "x@y.test"),
            ("message-id", "<x@y>"),
            ("X A", "v"),
            ("X:A", "v"),
            ("", "v"),
        ] {
            assert!(
                check_custom_header(name, value).is_err(),
                "{name}: {value:?}"
            );
        }
    }

    proptest::proptest! {
        /// Each documented pattern accepts exactly what its rule accepts.
        #[test]
        fn the_documented_patterns_are_the_rules(raw in "\\PC{0,12}|[\\x00-\\x7f]{0,12}|[a-z/;<>:]{0,6}") {
            let agrees = |pattern: &str, rule: fn(&str) -> bool| {
                regex::Regex::new(pattern).unwrap().is_match(&raw) == rule(&raw)
            };
            proptest::prop_assert!(agrees(patterns::TEXT_LINE, is_text_line), "text {:?}", raw);
            proptest::prop_assert!(agrees(patterns::HEADER_NAME, is_header_name), "header {:?}", raw);
            proptest::prop_assert!(agrees(patterns::TAG, is_tag_part), "tag {:?}", raw);
            proptest::prop_assert!(agrees(patterns::MIME_TYPE, is_mime_type), "type {:?}", raw);
            proptest::prop_assert!(agrees(patterns::CONTENT_ID, is_content_id), "cid {:?}", raw);
            proptest::prop_assert!(
                agrees(patterns::TAG_FILTER, |r| parse_tag_filter(r).is_ok()),
                "tag filter {:?}", raw
            );
        }
    }

    #[test]
    fn tags_follow_resends_alphabet() {
        let tag = |name: &str, value: &str| Tag {
            name: name.into(),
            value: value.into(),
        };
        assert!(check_tag(&tag("category", "welcome_1-a")).is_ok());
        assert!(check_tag(&tag("cat egory", "x")).is_err());
        assert!(check_tag(&tag("c", "")).is_err());
    }
}
