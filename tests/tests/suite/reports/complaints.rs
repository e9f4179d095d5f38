//! Complaints: a feedback report (RFC 5965) sent to a return path, or to the operator's
//! feedback address (found by the return path it quotes, or by our Message-ID), emits a signed
//! `email.complained` and suppresses the address with origin `complaint`.

use missive_tests::Receiver;
use serde_json::Value;

use super::{email, event_types, reported, sent, signed_events, spawn, subscribe, suppressions};

/// A feedback report (RFC 5965) about the message that went out with `return_path`.
fn arf(to: &str, return_path: &str, recipient: &str, message_id: &str) -> String {
    format!(
        "From: fbl@isp.example\r\n\
         To: {to}\r\n\
         Subject: FW: s\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\
         \r\n\
         --F\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         This is an email abuse report.\r\n\
         \r\n\
         --F\r\n\
         Content-Type: message/feedback-report\r\n\
         \r\n\
         Feedback-Type: abuse\r\n\
         User-Agent: SomeGenerator/1.0\r\n\
         Version: 1\r\n\
         Original-Mail-From: <{return_path}>\r\n\
         Original-Rcpt-To: <{recipient}>\r\n\
         Reporting-MTA: dns; mail.isp.example\r\n\
         \r\n\
         --F\r\n\
         Content-Type: message/rfc822\r\n\
         \r\n\
         Return-Path: <{return_path}>\r\n\
         From: a@acme.test\r\n\
         To: {recipient}\r\n\
         Subject: s\r\n\
         Message-ID: <{message_id}>\r\n\
         \r\n\
         t\r\n\
         \r\n\
         --F--"
    )
}

#[tokio::test]
async fn a_complaint_emits_complained_and_suppresses_with_origin_complaint() {
    let app = spawn(|c| c.mx.feedback_address = Some("fbl@mx.missive.test".to_owned())).await;
    let acme = app.create_tenant("Acme").await;
    let receiver = Receiver::start().await;
    let secret = subscribe(&app, &acme.key, &receiver).await;

    // At the return path.
    let (id, return_path) = sent(&app, &acme.key, "a@acme.test", &["reader@isp.test"]).await;
    let message_id = email(&app, &acme.key, &id).await["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let complaint = arf(&return_path, &return_path, "reader@isp.test", &message_id);
    reported(&app, &return_path, &complaint).await;
    let viewed = email(&app, &acme.key, &id).await;
    assert!(event_types(&viewed, "reader@isp.test").contains(&"email.complained".to_owned()));
    let listed = suppressions(&app, &acme.key).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["email"], "reader@isp.test");
    assert_eq!(listed[0]["origin"], "complaint");
    app.dispatcher.drain().await.unwrap();
    let events = signed_events(&receiver, &secret);
    let complained: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "email.complained")
        .collect();
    assert_eq!(complained.len(), 1, "{events:?}");
    assert_eq!(complained[0]["data"]["recipient"], "reader@isp.test");
    assert_eq!(complained[0]["data"]["email_id"], id.as_str());

    // At the operator's feedback address: the quoted return path names the email; without it,
    // our Message-ID does.
    let (second, return_path) = sent(&app, &acme.key, "a@acme.test", &["other@isp.test"]).await;
    let complaint = arf("fbl@mx.missive.test", &return_path, "other@isp.test", "x@y");
    reported(&app, "fbl@mx.missive.test", &complaint).await;
    assert!(
        event_types(&email(&app, &acme.key, &second).await, "other@isp.test")
            .contains(&"email.complained".to_owned())
    );
    let (third, _) = sent(&app, &acme.key, "a@acme.test", &["third@isp.test"]).await;
    let message_id = email(&app, &acme.key, &third).await["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let complaint = arf(
        "fbl@mx.missive.test",
        "someone@elsewhere.test",
        "third@isp.test",
        &message_id,
    );
    reported(&app, "fbl@mx.missive.test", &complaint).await;
    assert!(
        event_types(&email(&app, &acme.key, &third).await, "third@isp.test")
            .contains(&"email.complained".to_owned())
    );
    assert_eq!(suppressions(&app, &acme.key).await.len(), 3);
}
