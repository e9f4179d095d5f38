//! Reaching the relay: STARTTLS with AUTH, implicit TLS, and the failures that defer rather than lose mail.

use super::*;

async fn deliver_one(app: &TestApp) -> Value {
    let tenant = app.create_tenant("Acme").await;
    let id = app
        .send_email(
            &tenant.key,
            &json!({ "from": "a@acme.test", "to": "r@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    read_email(app, &tenant.key, &id).await
}

#[tokio::test]
async fn the_relay_is_reached_over_starttls_with_auth() {
    let options = missive_tests::SinkOptions {
        starttls: true,
        auth: Some(("relay-user".into(), "relay pass:word".into())),
        ..Default::default()
    };
    let app = TestApp::spawn_with_sink(options, |config, sink| {
        let url = format!(
            "smtp://relay-user:relay%20pass%3Aword@{}?tls=starttls",
            sink.addr
        );
        config.relay.url = url.parse().unwrap();
        config.relay.ca_file = Some(sink.write_ca_file());
    })
    .await;
    let email = deliver_one(&app).await;
    assert_eq!(email["last_event"], "delivered", "{email}");
    let received = app.sink.received();
    assert!(received[0].tls, "the message went over TLS");
    assert_eq!(received[0].auth_user.as_deref(), Some("relay-user"));
}

#[tokio::test]
async fn the_relay_is_reached_over_implicit_tls() {
    let options = missive_tests::SinkOptions {
        implicit_tls: true,
        ..Default::default()
    };
    let app = TestApp::spawn_with_sink(options, |config, sink| {
        config.relay.url = format!("smtp://{}?tls=tls", sink.addr).parse().unwrap();
        config.relay.ca_file = Some(sink.write_ca_file());
    })
    .await;
    let email = deliver_one(&app).await;
    assert_eq!(email["last_event"], "delivered", "{email}");
    assert!(app.sink.received()[0].tls);
}

#[tokio::test]
async fn an_untrusted_certificate_or_missing_starttls_defers() {
    // The sink's CA is not trusted: the handshake fails and the delivery is deferred.
    let options = missive_tests::SinkOptions {
        starttls: true,
        ..Default::default()
    };
    let app = TestApp::spawn_with_sink(options, |config, sink| {
        config.relay.url = format!("smtp://{}?tls=starttls", sink.addr)
            .parse()
            .unwrap();
    })
    .await;
    app.expect_unsent_mail();
    let email = deliver_one(&app).await;
    assert_deferred_because(&email, "TLS");
    assert!(app.sink.received().is_empty());

    // A relay without STARTTLS is never used in clear when starttls was asked for.
    let app = TestApp::spawn_with_sink(missive_tests::SinkOptions::default(), |config, sink| {
        config.relay.url = format!("smtp://{}?tls=starttls", sink.addr)
            .parse()
            .unwrap();
    })
    .await;
    app.expect_unsent_mail();
    let email = deliver_one(&app).await;
    assert_deferred_because(&email, "STARTTLS");
    assert!(app.sink.received().is_empty());
}

#[tokio::test]
async fn wrong_relay_credentials_defer_rather_than_lose_mail() {
    let options = missive_tests::SinkOptions {
        auth: Some(("u".into(), "right".into())),
        ..Default::default()
    };
    let app = TestApp::spawn_with_sink(options, |config, sink| {
        config.relay.url = format!("smtp://u:wrong@{}?tls=none", sink.addr)
            .parse()
            .unwrap();
    })
    .await;
    app.expect_unsent_mail();
    let email = deliver_one(&app).await;
    assert_deferred_because(&email, "535");
}
