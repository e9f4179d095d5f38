//! Received mail as the Receiving API shows it: what a listing needs (addresses, subject and the
//! attachments' metadata) read once on arrival and kept beside the message, and what a single
//! read adds (the bodies and headers, an attachment's bytes), read from the stored message.
//!
//! Each attachment gets an id on arrival and keeps the position mail-parser gives it, so its bytes
//! are found again by position, never by a name a sender chose.

use std::collections::BTreeMap;

use mail_parser::{Address, HeaderName, Message, MessageParser, MessagePart, MimeHeaders as _};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::named::named;

/// Header values kept for listings are cut to this many characters (RFC 5322's line limit).
const MAX_HEADER_CHARS: usize = 998;
/// Attachments listed at most; a message with more keeps the first ones.
pub const MAX_ATTACHMENTS: usize = 100;

/// What a receiving domain does with a message that fails DMARC: `record` keeps the verdicts
/// and takes it; `enforce` refuses it (550 5.7.1) when the author's domain asks for reject.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum InboundDmarc {
    #[default]
    Record,
    Enforce,
}

impl InboundDmarc {
    pub const ALL: [Self; 2] = [Self::Record, Self::Enforce];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Record => "record",
            Self::Enforce => "enforce",
        }
    }
}

named!(InboundDmarc, "inbound DMARC handling", parse);

/// What is kept of a received message for listings and webhooks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The From header as written (`Name <address>`), or its address.
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Vec<String>,
    #[serde(default)]
    pub attachments: Vec<AttachmentMeta>,
}

/// One attachment's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentMeta {
    pub id: Uuid,
    /// Its position among the message's attachments, as mail-parser counts them.
    pub part: u32,
    pub filename: Option<String>,
    pub content_type: String,
    pub content_id: Option<String>,
    pub content_disposition: Option<String>,
    pub size: u64,
}

/// A received message's headers as a listing shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Arrival {
    pub message_id: Option<String>,
    /// The From header's first address.
    pub from_address: Option<String>,
    pub subject: Option<String>,
    pub summary: Summary,
}

/// What a single read adds to the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Content {
    pub html: Option<String>,
    pub text: Option<String>,
    /// Each header by its name as written; repeated ones joined by newlines, in order.
    pub headers: BTreeMap<String, String>,
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_HEADER_CHARS).collect()
}

fn mailbox(name: Option<&str>, address: &str) -> String {
    match name {
        Some(name) if !name.trim().is_empty() => clip(&format!("{} <{address}>", name.trim())),
        _ => clip(address),
    }
}

fn addresses(address: Option<&Address<'_>>) -> Vec<String> {
    address
        .into_iter()
        .flat_map(Address::iter)
        .filter_map(|a| a.address().map(clip))
        .collect()
}

/// A part's MIME type, `type/subtype`.
fn content_type(part: &MessagePart<'_>) -> String {
    part.content_type().map_or_else(
        || "application/octet-stream".to_owned(),
        |ct| match ct.subtype() {
            Some(sub) => format!("{}/{sub}", ct.ctype()),
            None => ct.ctype().to_owned(),
        },
    )
}

fn parse(raw: &[u8]) -> Option<Message<'_>> {
    MessageParser::default().parse(raw)
}

/// Reads what listings and webhooks show of `raw`, giving each attachment a new id. A message
/// mail-parser cannot read at all gives an empty summary (it is still stored whole).
#[must_use]
pub fn arrival(raw: &[u8]) -> Arrival {
    let Some(message) = parse(raw) else {
        return Arrival::default();
    };
    let from = message.from().and_then(Address::first);
    let attachments = message
        .attachments()
        .take(MAX_ATTACHMENTS)
        .enumerate()
        .map(|(part, attachment)| AttachmentMeta {
            id: Uuid::now_v7(),
            part: u32::try_from(part).unwrap_or(u32::MAX),
            filename: attachment.attachment_name().map(clip),
            content_type: content_type(attachment),
            content_id: attachment
                .content_id()
                .map(|id| clip(id.trim_matches(['<', '>']))),
            content_disposition: attachment
                .content_disposition()
                .map(|cd| cd.ctype().to_ascii_lowercase()),
            size: attachment.contents().len() as u64,
        })
        .collect();
    Arrival {
        message_id: message.message_id().map(clip),
        from_address: from.and_then(|a| a.address()).map(clip),
        subject: message.subject().map(clip),
        summary: Summary {
            from: from
                .and_then(|a| Some(mailbox(a.name(), a.address()?)))
                .unwrap_or_default(),
            to: addresses(message.to()),
            cc: addresses(message.cc()),
            bcc: addresses(message.bcc()),
            reply_to: addresses(message.reply_to()),
            attachments,
        },
    }
}

/// How inline images appear in a received message's html (Resend's `html_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InlineImages {
    /// `cid:` references replaced by `data:` URIs of the parts they name (Resend's default).
    #[default]
    DataUri,
    /// `cid:` references kept; each matches an attachment's `content_id`.
    Cid,
}

