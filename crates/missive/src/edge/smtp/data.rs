//! DATA: receiving the message text, and handing the complete message to the one accept path.
//!
//! The text ends only at CRLF.CRLF (smtp-proto's receiver), so `\n.\n`, `\n.\r\n`, `\r.\r\n` or
//! `\r\n.\n` inside a message never end it early: one DATA is one message. What happens to the
//! text then (line ends, checks, header rewriting) is the accept path's (`crate::ingest::raw`),
//! the same for DATA and BDAT. `250 2.0.0 Queued as <id>` is written only after the commit.

use smtp_proto::request::receiver::DataReceiver;
use tokio::io::{AsyncRead, AsyncWrite};

use super::Listener;
use super::reply::{self, Reply};
use super::session::{DataState, Envelope, Next, Session, State};
use crate::ingest::{Accepted, IngestError, Input, RawEnvelope, RawMessage, Trace, policy};

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(super) fn data(&mut self) -> Next {
        if !self.envelope.started {
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
        if policy::check_size(data.message.len(), self.ctx.ingest.limits()).is_err() {
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

    /// Stores and answers one complete message.
    pub(super) async fn queue(&mut self, envelope: Envelope, text: Vec<u8>) -> Next {
        if self.listener == Listener::Mx {
            return self.inbound_receive(envelope, text).await;
        }
        let Some(sender) = self.client.sender().cloned() else {
            return self.refuse(&reply::AUTH_REQUIRED);
        };
        let Some(mail_from) = envelope.mail_from else {
            return self.refuse(&reply::BAD_SEQUENCE_MAIL);
        };
        let message = RawMessage {
            envelope: RawEnvelope {
                mail_from,
                recipients: envelope.recipients,
                smtputf8: envelope.smtputf8,
            },
            text,
            trace: Trace {
                helo: self.client.helo.clone().unwrap_or_default(),
                peer: self.peer.ip().to_string(),
                hostname: self.ctx.hostname.clone(),
                protocol: protocol(
                    self.client.esmtp,
                    self.tls,
                    self.client.authenticated.is_some(),
                ),
            },
        };
        let tenant_id = sender.tenant_id;
        let outcome = self
            .ctx
            .ingest
            .accept(sender.project(), &sender.sending, Input::Raw(message))
            .await;
        match outcome {
            Ok(Accepted { ids, replayed }) => {
                let id = ids.first().map(ToString::to_string).unwrap_or_default();
                if !replayed {
                    tracing::info!(%tenant_id, email_id = %id, via = %sender.via, "SMTP message queued");
                }
                self.reply(&Reply::owned(250, "2.0.0", format!("Queued as {id}")));
                Next::Continue
            }
            Err(IngestError::Refused { refusal, .. }) => self.refuse(&reply::refused(&refusal)),
            Err(IngestError::IdempotencyConflict) => self.refuse(&reply::IDEMPOTENCY_CONFLICT),
            Err(IngestError::OverQuota(period)) => self.refuse(&reply::over_quota(period)),
            Err(IngestError::Signing(err)) => {
                tracing::error!(%tenant_id, error = %err, "SMTP message not signed, not stored");
                self.reply(&reply::TEMPORARY_FAILURE);
                Next::Continue
            }
            Err(IngestError::Store(err)) => {
                tracing::error!(%tenant_id, error = %err, "SMTP message not stored");
                self.reply(&reply::TEMPORARY_FAILURE);
                Next::Continue
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_protocol_names() {
        assert_eq!(protocol(false, true, true), "SMTP");
        assert_eq!(protocol(true, true, true), "ESMTPSA");
        assert_eq!(protocol(true, false, false), "ESMTP");
    }
}
