//! The MX listener's own stages: MAIL (the null reverse path welcome, as bounces use it), RCPT
//! (only what [`crate::edge::mx::Mx::recipient`] takes; `550 5.1.1` for anything else, so the
//! MX never relays; a receiving domain is looked up in the database) and the end of the message
//! text, handed to [`crate::edge::mx::Mx`].

use missive_core::EmailAddress;
use smtp_proto::{MAIL_SMTPUTF8, MailFrom, RcptTo};
use tokio::io::{AsyncRead, AsyncWrite};

use super::reply::{self, Reply};
use super::session::{Envelope, Next, Session};
use crate::edge::mx::{Inbound, Peer, UNKNOWN_RECIPIENT};
use crate::ingest::policy;

/// Recipients of one report: a report concerns one email; a few more are tolerated.
const MAX_INBOUND_RECIPIENTS: usize = 10;

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(super) fn inbound_mail(&mut self, from: &MailFrom<std::borrow::Cow<'_, str>>) -> Next {
        if self.client.helo.is_none() {
            return self.refuse(&reply::BAD_SEQUENCE_HELO);
        }
        if self.envelope.started {
            return self.refuse(&reply::BAD_SEQUENCE_NESTED_MAIL);
        }
        if policy::check_size(from.size, self.ctx.ingest.limits()).is_err() {
            return self.refuse(&reply::TOO_BIG);
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        let address = if from.address.is_empty() {
            None
        } else {
            match EmailAddress::parse(&from.address) {
                Ok(address) => Some(address),
                Err(err) => {
                    return self.refuse(&Reply::owned(
                        501,
                        "5.1.7",
                        format!("Bad sender address: {err}"),
                    ));
                }
            }
        };
        self.envelope = Envelope {
            mail_from: address,
            started: true,
            smtputf8,
            ..Envelope::default()
        };
        self.reply(&Reply::new(250, "2.1.0", "Sender OK"));
        Next::Continue
    }

    pub(super) async fn inbound_rcpt(&mut self, to: &RcptTo<std::borrow::Cow<'_, str>>) -> Next {
        if !self.envelope.started {
            return self.refuse(&reply::BAD_SEQUENCE_MAIL);
        }
        let Some(mx) = self.ctx.mx.clone() else {
            return self.refuse(&UNKNOWN_RECIPIENT);
        };
        let Ok(address) = EmailAddress::parse(&to.address) else {
            return self.refuse(&UNKNOWN_RECIPIENT);
        };
        let inbound = match mx.recipient(&address).await {
            Ok(Some(inbound)) => inbound,
            Ok(None) => {
                tracing::info!(peer = %self.peer, "MX recipient refused");
                return self.refuse(&UNKNOWN_RECIPIENT);
            }
            Err(err) => {
                tracing::error!(error = %err, "MX recipient not looked up");
                self.reply(&reply::TEMPORARY_FAILURE);
                return Next::Continue;
            }
        };
        if self.envelope.recipients.len() >= MAX_INBOUND_RECIPIENTS {
            self.reply(&reply::TOO_MANY_RECIPIENTS);
            return Next::Continue;
        }
        self.envelope.inbound.push(inbound);
        self.envelope.recipients.push(address);
        self.reply(&Reply::new(250, "2.1.5", "Recipient OK"));
        Next::Continue
    }

    /// Reads and records a complete message; answers only after the commit.
    pub(super) async fn inbound_receive(&mut self, envelope: Envelope, text: Vec<u8>) -> Next {
        let Some(mx) = self.ctx.mx.clone() else {
            return self.refuse(&UNKNOWN_RECIPIENT);
        };
        let recipients: Vec<(Inbound, EmailAddress)> = envelope
            .inbound
            .iter()
            .copied()
            .zip(envelope.recipients)
            .collect();
        let peer = Peer {
            ip: self.peer.ip(),
            helo: self.client.helo.as_deref().unwrap_or_default(),
        };
        let reply = mx
            .receive(&recipients, envelope.mail_from.as_ref(), peer, text)
            .await;
        if reply.is_error() {
            return self.refuse(&reply);
        }
        self.reply(&reply);
        Next::Continue
    }
}
