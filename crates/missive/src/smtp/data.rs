//! DATA: receiving the message text, and turning it into the same stored email a REST send makes.
//!
//! The text ends only at CRLF.CRLF (smtp-proto's receiver), so `\n.\n`, `\n.\r\n`, `\r.\r\n` or
//! `\r\n.\n` inside a message never end it early: one DATA is one message. Bare LF and bare CR are
//! then normalised to CRLF (as Postfix's `smtpd_forbid_bare_newline = normalize` does), so what
//! we relay has only CRLF line ends and its dot-stuffing is unambiguous downstream.
//!
//! Then: every line at most 998 octets; the message parses (mail-parser) and has a From header
//! whose domain the tenant may use; Bcc and `Idempotency-Key` headers are removed; Message-ID and
//! Date are added when missing; a Received header is prepended. `250 2.0.0 Queued as <id>` is
//! written only after the commit.

use mail_parser::{Address, HeaderName, MessageParser, PartType};
use missive_core::mime::message_id;
use missive_core::submission::RecipientKind;
use missive_core::{EmailAddress, Mailbox};
use missive_store::{IdempotencyRecord, InsertOutcome, NewEmail};
use sha2::{Digest, Sha256};
use smtp_proto::request::receiver::DataReceiver;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;
use tokio::io::{AsyncRead, AsyncWrite};
use uuid::Uuid;

use super::reply::{self, Reply};
use super::session::{DataState, Envelope, MAX_TEXT_LINE, Next, Sender, Session, State};
use crate::ingest::{self, IngestError, sender_domain_allowed};

/// Longest `Idempotency-Key` header value, as over REST.
const MAX_IDEMPOTENCY_KEY: usize = 256;

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(super) fn data(&mut self) -> Next {
        if self.envelope.mail_from.is_none() {
            return self.refuse(&reply::BAD_SEQUENCE_MAIL);
        }
        if self.envelope.recipients.is_empty() {
            return self.refuse(&reply::BAD_SEQUENCE_RCPT);
        }
        if self.envelope.chunks.is_some() {
            return self.refuse(&reply::BAD_SEQUENCE_BDAT);
        }
        self.state = State::Data(DataState {
            receiver: DataReceiver::new(),
            message: Vec::with_capacity(8192),
            too_big: false,
        });
        self.reply(&reply::START_DATA);
        Next::Continue
    }

    /// Feeds buffered input to the DATA receiver; `None` until the message is complete.
    pub(super) async fn receive_data(&mut self) -> Option<Next> {
        let State::Data(data) = &mut self.state else {
            return Some(Next::Continue);
        };
        let mut bytes = self.input[self.pos..].iter();
        let done = data.receiver.ingest(&mut bytes, &mut data.message);
        self.pos = self.input.len() - bytes.as_slice().len();
        // Over the limit: keep reading to the end of the text, storing nothing more.
        if data.message.len() > self.ctx.max_message_bytes {
            data.too_big = true;
            data.message.clear();
        }
        if !done {
            return None;
        }
        let State::Data(data) = std::mem::replace(&mut self.state, State::Command) else {
            return Some(Next::Continue);
        };
        let envelope = std::mem::take(&mut self.envelope);
        if data.too_big {
            return Some(self.refuse(&reply::TOO_BIG));
        }
        Some(self.queue(envelope, data.message).await)
    }

    /// Validates, stores and answers one complete message.
    pub(super) async fn queue(&mut self, envelope: Envelope, text: Vec<u8>) -> Next {
        let Some(sender) = self.client.sender().cloned() else {
            return self.refuse(&reply::AUTH_REQUIRED);
        };
        let received = Received {
            helo: self.client.helo.clone().unwrap_or_default(),
            peer: self.peer.ip().to_string(),
            hostname: self.ctx.hostname.clone(),
            protocol: protocol(
                self.client.esmtp,
                self.tls,
                self.client.authenticated.is_some(),
            ),
        };
        let prepared = match prepare(
            &envelope,
            &text,
            &sender,
            &received,
            self.ctx.max_message_bytes,
        ) {
            Ok(prepared) => prepared,
            Err(refusal) => return self.refuse(&refusal),
        };
        let id = prepared.email.id;
        let tenant_id = sender.tenant_id;
        let response = serde_json::json!({ "id": id });
        let record = prepared
            .idempotency
            .as_ref()
            .map(|(key, hash)| IdempotencyRecord {
                key,
                request_hash: *hash,
                response_status: 200,
                response_body: &response,
            });
        let outcome = ingest::accept(
            &self.ctx.writer,
            tenant_id,
            vec![prepared.email],
            record.as_ref(),
        )
        .await;
        match outcome {
            Ok(InsertOutcome::Inserted) => {
                tracing::info!(%tenant_id, email_id = %id, via = %sender.via, "SMTP message queued");
                self.reply(&queued(&id.to_string()));
                Next::Continue
            }
            Ok(InsertOutcome::Replay { body, .. }) => {
                let first = body.get("id").and_then(|v| v.as_str()).unwrap_or_default();
                self.reply(&queued(first));
                Next::Continue
            }
            Ok(InsertOutcome::KeyReused) => self.refuse(&Reply::new(
                554,
                "5.6.0",
                "Idempotency-Key was already used for another message",
            )),
            Err(IngestError::Store(err)) => {
                tracing::error!(%tenant_id, error = %err, "SMTP message not stored");
                self.reply(&reply::TEMPORARY_FAILURE);
                Next::Continue
            }
            Err(other) => self.refuse(&ingest_reply(&other)),
        }
    }
}

