//! One mail transaction on an open connection: the envelope (pipelined when the relay offers
//! it), the data, and a result for every recipient; a transaction that must not deliver is
//! abandoned cleanly so the connection can be reused.

use tokio::io::AsyncWriteExt;

use super::RecipientReply;
use super::conn::{Connection, Reply, SmtpError};

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
) -> Result<Envelope, Stage> {
    if conn.pipelining {
        conn.write_line(mail)
            .await
            .map_err(Stage::BeforeRecipients)?;
        for recipient in recipients {
            conn.write_line(&format!("RCPT TO:<{recipient}>")).await?;
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
        rcpts.push(conn.command(&format!("RCPT TO:<{recipient}>")).await?);
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

pub(super) async fn transaction(
    conn: &mut Connection,
    from: &str,
    recipients: &[String],
    smtputf8: bool,
    mime: &[u8],
    replies: &mut [Option<RecipientReply>],
) -> Result<(), Stage> {
    let mut mail = format!("MAIL FROM:<{from}>");
    if conn.eightbit {
        mail.push_str(" BODY=8BITMIME");
    }
    if smtputf8 && conn.smtputf8 {
        mail.push_str(" SMTPUTF8");
    }
    let envelope = envelope(conn, &mail, recipients).await?;
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
    fn dot_stuffing_doubles_leading_dots_only() {
        assert_eq!(
            dot_stuff(b".a\r\nb.c\r\n..d\r\n"),
            b"..a\r\nb.c\r\n...d\r\n.\r\n".to_vec()
        );
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n".to_vec());
    }
}
