//! EHLO, HELO and STARTTLS.

use tokio::io::{AsyncRead, AsyncWrite};

use super::Listener;
use super::reply::{self, Reply};
use super::session::{Envelope, Next, Session};

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// EHLO (or HELO when `esmtp` is false): resets any transaction and lists the extensions.
    pub(super) fn ehlo(&mut self, host: &str, esmtp: bool) -> Next {
        if host.is_empty() || host.len() > 255 {
            return self.refuse(&Reply::new(
                501,
                "5.5.4",
                "Give a host name or address literal",
            ));
        }
        self.client.helo = Some(host.to_owned());
        self.client.esmtp = esmtp;
        self.envelope = Envelope::default();
        let hostname = &self.ctx.hostname;
        if !esmtp {
            self.reply(&Reply::plain(250, format!("{hostname} Hello {host}")));
            return Next::Continue;
        }
        let mut lines = vec![
            format!("{hostname} Hello {host}"),
            format!("SIZE {}", self.ctx.ingest.limits().max_message_bytes),
            "8BITMIME".to_owned(),
            "PIPELINING".to_owned(),
            "SMTPUTF8".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
            "CHUNKING".to_owned(),
        ];
        match (self.tls, self.listener) {
            // The MX takes no AUTH at all.
            (true, Listener::Mx) | (false, Listener::Submissions) => {}
            // Only under TLS: the password is an API key.
            (true, _) => lines.push("AUTH PLAIN LOGIN".to_owned()),
            (false, Listener::Submission | Listener::Mx) => lines.push("STARTTLS".to_owned()),
        }
        lines.push("HELP".to_owned());
        self.reply(&Reply::plain(250, lines.join("\n")));
        Next::Continue
    }

    pub(super) fn starttls(&mut self) -> Next {
        if self.tls {
            return self.refuse(&reply::ALREADY_TLS);
        }
        if self.client.helo.is_none() {
            return self.refuse(&reply::BAD_SEQUENCE_HELO);
        }
        self.reply(&reply::READY_FOR_TLS);
        Next::StartTls
    }
}
