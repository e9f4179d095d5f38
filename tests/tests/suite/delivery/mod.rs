//! The delivery worker against a real SMTP sink over TCP: delivered, per-recipient refusals,
//! deferral and retry, giving up, unreachable relays, lease expiry, scheduling, capture.

use std::time::Duration;

use mail_parser::MimeHeaders as _;
use missive_tests::{Auth, TestApp};
use serde_json::{Value, json};

mod relay_tls;
mod retries;

async fn read_email(app: &TestApp, key: &str, id: &str) -> Value {
    app.get(&format!("/v1/emails/{id}"), Auth::Key(key))
        .await
        .expect(200)
        .clone()
}

fn statuses(email: &Value) -> Vec<(String, String)> {
    email["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["email"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn event_types(email: &Value) -> Vec<String> {
    email["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[tokio::test]
async fn an_email_is_delivered_with_bcc_only_in_the_envelope() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let id = app
        .send_email(
            &tenant.key,
            &json!({
                "from": "Acme <news@acme.test>", "to": ["a@x.test", "b@x.test"], "cc": "c@x.test",
                "bcc": "secret@x.test", "subject": "Hi", "text": "Hello\r\n.leading dot line"
            }),
        )
        .await;
    assert_eq!(app.worker.drain().await.unwrap(), 4);

    let received = app.sink.received();
    assert_eq!(received.len(), 1, "one SMTP transaction for all recipients");
    let message = &received[0];
    assert_eq!(message.mail_from, "news@acme.test");
    assert_eq!(
        message.rcpt_to,
        ["a@x.test", "b@x.test", "c@x.test", "secret@x.test"]
    );
    let text = String::from_utf8_lossy(&message.data);
    assert!(
        !text
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("bcc:"))
            && !text.contains("secret@x.test"),
        "{text}"
    );
    assert!(
        text.contains("\r\n.leading dot line"),
        "dot-stuffing undone by the sink: {text}"
    );

    let email = read_email(&app, &tenant.key, &id).await;
    assert_eq!(email["last_event"], "delivered");
    assert!(email["recipients"].as_array().unwrap().iter().all(|r| {
        r["status"] == "delivered"
            && r["attempts"] == 1
            && r["last_smtp_code"] == 250
            && r["last_smtp_response"]
                .as_str()
                .unwrap()
                .contains("queued as sink")
    }));
    let delivered: Vec<&Value> = email["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "email.delivered")
        .collect();
    assert_eq!(delivered.len(), 4);
    assert!(delivered.iter().all(|e| e["smtp_code"] == 250));
    assert_eq!(app.worker.drain().await.unwrap(), 0, "nothing left to do");
}

#[tokio::test]
async fn attachments_arrive_byte_identical() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    app.send_email(
        &tenant.key,
        &json!({ "from": "a@acme.test", "to": "r@x.test", "subject": "f", "text": "see attached",
                 "html": "<img src=\"cid:logo\">",
                 "attachments": [
                     { "filename": "blob.bin", "content": bytes },
                     { "filename": "logo.png", "content": [137, 80, 78, 71], "content_type": "image/png",
                       "content_id": "logo" }
                 ] }),
    )
    .await;
    app.worker.drain().await.unwrap();
    let received = app.sink.received();
    let parsed = mail_parser::MessageParser::default()
        .parse(&received[0].data)
        .unwrap();
    let attachment = parsed
        .attachments()
        .find(|a| a.attachment_name() == Some("blob.bin"))
        .unwrap();
    assert_eq!(attachment.contents(), bytes.as_slice());
    // The inline image sits beside the html in multipart/related, found by its Content-ID.
    let logo = parsed
        .parts
        .iter()
        .find(|p| p.content_id() == Some("logo"))
        .unwrap();
    assert_eq!(logo.contents(), [137, 80, 78, 71]);
    let text = String::from_utf8_lossy(&received[0].data);
    assert!(text.contains("multipart/related"), "{text}");
}

#[tokio::test]
async fn one_refused_recipient_does_not_fail_the_others() {
    one_refused_recipient(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn a_relay_without_pipelining_gets_one_command_at_a_time() {
    let options = missive_tests::SinkOptions {
        no_pipelining: true,
        ..Default::default()
    };
    let app = TestApp::spawn_with_sink(options, |_, _| {}).await;
    one_refused_recipient(&app).await;
    // Every recipient refused: no DATA is sent, and the connection stays usable.
    app.sink.answer_rcpt("x@x.test", &[550]);
    app.sink.answer_rcpt("y@x.test", &[550]);
    let tenant = app.create_tenant("Other").await;
    let id = app
        .send_email(
            &tenant.key,
            &json!({ "from": "a@acme.test", "to": ["x@x.test", "y@x.test"], "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    let email = read_email(&app, &tenant.key, &id).await;
    assert_eq!(
        statuses(&email),
        pairs(&[("x@x.test", "bounced"), ("y@x.test", "bounced")])
    );
    assert_eq!(app.sink.received().len(), 1);
    assert_eq!(app.sink.unoffered_pipelining(), 0);
}

#[tokio::test]
async fn a_pipelining_relay_refusing_every_recipient_gets_no_message() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    app.sink.answer_rcpt("x@x.test", &[550]);
    app.sink.answer_rcpt("y@x.test", &[451]);
    let id = app
        .send_email(
            &tenant.key,
            &json!({ "from": "a@acme.test", "to": ["x@x.test", "y@x.test"], "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    let email = read_email(&app, &tenant.key, &id).await;
    assert_eq!(
        statuses(&email),
        pairs(&[("x@x.test", "bounced"), ("y@x.test", "deferred")])
    );
    assert!(app.sink.received().is_empty());
    // The connection survived the refused transaction and carries the next one.
    deliver_one_more(&app, &tenant.key).await;
    assert_eq!(app.sink.connections(), 1);
}

async fn deliver_one_more(app: &TestApp, key: &str) {
    let id = app
        .send_email(
            key,
            &json!({ "from": "a@acme.test", "to": "z@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    assert_eq!(email_status(app, key, &id).await, "delivered");
}

async fn one_refused_recipient(app: &TestApp) {
    let tenant = app.create_tenant("Acme").await;
    app.sink.answer_rcpt("gone@x.test", &[550]);
    let id = app.send_email(&tenant.key, &json!({ "from": "a@acme.test", "to": ["ok@x.test", "gone@x.test", "ok2@x.test"], "subject": "s", "text": "t" })).await;
    app.worker.drain().await.unwrap();
    let email = read_email(app, &tenant.key, &id).await;
    assert_eq!(
        statuses(&email),
        pairs(&[
            ("ok@x.test", "delivered"),
            ("gone@x.test", "bounced"),
            ("ok2@x.test", "delivered")
        ])
    );
    let gone = email["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["email"] == "gone@x.test")
        .unwrap()
        .clone();
    assert_eq!(gone["last_smtp_code"], 550);
    assert!(
        gone["last_smtp_response"]
            .as_str()
            .unwrap()
            .contains("5.1.1")
    );
    assert_eq!(email["last_event"], "bounced");
    assert_eq!(app.sink.received()[0].rcpt_to, ["ok@x.test", "ok2@x.test"]);
}

async fn email_status(app: &TestApp, key: &str, id: &str) -> String {
    read_email(app, key, id).await["last_event"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn scheduled_emails_wait_for_their_time_and_canceled_ones_never_go() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let body = json!({ "from": "a@acme.test", "to": "r@x.test", "subject": "s", "text": "t", "scheduled_at": later });
    let kept = app.send_email(&tenant.key, &body).await;
    let canceled = app.send_email(&tenant.key, &body).await;
    app.post(
        &format!("/v1/emails/{canceled}/cancel"),
        Auth::Key(&tenant.key),
        &json!({}),
    )
    .await
    .expect(200);
    assert_eq!(app.worker.drain().await.unwrap(), 0);
    assert!(app.sink.received().is_empty());
    // Move the clock: make both due now.
    app.execute_sql("UPDATE deliveries SET next_attempt_at = now() - interval '1 second'")
        .await;
    assert_eq!(
        app.worker.drain().await.unwrap(),
        1,
        "only the kept email is sent"
    );
    assert_eq!(email_status(&app, &tenant.key, &kept).await, "delivered");
    assert_eq!(email_status(&app, &tenant.key, &canceled).await, "canceled");
    app.post(
        &format!("/v1/emails/{kept}/cancel"),
        Auth::Key(&tenant.key),
        &json!({}),
    )
    .await
    .expect_error(409, "conflict");
}

#[tokio::test]
async fn a_running_worker_wakes_on_notify_without_polling() {
    let app =
        TestApp::spawn_with(|c| c.delivery.poll_interval_ms = Duration::from_secs(3600)).await;
    let tenant = app.create_tenant("Acme").await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(app.worker.clone().run(shutdown.clone()));
    // Let the worker start listening and go to sleep on an empty queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.send_email(
        &tenant.key,
        &json!({ "from": "a@acme.test", "to": "r@x.test", "subject": "s", "text": "t" }),
    )
    .await;
    let started = std::time::Instant::now();
    while app.sink.received().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the worker was not woken"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    worker.await.unwrap();
}

#[tokio::test]
async fn connections_to_the_relay_are_reused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    for i in 0..5 {
        app.send_email(&tenant.key, &json!({ "from": "a@acme.test", "to": format!("r{i}@x.test"), "subject": "s", "text": "t" })).await;
        app.worker.drain().await.unwrap();
    }
    assert_eq!(app.sink.received().len(), 5);
    assert_eq!(
        app.sink.connections(),
        1,
        "one connection carried every message"
    );
}

#[tokio::test]
async fn the_capture_relay_writes_each_message_with_its_envelope() {
    let dir = std::env::temp_dir().join(format!("missive-capture-{}", uuid::Uuid::new_v4()));
    let relay = format!("capture:{}", dir.display());
    let app = TestApp::spawn_with(|c| c.relay.url = relay.parse().unwrap()).await;
    let tenant = app.create_tenant("Acme").await;
    let id = app.send_email(&tenant.key, &json!({ "from": "a@acme.test", "to": "r@x.test", "bcc": "b@x.test", "subject": "s", "text": "t" })).await;
    app.worker.drain().await.unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].starts_with(&id) && files[0].ends_with(".eml"));
    let envelope: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(&files[1])).unwrap()).unwrap();
    assert_eq!(envelope["rcpt_to"], json!(["r@x.test", "b@x.test"]));
    assert_eq!(envelope["mail_from"], "a@acme.test");
    assert_eq!(email_status(&app, &tenant.key, &id).await, "delivered");
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn leasing_takes_tenants_in_turn_so_a_backlog_cannot_starve_others() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let noisy = app.create_tenant("Noisy").await;
    let quiet = app.create_tenant("Quiet").await;
    for n in 0..30 {
        app.send_email(
            &noisy.key,
            &json!({ "from": "a@noisy.test", "to": format!("r{n}@x.test"), "subject": "s", "text": "t" }),
        )
        .await;
    }
    // Queued last, it would wait behind the whole backlog in arrival order.
    app.send_email(
        &quiet.key,
        &json!({ "from": "a@quiet.test", "to": "q@x.test", "subject": "s", "text": "t" }),
    )
    .await;
    let leased = app
        .store()
        .lease_due_deliveries(
            4,
            std::time::Duration::from_secs(60),
            uuid::Uuid::now_v7(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(leased.len(), 4);
    let quiet_id: missive_core::TenantId = quiet.id.parse().unwrap();
    assert_eq!(
        leased.iter().filter(|d| d.tenant_id == quiet_id).count(),
        1,
        "the quiet tenant's email is in the first lease"
    );
    // Within a tenant, oldest first.
    let mut noisy_recipients: Vec<&str> = leased
        .iter()
        .filter(|d| d.tenant_id != quiet_id)
        .map(|d| d.recipient.as_str())
        .collect();
    noisy_recipients.sort_unstable();
    assert_eq!(noisy_recipients, ["r0@x.test", "r1@x.test", "r2@x.test"]);
    // The rest is delivered; the four leased here wait for their lease to run out.
    app.worker.drain().await.unwrap();
    assert_eq!(app.sink.received().len(), 31 - 4);
}

/// Asserts the single recipient was deferred with a reply or failure mentioning `reason`.
#[track_caller]
fn assert_deferred_because(email: &Value, reason: &str) {
    assert_eq!(email["last_event"], "deferred", "{email}");
    let response = email["recipients"][0]["last_smtp_response"]
        .as_str()
        .unwrap_or_default();
    assert!(response.contains(reason), "expected {reason:?} in {email}");
}
