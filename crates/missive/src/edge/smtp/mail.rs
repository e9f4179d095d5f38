//! MAIL FROM: who may open a transaction, and with which sender (the accept path's sender rule,
//! applied early).

use missive_core::EmailAddress;
use smtp_proto::{MAIL_SMTPUTF8, MailFrom};
use tokio::io::{AsyncRead, AsyncWrite};

use super::reply::{self, Reply};
use super::session::{Next, Session};
use crate::ingest::{policy, with_verified_domains};
use crate::tenancy::domains::TenantKeys;

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(super) fn mail(
        &mut self,
        from: &MailFrom<std::borrow::Cow<'_, str>>,
        keys: Option<&TenantKeys>,
    ) -> Next {
        if self.client.helo.is_none() {
            return self.refuse(&reply::BAD_SEQUENCE_HELO);
        }
        // Never an open relay: only an authenticated client or a trusted network submits.
        let Some(sender) = self.client.sender() else {
            return self.refuse(&reply::AUTH_REQUIRED);
        };
        if self.envelope.started {
            return self.refuse(&reply::BAD_SEQUENCE_NESTED_MAIL);
        }
        // Each transaction is a request against the tenant's (and key's) rate limit.
        if let Err(state) = self
            .ctx
            .rates
            .check(sender.project(), sender.key_id, sender.rates)
        {
            metrics::counter!("missive_rate_limited_total", "protocol" => "smtp").increment(1);
            return self.refuse(&reply::rate_limited(state.reset_secs()));
        }
        if from.address.is_empty() {
            return self.refuse(&reply::NULL_SENDER);
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        let address = match EmailAddress::parse(&from.address) {
            Ok(address) => address,
            Err(err) => {
                return self.refuse(&Reply::owned(
                    501,
                    "5.1.7",
                    format!("Bad sender address: {err}"),
                ));
            }
        };
        if address.needs_smtputf8() && !smtputf8 {
            return self.refuse(&reply::NEEDS_SMTPUTF8);
        }
        // The client's word for the size, checked against the same limit as the final message.
        if policy::check_size(from.size, self.ctx.ingest.limits()).is_err() {
            return self.refuse(&reply::TOO_BIG);
        }
        // The accept path checks it again; refusing here spares the client sending the text.
        // The tenant's verified domains are allowed senders too. Without them at hand (a
        // database failure) the rule runs without them, and a missing verification is left to
        // the accept path.
        let checked = match keys {
            Some(keys) => policy::check_sender(
                &with_verified_domains(&sender.sending, keys),
                "MAIL FROM",
                &address,
            ),
            None => match policy::check_sender(&sender.sending, "MAIL FROM", &address) {
                Err(policy::Refusal::DomainNotVerified { .. }) => Ok(()),
                other => other,
            },
        };
        if let Err(refusal) = checked {
            return self.refuse(&reply::refused(&refusal));
        }
        if !self.hold_tenant_place() {
            return Next::Close;
        }
        self.envelope.mail_from = Some(address);
        self.envelope.started = true;
        self.envelope.smtputf8 = smtputf8;
        self.reply(&Reply::new(250, "2.1.0", "Sender OK"));
        Next::Continue
    }
}
