//! Temporary failures: deferrals and their backoff, the give-up age, unreachable relays, and leases lost by a dead worker.

use super::*;

#[tokio::test]
async fn a_deferred_recipient_is_retried_and_delivered() {
    let app = TestApp::spawn_with(|c| c.retry.base_secs = Duration::ZERO).await;
    let tenant = app.create_tenant("Acme").await;
    app.sink.answer_rcpt("slow@x.test", &[451, 451]);
    let id = app
        .send_email(
            &tenant.key,
            &json!({ "from": "a@acme.test", "to": "slow@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    let email = read_email(&app, &tenant.key, &id).await;
    assert_eq!(statuses(&email), pairs(&[("slow@x.test", "delivered")]));
    assert_eq!(email["recipients"][0]["attempts"], 3);
    assert_eq!(
        event_types(&email),
        [
            "email.queued",
            "email.sending",
            "email.deferred",
            "email.sending",
            "email.deferred",
            "email.sending",
            "email.delivered"
        ]
    );
    let deferred = email["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "email.deferred")
        .unwrap()
        .clone();
    assert_eq!(deferred["smtp_code"], 451);
}

#[tokio::test]
async fn a_deferral_waits_for_the_backoff() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    app.sink.answer_rcpt("slow@x.test", &[451]);
    let id = app
        .send_email(
            &tenant.key,
            &json!({ "from": "a@acme.test", "to": "slow@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    let email = read_email(&app, &tenant.key, &id).await;
    assert_eq!(email["last_event"], "deferred");
    let next = time::OffsetDateTime::parse(
        email["recipients"][0]["next_attempt_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let wait = next - time::OffsetDateTime::now_utc();
    assert!(
        wait > time::Duration::seconds(40) && wait < time::Duration::seconds(73),
        "first retry about a minute away: {wait}"
    );
    assert_eq!(app.worker.drain().await.unwrap(), 0, "not due yet");
}

#[tokio::test]
async fn a_temporary_failure_past_the_maximum_age_fails() {
    let app = TestApp::spawn_with(|c| c.retry.max_age_secs = Duration::ZERO).await;
    let tenant = app.create_tenant("Acme").await;
    app.sink.answer_rcpt("slow@x.test", &[451]);
    let id = app
        .send_email(
            &tenant.key,
            &json!({ "from": "a@acme.test", "to": "slow@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    let email = read_email(&app, &tenant.key, &id).await;
    assert_eq!(email["last_event"], "failed");
    let failed = email["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "email.failed")
        .unwrap()
        .clone();
    assert_eq!(failed["smtp_code"], 451);
}

#[tokio::test]
async fn an_unreachable_relay_defers_and_a_dropped_connection_is_retried() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let app = TestApp::spawn_with(|c| {
        c.relay.url = format!("smtp://127.0.0.1:{closed_port}?tls=none")
            .parse()
            .unwrap();
    })
    .await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    let id = app
        .send_email(
            &tenant.key,
            &json!({ "from": "a@acme.test", "to": "r@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    let email = read_email(&app, &tenant.key, &id).await;
    assert_deferred_because(&email, "cannot connect");
    assert_eq!(email["recipients"][0]["last_smtp_code"], Value::Null);

    // A relay that drops the connection: deferred, then delivered on the retry.
    let app = TestApp::spawn_with(|c| c.retry.base_secs = Duration::ZERO).await;
    let tenant = app.create_tenant("Acme").await;
    app.sink.drop_next_connections(1);
    let id = app
        .send_email(
            &tenant.key,
            &json!({ "from": "a@acme.test", "to": "r@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    let email = read_email(&app, &tenant.key, &id).await;
    assert_eq!(email["last_event"], "delivered");
    assert!(event_types(&email).contains(&"email.deferred".to_owned()));
    assert_eq!(app.sink.received().len(), 1);
}

#[tokio::test]
async fn a_worker_that_dies_holding_a_lease_loses_it_to_another() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let id = app
        .send_email(
            &tenant.key,
            &json!({ "from": "a@acme.test", "to": "r@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    // A worker leases the row for one second and dies without a word.
    let stale = app
        .store()
        .lease_due_deliveries(10, Duration::from_secs(1), uuid::Uuid::now_v7(), &[])
        .await
        .unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(
        app.worker.drain().await.unwrap(),
        0,
        "the lease is respected while it lasts"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        app.worker.drain().await.unwrap(),
        1,
        "an expired lease is reclaimed"
    );
    let email = read_email(&app, &tenant.key, &id).await;
    assert_eq!(email["last_event"], "delivered");
    assert_eq!(email["recipients"][0]["attempts"], 2);
    // The dead worker's late result cannot overwrite the new one.
    let late = missive_store::DeliveryResult {
        tenant_id: stale[0].tenant_id,
        email_id: stale[0].email_id,
        id: stale[0].id,
        lease_id: stale[0].lease_id,
        status: missive_core::DeliveryStatus::Bounced,
        next_attempt_at: None,
        smtp_code: Some(550),
        smtp_response: "late".into(),
        bounce: Some(missive_core::outcome::BounceClass::Hard),
        route: missive_core::Route::Shared,
        route_host: "late".into(),
    };
    assert_eq!(
        app.store()
            .record_delivery_results(&[late], missive_store::SoftBounceRule::default())
            .await
            .unwrap(),
        0
    );
    assert_eq!(email_status(&app, &tenant.key, &id).await, "delivered");
}
