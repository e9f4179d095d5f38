//! The SPF, DKIM and DMARC verdicts of received mail, against records a local DNS server
//! publishes and a signature dkimpy makes: a signed message from an authorised address passes
//! all three; a forged one (an author's domain it does not come from, a signature broken in
//! transit) fails DMARC under the author's reject policy and is kept with its verdicts, until
//! the receiving domain enforces DMARC: then it is refused at DATA, and the genuine one is not.

use missive_tests::{Auth, TestApp, run_python_with_input, test_python};
use serde_json::{Value, json};

use super::{receiving_app, receiving_domain};
use crate::reports::transaction;

/// dkimpy's signature of `message` for `domain` under `selector`: the signed message and the
/// key record to publish.
async fn dkim_sign(message: &str, domain: &str, selector: &str) -> (String, String) {
    let python = test_python().expect("MISSIVE_TEST_PYTHON: run the suite with `make test`");
    let input = json!({ "message": message, "domain": domain, "selector": selector });
    let out = run_python_with_input(&python, "dkim_sign.py", input.to_string().as_bytes()).await;
    let out: Value = serde_json::from_slice(&out).unwrap();
    (
        out["signed"].as_str().unwrap().to_owned(),
        out["record"].as_str().unwrap().to_owned(),
    )
}

/// Sends `message` to support@acme.test with `mail_from`; the reply to the message.
async fn send(app: &TestApp, mail_from: &str, message: &str) -> missive_tests::SmtpReply {
    let (rcpts, done) = transaction(app.mx_addr, mail_from, &["support@acme.test"], message).await;
    assert_eq!(rcpts[0].code, 250, "{}", rcpts[0].text());
    done.expect("a reply to the message")
}

/// The verdicts of the received email a 250 named.
async fn verdicts(app: &TestApp, key: &str, reply: &missive_tests::SmtpReply) -> Value {
    assert_eq!(reply.code, 250, "{}", reply.text());
    let text = reply.text();
    let id = text.rsplit("Received as ").next().unwrap().trim();
    let got = app
        .get(&format!("/v1/emails/receiving/{id}"), Auth::Key(key))
        .await;
    got.expect(200)["authentication"].clone()
}

fn message(from: &str, subject: &str) -> String {
    format!(
        "From: {from}\r\nTo: support@acme.test\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@sender.test>\r\nDate: Tue, 08 Dec 2026 09:00:00 +0000\r\n\r\n\
         The order shipped.\r\n"
    )
}

#[tokio::test]
async fn spf_dkim_and_dmarc_verdicts_are_kept_and_dmarc_refuses_only_when_enforced() {
    let (dns, app) = receiving_app(|_| {}).await;
    let acme = app.create_tenant("Acme").await;
    let domain = receiving_domain(&app, &acme, "acme.test").await;
    let (signed, key_record) = dkim_sign(
        &message("Ann <ann@sender.test>", "genuine"),
        "sender.test",
        "s1",
    )
    .await;
    dns.publish(&json!({
        "sender.test": { "TXT": ["v=spf1 ip4:127.0.0.1 -all"] },
        "s1._domainkey.sender.test": { "TXT": [key_record] },
        "_dmarc.sender.test": { "TXT": ["v=DMARC1; p=reject"] },
        "strict.test": { "TXT": ["v=spf1 ip4:192.0.2.1 -all"] },
    }));

    // Signed by the author's domain and sent from an address its SPF names: all pass.
    let genuine = send(&app, "bounces@sender.test", &signed).await;
    let genuine = verdicts(&app, &acme.key, &genuine).await;
    assert_eq!(
        genuine["spf"],
        json!({ "result": "pass", "domain": "sender.test" })
    );
    assert_eq!(
        genuine["dkim"],
        json!([{ "result": "pass", "domain": "sender.test", "selector": "s1" }])
    );
    assert_eq!(
        genuine["dmarc"],
        json!({ "result": "pass", "domain": "sender.test", "policy": "reject" })
    );

    // Sent from an address strict.test's SPF does not name: SPF fails.
    let outsider = send(&app, "x@strict.test", &message("x@strict.test", "outsider")).await;
    let outsider = verdicts(&app, &acme.key, &outsider).await;
    assert_eq!(outsider["spf"]["result"], "fail");

    // The author's domain forged: its signature broken in transit and the envelope elsewhere.
    let forged_text = signed.replace("The order shipped.", "Pay this invoice.");
    let forged = send(&app, "attacker@forger.test", &forged_text).await;
    let forged = verdicts(&app, &acme.key, &forged).await;
    assert_eq!(forged["spf"]["result"], "none");
    // mail-auth calls a body that no longer matches its signed hash `neutral` (RFC 6376 leaves
    // the word to the verifier); either way it does not count for DMARC.
    assert_eq!(forged["dkim"][0]["result"], "neutral", "{forged}");
    assert!(forged["dkim"][0]["reason"].is_string(), "{forged}");
    assert_eq!(
        forged["dmarc"],
        json!({ "result": "fail", "domain": "sender.test", "policy": "reject" })
    );
    // Unsigned, from an author's domain without DMARC: nothing fails that could refuse it.
    let unsigned = send(&app, "a@forger.test", &message("a@elsewhere.test", "plain")).await;
    let unsigned = verdicts(&app, &acme.key, &unsigned).await;
    assert_eq!(unsigned["dkim"], json!([]));
    assert_eq!(unsigned["dmarc"]["result"], "none");

    // Enforced, DMARC refuses the forged message at DATA, and only it.
    let id = domain["id"].as_str().unwrap();
    let patched = app
        .patch(
            &format!("/v1/domains/{id}"),
            Auth::Key(&acme.key),
            &json!({ "inbound_dmarc": "enforce" }),
        )
        .await;
    patched.expect(200);
    let got = app
        .get(&format!("/v1/domains/{id}"), Auth::Key(&acme.key))
        .await;
    assert_eq!(got.expect(200)["inbound_dmarc"], "enforce");
    let refused = send(&app, "attacker@forger.test", &forged_text).await;
    assert_eq!(refused.code, 550, "{}", refused.text());
    assert!(refused.text().contains("5.7.1"), "{}", refused.text());
    let taken = send(&app, "bounces@sender.test", &signed).await;
    assert_eq!(taken.code, 250, "{}", taken.text());
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM received_emails")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(stored, 5, "four before enforcing, the genuine one after");
}
