//! BDAT (CHUNKING, RFC 3030): message text sent in counted chunks instead of after DATA.
//!
//! A chunk is read by its length and never scanned for an end marker, so nothing inside it can
//! end the message early or be taken for a command. A refused BDAT (no transaction, or over the
//! size limit) still has its chunk read and dropped before the refusal is sent, as the RFC asks:
//! the client may have pipelined the chunk right behind the command. The chunks of a
//! transaction are kept in its [`Envelope`](super::session::Envelope), so RSET and EHLO drop them;
//! `BDAT ... LAST` hands the whole text to the same checks and queueing as DATA.

use tokio::io::{AsyncRead, AsyncWrite};

use super::reply::{self, Reply};
use super::session::{Envelope, Next, Session, State};
use crate::ingest::policy;

/// A chunk being read.
#[derive(Debug)]
pub struct ChunkState {
    /// Octets of the chunk still to read.
    pub remaining: usize,
    /// `BDAT <size> LAST`: the message is complete after this chunk.
    pub last: bool,
    /// Set when the command was refused: the chunk is read and dropped, then this is sent.
    pub refusal: Option<Reply>,
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(super) fn bdat(&mut self, size: usize, last: bool) -> Next {
        let received = self.envelope.chunks.as_ref().map_or(0, Vec::len);
        let refusal = if !self.envelope.started {
            Some(reply::BAD_SEQUENCE_MAIL)
        } else if self.envelope.recipients.is_empty() {
            Some(reply::BAD_SEQUENCE_RCPT)
        } else if policy::check_size(received.saturating_add(size), self.ctx.ingest.limits())
            .is_err()
        {
            Some(reply::TOO_BIG)
        } else {
            None
        };
        if refusal.is_none() {
            // Grown as the octets arrive, not reserved: the size is only the client's word.
            self.envelope.chunks.get_or_insert_with(Vec::new);
        }
        self.state = State::Chunk(ChunkState {
            remaining: size,
            last,
            refusal,
        });
        Next::Continue
    }

    /// Takes buffered input into the chunk being read; `None` until the chunk is complete.
    pub(super) async fn receive_chunk(&mut self) -> Option<Next> {
        let State::Chunk(chunk) = &mut self.state else {
            return Some(Next::Continue);
        };
        let take = chunk.remaining.min(self.input.len() - self.pos);
        if chunk.refusal.is_none()
            && let Some(chunks) = self.envelope.chunks.as_mut()
        {
            chunks.extend_from_slice(&self.input[self.pos..self.pos + take]);
        }
        self.pos += take;
        chunk.remaining -= take;
        if chunk.remaining > 0 {
            return None;
        }
        let State::Chunk(chunk) = std::mem::replace(&mut self.state, State::Command) else {
            return Some(Next::Continue);
        };
        if let Some(refusal) = chunk.refusal {
            // A message over the limit, or a refused chunk of one already under way, fails the
            // transaction: the client must not send the rest (RFC 3030 section 4).
            if refusal == reply::TOO_BIG || self.envelope.chunks.is_some() {
                self.envelope = Envelope::default();
            }
            return Some(self.refuse(&refusal));
        }
        if !chunk.last {
            let octets = self.envelope.chunks.as_ref().map_or(0, Vec::len);
            self.reply(&Reply::owned(
                250,
                "2.0.0",
                format!("{octets} octets received"),
            ));
            return Some(Next::Continue);
        }
        let mut envelope = std::mem::take(&mut self.envelope);
        let text = envelope.chunks.take().unwrap_or_default();
        Some(self.queue(envelope, text).await)
    }
}
