//! The loop end to end through a stock Postfix as the shared relay: Postfix accepts from
//! Missive, its next hop (the test's sink) refuses the recipient, and Postfix's own DSN comes
//! back to Missive's MX through a transport map for the return-path domain, as an MX record
//! would send it; and with `NOTIFY=SUCCESS`, Postfix's report of the relay is recorded too.

use std::time::{Duration, Instant};

use missive_tests::postfix::free_addr;
use missive_tests::{Postfix, Receiver, SinkOptions, TestApp};
use serde_json::json;

use super::{
    RETURN_DOMAIN, email, event_types, recipient_status, signed_events, subscribe, suppressions,
};

/// An app whose shared relay is a Postfix relaying to the app's sink, and the Postfix.
async fn through_postfix(notify_success: bool) -> (TestApp, Postfix) {
    let mx = free_addr();
    let mut postfix = None;
    let app = TestApp::spawn_with_sink(SinkOptions::default(), |config, sink| {
        let next_hop = sink.relay_url();
        let next_hop = next_hop
            .trim_start_matches("smtp://")
            .split('?')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let started = Postfix::start(next_hop, &[(RETURN_DOMAIN, mx)]);
        config.relay.url = started.relay_url().parse().unwrap();
        postfix = Some(started);
        config.mx.addr = mx;
        config.mx.return_path_domain = Some(RETURN_DOMAIN.to_owned());
        config.mx.notify_success = notify_success;
        config.webhooks.allow_private = true;
    })
    .await;
    (app, postfix.unwrap())
}

/// Waits until `done` holds for the email, or fails with Postfix's log.
async fn wait_for(
    app: &TestApp,
    postfix: &Postfix,
    key: &str,
    id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let viewed = email(app, key, id).await;
        if done(&viewed) {
            return viewed;
        }
        assert!(
            Instant::now() < deadline,
            "Postfix's report did not arrive: {viewed}\nPostfix's log:\n{}",
            postfix.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn postfix_s_bounce_of_a_refused_recipient_reaches_the_tenant_and_its_suppressions() {
    let (app, postfix) = through_postfix(false).await;
    let acme = app.create_tenant("Acme").await;
    let receiver = Receiver::start().await;
    let secret = subscribe(&app, &acme.key, &receiver).await;
    app.sink
        .answer_rcpt_with("gone@x.test", &["550 5.1.1 <gone@x.test>: Recipient address rejected: User unknown in virtual mailbox table"]);
    let id = app
        .send_email(
            &acme.key,
            &json!({ "from": "news@acme.test", "to": "gone@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    // Postfix took it: Missive's record says delivered, until Postfix's DSN arrives.
    let viewed = wait_for(&app, &postfix, &acme.key, &id, |e| {
        recipient_status(e, "gone@x.test") == "bounced"
    })
    .await;
    let types = event_types(&viewed, "gone@x.test");
    assert!(
        types.iter().position(|t| t == "email.delivered")
            < types.iter().position(|t| t == "email.bounced"),
        "{types:?}"
    );
    let listed = suppressions(&app, &acme.key).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["email"], "gone@x.test");
    assert_eq!(listed[0]["origin"], "bounce");

    app.dispatcher.drain().await.unwrap();
    let events = signed_events(&receiver, &secret);
    let bounced = events
        .iter()
        .find(|e| e["type"] == "email.bounced")
        .unwrap_or_else(|| panic!("no email.bounced in {events:?}"));
    assert_eq!(bounced["data"]["recipient"], "gone@x.test");
    assert_eq!(bounced["data"]["bounce"]["status"], "5.1.1");
    let message = bounced["data"]["bounce"]["message"].as_str().unwrap();
    assert!(
        message.contains("User unknown in virtual mailbox table"),
        "{message}"
    );
    assert_eq!(
        bounced["data"]["bounce"]["reporting_mta"],
        "postfix.missive.test"
    );

    super::next_send_is_suppressed(&app, &acme.key, "news@acme.test", "gone@x.test").await;
}

#[tokio::test]
async fn with_notify_success_postfix_s_report_records_the_final_delivery() {
    let (app, postfix) = through_postfix(true).await;
    let acme = app.create_tenant("Acme").await;
    let id = app
        .send_email(
            &acme.key,
            &json!({ "from": "news@acme.test", "to": "ok@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    let viewed = wait_for(&app, &postfix, &acme.key, &id, |e| {
        event_types(e, "ok@x.test").contains(&"email.confirmed".to_owned())
    })
    .await;
    assert_eq!(recipient_status(&viewed, "ok@x.test"), "delivered");
    assert_eq!(app.sink.received().len(), 1);
    assert!(suppressions(&app, &acme.key).await.is_empty());
}
