//! A message as accepted from a client, validated: the one shape REST and SMTP submissions become
//! before they are stored.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::address::{EmailAddress, Mailbox};

/// Most addresses in each of `to`, `cc` and `bcc` (Resend's limit for `to`).
pub const MAX_RECIPIENTS_PER_FIELD: usize = 50;
/// Most tags on one message.
pub const MAX_TAGS: usize = 50;
/// Longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 998;

/// Why a submission was refused; messages name the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmissionError {
    #[error("{field}: {message}")]
    Field { field: String, message: String },
}

impl SubmissionError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Field {
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
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::To => "to",
            Self::Cc => "cc",
            Self::Bcc => "bcc",
        }
    }
}

impl TryFrom<String> for RecipientKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.as_str() {
            "to" => Ok(Self::To),
            "cc" => Ok(Self::Cc),
            "bcc" => Ok(Self::Bcc),
            _ => Err(format!("unknown recipient kind {s}")),
        }
    }
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

/// A validated message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub headers: Vec<(String, String)>,
    pub attachments: Vec<Attachment>,
    pub tags: Vec<Tag>,
    pub scheduled_at: Option<OffsetDateTime>,
}

impl Submission {
    /// Every envelope recipient once, in to, cc, bcc order; an address in several fields is
    /// delivered once, under its first field.
    #[must_use]
    pub fn recipients(&self) -> Vec<(RecipientKind, &EmailAddress)> {
        let mut seen = std::collections::HashSet::new();
        [
            (RecipientKind::To, &self.to),
            (RecipientKind::Cc, &self.cc),
            (RecipientKind::Bcc, &self.bcc),
        ]
        .into_iter()
        .flat_map(|(kind, list)| list.iter().map(move |m| (kind, &m.email)))
        .filter(|(_, email)| seen.insert(email.as_str().to_ascii_lowercase()))
        .collect()
    }
}

/// Headers Missive writes itself; a client may not set them through `headers`.
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "sender",
    "return-path",
    "received",
];

/// Checks one custom header: a valid field name, not one Missive writes, no line breaks.
///
/// # Errors
/// [`SubmissionError`] naming the header.
pub fn check_custom_header(name: &str, value: &str) -> Result<(), SubmissionError> {
    let field = format!("headers.{name}");
    if name.is_empty()
        || name.len() > 76
        || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
    {
        return Err(SubmissionError::field(field, "is not a valid header name"));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(SubmissionError::field(
            field,
            "is set by Missive; use the dedicated field",
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(SubmissionError::field(
            field,
            "must not contain line breaks or control characters",
        ));
    }
    if value.len() > 16 * 1024 {
        return Err(SubmissionError::field(field, "is longer than 16 KiB"));
    }
    Ok(())
}

/// Checks a tag as Resend defines it.
///
/// # Errors
/// [`SubmissionError`] naming the tag.
pub fn check_tag(tag: &Tag) -> Result<(), SubmissionError> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 256
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !ok(&tag.name) {
        return Err(SubmissionError::field(
            "tags.name",
            format!("`{}` must be 1 to 256 of A-Z a-z 0-9 _ -", tag.name),
        ));
    }
    if !ok(&tag.value) {
        return Err(SubmissionError::field(
            "tags.value",
            format!("`{}` must be 1 to 256 of A-Z a-z 0-9 _ -", tag.value),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(s: &str) -> Mailbox {
        Mailbox::parse(s).unwrap()
    }

    #[test]
    fn recipients_are_deduplicated_across_fields() {
        let submission = Submission {
            from: mailbox("a@x.test"),
            to: vec![mailbox("b@x.test"), mailbox("B@x.test")],
            cc: vec![mailbox("c@x.test"), mailbox("b@x.test")],
            bcc: vec![mailbox("d@x.test")],
            reply_to: vec![],
            subject: String::new(),
            html: None,
            text: Some("hi".into()),
            headers: vec![],
            attachments: vec![],
            tags: vec![],
            scheduled_at: None,
        };
        let recipients: Vec<(RecipientKind, &str)> = submission
            .recipients()
            .into_iter()
            .map(|(k, e)| (k, e.as_str()))
            .collect();
        assert_eq!(
            recipients,
            [
                (RecipientKind::To, "b@x.test"),
                (RecipientKind::Cc, "c@x.test"),
                (RecipientKind::Bcc, "d@x.test")
            ]
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

    #[test]
    fn tags_follow_resends_alphabet() {
        assert!(
            check_tag(&Tag {
                name: "category".into(),
                value: "welcome_1-a".into()
            })
            .is_ok()
        );
        assert!(
            check_tag(&Tag {
                name: "cat egory".into(),
                value: "x".into()
            })
            .is_err()
        );
        assert!(
            check_tag(&Tag {
                name: "c".into(),
                value: String::new()
            })
            .is_err()
        );
    }
}
