//! Typed SMTP replies: a code, an enhanced status code (RFC 3463) and text, written in the
//! multi-line form when the text has several lines. Every refusal the session makes is one of
//! these, so the wire format lives in one place.

use std::borrow::Cow;

use missive_core::QuotaPeriod;

use crate::ingest::Refusal;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// `None` only for the greeting, EHLO and the AUTH challenges, which carry none.
    pub status: Option<&'static str>,
    pub text: Cow<'static, str>,
}

impl Reply {
    #[must_use]
    pub const fn new(code: u16, status: &'static str, text: &'static str) -> Self {
        Self {
            code,
            status: Some(status),
            text: Cow::Borrowed(text),
        }
    }

    #[must_use]
    pub fn owned(code: u16, status: &'static str, text: String) -> Self {
        Self {
            code,
            status: Some(status),
            text: Cow::Owned(text),
        }
    }

    /// A reply without an enhanced status code.
    #[must_use]
    pub fn plain(code: u16, text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            status: None,
            text: text.into(),
        }
    }

    /// Whether it refuses (4xx or 5xx), which counts toward the session's error limit.
    #[must_use]
    pub const fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// Appends the reply in wire form. Control characters in the text become spaces, so a
    /// value echoed from the client can never end a line early.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let lines: Vec<&str> = self.text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{sep}", self.code).as_bytes());
            if let Some(status) = self.status {
                out.extend_from_slice(status.as_bytes());
                out.push(b' ');
            }
            out.extend(
                line.trim_end_matches('\r')
                    .bytes()
                    .map(|b| if b.is_ascii_control() { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
    }
}

pub const OK: Reply = Reply::new(250, "2.0.0", "OK");
pub const BYE: Reply = Reply::new(221, "2.0.0", "Bye");
pub const START_DATA: Reply = Reply::plain_const(354, "Start mail input; end with <CRLF>.<CRLF>");
pub const READY_FOR_TLS: Reply = Reply::new(220, "2.0.0", "Ready to start TLS");
pub const AUTH_OK: Reply = Reply::new(235, "2.7.0", "Authentication succeeded");
pub const VRFY: Reply = Reply::new(
    252,
    "2.5.0",
    "Cannot verify the user, but will accept the message and attempt delivery",
);
pub const HELP: Reply = Reply::new(
    214,
    "2.0.0",
    "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT",
);

pub const SHUTTING_DOWN: Reply = Reply::new(421, "4.3.2", "Service shutting down, try again later");
pub const IDLE_TIMEOUT: Reply = Reply::new(421, "4.4.2", "Idle for too long, closing");
pub const SESSION_TIMEOUT: Reply = Reply::new(421, "4.4.2", "Session lasted too long, closing");
pub const TOO_MANY_ERRORS: Reply = Reply::new(421, "4.7.0", "Too many errors, closing");
pub const TOO_MANY_CONNECTIONS: Reply = Reply::new(
    421,
    "4.7.0",
    "Too many connections from your address, try again later",
);
pub const TOO_MANY_TENANT_SESSIONS: Reply = Reply::new(
    421,
    "4.7.0",
    "Too many open sessions for this account, try again later",
);
pub const SERVER_BUSY: Reply = Reply::new(421, "4.3.2", "Too many connections, try again later");
pub const TEMPORARY_FAILURE: Reply = Reply::new(
    451,
    "4.3.0",
    "Temporary failure, the message was not queued; try again",
);
pub const TOO_MANY_RECIPIENTS: Reply = Reply::new(452, "4.5.3", "Too many recipients");

pub const LINE_TOO_LONG: Reply = Reply::new(500, "5.5.2", "Line too long (512 octets at most)");
pub const UNKNOWN_COMMAND: Reply = Reply::new(500, "5.5.1", "Command not recognized");
pub const TEXT_LINE_TOO_LONG: Reply = Reply::new(
    500,
    "5.6.0",
    "A line of the message is longer than 998 octets; the message was not queued",
);
pub const NOT_IMPLEMENTED: Reply = Reply::new(502, "5.5.1", "Command not implemented");
pub const BAD_SEQUENCE_HELO: Reply = Reply::new(503, "5.5.1", "Send EHLO or HELO first");
pub const BAD_SEQUENCE_MAIL: Reply = Reply::new(503, "5.5.1", "Send MAIL FROM first");
pub const BAD_SEQUENCE_NESTED_MAIL: Reply = Reply::new(
    503,
    "5.5.1",
    "A transaction is already open; send RSET first",
);
pub const BAD_SEQUENCE_RCPT: Reply = Reply::new(503, "5.5.1", "Send RCPT TO first");
pub const BAD_SEQUENCE_BDAT: Reply = Reply::new(
    503,
    "5.5.1",
    "The message is being sent with BDAT; end it with BDAT LAST, or send RSET",
);
pub const ALREADY_AUTHENTICATED: Reply = Reply::new(503, "5.5.1", "Already authenticated");
pub const ALREADY_TLS: Reply = Reply::new(503, "5.5.1", "TLS is already active");
pub const AUTH_IN_TRANSACTION: Reply = Reply::new(
    503,
    "5.5.1",
    "AUTH is not allowed during a mail transaction",
);
pub const MECHANISM_UNSUPPORTED: Reply =
    Reply::new(504, "5.5.4", "Unsupported mechanism; use PLAIN or LOGIN");
pub const AUTH_REQUIRED: Reply = Reply::new(530, "5.7.0", "Authentication required");
pub const AUTH_CANCELLED: Reply = Reply::new(501, "5.0.0", "Authentication cancelled");
pub const AUTH_MALFORMED: Reply = Reply::new(501, "5.5.2", "Cannot decode the credentials");
pub const AUTH_FAILED: Reply = Reply::new(535, "5.7.8", "Authentication credentials invalid");
pub const AUTH_NEEDS_SEND_SCOPE: Reply =
    Reply::new(535, "5.7.8", "The API key lacks the `send` scope");
pub const ENCRYPTION_REQUIRED: Reply = Reply::new(
    538,
    "5.7.11",
    "Encryption required for requested authentication mechanism",
);
pub const TOO_BIG: Reply = Reply::new(552, "5.3.4", "Message size exceeds the limit");
pub const NEEDS_SMTPUTF8: Reply = Reply::new(
    553,
    "5.6.7",
    "Non-ASCII addresses need the SMTPUTF8 parameter",
);
pub const NULL_SENDER: Reply = Reply::new(
    553,
    "5.1.7",
    "Submission needs a sender address; the null sender <> is not accepted",
);

pub const IDEMPOTENCY_CONFLICT: Reply = Reply::new(
    554,
    "5.6.0",
    "Idempotency-Key was already used for another message",
);

/// A transaction over the account's request rate limit.
#[must_use]
pub fn rate_limited(wait_secs: u64) -> Reply {
    Reply::owned(
        451,
        "4.7.1",
        format!("Rate limit exceeded, try again in {wait_secs} s"),
    )
}

/// A message the tenant's sending quota has no room for: temporary, as the quota resets.
#[must_use]
pub fn over_quota(period: QuotaPeriod) -> Reply {
    Reply::owned(
        452,
        "4.3.1",
        format!("The {period} sending quota of this account is used up, try again later"),
    )
}

/// The reply refusing a message that broke one of the accept path's rules.
#[must_use]
pub fn refused(refusal: &Refusal) -> Reply {
    match refusal {
        Refusal::TooLarge { .. } => TOO_BIG,
        Refusal::TooManyRecipients { .. } => TOO_MANY_RECIPIENTS,
        Refusal::LineTooLong => TEXT_LINE_TOO_LONG,
        Refusal::SenderNotAllowed { .. } | Refusal::DomainNotVerified { .. } => {
            Reply::owned(550, "5.7.1", refusal.to_string())
        }
        Refusal::Invalid(_) | Refusal::IdempotencyKey(_) | Refusal::Template(_) => {
            Reply::owned(550, "5.6.0", refusal.to_string())
        }
    }
}

impl Reply {
    const fn plain_const(code: u16, text: &'static str) -> Self {
        Self {
            code,
            status: None,
            text: Cow::Borrowed(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: &Reply) -> String {
        let mut out = Vec::new();
        reply.write_to(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn single_and_multi_line_forms() {
        assert_eq!(wire(&OK), "250 2.0.0 OK\r\n");
        assert_eq!(
            wire(&Reply::plain(250, "a\nb\nc")),
            "250-a\r\n250-b\r\n250 c\r\n"
        );
        assert_eq!(
            wire(&START_DATA),
            "354 Start mail input; end with <CRLF>.<CRLF>\r\n"
        );
    }

    #[test]
    fn control_characters_in_text_cannot_break_the_line() {
        let reply = Reply::owned(550, "5.1.1", "bad <a\rb\u{7f}>".to_owned());
        assert_eq!(wire(&reply), "550 5.1.1 bad <a b >\r\n");
    }
}
