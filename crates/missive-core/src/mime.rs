//! Builds the final RFC 5322 message from a [`Submission`]: multipart/alternative for html and
//! text, attachments and inline parts, Date, MIME-Version and our Message-ID. Transfer encodings
//! are chosen per part so no line exceeds 998 octets. Bcc recipients never appear in the headers:
//! they exist only in the envelope.

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::MimePart;
use time::OffsetDateTime;

use crate::address::Mailbox;
use crate::submission::Submission;

fn address(mailbox: &Mailbox) -> Address<'_> {
    Address::new_address(mailbox.name.as_deref(), mailbox.email.as_str())
}

fn address_list(mailboxes: &[Mailbox]) -> Address<'_> {
    Address::new_list(mailboxes.iter().map(address).collect())
}

/// The Message-ID for an email: its id at the sender's domain, without angle brackets.
#[must_use]
pub fn message_id(email_id: &uuid::Uuid, from: &Mailbox) -> String {
    format!("{}@{}", email_id.simple(), from.email.domain())
}

/// The body tree: html and text as multipart/alternative; inline parts (those with a
/// Content-ID) beside it in multipart/related, so clients resolve `cid:` references and do not
/// list them as attachments; other attachments beside that in multipart/mixed.
fn body(submission: &Submission) -> MimePart<'_> {
    let mut alternatives: Vec<MimePart<'_>> = Vec::with_capacity(2);
    if let Some(text) = &submission.text {
        alternatives.push(MimePart::new("text/plain", text.as_str()));
    }
    if let Some(html) = &submission.html {
        alternatives.push(MimePart::new("text/html", html.as_str()));
    }
    let mut body = match alternatives.len() {
        0 => MimePart::new("text/plain", ""),
        1 => alternatives.remove(0),
        _ => MimePart::new("multipart/alternative", alternatives),
    };
    let (inline, attached): (Vec<_>, Vec<_>) = submission
        .attachments
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

/// Serialises the message.
#[must_use]
pub fn build_mime(submission: &Submission, message_id: &str, date: OffsetDateTime) -> Vec<u8> {
    let mut builder = MessageBuilder::new()
        .from(address(&submission.from))
        .subject(submission.subject.as_str())
        .message_id(message_id)
        .date(date.unix_timestamp());
    if !submission.to.is_empty() {
        builder = builder.to(address_list(&submission.to));
    }
    if !submission.cc.is_empty() {
        builder = builder.cc(address_list(&submission.cc));
    }
    if !submission.reply_to.is_empty() {
        builder = builder.reply_to(address_list(&submission.reply_to));
    }
    for (name, value) in &submission.headers {
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
    use crate::submission::{Attachment, Tag};

    pub(super) fn submission() -> Submission {
        Submission {
            from: Mailbox::parse("Acme <news@acme.test>").unwrap(),
            to: vec![Mailbox::parse("Jörg <jörg@bücher.de>").unwrap()],
            cc: vec![Mailbox::parse("cc@x.test").unwrap()],
            bcc: vec![Mailbox::parse("secret@hidden.test").unwrap()],
            reply_to: vec![Mailbox::parse("support@acme.test").unwrap()],
            subject: "Grüße ".repeat(40),
            html: Some(format!("<p>{}</p>", "long line ".repeat(300))),
            text: Some("hello".into()),
            headers: vec![("X-Campaign".into(), "spring".into())],
            attachments: vec![
                Attachment {
                    filename: "report.pdf".into(),
                    content: (0..=255u8).cycle().take(5000).collect(),
                    content_type: "application/pdf".into(),
                    content_id: None,
                },
                Attachment {
                    filename: "logo.png".into(),
                    content: vec![137, 80, 78, 71, 0, 1, 2],
                    content_type: "image/png".into(),
                    content_id: Some("logo".into()),
                },
            ],
            tags: vec![Tag {
                name: "k".into(),
                value: "v".into(),
            }],
            scheduled_at: None,
        }
    }

    #[test]
    fn text_attachments_keep_bytes_that_are_not_utf8() {
        let mut s = submission();
        s.attachments = vec![Attachment {
            filename: "hello.txt".into(),
            content: b"hello attachment \x00\xff".to_vec(),
            content_type: "text/plain".into(),
            content_id: None,
        }];
        let mime = build_mime(&s, "abc@acme.test", OffsetDateTime::UNIX_EPOCH);
        let text = String::from_utf8(mime).expect("the message is 7-bit clean");
        assert!(text.contains("hello attachment =00=FF"), "{text}");
    }

    #[test]
    fn the_message_has_every_header_and_part_and_no_bcc() {
        let mime = build_mime(&submission(), "abc@acme.test", OffsetDateTime::UNIX_EPOCH);
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
        let mime = build_mime(&submission(), "abc@acme.test", OffsetDateTime::UNIX_EPOCH);
        assert_eq!(
            content_types(&mime),
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
        let mut only_inline = submission();
        only_inline.attachments.remove(0);
        only_inline.html = None;
        let mime = build_mime(&only_inline, "abc@acme.test", OffsetDateTime::UNIX_EPOCH);
        assert_eq!(
            content_types(&mime),
            [
                "multipart/related",
                "text/plain; charset=\"utf-8\"",
                "image/png"
            ]
        );
        let mut plain = submission();
        plain.attachments.clear();
        plain.html = None;
        let mime = build_mime(&plain, "abc@acme.test", OffsetDateTime::UNIX_EPOCH);
        assert_eq!(content_types(&mime), ["text/plain; charset=\"utf-8\""]);
    }
}
