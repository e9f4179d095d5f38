//! Sending domains: Resend's Domains API through the official Python SDK, verification against a
//! local DNS server the test controls, DKIM signatures that dkimpy (a verifier nobody here
//! wrote) accepts over REST and SMTP and rejects once the message is changed, private keys that
//! never leave sealed, the background re-check, and senders refused where verification is
//! required.

use std::time::Duration;

use missive::edge::smtp::Listener;
use missive_core::sealed::{Sealed, Sealer};
use missive_tests::{
    ApiProcess, Auth, DnsServer, SmtpClient, TEST_SECRET_KEY, TEST_SECRET_KEY_BASE64, TestApp,
    pg_bin, queued_id, run_python_with_env_and_input, run_resend_script, test_python,
};
use serde_json::{Value, json};

/// A domain added over REST; returns its id and its answer.
async fn add_domain(app: &TestApp, key: &str, name: &str) -> (String, Value) {
    let created = app
        .post("/v1/domains", Auth::Key(key), &json!({ "name": name }))
        .await;
    let body = created.expect(200).clone();
    (body["id"].as_str().unwrap().to_owned(), body)
}

/// The zone that publishes every record of a domain's answer, each under its type.
pub fn zone_of(domain: &Value) -> Value {
    let mut zone = serde_json::Map::new();
    for record in domain["records"].as_array().unwrap() {
        let entry = zone
            .entry(record["fqdn"].as_str().unwrap().to_owned())
            .or_insert_with(|| json!({ "TXT": [], "MX": [] }));
        entry[record["type"].as_str().unwrap()]
            .as_array_mut()
            .unwrap()
            .push(record["value"].clone());
    }
    Value::Object(zone)
}

/// The DKIM key records of a zone, as `dkim_verify.py` takes them.
fn key_records(zone: &Value) -> Value {
    let mut keys = serde_json::Map::new();
    for (name, records) in zone.as_object().unwrap() {
        if name.contains("._domainkey.") {
            keys.insert(name.clone(), records["TXT"][0].clone());
        }
    }
    Value::Object(keys)
}

/// dkimpy's verdict on `message`: `pass` or `fail: ...`.
async fn dkimpy(message: &[u8], keys: &Value) -> String {
    let python = test_python().expect("MISSIVE_TEST_PYTHON: run the suite with `make test`");
    let out = run_python_with_env_and_input(
        &python,
        "dkim_verify.py",
        &[("DKIM_KEYS", keys.to_string())],
        message,
    )
    .await;
    String::from_utf8(out).unwrap().trim().to_owned()
}

/// A domain verified against the local DNS server, for tests of what comes after.
async fn verified_domain(app: &TestApp, dns: &DnsServer, key: &str, name: &str) -> (String, Value) {
    let mut zone = json!({});
    let id = verify_into(app, dns, key, &json!({ "name": name }), &mut zone).await;
    (id, zone)
}

/// Adds the domain `body` describes, publishes its records beside those already in `zone`, and
/// verifies it; returns its id.
async fn verify_into(
    app: &TestApp,
    dns: &DnsServer,
    key: &str,
    body: &Value,
    zone: &mut Value,
) -> String {
    let created = app.post("/v1/domains", Auth::Key(key), body).await;
    let created = created.expect(200).clone();
    let id = created["id"].as_str().unwrap().to_owned();
    for (name, records) in zone_of(&created).as_object().unwrap() {
        zone[name] = records.clone();
    }
    dns.publish(zone);
    let verified = app
        .post(
            &format!("/v1/domains/{id}/verify"),
            Auth::Key(key),
            &json!({}),
        )
        .await;
    assert_eq!(verified.expect(200)["status"], "verified");
    id
}

