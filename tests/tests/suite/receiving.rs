//! Receiving, as far as it goes: a domain's `capabilities` (Resend's shape) turn receiving on,
//! which lists and verifies the domain's MX record to Missive's MX, and sending off, which stops
//! the domain signing and passing as a verified sender domain.

use missive_tests::{Auth, DnsServer, TestApp};
use serde_json::{Value, json};

use crate::domains::zone_of;

fn receiving_record(domain: &Value) -> Option<&Value> {
    domain["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["record"] == "Receiving")
}

#[tokio::test]
async fn capabilities_turn_receiving_on_with_its_mx_and_sending_off() {
    let dns = DnsServer::with_zone_file(&json!({})).await;
    let addr = dns.addr();
    let app = TestApp::spawn_with(|c| {
        c.dns.server = Some(addr);
        c.mx.host = "mx.missive.test".to_owned();
    })
    .await;
    let acme = app.create_tenant("Acme").await;
    let created = app
        .post(
            "/v1/domains",
            Auth::Key(&acme.key),
            &json!({ "name": "acme.test", "capabilities": { "receiving": "enabled" } }),
        )
        .await;
    let created = created.expect(200).clone();
    assert_eq!(
        created["capabilities"],
        json!({ "sending": "enabled", "receiving": "enabled" })
    );
    let mx = receiving_record(&created).expect("the receiving MX is listed");
    assert_eq!(
        (
            &mx["type"],
            &mx["name"],
            &mx["fqdn"],
            &mx["value"],
            &mx["priority"]
        ),
        (
            &json!("MX"),
            &json!("@"),
            &json!("acme.test"),
            &json!("mx.missive.test"),
            &json!(10)
        )
    );
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/domains/{id}");
    dns.publish(&zone_of(&created));
    let verified = app
        .post(&format!("{path}/verify"), Auth::Key(&acme.key), &json!({}))
        .await;
    assert_eq!(verified.expect(200)["status"], "verified");
    let got = app.get(&path, Auth::Key(&acme.key)).await;
    assert_eq!(
        receiving_record(got.expect(200)).unwrap()["status"],
        "verified"
    );

    // Signed while sending is on; not once it is off.
    let send = json!({ "from": "a@acme.test", "to": "r@x.test", "subject": "s", "text": "t" });
    app.send_email(&acme.key, &send).await;
    app.worker.drain().await.unwrap();
    let signed = app.sink.received().pop().unwrap().data;
    assert!(String::from_utf8_lossy(&signed).contains("DKIM-Signature:"));
    let off = json!({ "capabilities": { "sending": "disabled", "receiving": "disabled" } });
    app.patch(&path, Auth::Key(&acme.key), &off)
        .await
        .expect(200);
    let got = app.get(&path, Auth::Key(&acme.key)).await;
    let got = got.expect(200);
    assert_eq!(
        got["capabilities"],
        json!({ "sending": "disabled", "receiving": "disabled" })
    );
    assert!(receiving_record(got).is_none(), "{got}");
    app.send_email(&acme.key, &send).await;
    app.worker.drain().await.unwrap();
    let unsigned = app.sink.received().pop().unwrap().data;
    assert!(!String::from_utf8_lossy(&unsigned).contains("DKIM-Signature:"));

    // A capability is `enabled` or `disabled`.
    app.patch(
        &path,
        Auth::Key(&acme.key),
        &json!({ "capabilities": { "receiving": "maybe" } }),
    )
    .await
    .expect_error(422, "validation_error");
}