/// The html with each `cid:` reference to an inline part replaced by that part as a `data:` URI.
fn inline_data_uris(message: &Message<'_>, html: String) -> String {
    use base64::Engine as _;
    let mut html = html;
    for part in message.attachments() {
        let Some(id) = part.content_id().map(|id| id.trim_matches(['<', '>'])) else {
            continue;
        };
        let reference = format!("cid:{id}");
        if id.is_empty() || !html.contains(&reference) {
            continue;
        }
        let data = base64::engine::general_purpose::STANDARD.encode(part.contents());
        html = html.replace(
            &reference,
            &format!("data:{};base64,{data}", content_type(part)),
        );
    }
    html
}

/// The bodies and headers of `raw`, inline images in the html as `images` says.
#[must_use]
pub fn content(raw: &[u8], images: InlineImages) -> Content {
    let Some(message) = parse(raw) else {
        return Content::default();
    };
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for header in message.headers() {
        let (start, end) = (header.offset_start as usize, header.offset_end as usize);
        let Some(value) = raw.get(start..end) else {
            continue;
        };
        // Unfolded, as the header's one logical line.
        let value = String::from_utf8_lossy(value)
            .split(['\r', '\n'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let name = match &header.name {
            HeaderName::Other(name) => name.to_string(),
            known => known.as_str().to_owned(),
        };
        headers
            .entry(name)
            .and_modify(|v| {
                v.push('\n');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    Content {
        html: message
            .html_body
            .first()
            .and(message.body_html(0))
            .map(|h| match images {
                InlineImages::DataUri => inline_data_uris(&message, h.into_owned()),
                InlineImages::Cid => h.into_owned(),
            }),
        text: message
            .text_body
            .first()
            .and(message.body_text(0))
            .map(|t| t.into_owned()),
        headers,
    }
}

/// The decoded bytes of attachment `part` of `raw`.
#[must_use]
pub fn attachment(raw: &[u8], part: u32) -> Option<Vec<u8>> {
    let message = parse(raw)?;
    Some(message.attachment(part)?.contents().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"From: Ann Example <ann@sender.test>\r\n\
To: support@acme.test, Bob <bob@acme.test>\r\n\
Cc: carol@x.test\r\n\
Reply-To: replies@sender.test\r\n\
Subject: Invoice\r\n\
Message-ID: <m1@sender.test>\r\n\
Received: from a\r\n\
Received: from b\r\n\
X-Long: one\r\n two\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: multipart/alternative; boundary=c\r\n\
\r\n\
--c\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hello\r\n\
--c\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>Hello</p>\r\n\
--c--\r\n\
--b\r\n\
Content-Type: application/pdf; name=invoice.pdf\r\n\
Content-Disposition: attachment; filename=invoice.pdf\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKAAEC/w==\r\n\
--b--\r\n";

    #[test]
    fn arrival_reads_addresses_and_attachments() {
        let arrival = arrival(MESSAGE);
        assert_eq!(arrival.message_id.as_deref(), Some("m1@sender.test"));
        assert_eq!(arrival.from_address.as_deref(), Some("ann@sender.test"));
        assert_eq!(arrival.subject.as_deref(), Some("Invoice"));
        let s = &arrival.summary;
        assert_eq!(s.from, "Ann Example <ann@sender.test>");
        assert_eq!(s.to, ["support@acme.test", "bob@acme.test"]);
        assert_eq!(s.cc, ["carol@x.test"]);
        assert!(s.bcc.is_empty());
        assert_eq!(s.reply_to, ["replies@sender.test"]);
        assert_eq!(s.attachments.len(), 1);
        let a = &s.attachments[0];
        assert_eq!(
            (a.filename.as_deref(), a.content_type.as_str(), a.size),
            (Some("invoice.pdf"), "application/pdf", 13)
        );
        assert_eq!(a.content_disposition.as_deref(), Some("attachment"));
        assert_eq!(
            attachment(MESSAGE, a.part).unwrap(),
            b"%PDF-1.4\n\x00\x01\x02\xff"
        );
        assert!(attachment(MESSAGE, 7).is_none());
    }

    #[test]
    fn content_has_bodies_and_unfolded_headers() {
        let content = content(MESSAGE, InlineImages::DataUri);
        assert_eq!(content.text.as_deref().map(str::trim), Some("Hello"));
        assert_eq!(content.html.as_deref().map(str::trim), Some("<p>Hello</p>"));
        assert_eq!(content.headers["Received"], "from a\nfrom b");
        assert_eq!(content.headers["X-Long"], "one two");
        assert_eq!(content.headers["Subject"], "Invoice");
    }

    #[test]
    fn inline_images_become_data_uris_unless_cid_is_asked_for() {
        let message = b"From: a@sender.test\r\nSubject: logo\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/related; boundary=r\r\n\r\n--r\r\nContent-Type: text/html\r\n\r\n\
<img src=\"cid:logo@x\">\r\n--r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n\
Content-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw==\r\n--r--\r\n";
        let data = content(message, InlineImages::DataUri).html.unwrap();
        assert!(
            data.contains("src=\"data:image/png;base64,iVBORw==\""),
            "{data}"
        );
        let cid = content(message, InlineImages::Cid).html.unwrap();
        assert!(cid.contains("src=\"cid:logo@x\""), "{cid}");
        let arrival = arrival(message);
        assert_eq!(
            arrival.summary.attachments[0].content_id.as_deref(),
            Some("logo@x")
        );
    }

    #[test]
    fn garbage_gives_empty_views() {
        assert_eq!(arrival(b"").summary, Summary::default());
        assert!(content(b"", InlineImages::Cid).headers.is_empty());
    }
}
