//! An SMTP sink on real TCP for delivery tests: it records what it receives and can be told to
//! answer each recipient with a sequence of codes (one per attempt), or to drop connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message as the sink received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message with dot-stuffing undone.
    pub data: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    received: Vec<Received>,
    /// Per recipient: codes for its next RCPT commands; 250 once exhausted.
    rcpt_codes: HashMap<String, Vec<u16>>,
    drop_connections: usize,
    connections: usize,
}

/// A running sink; stops when dropped with its runtime.
#[derive(Debug, Clone)]
pub struct SmtpSink {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

fn reply_text(code: u16) -> String {
    match code {
        200..=299 => format!("{code} 2.1.5 ok"),
        400..=499 => format!("{code} 4.3.0 try again later"),
        _ => format!("{code} 5.1.1 no such user"),
    }
}

impl SmtpSink {
    /// Binds a port on loopback and serves in the background.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let addr = listener.local_addr().expect("sink addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                let drop_it = {
                    let mut s = state.lock().unwrap();
                    s.connections += 1;
                    if s.drop_connections > 0 {
                        s.drop_connections -= 1;
                        true
                    } else {
                        false
                    }
                };
                if drop_it {
                    drop(stream);
                    continue;
                }
                tokio::spawn(async move {
                    drop(session(stream, state).await);
                });
            }
        });
        Self { addr, state }
    }

    /// The relay URL that points Missive here.
    #[must_use]
    pub fn relay_url(&self) -> String {
        format!("smtp://{}?tls=none", self.addr)
    }

    /// Answers `recipient`'s next RCPT commands with `codes`, then 250.
    pub fn answer_rcpt(&self, recipient: &str, codes: &[u16]) {
        self.state
            .lock()
            .unwrap()
            .rcpt_codes
            .insert(recipient.to_owned(), codes.to_vec());
    }

    /// Closes the next `n` connections right after accepting them.
    pub fn drop_next_connections(&self, n: usize) {
        self.state.lock().unwrap().drop_connections = n;
    }

    /// Everything received so far.
    #[must_use]
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Connections accepted so far.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }
}

async fn session(stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut mail_from = String::new();
    let mut rcpt_to: Vec<String> = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            "250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING".to_owned()
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            "250 ok".to_owned()
        } else if upper.starts_with("MAIL FROM:") {
            mail_from = address(&command);
            rcpt_to.clear();
            "250 2.1.0 ok".to_owned()
        } else if upper.starts_with("RCPT TO:") {
            let recipient = address(&command);
            let code = {
                let mut s = state.lock().unwrap();
                match s.rcpt_codes.get_mut(&recipient) {
                    Some(codes) if !codes.is_empty() => codes.remove(0),
                    _ => 250,
                }
            };
            if (200..300).contains(&code) {
                rcpt_to.push(recipient);
            }
            reply_text(code)
        } else if upper == "DATA" {
            if rcpt_to.is_empty() {
                "554 5.5.1 no valid recipients".to_owned()
            } else {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut data = Vec::new();
                loop {
                    let mut raw = Vec::new();
                    if reader.read_until(b'\n', &mut raw).await? == 0 {
                        return Ok(());
                    }
                    if raw == b".\r\n" {
                        break;
                    }
                    let unstuffed = if raw.starts_with(b"..") {
                        &raw[1..]
                    } else {
                        &raw[..]
                    };
                    data.extend_from_slice(unstuffed);
                }
                state.lock().unwrap().received.push(Received {
                    mail_from: mail_from.clone(),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                });
                "250 2.0.0 queued as sink".to_owned()
            }
        } else if upper == "RSET" {
            rcpt_to.clear();
            "250 ok".to_owned()
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 not implemented".to_owned()
        };
        write.write_all(reply.as_bytes()).await?;
        write.write_all(b"\r\n").await?;
    }
}

fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..]
        .find('>')
        .map_or(command.len(), |i| start + i);
    command[start..end].to_owned()
}
