//! SMTP submission: protocol tests over an in-memory stream (the application's own session code,
//! with any client address), and end-to-end tests over TCP with real clients.

use missive::edge::smtp::Listener;
use missive_tests::{Auth, SmtpClient, TestApp, plain, queued_id, run_python_script, test_python};
use serde_json::json;

mod data;

const MESSAGE: &str =
    "From: Sender <me@acme.test>\r\nTo: you@x.test\r\nSubject: Hi\r\n\r\nHello over SMTP\r\n";

async fn client(app: &TestApp) -> SmtpClient {
    SmtpClient::in_memory(app.smtp.clone(), "192.0.2.10", Listener::Submission)
}

/// Emails stored for any tenant.
async fn stored_emails(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM emails")
        .fetch_one(app.store().pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn ehlo_offers_starttls_before_tls_and_auth_only_after() {
    let app = TestApp::spawn().await;
    let mut smtp = client(&app).await;
    let greeting = smtp.expect(220).await;
    assert!(greeting.text().contains("ESMTP"), "{greeting:?}");
    let ehlo = smtp.cmd("EHLO client.test", 250).await.lines;
    for ext in [
        "PIPELINING",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "STARTTLS",
    ] {
        assert!(ehlo.iter().any(|l| l == ext), "{ext} missing from {ehlo:?}");
    }
    assert!(ehlo.iter().any(|l| l.starts_with("SIZE ")), "{ehlo:?}");
    assert!(!ehlo.iter().any(|l| l.starts_with("AUTH")), "{ehlo:?}");
    let refused = smtp.cmd(&format!("AUTH PLAIN {}", plain("x")), 538).await;
    assert!(refused.text().starts_with("5.7.11"), "{refused:?}");
    let mut smtp = smtp.starttls().await;
    let ehlo = smtp.cmd("EHLO client.test", 250).await.lines;
    assert!(ehlo.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{ehlo:?}");
    assert!(!ehlo.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    smtp.cmd("STARTTLS", 503).await;
    smtp.cmd("NOOP", 250).await;
    smtp.cmd("VRFY someone", 252).await;
    smtp.cmd("HELP", 214).await;
    smtp.cmd("RSET", 250).await;
    smtp.cmd("QUIT", 221).await;
    assert!(smtp.closed().await);
}

#[tokio::test]
async fn mail_without_auth_is_refused_never_an_open_relay() {
    let app = TestApp::spawn().await;
    let mut smtp = client(&app).await;
    smtp.expect(220).await;
    smtp.cmd("MAIL FROM:<me@acme.test>", 503).await;
    smtp.cmd("EHLO client.test", 250).await;
    let refused = smtp.cmd("MAIL FROM:<me@acme.test>", 530).await;
    assert!(refused.text().starts_with("5.7.0"), "{refused:?}");
    smtp.cmd("RCPT TO:<you@x.test>", 503).await;
    smtp.cmd("DATA", 503).await;
    assert_eq!(stored_emails(&app).await, 0);
}

#[tokio::test]
async fn an_authenticated_message_is_queued_with_the_rest_id_and_cleaned_headers() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let mut smtp = client(&app).await.authenticated(&tenant.key).await;
    let message = "From: Sender <me@acme.test>\r\nTo: you@x.test\r\nCc: cc@x.test\r\nBcc: hidden@x.test\r\nSubject: Hi there\r\n\r\nHello over SMTP\r\n";
    let reply = smtp
        .send_mail(
            "me@acme.test",
            &["you@x.test", "cc@x.test", "hidden@x.test"],
            message,
        )
        .await;
    let id = queued_id(&reply);

    let response = app
        .get(&format!("/v1/emails/{id}"), Auth::Key(&tenant.key))
        .await;
    let email = response.expect(200);
    assert_eq!(email["id"], id.as_str());
    assert_eq!(email["tenant_id"], tenant.id.as_str());
    assert_eq!(email["subject"], "Hi there");
    assert_eq!(email["text"], "Hello over SMTP\r\n");
    assert_eq!(email["last_event"], "queued");

    app.worker.drain().await.unwrap();
    let received = app.sink.received();
    assert_eq!(received.len(), 1);
    let delivered = &received[0];
    let mut rcpts = delivered.rcpt_to.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["cc@x.test", "hidden@x.test", "you@x.test"]);
    let data = String::from_utf8_lossy(&delivered.data);
    assert!(
        data.starts_with("Received: from client.test (192.0.2.10)"),
        "{data}"
    );
    assert!(data.contains("with ESMTPSA id"), "{data}");
    assert!(
        !data
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
        "{data}"
    );
    assert!(!data.contains("hidden@x.test"), "{data}");
    assert!(data.contains("\r\nMessage-ID: <"), "{data}");
    assert!(data.contains("\r\nDate: "), "{data}");
    assert!(data.contains("Hello over SMTP"), "{data}");
}

#[tokio::test]
async fn auth_login_works_and_bad_or_unscoped_keys_are_refused() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    let (reader, _) = app.create_key(&tenant.id, "reader", &["emails:read"]).await;
    let mut smtp = client(&app).await;
    smtp.expect(220).await;
    smtp.cmd("EHLO client.test", 250).await;
    let mut smtp = smtp.starttls().await;
    smtp.cmd("EHLO client.test", 250).await;
    let bad = smtp
        .cmd(&format!("AUTH PLAIN {}", plain("ms_not_a_key")), 535)
        .await;
    assert!(bad.text().starts_with("5.7.8"), "{bad:?}");
    smtp.cmd(&format!("AUTH PLAIN {}", plain(&reader)), 535)
        .await;
    smtp.cmd("AUTH PLAIN", 334).await;
    smtp.cmd("*", 501).await;
    smtp.cmd("AUTH CRAM-MD5", 504).await;
    smtp.cmd("AUTH LOGIN", 334).await;
    smtp.cmd(&b64("anyone"), 334).await;
    smtp.cmd(&b64(&tenant.key), 235).await;
    smtp.cmd(&format!("AUTH PLAIN {}", plain(&tenant.key)), 503)
        .await;
    let reply = smtp
        .send_mail("me@acme.test", &["you@x.test"], MESSAGE)
        .await;
    assert!(!queued_id(&reply).is_empty());
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn refusals_carry_precise_codes() {
    let app = TestApp::spawn_with(|config| {
        config.smtp.max_errors = 50;
        config.accept.max_recipients = 2;
        config.accept.max_message_bytes = 4096;
    })
    .await;
    let tenant = app.create_tenant("Acme").await;
    app.patch(
        &format!("/v1/tenants/{}", tenant.id),
        Auth::Admin,
        &json!({ "settings": { "allowed_sender_domains": ["acme.test"] } }),
    )
    .await
    .expect(200);
    let mut smtp = client(&app).await.authenticated(&tenant.key).await;

    let outside = smtp.cmd("MAIL FROM:<me@evil.test>", 550).await;
    assert!(outside.text().starts_with("5.7.1"), "{outside:?}");
    let big = smtp.cmd("MAIL FROM:<me@acme.test> SIZE=999999", 552).await;
    assert!(big.text().starts_with("5.3.4"), "{big:?}");
    smtp.cmd("MAIL FROM:<>", 553).await;
    smtp.cmd("MAIL FROM:<me@acme.test>", 250).await;
    smtp.cmd("MAIL FROM:<me@acme.test>", 503).await;
    smtp.cmd("RCPT TO:<not an address>", 501).await;
    smtp.cmd("RCPT TO:<a@x.test>", 250).await;
    smtp.cmd("RCPT TO:<b@x.test>", 250).await;
    let many = smtp.cmd("RCPT TO:<c@x.test>", 452).await;
    assert!(many.text().starts_with("4.5.3"), "{many:?}");
    smtp.cmd("RCPT TO:<üser@x.test>", 553).await;
    // The message text over the limit is read to its end, then refused.
    smtp.cmd("DATA", 354).await;
    let body = "x".repeat(900);
    let mut text = String::from("From: me@acme.test\r\nTo: a@x.test\r\n\r\n");
    for _ in 0..10 {
        text.push_str(&body);
        text.push_str("\r\n");
    }
    smtp.send(text.as_bytes()).await;
    smtp.send(b".\r\n").await;
    let too_big = smtp.expect(552).await;
    assert!(too_big.text().starts_with("5.3.4"), "{too_big:?}");
    // A text line over 998 octets.
    smtp.cmd("MAIL FROM:<me@acme.test>", 250).await;
    smtp.cmd("RCPT TO:<a@x.test>", 250).await;
    smtp.cmd("DATA", 354).await;
    smtp.send(format!("From: me@acme.test\r\n\r\n{}\r\n.\r\n", "y".repeat(1200)).as_bytes())
        .await;
    smtp.expect(500).await;
    // A From header outside the allowed domains.
    let reply = smtp
        .send_mail(
            "me@acme.test",
            &["a@x.test"],
            "From: me@evil.test\r\n\r\nhi\r\n",
        )
        .await;
    assert_eq!(reply.code, 550, "{reply:?}");
    assert!(reply.text().starts_with("5.7.1"), "{reply:?}");
    // A command line over 512 octets.
    smtp.cmd(&format!("NOOP {}", "z".repeat(600)), 500).await;
    smtp.cmd("NOOP", 250).await;
    assert_eq!(stored_emails(&app).await, 0);
}

#[tokio::test]
async fn too_many_errors_close_the_session_with_421() {
    let app = TestApp::spawn_with(|config| config.smtp.max_errors = 3).await;
    let mut smtp = client(&app).await;
    smtp.expect(220).await;
    smtp.cmd("BOGUS", 500).await;
    smtp.cmd("BOGUS", 500).await;
    smtp.send(b"BOGUS\r\n").await;
    smtp.expect(500).await;
    let closing = smtp.expect(421).await;
    assert!(closing.text().starts_with("4.7.0"), "{closing:?}");
    assert!(smtp.closed().await);
}

#[tokio::test]
async fn an_idle_client_is_closed_with_421() {
    let app = TestApp::spawn_with(|config| {
        config.smtp.idle_timeout_secs = std::time::Duration::from_millis(300);
    })
    .await;
    let mut smtp = client(&app).await;
    smtp.expect(220).await;
    let reply = smtp.expect(421).await;
    assert!(reply.text().starts_with("4.4.2"), "{reply:?}");
    assert!(smtp.closed().await);
}

#[tokio::test]
async fn a_trusted_network_submits_without_auth_and_others_are_refused() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Appliances").await;
    let other = app.create_tenant("Other").await;
    let response = app
        .patch(
            &format!("/v1/tenants/{}", tenant.id),
            Auth::Admin,
            &json!({ "settings": { "trusted_networks": ["10.9.0.0/16", "192.0.2.77"] } }),
        )
        .await;
    let set = response.expect(200);
    assert_eq!(
        set["settings"]["trusted_networks"],
        json!(["10.9.0.0/16", "192.0.2.77/32"])
    );
    // A network belongs to one tenant: an overlapping one is refused.
    app.patch(
        &format!("/v1/tenants/{}", other.id),
        Auth::Admin,
        &json!({ "settings": { "trusted_networks": ["10.9.8.0/24"] } }),
    )
    .await
    .expect(409);
    app.patch(
        &format!("/v1/tenants/{}", other.id),
        Auth::Admin,
        &json!({ "settings": { "trusted_networks": ["10.1.2.3/8"] } }),
    )
    .await
    .expect(422);

    let mut trusted = SmtpClient::in_memory(app.smtp.clone(), "10.9.4.5", Listener::Submission);
    trusted.expect(220).await;
    trusted.cmd("HELO printer", 250).await;
    let id = queued_id(
        &trusted
            .send_mail("scanner@acme.test", &["you@x.test"], MESSAGE)
            .await,
    );
    let response = app
        .get(&format!("/v1/emails/{id}"), Auth::Key(&tenant.key))
        .await;
    let email = response.expect(200);
    assert_eq!(email["tenant_id"], tenant.id.as_str());
    app.get(&format!("/v1/emails/{id}"), Auth::Key(&other.key))
        .await
        .expect(404);

    let mut stranger = SmtpClient::in_memory(app.smtp.clone(), "10.10.0.1", Listener::Submission);
    stranger.expect(220).await;
    stranger.cmd("HELO printer", 250).await;
    stranger.cmd("MAIL FROM:<scanner@acme.test>", 530).await;
    assert_eq!(stored_emails(&app).await, 1);

    // Lookups are cached; a change through the API applies to the next connection at once...
    app.patch(
        &format!("/v1/tenants/{}", tenant.id),
        Auth::Admin,
        &json!({ "settings": { "trusted_networks": ["192.0.2.77"] } }),
    )
    .await
    .expect(200);
    assert!(!mail_allowed(&app, "10.9.4.5").await);
    assert!(mail_allowed(&app, "192.0.2.77").await);
    // ...and one made elsewhere (here: plain SQL) arrives by notification.
    app.execute_sql("DELETE FROM trusted_networks").await;
    let started = std::time::Instant::now();
    while mail_allowed(&app, "192.0.2.77").await {
        assert!(
            started.elapsed().as_secs() < 5,
            "the change never reached the cache"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Whether a fresh connection from `peer` may open a transaction without AUTH.
async fn mail_allowed(app: &TestApp, peer: &str) -> bool {
    let mut smtp = SmtpClient::in_memory(app.smtp.clone(), peer, Listener::Submission);
    smtp.expect(220).await;
    smtp.cmd("HELO printer", 250).await;
    smtp.send(b"MAIL FROM:<scanner@acme.test>\r\n").await;
    smtp.read_reply().await.expect("a reply").code == 250
}

#[tokio::test]
async fn idempotency_key_header_is_honoured_as_over_rest() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let mut smtp = client(&app).await.authenticated(&tenant.key).await;
    let message =
        "From: me@acme.test\r\nIdempotency-Key: order-42\r\nSubject: once\r\n\r\nbody\r\n";
    let first = queued_id(
        &smtp
            .send_mail("me@acme.test", &["you@x.test"], message)
            .await,
    );
    let again = queued_id(
        &smtp
            .send_mail("me@acme.test", &["you@x.test"], message)
            .await,
    );
    assert_eq!(first, again);
    let other = smtp
        .send_mail(
            "me@acme.test",
            &["you@x.test"],
            "From: me@acme.test\r\nIdempotency-Key: order-42\r\n\r\nother\r\n",
        )
        .await;
    assert_eq!(other.code, 554, "{other:?}");
    assert_eq!(stored_emails(&app).await, 1);
    app.worker.drain().await.unwrap();
    let data = String::from_utf8_lossy(&app.sink.received()[0].data).into_owned();
    assert!(!data.contains("Idempotency-Key"), "{data}");
}

#[tokio::test]
async fn per_address_connection_cap_refuses_extra_connections_while_serving_others() {
    let app = TestApp::spawn_with(|config| config.smtp.max_connections_per_ip = 2).await;
    let mut first = SmtpClient::connect(app.smtp_addr).await;
    first.expect(220).await;
    let mut second = SmtpClient::connect(app.smtp_addr).await;
    second.expect(220).await;
    let mut third = SmtpClient::connect(app.smtp_addr).await;
    let refused = third.expect(421).await;
    assert!(refused.text().starts_with("4.7.0"), "{refused:?}");
    first.cmd("EHLO a.test", 250).await;
    second.cmd("NOOP", 250).await;
    first.cmd("QUIT", 221).await;
    assert!(first.closed().await);
    // A slot freed: a new connection is served again.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut fourth = SmtpClient::connect(app.smtp_addr).await;
    fourth.expect(220).await;
}

#[tokio::test]
async fn shutdown_lets_an_open_transaction_finish_and_closes_idle_sessions() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    let mut busy = SmtpClient::connect(app.smtp_addr)
        .await
        .authenticated(&tenant.key)
        .await;
    busy.cmd("MAIL FROM:<me@acme.test>", 250).await;
    busy.cmd("RCPT TO:<you@x.test>", 250).await;
    let mut idle = SmtpClient::connect(app.smtp_addr).await;
    idle.expect(220).await;
    idle.cmd("EHLO idle.test", 250).await;

    app.begin_shutdown();
    let bye = idle.expect(421).await;
    assert!(bye.text().starts_with("4.3.2"), "{bye:?}");
    // New connections are no longer accepted.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(app.smtp_addr).await.is_err());

    busy.cmd("DATA", 354).await;
    busy.send(format!("{MESSAGE}.\r\n").as_bytes()).await;
    let id = queued_id(&busy.expect(250).await);
    busy.expect(421).await;
    // The app closed its pool on the way out: look with a connection of our own.
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM emails WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn python_smtplib_submits_over_starttls_and_implicit_tls() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    // Standard library only, so any python3 will do outside `make test`.
    let python = test_python().unwrap_or_else(|| "python3".to_owned());
    run_python_script(
        &python,
        "smtplib_submit.py",
        &[
            ("SMTP_PORT", app.smtp_addr.port().to_string()),
            ("SMTPS_PORT", app.smtps_addr.port().to_string()),
            ("SMTP_KEY", tenant.key.clone()),
        ],
    )
    .await;
    app.worker.drain().await.unwrap();
    let received = app.sink.received();
    assert_eq!(received.len(), 2, "{received:?}");
    let starttls = received
        .iter()
        .find(|m| m.rcpt_to.contains(&"plain@x.test".to_owned()))
        .unwrap();
    let mut rcpts = starttls.rcpt_to.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["hidden@x.test", "plain@x.test"]);
    let data = String::from_utf8_lossy(&starttls.data);
    assert!(data.contains("Subject: via STARTTLS"), "{data}");
    assert!(!data.contains("hidden@x.test"), "Bcc leaked: {data}");
    let implicit = received
        .iter()
        .find(|m| m.rcpt_to == ["tls@x.test"])
        .unwrap();
    assert!(String::from_utf8_lossy(&implicit.data).contains("Subject: via implicit TLS"));
}

#[tokio::test]
async fn lettre_submits_with_starttls_and_auth() {
    use lettre::transport::smtp::authentication::{Credentials, Mechanism};
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let tls = TlsParameters::builder("localhost".to_owned())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .unwrap();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(app.smtp_addr.port())
        .tls(Tls::Required(tls))
        .credentials(Credentials::new("lettre".to_owned(), tenant.key.clone()))
        .authentication(vec![Mechanism::Plain])
        .build();
    let message = Message::builder()
        .from("Lettre <me@acme.test>".parse().unwrap())
        .to("to@x.test".parse().unwrap())
        .bcc("secret@x.test".parse().unwrap())
        .subject("via lettre")
        .body("Hello from lettre".to_owned())
        .unwrap();
    let response = transport.send(message).await.unwrap();
    let text: Vec<&str> = response.message().collect();
    let id = text[0]
        .strip_prefix("2.0.0 Queued as ")
        .expect("queued reply");
    let fetched = app
        .get(&format!("/v1/emails/{id}"), Auth::Key(&tenant.key))
        .await;
    assert_eq!(fetched.expect(200)["subject"], "via lettre");

    app.worker.drain().await.unwrap();
    let received = app.sink.received();
    assert_eq!(received.len(), 1);
    let mut rcpts = received[0].rcpt_to.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["secret@x.test", "to@x.test"]);
    assert!(!String::from_utf8_lossy(&received[0].data).contains("secret@x.test"));
}
