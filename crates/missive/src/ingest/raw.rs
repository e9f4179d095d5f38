//! A message received over SMTP made into the email to store, under the same rules as a REST
//! submission.
//!
//! Bare LF and bare CR are normalised to CRLF (as Postfix's `smtpd_forbid_bare_newline =
//! normalize` does), so what we relay has only CRLF line ends and its dot-stuffing is unambiguous
//! downstream. Then: every line at most 998 octets; the message parses (mail-parser) and has a
//! header section; its From header (or, with none, the tenant's `default_from`, which is then
//! written in) passes the sender-domain rule, as does the envelope sender, and gets the tenant's
//! `from_name` when it has no display name (the header is then written anew); an
//! `Idempotency-Key` header is read and removed, and so are Bcc headers; Message-ID and Date are added when missing,
//! Reply-To (the tenant's default) when missing and the tenant has one; a Received header is
//! prepended; the final size is checked.
//!
//! A message with an `X-Missive-Template` header is rendered from that template instead: its
//! addresses, Subject, custom headers and attachments make a structured submission whose body is
//! the template's (its own body is replaced), checked and built as a REST send with `template`
//! would be, with the envelope, the Message-ID and a Received header kept from SMTP.

use mail_parser::{Address, HeaderName, Message, MessageParser, MimeHeaders, PartType};
use missive_core::mime::message_id;
use missive_core::submission::{
    Draft, DraftAttachment, DraftContent, Recipient, RecipientKind, Submission,
    check_custom_header, is_reserved_header,
};
use missive_core::{EmailAddress, EmailId, Fingerprint, IdempotencyKey, Mailbox, SendingPolicy};
use missive_store::NewEmail;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use super::policy::{self, AcceptLimits, Refusal};
use super::render::{TEMPLATE_HEADER, TemplateCall, VARIABLES_HEADER, fill};
use super::structured::{self, FromSmtp};
use crate::tenancy::templates::Ready;

/// The longest line of message text, CRLF excluded (RFC 5322 section 2.1.1).
pub const MAX_TEXT_LINE: usize = 998;

/// The SMTP envelope of a message.
#[derive(Clone, Debug)]
pub struct RawEnvelope {
    /// MAIL FROM.
    pub mail_from: EmailAddress,
    /// RCPT TO, without duplicates.
    pub recipients: Vec<EmailAddress>,
    /// The client gave MAIL FROM the SMTPUTF8 parameter.
    pub smtputf8: bool,
}

/// What the Received header says about the session.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The EHLO or HELO argument.
    pub helo: String,
    /// The client's address.
    pub peer: String,
    /// Our name.
    pub hostname: String,
    /// The `with` protocol (RFC 3848): SMTP, ESMTP, ESMTPS, ESMTPA or ESMTPSA.
    pub protocol: &'static str,
}

/// A message as SMTP received it: the envelope and the text between DATA and the final dot (or
/// the BDAT chunks), not yet checked.
pub struct RawMessage {
    pub envelope: RawEnvelope,
    pub text: Vec<u8>,
    pub trace: Trace,
}

impl std::fmt::Debug for RawMessage {
    // Message text never reaches logs: only its size.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMessage")
            .field("envelope", &self.envelope)
            .field("text_bytes", &self.text.len())
            .field("trace", &self.trace)
            .finish()
    }
}

/// The email to store, and the idempotency claim its header made.
pub(super) struct Composed {
    pub email: NewEmail,
    pub idempotency: Option<(IdempotencyKey, Fingerprint)>,
}

