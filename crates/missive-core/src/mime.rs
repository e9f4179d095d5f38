//! Builds the final RFC 5322 message from a [`Submission`] and the sender and Reply-To the accept
//! path settled on: multipart/alternative for html and text, attachments and inline parts, Date,
//! MIME-Version and our Message-ID. Transfer encodings
//! are chosen per part so no line exceeds 998 octets. Bcc recipients never appear in the headers:
//! they exist only in the envelope.

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::MimePart;
use time::OffsetDateTime;

use crate::address::{EmailAddress, Mailbox};
use crate::ids::EmailId;
use crate::submission::Submission;

fn address(mailbox: &Mailbox) -> Address<'_> {
    Address::new_address(mailbox.name.as_deref(), mailbox.email.as_str())
}

fn address_list(mailboxes: &[Mailbox]) -> Address<'_> {
    Address::new_list(mailboxes.iter().map(address).collect())
}

/// The Message-ID for an email: its id at the sender's domain, without angle brackets.
#[must_use]
pub fn message_id(email_id: &EmailId, from: &EmailAddress) -> String {
    format!("{}@{}", email_id.simple(), from.domain())
}

/// The body tree: html and text as multipart/alternative; inline parts (those with a
/// Content-ID) beside it in multipart/related, so clients resolve `cid:` references and do not
/// list them as attachments; other attachments beside that in multipart/mixed.
fn body(submission: &Submission) -> MimePart<'_> {
    let mut alternatives: Vec<MimePart<'_>> = Vec::with_capacity(2);
    if let Some(text) = submission.text() {
        alternatives.push(MimePart::new("text/plain", text));
    }
    if let Some(html) = submission.html() {
        alternatives.push(MimePart::new("text/html", html));
    }
    let mut body = match alternatives.len() {
        0 => MimePart::new("text/plain", ""),
        1 => alternatives.remove(0),
        _ => MimePart::new("multipart/alternative", alternatives),
    };
    let (inline, attached): (Vec<_>, Vec<_>) = submission
        .attachments()
        .iter()
        .partition(|a| a.content_id.is_some());
    if !inline.is_empty() {
        let mut related = vec![body];
        related.extend(inline.into_iter().map(|a| {
            MimePart::new(a.content_type.as_str(), a.content.as_slice())
                .inline()
                .cid(a.content_id.as_deref().unwrap_or_default())
        }));
        body = MimePart::new("multipart/related", related);
    }
    if !attached.is_empty() {
        let mut mixed = vec![body];
        mixed.extend(attached.into_iter().map(|a| {
            MimePart::new(a.content_type.as_str(), a.content.as_slice())
                .attachment(a.filename.as_str())
        }));
        body = MimePart::new("multipart/mixed", mixed);
    }
    body
}

/// The headers Missive settles on for a message, beside what the client submitted.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    /// The sender: the client's, or the tenant's default.
    pub from: &'a Mailbox,
    /// The client's Reply-To, or the tenant's default.
    pub reply_to: &'a [Mailbox],
    /// Without angle brackets.
    pub message_id: &'a str,
    pub date: OffsetDateTime,
}