fn queued(id: &str) -> Reply {
    Reply::owned(250, "2.0.0", format!("Queued as {id}"))
}

fn ingest_reply(err: &IngestError) -> Reply {
    match err {
        IngestError::TooLarge { .. } => reply::TOO_BIG,
        IngestError::SenderNotAllowed(message) => Reply::owned(550, "5.7.1", message.clone()),
        IngestError::Invalid(message) => Reply::owned(550, "5.6.0", message.clone()),
        IngestError::Store(_) => reply::TEMPORARY_FAILURE,
    }
}

/// The `with` protocol of the Received header (RFC 3848).
const fn protocol(esmtp: bool, tls: bool, authenticated: bool) -> &'static str {
    match (esmtp, tls, authenticated) {
        (false, _, _) => "SMTP",
        (true, false, false) => "ESMTP",
        (true, true, false) => "ESMTPS",
        (true, false, true) => "ESMTPA",
        (true, true, true) => "ESMTPSA",
    }
}

/// What the Received header says about the session.
#[derive(Debug)]
pub struct Received {
    pub helo: String,
    pub peer: String,
    pub hostname: String,
    pub protocol: &'static str,
}

/// A message ready to store.
#[derive(Debug)]
pub struct Prepared {
    pub email: NewEmail,
    /// The `Idempotency-Key` header and the hash that tells the same message from another.
    pub idempotency: Option<(String, [u8; 32])>,
}

