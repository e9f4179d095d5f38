//! RCPT TO: recipients of the open transaction, within the accept path's per-message limit.

use missive_core::EmailAddress;
use smtp_proto::RcptTo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::reply::{self, Reply};
use super::session::{Next, Session};
use crate::ingest::policy;

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(super) fn rcpt(&mut self, to: &RcptTo<std::borrow::Cow<'_, str>>) -> Next {
        if !self.envelope.started {
            return self.refuse(&reply::BAD_SEQUENCE_MAIL);
        }
        let address = match EmailAddress::parse(&to.address) {
            Ok(address) => address,
            Err(err) => {
                return self.refuse(&Reply::owned(
                    501,
                    "5.1.3",
                    format!("Bad recipient address: {err}"),
                ));
            }
        };
        if address.needs_smtputf8() && !self.envelope.smtputf8 {
            return self.refuse(&reply::NEEDS_SMTPUTF8);
        }
        if self
            .envelope
            .recipients
            .iter()
            .any(|r| r.same_recipient(&address))
        {
            // The same recipient twice gets one copy.
            self.reply(&Reply::new(250, "2.1.5", "Recipient OK (duplicate)"));
            return Next::Continue;
        }
        let count = self.envelope.recipients.len() + 1;
        if let Err(refusal) = policy::check_recipients(count, self.ctx.ingest.limits()) {
            // 452 is temporary: the client sends the rest in another transaction.
            self.reply(&reply::refused(&refusal));
            return Next::Continue;
        }
        self.envelope.recipients.push(address);
        self.reply(&Reply::new(250, "2.1.5", "Recipient OK"));
        Next::Continue
    }
}