/// Serialises the message.
#[must_use]
pub fn build_mime(submission: &Submission, envelope: Envelope<'_>) -> Vec<u8> {
    let mut builder = MessageBuilder::new()
        .from(address(envelope.from))
        .subject(submission.subject())
        .message_id(envelope.message_id)
        .date(envelope.date.unix_timestamp());
    if !submission.to().is_empty() {
        builder = builder.to(address_list(submission.to()));
    }
    if !submission.cc().is_empty() {
        builder = builder.cc(address_list(submission.cc()));
    }
    if !envelope.reply_to.is_empty() {
        builder = builder.reply_to(address_list(envelope.reply_to));
    }
    for (name, value) in submission.headers() {
        // ASCII values go out as written (List-Unsubscribe and friends are structured);
        // anything else is RFC 2047 encoded.
        builder = if value.is_ascii() {
            builder.header(name.as_str(), Raw::new(value.as_str()))
        } else {
            builder.header(name.as_str(), Text::new(value.as_str()))
        };
    }
    builder = builder.body(body(submission));
    builder
        .write_to_vec()
        .expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::submission::{Draft, DraftAttachment, DraftContent, Tag};

    fn draft() -> Draft {
        Draft {
            from: Some("Acme <news@acme.test>".into()),
            to: vec!["Jörg <jörg@bücher.de>".into()],
            cc: vec!["cc@x.test".into()],
            bcc: vec!["secret@hidden.test".into()],
            subject: Some("Grüße ".repeat(40)),
            html: Some(format!("<p>{}</p>", "long line ".repeat(300))),
            text: Some("hello".into()),
            headers: vec![("X-Campaign".into(), "spring".into())],
            attachments: vec![
                DraftAttachment {
                    filename: Some("report.pdf".into()),
                    content: Some(DraftContent::Bytes(
                        (0..=255u8).cycle().take(5000).collect(),
                    )),
                    content_type: Some("application/pdf".into()),
                    ..DraftAttachment::default()
                },
                DraftAttachment {
                    filename: Some("logo.png".into()),
                    content: Some(DraftContent::Bytes(vec![137, 80, 78, 71, 0, 1, 2])),
                    content_type: Some("image/png".into()),
                    content_id: Some("logo".into()),
                    ..DraftAttachment::default()
                },
            ],
            tags: vec![Tag {
                name: "k".into(),
                value: "v".into(),
            }],
            ..Draft::default()
        }
    }

    fn build(draft: Draft) -> Vec<u8> {
        let submission = Submission::parse(draft, OffsetDateTime::UNIX_EPOCH).unwrap();
        let from = submission.from().unwrap().clone();
        let reply_to = [Mailbox::parse("support@acme.test").unwrap()];
        build_mime(
            &submission,
            Envelope {
                from: &from,
                reply_to: &reply_to,
                message_id: "abc@acme.test",
                date: OffsetDateTime::UNIX_EPOCH,
            },
        )
    }

    #[test]
    fn text_attachments_keep_bytes_that_are_not_utf8() {
        let mime = build(Draft {
            attachments: vec![DraftAttachment {
                filename: Some("hello.txt".into()),
                content: Some(DraftContent::Bytes(b"hello attachment \x00\xff".to_vec())),
                content_type: Some("text/plain".into()),
                ..DraftAttachment::default()
            }],
            ..draft()
        });
        let text = String::from_utf8(mime).expect("the message is 7-bit clean");
        assert!(text.contains("hello attachment =00=FF"), "{text}");
    }

    #[test]
    fn the_message_has_every_header_and_part_and_no_bcc() {
        let mime = build(draft());
        let text = String::from_utf8_lossy(&mime);
        let headers = &text[..text.find("\r\n\r\n").unwrap()];
        for needle in [
            "From: ",
            "To: ",
            "Cc: ",
            "Reply-To: ",
            "Subject: ",
            "Date: ",
            "Message-ID: <abc@acme.test>",
            "MIME-Version: 1.0",
            "X-Campaign: spring",
        ] {
            assert!(headers.contains(needle), "missing {needle} in\n{headers}");
        }
        assert!(
            !text
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
            "Bcc leaked:\n{headers}"
        );
        assert!(!text.contains("secret@hidden.test"));
        assert!(text.contains("multipart/alternative"));
        assert!(text.contains("report.pdf"));
        assert!(text.contains("Content-ID: <logo>"));
        for line in mime.split(|b| *b == b'\n') {
            assert!(line.len() <= 998, "line of {} octets", line.len());
        }
    }

    /// The Content-Type lines in order: the shape of the body tree.
    fn content_types(mime: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(mime)
            .lines()
            .filter_map(|l| l.strip_prefix("Content-Type: "))
            .map(|l| l.trim_end_matches(';').to_owned())
            .collect()
    }

    #[test]
    fn inline_parts_go_in_multipart_related_and_attachments_in_mixed() {
        assert_eq!(
            content_types(&build(draft())),
            [
                "multipart/mixed",
                "multipart/related",
                "multipart/alternative",
                "text/plain; charset=\"utf-8\"",
                "text/html; charset=\"utf-8\"",
                "image/png",
                "application/pdf",
            ]
        );
        let mut only_inline = draft();
        only_inline.attachments.remove(0);
        only_inline.html = None;
        assert_eq!(
            content_types(&build(only_inline)),
            [
                "multipart/related",
                "text/plain; charset=\"utf-8\"",
                "image/png"
            ]
        );
        let mut plain = draft();
        plain.attachments.clear();
        plain.html = None;
        assert_eq!(
            content_types(&build(plain)),
            ["text/plain; charset=\"utf-8\""]
        );
    }
}