/// Turns received text into the row to store, or the refusal to send.
///
/// # Errors
/// The reply refusing the message.
pub fn prepare(
    envelope: &Envelope,
    text: &[u8],
    sender: &Sender,
    received: &Received,
    max_message_bytes: usize,
) -> Result<Prepared, Reply> {
    let Some(envelope_from) = &envelope.mail_from else {
        return Err(reply::BAD_SEQUENCE_MAIL);
    };
    let text = normalise_line_ends(text);
    if text
        .split(|&b| b == b'\n')
        .any(|line| line.len() > MAX_TEXT_LINE + 1)
    {
        return Err(reply::TEXT_LINE_TOO_LONG);
    }
    let message = MessageParser::default()
        .parse(&text)
        .filter(|m| !m.headers().is_empty())
        .ok_or_else(|| Reply::new(550, "5.6.0", "The message has no header section"))?;

    let from = first_mailbox(message.from()).ok_or_else(|| {
        Reply::new(
            550,
            "5.6.0",
            "The message needs a From header with an address",
        )
    })?;
    if !sender_domain_allowed(from.email.domain(), &sender.sending) {
        return Err(Reply::owned(
            550,
            "5.7.1",
            format!(
                "From header domain `{}` is not one of this tenant's allowed sender domains",
                from.email.domain()
            ),
        ));
    }

    let idempotency = match message.header("Idempotency-Key").and_then(|v| v.as_text()) {
        None => None,
        Some(key) => {
            let key = key.trim();
            if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !key.is_ascii() {
                return Err(Reply::new(
                    550,
                    "5.6.0",
                    "Idempotency-Key must be 1 to 256 visible ASCII characters",
                ));
            }
            let mut hash = Sha256::new();
            hash.update(envelope_from.as_str());
            for rcpt in &envelope.recipients {
                hash.update(b"\0");
                hash.update(rcpt.as_str());
            }
            hash.update(b"\0");
            hash.update(&text);
            Some((key.to_owned(), hash.finalize().into()))
        }
    };

    let id = Uuid::now_v7();
    let now = OffsetDateTime::now_utc();
    let date = now.format(&Rfc2822).unwrap_or_default();
    let has_message_id = message.header(HeaderName::MessageId).is_some();
    let message_id_value = message
        .message_id()
        .map_or_else(|| message_id(&id, &from), ToOwned::to_owned);

    // Headers we drop: Bcc (never shown to recipients) and our own control header.
    let mut dropped: Vec<(usize, usize)> = message
        .headers()
        .iter()
        .filter(|h| {
            matches!(h.name, HeaderName::Bcc)
                || h.name.as_str().eq_ignore_ascii_case("Idempotency-Key")
        })
        .map(|h| (h.offset_field as usize, h.offset_end as usize))
        .collect();
    dropped.sort_unstable();

    let mut mime = Vec::with_capacity(text.len() + 512);
    mime.extend_from_slice(
        format!(
            "Received: from {} ({})\r\n\tby {} (Missive) with {} id {};\r\n\t{}\r\n",
            sanitize(&received.helo),
            received.peer,
            received.hostname,
            received.protocol,
            id,
            date
        )
        .as_bytes(),
    );
    if !has_message_id {
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
    if mime.len() > max_message_bytes {
        return Err(reply::TOO_BIG);
    }

    let listed = |address: Option<&Address<'_>>, rcpt: &EmailAddress| {
        address.is_some_and(|a| {
            a.iter().any(|addr| {
                addr.address
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(rcpt.as_str()))
            })
        })
    };
    let recipients = envelope
        .recipients
        .iter()
        .map(|rcpt| {
            let kind = if listed(message.to(), rcpt) {
                RecipientKind::To
            } else if listed(message.cc(), rcpt) {
                RecipientKind::Cc
            } else {
                RecipientKind::Bcc
            };
            (kind, rcpt.as_str().to_owned())
        })
        .collect::<Vec<_>>();
    let smtputf8 = envelope.smtputf8
        || envelope_from.needs_smtputf8()
        || recipients.iter().any(|(_, r)| !r.is_ascii());
    let html = message.html_part(0).and_then(|p| match &p.body {
        PartType::Html(html) => Some(html.to_string()),
        _ => None,
    });
    let text_body = message.text_part(0).and_then(|p| match &p.body {
        PartType::Text(text) => Some(text.to_string()),
        _ => None,
    });
    let reply_to = message
        .reply_to()
        .map(|a| {
            a.iter()
                .filter_map(|addr| addr.address.as_deref().map(ToOwned::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let email = NewEmail {
        id,
        message_id: message_id_value,
        from_address: from.to_string(),
        envelope_from: envelope_from.as_str().to_owned(),
        smtputf8,
        reply_to,
        subject: message.subject().unwrap_or_default().to_owned(),
        html,
        text: text_body,
        tags: serde_json::json!([]),
        mime,
        scheduled_at: None,
        recipients,
    };
    Ok(Prepared { email, idempotency })
}

/// The first mailbox of a From header, as our strict type.
fn first_mailbox(address: Option<&Address<'_>>) -> Option<Mailbox> {
    let addr = address?.first()?;
    let email = addr.address.as_deref()?;
    let raw = match addr.name.as_deref() {
        Some(name) if !name.trim().is_empty() => {
            format!("\"{}\" <{email}>", name.replace(['"', '\\'], ""))
        }
        _ => email.to_owned(),
    };
    Mailbox::parse(&raw).ok()
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

    #[test]
    fn bare_line_ends_become_crlf() {
        assert_eq!(normalise_line_ends(b"a\nb\rc\r\nd"), b"a\r\nb\r\nc\r\nd");
        assert_eq!(normalise_line_ends(b"\r\r\n\n"), b"\r\n\r\n\r\n");
    }

    #[test]
    fn received_protocol_names() {
        assert_eq!(protocol(false, true, true), "SMTP");
        assert_eq!(protocol(true, true, true), "ESMTPSA");
        assert_eq!(protocol(true, false, false), "ESMTP");
    }
}