/// Checks and rewrites one received message.
///
/// # Errors
/// The first rule the message breaks.
pub(super) fn compose(
    raw: RawMessage,
    policy: &SendingPolicy,
    limits: &AcceptLimits,
    now: OffsetDateTime,
    template: Option<(&Ready, &TemplateCall)>,
) -> Result<Composed, Refusal> {
    let RawMessage {
        envelope,
        text,
        trace,
    } = raw;
    policy::check_sender(policy, "MAIL FROM", &envelope.mail_from)?;
    policy::check_recipients(envelope.recipients.len(), limits)?;
    if text.contains(&0) {
        // RFC 5322 allows no NUL, and no database text column holds one.
        return Err(Refusal::Invalid(
            "The message contains a NUL octet".to_owned(),
        ));
    }
    let text = normalise_line_ends(&text);
    if text
        .split(|&b| b == b'\n')
        .any(|line| line.len() > MAX_TEXT_LINE + 1)
    {
        return Err(Refusal::LineTooLong);
    }
    let message = MessageParser::default()
        .parse(&text)
        .filter(|m| !m.headers().is_empty())
        .ok_or_else(|| Refusal::Invalid("The message has no header section".to_owned()))?;

    let idempotency = match message.header("Idempotency-Key") {
        None => None,
        Some(value) => {
            let key = IdempotencyKey::parse(value.as_text().unwrap_or_default())?;
            let mut parts: Vec<&[u8]> = Vec::with_capacity(envelope.recipients.len() + 2);
            parts.push(envelope.mail_from.as_str().as_bytes());
            parts.extend(envelope.recipients.iter().map(|r| r.as_str().as_bytes()));
            parts.push(&text);
            Some((key, Fingerprint::of(parts)))
        }
    };

    if let Some((ready, call)) = template {
        let email = templated(&message, envelope, &trace, ready, call, policy, limits, now)?;
        return Ok(Composed { email, idempotency });
    }

    // A From header that names no usable address is refused; only a message without any From
    // header gets the tenant's default written in.
    let written_from = match message.header(HeaderName::From) {
        None => None,
        Some(_) => Some(first_mailbox(message.from()).ok_or_else(|| {
            Refusal::Invalid("The message needs a From header with an address".to_owned())
        })?),
    };
    let from = policy::sender(written_from.as_ref(), policy, "From header")?;
    // Written anew when there was none, or when the tenant's from_name gave it a display name.
    let write_from = written_from.as_ref() != Some(&from);

    let id = EmailId::new();
    let date = now.format(&Rfc2822).unwrap_or_default();
    let message_id_value = message
        .message_id()
        .map_or_else(|| message_id(&id, &from.email), ToOwned::to_owned);
    let written_reply_to = mailboxes(message.reply_to());
    let reply_to = policy::reply_to(&written_reply_to, policy);

    // Headers we drop: Bcc (never shown to recipients), our own control header, and a From
    // header we write anew.
    let mut dropped: Vec<(usize, usize)> = message
        .headers()
        .iter()
        .filter(|h| {
            matches!(h.name, HeaderName::Bcc)
                || (write_from && matches!(h.name, HeaderName::From))
                || h.name.as_str().eq_ignore_ascii_case("Idempotency-Key")
        })
        .map(|h| (h.offset_field as usize, h.offset_end as usize))
        .collect();
    dropped.sort_unstable();

    let mut mime = Vec::with_capacity(text.len() + 512);
    mime.extend_from_slice(received(&trace, &id, now).as_bytes());
    if write_from {
        mime.extend_from_slice(format!("From: {from}\r\n").as_bytes());
    }
    if written_reply_to.is_empty() && !reply_to.is_empty() {
        let list: Vec<String> = reply_to.iter().map(ToString::to_string).collect();
        mime.extend_from_slice(format!("Reply-To: {}\r\n", list.join(", ")).as_bytes());
    }
    if message.header(HeaderName::MessageId).is_none() {
        mime.extend_from_slice(format!("Message-ID: <{message_id_value}>\r\n").as_bytes());
    }
    if message.header(HeaderName::Date).is_none() {
        mime.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
    }
    let mut at = 0;
    for (start, end) in dropped {
        if start >= at && end <= text.len() {
            mime.extend_from_slice(&text[at..start]);
            at = end;
        }
    }
    mime.extend_from_slice(&text[at..]);
    policy::check_size(mime.len(), limits)?;

    let listed = |address: Option<&Address<'_>>, rcpt: &EmailAddress| {
        address.is_some_and(|a| {
            a.iter().any(|addr| {
                addr.address
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(rcpt.as_str()))
            })
        })
    };
    let smtputf8 =
        policy::needs_smtputf8(envelope.smtputf8, &envelope.mail_from, &envelope.recipients);
    let recipients = envelope
        .recipients
        .into_iter()
        .map(|address| {
            let kind = if listed(message.to(), &address) {
                RecipientKind::To
            } else if listed(message.cc(), &address) {
                RecipientKind::Cc
            } else {
                RecipientKind::Bcc
            };
            Recipient { kind, address }
        })
        .collect();
    let html = message.html_part(0).and_then(|p| match &p.body {
        PartType::Html(html) => Some(html.to_string()),
        _ => None,
    });
    let text_body = message.text_part(0).and_then(|p| match &p.body {
        PartType::Text(text) => Some(text.to_string()),
        _ => None,
    });
    let subject = message.subject().unwrap_or_default().to_owned();
    let email = NewEmail {
        id,
        message_id: message_id_value,
        from,
        envelope_from: envelope.mail_from,
        smtputf8,
        reply_to,
        subject,
        html,
        text: text_body,
        tags: Vec::new(),
        mime,
        scheduled_at: None,
        recipients,
        over_smtp: true,
    };
    Ok(Composed { email, idempotency })
}

