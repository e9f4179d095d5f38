//! Fuzzes the SMTP session's input handling: arbitrary bytes from a client that is already
//! trusted (so MAIL, RCPT and DATA are reachable without a key), through command framing and
//! parsing, the state machine, AUTH exchanges, the DATA receiver, bare-LF normalisation, message
//! parsing and header rewriting; and, when the first byte is odd, the same bytes to the inbound
//! MX (null sender, return-path checks, report parsing). The context is built from the default
//! configuration, as `missive serve` builds it. The database is unreachable on purpose: storing
//! fails fast with 451, which is itself a path worth exercising.
//!
//! Checks: no panic, the session ends (no hang), and everything written back is well-formed
//! SMTP replies (`NNN` then space or hyphen, CRLF-terminated lines).
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use missive::edge::rate_limit::CallerRates;
use missive::edge::smtp::{Listener, Sender, Session, SmtpContext, tls};
use missive::ingest::Ingest;
use missive::tenancy::keys::KeyCache;
use missive::tenancy::templates::Templates;
use missive_core::{Domain, ProjectId, SendingPolicy, TenantId};
use missive_store::{EmailWriter, Store, WriterSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

struct Harness {
    runtime: tokio::runtime::Runtime,
    ctx: Arc<SmtpContext>,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        drop(rustls::crypto::ring::default_provider().install_default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let ctx = runtime.block_on(async {
            // Port 1 on loopback: refused at once, so every store call fails fast.
            let options: sqlx::postgres::PgConnectOptions =
                "postgres://fuzz@127.0.0.1:1/fuzz".parse().expect("url");
            let pool = sqlx::postgres::PgPoolOptions::new()
                .acquire_timeout(Duration::from_millis(5))
                .connect_lazy_with(options);
            let store = Store::from_pool(pool);
            let mut config = missive::Config::with_database_url("postgres://fuzz@127.0.0.1:1/fuzz");
            config.accept.max_message_bytes = 64 * 1024;
            config.accept.max_recipients = 5;
            config.smtp.max_errors = 20;
            config.smtp.idle_timeout_secs = Duration::from_secs(5);
            config.smtp.session_timeout_secs = Duration::from_secs(10);
            config.secrets.secret_key = Some(secrecy::SecretBox::new(Box::new([7; 32])));
            config.mx.feedback_address = Some("fbl@fuzz.localhost".to_owned());
            let (acceptor, _) = tls::acceptor(None, "fuzz.localhost").expect("tls");
            let writer = EmailWriter::start(store.clone(), WriterSettings::default());
            let domains = missive::app::startup::domains(&config, &store).expect("domains");
            let mut mx = missive::app::startup::mx(&config, &store).expect("the MX");
            mx.allow_unverified = true;
            Arc::new(SmtpContext {
                ingest: Ingest::new(
                    writer,
                    config.accept_limits(),
                    Templates::new(store.clone()),
                    domains,
                ),
                keys: KeyCache::new(store.clone()),
                hostname: "fuzz.localhost".to_owned(),
                limits: config.smtp_limits(),
                tls: acceptor,
                shutdown: CancellationToken::new(),
                force_stop: CancellationToken::new(),
                rates: Arc::default(),
                tenant_sessions: Arc::default(),
                mx: Some(Arc::new(mx)),
                store,
            })
        });
        Harness { runtime, ctx }
    })
}

fuzz_target!(|input: &[u8]| {
    let harness = harness();
    harness.runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let peer: SocketAddr = "192.0.2.1:40000".parse().expect("peer");
        let tenant_id = TenantId::new();
        let listener = if input.first().is_some_and(|b| b % 2 == 1) {
            Listener::Mx
        } else {
            Listener::Submission
        };
        let trusted = (listener == Listener::Submission).then(|| Sender {
            tenant_id,
            project_id: ProjectId::from_uuid(tenant_id.as_uuid()),
            sending: SendingPolicy {
                allowed_sender_domains: vec![Domain::parse("acme.test").expect("domain")],
                ..SendingPolicy::default()
            },
            via: "fuzz".to_owned(),
            key_id: None,
            rates: CallerRates {
                tenant: None,
                key: None,
            },
            place: None,
        });
        let session = Session::new(harness.ctx.clone(), server, peer, listener, false, trusted);
        // After STARTTLS the session hands the stream back for a TLS handshake, which is not
        // this target's subject: dropping it closes the connection as a failed handshake would.
        let task = tokio::spawn(async move { drop(session.run(true).await) });
        // The input arrives in a few writes, so framing across reads is exercised too.
        for chunk in input.chunks(input.len() / 3 + 1) {
            if client.write_all(chunk).await.is_err() {
                break;
            }
        }
        drop(client.shutdown().await);
        let mut output = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut output))
            .await
            .expect("the session ends once its input does")
            .expect("read");
        drop(
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("session task ends"),
        );
        for line in output.split_inclusive(|&b| b == b'\n') {
            assert!(line.ends_with(b"\r\n"), "reply line without CRLF: {line:?}");
            assert!(
                line.len() >= 5
                    && line[..3].iter().all(u8::is_ascii_digit)
                    && matches!(line[3], b' ' | b'-'),
                "malformed reply line: {:?}",
                String::from_utf8_lossy(line)
            );
        }
    });
});
