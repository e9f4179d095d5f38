//! One mail transaction on an open connection: the envelope (pipelined when the relay offers
//! it), the data, and a result for every recipient; a transaction that must not deliver is
//! abandoned cleanly so the connection can be reused.

use tokio::io::AsyncWriteExt;

use super::conn::{Connection, Reply, SmtpError};
use super::{Envelope as Sending, RecipientReply};

/// Where a transaction broke, to know whether a retry on a fresh connection is safe.
#[derive(Debug)]
pub(super) enum Stage {
    BeforeRecipients(SmtpError),
    Later(SmtpError),
}

impl Stage {
    pub(super) fn into_error(self) -> SmtpError {
        match self {
            Self::BeforeRecipients(e) | Self::Later(e) => e,
        }
    }
}

impl From<SmtpError> for Stage {
    fn from(err: SmtpError) -> Self {
        Self::Later(err)
    }
}

/// Doubles leading dots (RFC 5321 section 4.5.2) and ends the data with CRLF.CRLF.
pub(super) fn dot_stuff(mime: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(mime.len() + 64);
    let mut at_line_start = true;
    for &byte in mime {
        if at_line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        at_line_start = byte == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The relay's answers to MAIL, RCPT and DATA.
struct Envelope {
    mail: Reply,
    /// One per recipient; empty when MAIL was refused and nothing more was sent.
    rcpts: Vec<Reply>,
    /// `None` when DATA was not sent because no recipient was accepted.
    data: Option<Reply>,
}

/// Sends the envelope: in one write when the relay pipelines, command by command otherwise.
async fn envelope(
    conn: &mut Connection,
    mail: &str,
    recipients: &[String],
    notify: Option<&str>,
) -> Result<Envelope, Stage> {
    let rcpt = |recipient: &String| rcpt_command(recipient, notify);
    if conn.pipelining {
        conn.write_line(mail)
            .await
            .map_err(Stage::BeforeRecipients)?;
        for recipient in recipients {
            conn.write_line(&rcpt(recipient)).await?;
        }
        conn.write_line("DATA").await?;
        conn.stream.flush().await.map_err(SmtpError::from)?;
        let mail = conn.read_reply().await.map_err(Stage::BeforeRecipients)?;
        let mut rcpts = Vec::with_capacity(recipients.len());
        for _ in recipients {
            rcpts.push(conn.read_reply().await?);
        }
        let data = Some(conn.read_reply().await?);
        return Ok(Envelope { mail, rcpts, data });
    }
    let mail = conn.command(mail).await.map_err(Stage::BeforeRecipients)?;
    if !mail.is_positive() {
        return Ok(Envelope {
            mail,
            rcpts: Vec::new(),
            data: None,
        });
    }
    let mut rcpts = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        rcpts.push(conn.command(&rcpt(recipient)).await?);
    }
    let data = if rcpts.iter().any(Reply::is_positive) {
        Some(conn.command("DATA").await?)
    } else {
        None
    };
    Ok(Envelope { mail, rcpts, data })
}

/// Ends a transaction that must not deliver: a relay that said 354 anyway gets an empty
/// message ended at once (it has no accepted recipient to send it to), then RSET.
async fn abandon(conn: &mut Connection, data: Option<&Reply>) -> Result<(), SmtpError> {
    if data.is_some_and(|d| d.code == 354) {
        conn.stream.write_all(b".\r\n").await?;
        conn.stream.flush().await?;
        conn.read_reply().await?;
    }
    conn.command("RSET").await?;
    Ok(())
}

/// `RCPT TO`, with the DSN parameters when asked: `ORCPT` carries the address as sent, so a
/// report names it even after the next hop rewrote it (an address that is not plain ASCII goes
/// without: RFC 6533's type for it is not widely read).
fn rcpt_command(recipient: &str, notify: Option<&str>) -> String {
    match notify {
        Some(notify) if recipient.is_ascii() => {
            format!(
                "RCPT TO:<{recipient}> NOTIFY={notify} ORCPT=rfc822;{}",
                xtext(recipient)
            )
        }
        Some(notify) => format!("RCPT TO:<{recipient}> NOTIFY={notify}"),
        None => format!("RCPT TO:<{recipient}>"),
    }
}

/// RFC 3461 xtext: `+`, `=`, controls, space and non-ASCII as `+XX`.
fn xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if (33..=126).contains(&byte) && byte != b'+' && byte != b'=' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("+{byte:02X}"));
        }
    }
    out
}

pub(super) async fn transaction(
    conn: &mut Connection,
    sending: &Sending<'_>,
    recipients: &[String],
    mime: &[u8],
    replies: &mut [Option<RecipientReply>],
) -> Result<(), Stage> {
    let mut mail = format!("MAIL FROM:<{}>", sending.from);
    if conn.eightbit {
        mail.push_str(" BODY=8BITMIME");
    }
    if sending.smtputf8 && conn.smtputf8 {
        mail.push_str(" SMTPUTF8");
    }
    let dsn = sending.dsn.filter(|_| conn.dsn);
    if let Some(dsn) = dsn {
        mail.push_str(" RET=HDRS ENVID=");
        mail.push_str(&xtext(dsn.envelope_id));
    }
    let notify = dsn.map(|d| {
        if d.success {
            "SUCCESS,FAILURE,DELAY"
        } else {
            "FAILURE,DELAY"
        }
    });
    let envelope = envelope(conn, &mail, recipients, notify).await?;
    if !envelope.mail.is_positive() {
        // The sender was refused: that answer decides every recipient.
        for reply in replies.iter_mut() {
            *reply = Some(RecipientReply::Reply(envelope.mail.clone()));
        }
        abandon(conn, envelope.data.as_ref()).await?;
        return Ok(());
    }
    let mut accepted = Vec::new();
    for (index, reply) in envelope.rcpts.into_iter().enumerate() {
        if reply.is_positive() {
            accepted.push(index);
        } else {
            replies[index] = Some(RecipientReply::Reply(reply));
        }
    }
    match envelope.data {
        Some(data) if data.code == 354 && !accepted.is_empty() => {}
        data => {
            if let Some(data) = data.as_ref().filter(|d| d.code != 354) {
                for &index in &accepted {
                    replies[index] = Some(RecipientReply::Reply(data.clone()));
                }
            }
            abandon(conn, data.as_ref()).await?;
            return Ok(());
        }
    }
    conn.stream
        .write_all(&dot_stuff(mime))
        .await
        .map_err(SmtpError::from)?;
    conn.stream.flush().await.map_err(SmtpError::from)?;
    let done = conn.read_reply().await?;
    for &index in &accepted {
        replies[index] = Some(RecipientReply::Reply(done.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_parameters_carry_the_address_as_xtext() {
        assert_eq!(
            rcpt_command("a+b=c@x.test", Some("FAILURE,DELAY")),
            "RCPT TO:<a+b=c@x.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;a+2Bb+3Dc@x.test"
        );
        assert_eq!(rcpt_command("a@x.test", None), "RCPT TO:<a@x.test>");
        assert_eq!(
            rcpt_command("ü@x.test", Some("FAILURE")),
            "RCPT TO:<ü@x.test> NOTIFY=FAILURE"
        );
    }

    #[test]
    fn dot_stuffing_doubles_leading_dots_only() {
        assert_eq!(
            dot_stuff(b".a\r\nb.c\r\n..d\r\n"),
            b"..a\r\nb.c\r\n...d\r\n.\r\n".to_vec()
        );
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n".to_vec());
    }
}