/// The Received header we prepend to a message received over SMTP.
pub(super) fn received(trace: &Trace, id: &EmailId, now: OffsetDateTime) -> String {
    format!(
        "Received: from {} ({})\r\n\tby {} (Missive) with {} id {};\r\n\t{}\r\n",
        sanitize(&trace.helo),
        trace.peer,
        trace.hostname,
        trace.protocol,
        id,
        now.format(&Rfc2822).unwrap_or_default()
    )
}

/// The template a received message names in its headers, with its variables; `None` for most
/// messages, which a byte search rules out before any parsing.
///
/// # Errors
/// [`Refusal::Invalid`] for an empty template header or variables that are not a JSON object.
pub fn template_call(text: &[u8]) -> Result<Option<TemplateCall>, Refusal> {
    let header_end = text
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| text.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(text.len());
    let needle = b"x-missive-template";
    let mentioned = text[..header_end]
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle));
    if !mentioned {
        return Ok(None);
    }
    let Some(headers) = MessageParser::default().parse_headers(text) else {
        return Ok(None);
    };
    let Some(reference) = headers.header_raw(TEMPLATE_HEADER) else {
        return Ok(None);
    };
    let reference = unfold(reference);
    if reference.is_empty() {
        return Err(Refusal::Invalid(format!("{TEMPLATE_HEADER}: empty")));
    }
    let variables = match headers.header_raw(VARIABLES_HEADER) {
        None => serde_json::Map::new(),
        Some(raw) => match serde_json::from_str::<Value>(&unfold(raw)) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(Refusal::Invalid(format!(
                    "{VARIABLES_HEADER}: must be a JSON object"
                )));
            }
            Err(e) => {
                return Err(Refusal::Invalid(format!(
                    "{VARIABLES_HEADER}: not JSON ({e})"
                )));
            }
        },
    };
    Ok(Some(TemplateCall {
        reference,
        variables,
    }))
}

/// A header value without its folding.
fn unfold(raw: &str) -> String {
    raw.replace("\r\n", "").replace('\n', "").trim().to_owned()
}

/// Our control headers, which a templated message does not carry over (nor the headers its
/// build writes anew).
const SMTP_ONLY: &[&str] = &[
    "idempotency-key",
    "x-missive-template",
    "x-missive-template-variables",
];