#[tokio::test]
async fn the_resend_sdk_manages_and_verifies_domains_unmodified() {
    let dns = DnsServer::with_zone_file(&json!({})).await;
    let addr = dns.addr();
    let app = TestApp::spawn_with(|c| c.dns.server = Some(addr)).await;
    let acme = app.create_tenant("Acme").await;
    let out = run_resend_script(
        &app.base_url,
        &acme.key,
        "resend_domains.py",
        &[
            ("DOMAIN", "mail.acme.test".to_owned()),
            ("ZONE_FILE", dns.zone_file().display().to_string()),
        ],
    )
    .await;
    let created = &out["created"];
    assert_eq!(created["name"], "mail.acme.test");
    assert_eq!(created["status"], "not_started");
    let records = created["records"].as_array().unwrap();
    let dkim = records.iter().find(|r| r["record"] == "DKIM").unwrap();
    let selector = created["dkim_selector"].as_str().unwrap();
    assert_eq!(
        dkim["fqdn"].as_str().unwrap(),
        format!("{selector}._domainkey.mail.acme.test")
    );
    assert_eq!(dkim["type"], "TXT");
    assert!(
        dkim["value"]
            .as_str()
            .unwrap()
            .starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"),
        "{dkim}"
    );
    let dmarc = records.iter().find(|r| r["record"] == "DMARC").unwrap();
    assert_eq!(dmarc["fqdn"], "_dmarc.mail.acme.test");
    // The return path's MX, as Resend lists it: under `SPF`, at `send`.
    let mx = records.iter().find(|r| r["type"] == "MX").unwrap();
    assert_eq!(
        (&mx["record"], &mx["name"]),
        (&json!("SPF"), &json!("send"))
    );
    assert_eq!(mx["fqdn"], "send.mail.acme.test");
    // Nothing published yet: failed, with the reason.
    assert_eq!(out["unverified"]["status"], "failed");
    assert_eq!(out["verified"]["status"], "verified");
    let got = &out["got"];
    assert_eq!(got["status"], "verified");
    for record in got["records"].as_array().unwrap() {
        assert_eq!(record["status"], "verified", "{record}");
    }
    assert_eq!(out["listed"]["object"], "list");
    assert_eq!(out["listed"]["data"][0]["id"], created["id"]);
    assert_eq!(out["updated"]["object"], "domain");
    assert_eq!(out["after_update"]["open_tracking"], true);
    assert_eq!(out["after_update"]["tls"], "enforced");
    assert_eq!(out["removed"]["deleted"], true);
    assert_eq!(out["gone"]["code"], 404);
}

