//! A verified sending domain's return path: `send.<domain>` (or its `custom_return_path`), with
//! an MX record to Missive's MX that the Domains API lists and verifies; mail from the domain
//! goes out with it once that MX is found, and with the operator's domain before.

use missive_tests::{Auth, DnsServer, TestApp};
use serde_json::{Value, json};

use super::{RETURN_DOMAIN, email, recipient_status, reported};
use crate::domains::zone_of;

fn record<'a>(domain: &'a Value, kind: &str, rtype: &str) -> &'a Value {
    domain["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["record"] == kind && r["type"] == rtype)
        .unwrap_or_else(|| panic!("no {kind} {rtype} in {domain}"))
}

/// An app that looks names up in a local DNS server the test publishes to, with
/// `mx.missive.test` as its MX host, after `adjust`; and the server.
pub async fn app_with_dns(adjust: impl FnOnce(&mut missive::Config)) -> (DnsServer, TestApp) {
    let dns = DnsServer::with_zone_file(&json!({})).await;
    let addr = dns.addr();
    let app = TestApp::spawn_with(|c| {
        c.dns.server = Some(addr);
        c.mx.host = "mx.missive.test".to_owned();
        adjust(c);
    })
    .await;
    (dns, app)
}

#[tokio::test]
async fn a_verified_domain_s_return_path_is_its_subdomain_once_the_mx_is_found() {
    let (dns, app) = app_with_dns(|c| {
        c.mx.return_path_domain = Some(RETURN_DOMAIN.to_owned());
        c.domains.spf_include = Some(missive_core::Domain::parse("spf.missive.test").unwrap());
    })
    .await;
    let acme = app.create_tenant("Acme").await;
    let created = app
        .post(
            "/v1/domains",
            Auth::Key(&acme.key),
            &json!({ "name": "acme.test", "custom_return_path": "Bounce" }),
        )
        .await;
    let created = created.expect(200).clone();
    assert_eq!(created["custom_return_path"], "bounce");
    let mx = record(&created, "SPF", "MX");
    assert_eq!(mx["name"], "bounce");
    assert_eq!(mx["fqdn"], "bounce.acme.test");
    assert_eq!(mx["value"], "mx.missive.test");
    assert_eq!(mx["priority"], 10);
    let spf = record(&created, "SPF", "TXT");
    assert!(spf["fqdn"] == "acme.test" || spf["fqdn"] == "bounce.acme.test");
    let id = created["id"].as_str().unwrap();
    // Everything but the return path's MX: the domain verifies, and its mail keeps the
    // operator's return path.
    let mut zone = zone_of(&created);
    zone["bounce.acme.test"]["MX"] = json!([]);
    dns.publish(&zone);
    let verify = format!("/v1/domains/{id}/verify");
    let verified = app.post(&verify, Auth::Key(&acme.key), &json!({})).await;
    assert_eq!(verified.expect(200)["status"], "verified");
    let domain = app
        .get(&format!("/v1/domains/{id}"), Auth::Key(&acme.key))
        .await;
    assert_eq!(record(domain.expect(200), "SPF", "MX")["status"], "failed");
    let send = json!({ "from": "news@acme.test", "to": "r@x.test", "subject": "s", "text": "t" });
    app.send_email(&acme.key, &send).await;
    app.worker.drain().await.unwrap();
    let before = app.sink.received().pop().unwrap().mail_from;
    assert!(before.ends_with(&format!("@{RETURN_DOMAIN}")), "{before}");

    // With the MX published, the domain's own return path, which the MX takes.
    dns.publish(&zone_of(&created));
    app.post(&verify, Auth::Key(&acme.key), &json!({}))
        .await
        .expect(200);
    let domain = app
        .get(&format!("/v1/domains/{id}"), Auth::Key(&acme.key))
        .await;
    assert_eq!(
        record(domain.expect(200), "SPF", "MX")["status"],
        "verified"
    );
    let sent = app.send_email(&acme.key, &send).await;
    app.worker.drain().await.unwrap();
    let return_path = app.sink.received().pop().unwrap().mail_from;
    assert!(return_path.ends_with("@bounce.acme.test"), "{return_path}");
    let bounce = super::dsn(
        &return_path,
        "r@x.test",
        "failed",
        "5.1.1",
        "550 5.1.1 unknown",
    );
    reported(&app, &return_path, &bounce).await;
    assert_eq!(
        recipient_status(&email(&app, &acme.key, &sent).await, "r@x.test"),
        "bounced"
    );

    // A return path that is not one DNS label is refused.
    app.post(
        "/v1/domains",
        Auth::Key(&acme.key),
        &json!({ "name": "other.test", "custom_return_path": "a.b" }),
    )
    .await
    .expect_error(422, "validation_error");
}