/// A received message that names a template, made into the submission it stands for, with the
/// template filling its body.
#[allow(clippy::too_many_arguments)] // the accept path's context, as compose has it
fn templated(
    message: &Message<'_>,
    envelope: RawEnvelope,
    trace: &Trace,
    ready: &Ready,
    call: &TemplateCall,
    policy: &SendingPolicy,
    limits: &AcceptLimits,
    now: OffsetDateTime,
) -> Result<NewEmail, Refusal> {
    let raw_text = message.raw_message();
    let headers = message
        .headers()
        .iter()
        .filter(|h| {
            let name = h.name.as_str().to_ascii_lowercase();
            !is_reserved_header(&name)
                && !SMTP_ONLY.contains(&name.as_str())
                && !name.starts_with("content-")
        })
        .filter_map(|h| {
            let value = raw_text.get(h.offset_start as usize..h.offset_end as usize)?;
            let value = unfold(std::str::from_utf8(value).ok()?);
            let name = h.name.as_str().to_owned();
            // A header our structured build cannot carry is left out rather than refused.
            check_custom_header(&name, &value).ok()?;
            Some((name, value))
        })
        .collect();
    let from = match message.header(HeaderName::From) {
        None => None,
        Some(_) => Some(first_mailbox(message.from()).ok_or_else(|| {
            Refusal::Invalid("The message needs a From header with an address".to_owned())
        })?),
    };
    let strings = |list: Vec<Mailbox>| list.iter().map(ToString::to_string).collect();
    let attachments = message
        .attachments()
        .map(|part| DraftAttachment {
            filename: Some(
                part.attachment_name()
                    .unwrap_or("attachment")
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(255)
                    .collect(),
            ),
            content: Some(DraftContent::Bytes(part.contents().to_vec())),
            content_type: part.content_type().map(|t| {
                format!(
                    "{}/{}",
                    t.c_type,
                    t.c_subtype.as_deref().unwrap_or("octet-stream")
                )
            }),
            content_id: part.content_id().map(ToOwned::to_owned),
            path: None,
        })
        .collect();
    let mut draft = Draft {
        from: from.map(|m| m.to_string()),
        to: strings(mailboxes(message.to())),
        cc: strings(mailboxes(message.cc())),
        bcc: Vec::new(),
        reply_to: strings(mailboxes(message.reply_to())),
        subject: message.subject().map(ToOwned::to_owned),
        html: None,
        text: None,
        headers,
        attachments,
        tags: Vec::new(),
        scheduled_at: None,
    };
    fill(ready, call, &mut draft)?;
    let submission = Submission::parse(draft, now).map_err(|e| Refusal::Invalid(e.to_string()))?;
    structured::compose(
        submission,
        policy,
        limits,
        now,
        Some(FromSmtp {
            envelope,
            trace,
            message_id: message.message_id().map(ToOwned::to_owned),
        }),
    )
}

/// A header's address as our strict type, or `None` when it does not parse as one.
fn mailbox(addr: &mail_parser::Addr<'_>) -> Option<Mailbox> {
    let email = addr.address.as_deref()?;
    let raw = match addr.name.as_deref() {
        Some(name) if !name.trim().is_empty() => {
            format!("\"{}\" <{email}>", name.replace(['"', '\\'], ""))
        }
        _ => email.to_owned(),
    };
    Mailbox::parse(&raw).ok()
}

/// The first mailbox of a From header.
fn first_mailbox(address: Option<&Address<'_>>) -> Option<Mailbox> {
    mailbox(address?.first()?)
}

/// Every mailbox of an address header that parses.
fn mailboxes(address: Option<&Address<'_>>) -> Vec<Mailbox> {
    address.map_or_else(Vec::new, |a| a.iter().filter_map(mailbox).collect())
}

