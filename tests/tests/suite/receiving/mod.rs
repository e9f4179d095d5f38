//! Receiving: a domain's `capabilities` (Resend's shape) turn receiving on, which lists and
//! verifies the domain's MX record to Missive's MX, and sending off, which stops the domain
//! signing and passing as a verified sender domain; once its MX record is found, the MX takes
//! mail for any address of the domain and stores it whole for its tenant (a domain receives for
//! one tenant). `api` reads it back through Resend's Receiving API and its SDKs, `auth` checks
//! the SPF, DKIM and DMARC verdicts, `limits` the caps and usage.

use missive_tests::{Auth, CreatedTenant, DnsServer, TestApp};
use serde_json::{Value, json};

use crate::domains::zone_of;
use crate::reports::domains::app_with_dns;

mod api;
mod auth;
mod clients;
mod limits;

/// An app whose MX takes mail for receiving domains before their MX record is found, with a
/// local DNS server (empty unless a test publishes records) for its SPF, DKIM and DMARC checks.
pub async fn receiving_app(adjust: impl FnOnce(&mut missive::Config)) -> (DnsServer, TestApp) {
    app_with_dns(|c| {
        c.mx.receiving_allow_unverified = true;
        c.webhooks.allow_private = true;
        adjust(c);
    })
    .await
}

/// Turns receiving on for `name`, a new domain of `tenant`; the domain.
pub async fn receiving_domain(app: &TestApp, tenant: &CreatedTenant, name: &str) -> Value {
    let created = app
        .post(
            "/v1/domains",
            Auth::Key(&tenant.key),
            &json!({ "name": name, "capabilities": { "receiving": "enabled" } }),
        )
        .await;
    created.expect(200).clone()
}

/// The bytes of [`INVOICE`]'s attachment.
pub const PDF: &[u8] = b"%PDF-1.4\n\x00\x01\x02\xff";

/// A reply with a text and an html part and one PDF attachment (base64 of [`PDF`]).
pub const INVOICE: &str = "From: Ann Example <ann@sender.test>\r\n\
To: support@acme.test\r\n\
Cc: Carol <carol@acme.test>\r\n\
Reply-To: replies@sender.test\r\n\
Subject: Invoice 42\r\n\
Message-ID: <invoice-42@sender.test>\r\n\
Date: Tue, 08 Dec 2026 09:00:00 +0000\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: multipart/alternative; boundary=c\r\n\
\r\n\
--c\r\n\
Content-Type: text/plain\r\n\
\r\n\
Please find the invoice attached.\r\n\
--c\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>Please find the invoice attached.</p>\r\n\
--c--\r\n\
--b\r\n\
Content-Type: application/pdf; name=invoice.pdf\r\n\
Content-Disposition: attachment; filename=invoice.pdf\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKAAEC/w==\r\n\
--b--\r\n";

fn receiving_record(domain: &Value) -> Option<&Value> {
    domain["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["record"] == "Receiving")
}

#[tokio::test]
async fn capabilities_turn_receiving_on_with_its_mx_and_sending_off() {
    let (dns, app) = app_with_dns(|_| {}).await;
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

/// A stored received message: tenant, envelope sender and recipients, subject, Message-ID, bytes.
type Stored = (
    String,
    String,
    Vec<String>,
    Option<String>,
    Option<String>,
    Vec<u8>,
);

/// One message to the MX from `from` for `to`; the code of each RCPT's reply, and the reply
/// to the message when a recipient was taken.
async fn deliver(
    app: &TestApp,
    from: &str,
    to: &[&str],
    message: &str,
) -> (Vec<u16>, Option<missive_tests::SmtpReply>) {
    let (rcpts, done) = crate::reports::transaction(app.mx_addr, from, to, message).await;
    (rcpts.iter().map(|r| r.code).collect(), done)
}

#[tokio::test]
async fn the_mx_stores_mail_for_a_receiving_domain_once_its_mx_is_found() {
    let (dns, app) = app_with_dns(|_| {}).await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    let receiving = json!({ "name": "acme.test", "capabilities": { "receiving": "enabled" } });
    let created = app
        .post("/v1/domains", Auth::Key(&acme.key), &receiving)
        .await;
    let created = created.expect(200).clone();
    // A domain receives for one tenant: another cannot turn receiving on for the same name.
    app.post("/v1/domains", Auth::Key(&other.key), &receiving)
        .await
        .expect_error(409, "conflict");
    let quiet = json!({ "name": "quiet.test" });
    app.post("/v1/domains", Auth::Key(&acme.key), &quiet)
        .await
        .expect(200);

    let message = "From: Someone <someone@sender.example>\r\nTo: help@acme.test\r\n\
                   Subject: Where is my order?\r\nMessage-ID: <q1@sender.example>\r\n\r\nHello.\r\n";
    // Before its MX record is found, the domain receives nothing.
    let (codes, _) = deliver(&app, "someone@sender.example", &["help@acme.test"], message).await;
    assert_eq!(codes, [550]);

    dns.publish(&zone_of(&created));
    let id = created["id"].as_str().unwrap();
    app.post(
        &format!("/v1/domains/{id}/verify"),
        Auth::Key(&acme.key),
        &json!({}),
    )
    .await
    .expect(200);
    let (codes, done) = deliver(
        &app,
        "someone@sender.example",
        &[
            "help@acme.test",
            "x@quiet.test",
            "y@elsewhere.test",
            "Sales@ACME.test",
        ],
        message,
    )
    .await;
    assert_eq!(codes, [250, 550, 550, 250]);
    let done = done.unwrap();
    assert_eq!(done.code, 250);
    assert!(done.text().contains("Received as "), "{}", done.text());

    let rows: Vec<Stored> = sqlx::query_as(
        "SELECT tenant_id::text, mail_from, rcpt_to, subject, message_id, raw
         FROM received_emails",
    )
    .fetch_all(app.store().pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (tenant, mail_from, rcpt_to, subject, message_id, raw) = &rows[0];
    assert_eq!(tenant, &acme.id);
    assert_eq!(mail_from, "someone@sender.example");
    assert_eq!(
        rcpt_to,
        // The domain in lower case, the local part as given.
        &["help@acme.test".to_owned(), "Sales@acme.test".to_owned()]
    );
    assert_eq!(subject.as_deref(), Some("Where is my order?"));
    assert_eq!(message_id.as_deref(), Some("q1@sender.example"));
    assert!(String::from_utf8_lossy(raw).contains("Hello."));
}