#[tokio::test]
async fn verification_fails_with_each_records_reason_and_never_crosses_tenants() {
    let dns = DnsServer::with_zone_file(&json!({})).await;
    let addr = dns.addr();
    let app = TestApp::spawn_with(|c| {
        c.dns.server = Some(addr);
        c.domains.spf_include = Some(missive_core::Domain::parse("spf.missive.test").unwrap());
        c.domains.max_per_tenant = 2;
    })
    .await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    let (id, created) = add_domain(&app, &acme.key, "acme.test").await;
    let spf = created["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["record"] == "SPF")
        .unwrap()
        .clone();
    assert_eq!(spf["value"], "v=spf1 include:spf.missive.test ~all");
    // The DKIM record published, a wrong SPF record beside it.
    let mut zone = zone_of(&created);
    zone["acme.test"] = json!({ "TXT": ["v=spf1 mx -all"] });
    dns.publish(&zone);
    let path = format!("/v1/domains/{id}");
    let checked = app
        .post(&format!("{path}/verify"), Auth::Key(&acme.key), &json!({}))
        .await;
    assert_eq!(checked.expect(200)["status"], "failed");
    let domain = app.get(&path, Auth::Key(&acme.key)).await;
    let domain = domain.expect(200);
    let by_kind = |kind: &str| {
        domain["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["record"] == kind)
            .unwrap()
            .clone()
    };
    assert_eq!(by_kind("DKIM")["status"], "verified");
    assert_eq!(by_kind("SPF")["status"], "failed");
    assert!(
        by_kind("SPF")["reason"]
            .as_str()
            .unwrap()
            .contains("include:spf.missive.test")
    );
    // Another tenant cannot see, verify or delete it; a key without the scope cannot either.
    for response in [
        app.get(&path, Auth::Key(&other.key)).await,
        app.post(&format!("{path}/verify"), Auth::Key(&other.key), &json!({}))
            .await,
        app.delete(&path, Auth::Key(&other.key)).await,
    ] {
        response.expect_error(404, "not_found");
    }
    let listed = app.get("/v1/domains", Auth::Key(&other.key)).await;
    assert_eq!(listed.expect(200)["data"], json!([]));
    let (_, sender) = app.create_key(&acme.id, "sender", &["send"]).await;
    app.get(&path, Auth::Key(&sender))
        .await
        .expect_error(403, "restricted_api_key");
    // The same name twice is a conflict, so is one past the tenant's allowance; a name that is
    // no domain is refused.
    app.post(
        "/v1/domains",
        Auth::Key(&acme.key),
        &json!({ "name": "acme.test" }),
    )
    .await
    .expect_error(409, "conflict");
    app.post(
        "/v1/domains",
        Auth::Key(&acme.key),
        &json!({ "name": "not a domain" }),
    )
    .await
    .expect_error(422, "validation_error");
}

#[tokio::test]
async fn mail_from_a_verified_domain_is_signed_and_dkimpy_accepts_it_over_rest_and_smtp() {
    let dns = DnsServer::with_zone_file(&json!({})).await;
    let addr = dns.addr();
    let app = TestApp::spawn_with(|c| c.dns.server = Some(addr)).await;
    let acme = app.create_tenant("Acme").await;
    let (_, mut zone) = verified_domain(&app, &dns, &acme.key, "acme.test").await;
    // A second domain signs with Ed25519 (RFC 8463), which dkimpy checks with PyNaCl.
    let body = json!({ "name": "brand.test", "dkim_algorithm": "ed25519" });
    verify_into(&app, &dns, &acme.key, &body, &mut zone).await;
    let keys = key_records(&zone);

    app.send_email(
        &acme.key,
        &json!({ "from": "news@brand.test", "to": "e@x.test", "subject": "Ed25519", "text": "Hi" }),
    )
    .await;
    app.send_email(
        &acme.key,
        &json!({ "from": "Acme <hello@acme.test>", "to": "a@x.test", "subject": "Signed",
                 "html": "<p>Hello</p>", "text": "Hello" }),
    )
    .await;
    let mut smtp = SmtpClient::in_memory(app.smtp.clone(), "192.0.2.10", Listener::Submission)
        .authenticated(&acme.key)
        .await;
    let reply = smtp
        .send_mail(
            "hello@acme.test",
            &["b@x.test"],
            "From: <hello@acme.test>\r\nTo: b@x.test\r\nSubject: Over SMTP\r\n\r\nHello\r\n",
        )
        .await;
    assert!(!queued_id(&reply).is_empty());
    // A sender domain the tenant has not verified goes out unsigned.
    app.send_email(
        &acme.key,
        &json!({ "from": "hello@elsewhere.test", "to": "c@x.test", "subject": "Plain", "text": "x" }),
    )
    .await;
    app.worker.drain().await.unwrap();

    let received = app.sink.received();
    let to = |rcpt: &str| {
        received
            .iter()
            .find(|r| r.rcpt_to == [rcpt])
            .unwrap()
            .data
            .clone()
    };
    for rcpt in ["a@x.test", "b@x.test"] {
        let message = to(rcpt);
        assert!(message.starts_with(b"DKIM-Signature: "), "{rcpt}");
        assert_eq!(dkimpy(&message, &keys).await, "pass", "{rcpt}");
        // Changed after signing, in the body or in a signed header: refused.
        let text = String::from_utf8(message).unwrap();
        let body_changed = text.replacen("Hello", "Hellp", 1);
        assert!(
            dkimpy(body_changed.as_bytes(), &keys)
                .await
                .starts_with("fail")
        );
        let subject_changed = text.replacen("Subject: ", "Subject: Re: ", 1);
        assert!(
            dkimpy(subject_changed.as_bytes(), &keys)
                .await
                .starts_with("fail")
        );
    }
    assert!(!String::from_utf8_lossy(&to("c@x.test")).contains("DKIM-Signature"));
    let ed25519 = to("e@x.test");
    assert!(String::from_utf8_lossy(&ed25519).contains("a=ed25519-sha256"));
    assert_eq!(dkimpy(&ed25519, &keys).await, "pass");
}

/// Pieces of a domain's private key as stored, opened with the test's secret key: what must not
/// leak, as base64 and as hex. Taken from the key's end, its private part (the start holds the
/// modulus, which the public record carries too); long enough to be the key, short enough to
/// survive line wrapping.
async fn key_needles(app: &TestApp, id: &str) -> [String; 2] {
    let (key_id, sealed): (String, Vec<u8>) =
        sqlx::query_as("SELECT private_key_id, private_key FROM domains WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(app.store().pool())
            .await
            .unwrap();
    let der = Sealer::new(&TEST_SECRET_KEY, &[])
        .open(
            uuid::Uuid::parse_str(id).unwrap().as_bytes(),
            &Sealed {
                key_id,
                bytes: sealed,
            },
        )
        .unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
    [
        b64[b64.len() - 70..b64.len() - 10].to_owned(),
        hex[hex.len() - 120..].to_owned(),
    ]
}

#[tokio::test]
async fn private_keys_appear_in_no_answer_and_no_dump_in_the_clear() {
    let dns = DnsServer::with_zone_file(&json!({})).await;
    let addr = dns.addr();
    let app = TestApp::spawn_with(|c| c.dns.server = Some(addr)).await;
    let acme = app.create_tenant("Acme").await;
    let (id, created) = verified_domain(&app, &dns, &acme.key, "acme.test").await;
    let needles = key_needles(&app, &id).await;
    let mut seen = vec![created.to_string()];
    for path in [format!("/v1/domains/{id}"), "/v1/domains".to_owned()] {
        seen.push(
            app.get(&path, Auth::Key(&acme.key))
                .await
                .expect(200)
                .to_string(),
        );
    }
    let dump = tokio::process::Command::new(pg_bin("pg_dump"))
        .arg(&app.db.url)
        .output()
        .await
        .expect("pg_dump runs");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(dump.contains("domains"), "the dump has the table");
    seen.push(dump);
    for text in &seen {
        for needle in &needles {
            assert!(!text.contains(needle.as_str()), "the private key leaked");
        }
    }
}

#[tokio::test]
async fn unverified_sender_domains_are_refused_where_verification_is_required() {
    let dns = DnsServer::with_zone_file(&json!({})).await;
    let addr = dns.addr();
    let app = TestApp::spawn_with(|c| c.dns.server = Some(addr)).await;
    let acme = app.create_tenant("Acme").await;
    verified_domain(&app, &dns, &acme.key, "acme.test").await;
    app.patch(
        &format!("/v1/tenants/{}", acme.id),
        Auth::Admin,
        &json!({ "settings": { "require_verified_domains": true } }),
    )
    .await
    .expect(200);
    let refused = app
        .post(
            "/v1/emails",
            Auth::Key(&acme.key),
            &json!({ "from": "me@unverified.test", "to": "a@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    let message = refused.expect_error(403, "validation_error");
    assert!(message.contains("unverified.test"), "{message}");
    let mut smtp = SmtpClient::in_memory(app.smtp.clone(), "192.0.2.10", Listener::Submission)
        .authenticated(&acme.key)
        .await;
    // Refused early for the envelope sender, and at the end of DATA for the From header.
    let early = smtp.cmd("MAIL FROM:<me@unverified.test>", 550).await;
    assert!(early.text().starts_with("5.7.1"), "{early:?}");
    assert!(early.text().contains("unverified.test"), "{early:?}");
    let reply = smtp
        .send_mail(
            "me@acme.test",
            &["a@x.test"],
            "From: <me@unverified.test>\r\nTo: a@x.test\r\nSubject: s\r\n\r\nt\r\n",
        )
        .await;
    assert_eq!(reply.code, 550, "{reply:?}");
    assert!(reply.lines[0].starts_with("5.7.1"), "{reply:?}");
    assert!(reply.text().contains("unverified.test"), "{reply:?}");
    // The verified domain, and its subdomains, still send.
    for from in ["me@acme.test", "me@news.acme.test"] {
        app.send_email(
            &acme.key,
            &json!({ "from": from, "to": "a@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    }
    app.worker.drain().await.unwrap();
    assert_eq!(app.sink.received().len(), 2);
}

#[tokio::test]
async fn a_record_that_disappears_takes_the_domain_out_of_signing() {
    let dns = DnsServer::with_zone_file(&json!({})).await;
    let addr = dns.addr();
    let app = TestApp::spawn_with(|c| c.dns.server = Some(addr)).await;
    let acme = app.create_tenant("Acme").await;
    let (id, _) = verified_domain(&app, &dns, &acme.key, "acme.test").await;
    // The worker role's re-check, every second here.
    let mut config = missive::app::config::Config::with_database_url(&app.db.url);
    config.dns.server = Some(addr);
    config.domains.recheck_secs = Duration::from_secs(1);
    config.secrets.secret_key = Some(secrecy::SecretBox::new(Box::new(TEST_SECRET_KEY)));
    let domains = missive::app::startup::domains(&config, app.store()).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let recheck = tokio::spawn(domains.recheck(stop.clone()));
    dns.publish(&json!({}));
    let path = format!("/v1/domains/{id}");
    let mut status = Value::Null;
    for _ in 0..100 {
        status = app.get(&path, Auth::Key(&acme.key)).await.expect(200)["status"].clone();
        if status == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    recheck.await.unwrap();
    assert_eq!(status, "failed");
    app.send_email(
        &acme.key,
        &json!({ "from": "me@acme.test", "to": "a@x.test", "subject": "s", "text": "t" }),
    )
    .await;
    app.worker.drain().await.unwrap();
    let received = app.sink.received();
    assert!(!String::from_utf8_lossy(&received[0].data).contains("DKIM-Signature"));
}

#[tokio::test]
async fn a_rotated_key_signs_once_its_record_is_found() {
    let dns = DnsServer::with_zone_file(&json!({})).await;
    let addr = dns.addr();
    let app = TestApp::spawn_with(|c| c.dns.server = Some(addr)).await;
    let acme = app.create_tenant("Acme").await;
    let (id, old_zone) = verified_domain(&app, &dns, &acme.key, "acme.test").await;
    let path = format!("/v1/domains/{id}");
    let rotating = app
        .post(&format!("{path}/rotate"), Auth::Key(&acme.key), &json!({}))
        .await;
    let rotating = rotating.expect(200).clone();
    let old_selector = rotating["dkim_selector"].as_str().unwrap().to_owned();
    let next_selector = rotating["next_dkim_selector"].as_str().unwrap().to_owned();
    assert_ne!(old_selector, next_selector);
    // Both records are listed; until the new one is found, the old key signs.
    let dkim: Vec<&Value> = rotating["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["record"] == "DKIM")
        .collect();
    assert_eq!(dkim.len(), 2);
    let checked = app
        .post(&format!("{path}/verify"), Auth::Key(&acme.key), &json!({}))
        .await;
    assert_eq!(checked.expect(200)["status"], "verified");
    let still = app.get(&path, Auth::Key(&acme.key)).await;
    assert_eq!(still.expect(200)["dkim_selector"], old_selector.as_str());
    // Published beside the old one: the next check makes it the key in use.
    let zone = zone_of(&rotating);
    dns.publish(&zone);
    app.post(&format!("{path}/verify"), Auth::Key(&acme.key), &json!({}))
        .await
        .expect(200);
    let rotated = app.get(&path, Auth::Key(&acme.key)).await;
    let rotated = rotated.expect(200);
    assert_eq!(rotated["dkim_selector"], next_selector.as_str());
    assert_eq!(rotated["next_dkim_selector"], Value::Null);
    assert_eq!(rotated["status"], "verified");
    app.send_email(
        &acme.key,
        &json!({ "from": "me@acme.test", "to": "a@x.test", "subject": "s", "text": "t" }),
    )
    .await;
    app.worker.drain().await.unwrap();
    let message = app.sink.received()[0].data.clone();
    assert!(
        String::from_utf8_lossy(&message).contains(&format!("s={next_selector}")),
        "signed with the new selector"
    );
    assert_eq!(dkimpy(&message, &key_records(&zone)).await, "pass");
    drop(old_zone);
}

/// The private key reaches no log line of a real process, at debug level, through a domain's
/// creation, verification and a signed send.
#[tokio::test]
async fn private_keys_appear_in_no_log_line() {
    let dns = DnsServer::with_zone_file(&json!({})).await;
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let acme = app.create_tenant("Acme").await;
    let dns_addr = dns.addr().to_string();
    let api = ApiProcess::start(
        &app.db.url,
        &[
            ("MISSIVE_LOG", "debug"),
            ("MISSIVE_SECRET_KEY", TEST_SECRET_KEY_BASE64),
            ("MISSIVE_DNS_SERVER", &dns_addr),
        ],
    )
    .await;
    let client = missive_tests::http_client();
    let post = |path: &str, body: Value| {
        client
            .post(api.url(path))
            .bearer_auth(&acme.key)
            .json(&body)
            .send()
    };
    let created: Value = post("/v1/domains", json!({ "name": "acme.test" }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    dns.publish(&zone_of(&created));
    let verified: Value = post(&format!("/v1/domains/{id}/verify"), json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verified["status"], "verified");
    let sent = post(
        "/v1/emails",
        json!({ "from": "me@acme.test", "to": "a@x.test", "subject": "s", "text": "t" }),
    )
    .await
    .unwrap();
    assert_eq!(sent.status(), 200);
    let log = api.log();
    assert!(log.contains("domain added"), "the log is written: {log}");
    for needle in key_needles(&app, &id).await {
        assert!(!log.contains(&needle), "the private key reached the log");
    }
}