/// Bare LF and bare CR become CRLF; CRLF stays.
#[must_use]
pub fn normalise_line_ends(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 64);
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\r' if text.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
            }
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// A client-chosen name in our own header: printable ASCII only.
fn sanitize(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use missive_core::Domain;

    #[test]
    fn template_headers_are_found_only_when_present() {
        assert_eq!(
            template_call(b"From: a@b.test\r\n\r\nX-Missive-Template: no\r\n"),
            Ok(None)
        );
        let call = template_call(
            b"From: a@b.test\r\nx-missive-template: welcome\r\nX-Missive-Template-Variables: \
              {\"NAME\": \"Ann\",\r\n \"N\": 2}\r\n\r\nbody",
        )
        .unwrap()
        .unwrap();
        assert_eq!(call.reference, "welcome");
        assert_eq!(call.variables["NAME"], "Ann");
        assert_eq!(call.variables["N"], 2);
        assert!(matches!(
            template_call(b"X-Missive-Template: w\r\nX-Missive-Template-Variables: [1]\r\n\r\n"),
            Err(Refusal::Invalid(m)) if m.contains("JSON object")
        ));
        assert!(matches!(
            template_call(b"X-Missive-Template: w\r\nX-Missive-Template-Variables: {x\r\n\r\n"),
            Err(Refusal::Invalid(m)) if m.contains("not JSON")
        ));
    }

    #[test]
    fn bare_line_ends_become_crlf() {
        assert_eq!(normalise_line_ends(b"a\nb\rc\r\nd"), b"a\r\nb\r\nc\r\nd");
        assert_eq!(normalise_line_ends(b"\r\r\n\n"), b"\r\n\r\n\r\n");
    }

    fn raw(text: &str) -> RawMessage {
        RawMessage {
            envelope: RawEnvelope {
                mail_from: EmailAddress::parse("me@acme.test").unwrap(),
                recipients: vec![
                    EmailAddress::parse("you@x.test").unwrap(),
                    EmailAddress::parse("hidden@x.test").unwrap(),
                ],
                smtputf8: false,
            },
            text: text.as_bytes().to_vec(),
            trace: Trace {
                helo: "client.test".into(),
                peer: "192.0.2.1".into(),
                hostname: "mx.test".into(),
                protocol: "ESMTPA",
            },
        }
    }

    const LIMITS: AcceptLimits = AcceptLimits {
        max_message_bytes: 1 << 20,
        max_recipients: 10,
    };

    #[test]
    fn a_message_without_from_or_reply_to_gets_the_tenants_and_loses_its_bcc() {
        let policy = SendingPolicy {
            default_from: Some(Mailbox::parse("Acme <noreply@acme.test>").unwrap()),
            reply_to: Some(Mailbox::parse("help@acme.test").unwrap()),
            from_name: None,
            allowed_sender_domains: vec![Domain::parse("acme.test").unwrap()],
            ..SendingPolicy::default()
        };
        let composed = compose(
            raw("To: you@x.test\r\nBcc: hidden@x.test\r\nSubject: hi\r\n\r\nbody\r\n"),
            &policy,
            &LIMITS,
            OffsetDateTime::now_utc(),
            None,
        )
        .unwrap();
        let email = composed.email;
        let mime = String::from_utf8(email.mime).unwrap();
        assert!(
            mime.starts_with("Received: from client.test (192.0.2.1)"),
            "{mime}"
        );
        assert!(
            mime.contains("\r\nFrom: Acme <noreply@acme.test>\r\n"),
            "{mime}"
        );
        assert!(mime.contains("\r\nReply-To: help@acme.test\r\n"), "{mime}");
        assert!(mime.contains(&format!("Message-ID: <{}@acme.test>", email.id.simple())));
        assert!(!mime.contains("hidden@x.test"), "{mime}");
        assert_eq!(email.from.email.as_str(), "noreply@acme.test");
        assert_eq!(email.recipients[1].kind, RecipientKind::Bcc);
        assert!(composed.idempotency.is_none());
    }

    #[test]
    fn refusals_name_the_rule() {
        let policy = SendingPolicy {
            allowed_sender_domains: vec![Domain::parse("acme.test").unwrap()],
            ..SendingPolicy::default()
        };
        let now = OffsetDateTime::now_utc();
        let refused = |text: &str| compose(raw(text), &policy, &LIMITS, now, None).err();
        assert!(matches!(
            refused("From: x@evil.test\r\n\r\nhi\r\n"),
            Some(Refusal::SenderNotAllowed {
                field: "From header",
                ..
            })
        ));
        assert!(matches!(
            refused("To: you@x.test\r\n\r\nhi\r\n"),
            Some(Refusal::Invalid(_))
        ));
        assert!(matches!(
            refused("From: nobody\r\n\r\nhi\r\n"),
            Some(Refusal::Invalid(_))
        ));
        assert!(matches!(
            refused("no headers at all"),
            Some(Refusal::Invalid(_))
        ));
        assert_eq!(
            refused(&format!(
                "From: me@acme.test\r\n\r\n{}\r\n",
                "y".repeat(1200)
            )),
            Some(Refusal::LineTooLong)
        );
        assert!(matches!(
            refused("From: me@acme.test\r\nIdempotency-Key: \r\n\r\nhi\r\n"),
            Some(Refusal::IdempotencyKey(_))
        ));
    }
}
