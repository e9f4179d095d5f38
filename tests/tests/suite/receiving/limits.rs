//! A tenant's inbound caps and counts: past its messages per day the MX answers `452 4.2.2`,
//! past its stored bytes `552 5.2.2`, each refusal storing nothing; a message over
//! `MISSIVE_MAX_MESSAGE_BYTES` is refused at DATA; usage counts what was received.

use missive_tests::{Auth, TestApp};

use super::{INVOICE, receiving_app, receiving_domain};
use crate::reports::transaction;

async fn send(app: &TestApp, message: &str) -> missive_tests::SmtpReply {
    let (rcpts, done) = transaction(
        app.mx_addr,
        "ann@sender.test",
        &["support@acme.test"],
        message,
    )
    .await;
    assert_eq!(rcpts[0].code, 250, "{}", rcpts[0].text());
    done.expect("a reply to the message")
}

async fn stored(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM received_emails")
        .fetch_one(app.store().pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_tenant_past_its_daily_cap_gets_452_and_usage_counts_what_it_received() {
    let (_dns, app) = receiving_app(|c| c.mx.received_per_day = 2).await;
    let acme = app.create_tenant("Acme").await;
    receiving_domain(&app, &acme, "acme.test").await;
    for _ in 0..2 {
        assert_eq!(send(&app, INVOICE).await.code, 250);
    }
    let over = send(&app, INVOICE).await;
    assert_eq!(over.code, 452, "{}", over.text());
    assert!(over.text().contains("4.2.2"), "{}", over.text());
    assert_eq!(stored(&app).await, 2);

    let usage = app.get("/v1/usage", Auth::Key(&acme.key)).await;
    let usage = usage.expect(200);
    assert_eq!(usage["today"]["received"], 2, "{usage}");
    assert_eq!(
        usage["today"]["received_bytes"],
        2 * INVOICE.len(),
        "{usage}"
    );
    assert_eq!(usage["month"]["received"], 2);
    // Resend's own field says the same.
    assert_eq!(usage["emails"]["daily"]["received"], 2);
    assert_eq!(usage["emails"]["monthly"]["received"], 2);
}

#[tokio::test]
async fn a_tenant_past_its_stored_bytes_gets_552_and_too_big_a_message_is_refused_at_data() {
    let (_dns, app) = receiving_app(|c| {
        c.mx.received_stored_bytes = (INVOICE.len() * 3 / 2) as u64;
        c.accept.max_message_bytes = 4096;
    })
    .await;
    let acme = app.create_tenant("Acme").await;
    receiving_domain(&app, &acme, "acme.test").await;
    assert_eq!(send(&app, INVOICE).await.code, 250);
    let full = send(&app, INVOICE).await;
    assert_eq!(full.code, 552, "{}", full.text());
    assert!(full.text().contains("5.2.2"), "{}", full.text());
    assert_eq!(stored(&app).await, 1);

    let big = format!(
        "From: a@sender.test\r\nTo: support@acme.test\r\nSubject: big\r\n\r\n{}\r\n",
        "x".repeat(70).repeat(80).as_str()
    );
    let refused = send(&app, &big).await;
    assert_eq!(refused.code, 552, "{}", refused.text());
    assert!(refused.text().contains("5.3.4"), "{}", refused.text());
    assert_eq!(stored(&app).await, 1);
}

#[tokio::test]
async fn the_admin_sets_a_tenants_own_caps_and_null_returns_them_to_the_operators() {
    let (_dns, app) = receiving_app(|c| c.mx.received_per_day = 100).await;
    let acme = app.create_tenant("Acme").await;
    receiving_domain(&app, &acme, "acme.test").await;
    let path = format!("/v1/tenants/{}", acme.id);
    let set = serde_json::json!({ "receiving": { "per_day": 1, "stored_bytes": 1_000_000 } });
    let patched = app.patch(&path, Auth::Admin, &set).await;
    assert_eq!(
        patched.expect(200)["receiving"],
        serde_json::json!({ "per_day": 1, "stored_bytes": 1_000_000 })
    );
    assert_eq!(send(&app, INVOICE).await.code, 250);
    assert_eq!(send(&app, INVOICE).await.code, 452);

    let reset = serde_json::json!({ "receiving": { "per_day": null } });
    let patched = app.patch(&path, Auth::Admin, &reset).await;
    assert_eq!(
        patched.expect(200)["receiving"],
        serde_json::json!({ "per_day": null, "stored_bytes": 1_000_000 })
    );
    assert_eq!(send(&app, INVOICE).await.code, 250);
    let bad = serde_json::json!({ "receiving": { "per_day": -1 } });
    app.patch(&path, Auth::Admin, &bad)
        .await
        .expect_error(422, "validation_error");
}
