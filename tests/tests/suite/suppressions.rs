//! Bounces and the suppression list: a hard bounce suppresses its address for its tenant only,
//! later mail to it is accepted but never sent while the other recipients are delivered, and
//! removing the entry lets mail through again; soft refusals suppress nothing; the Resend SDK's
//! Suppressions calls work unmodified.

use missive::edge::smtp::Listener;
use missive_tests::{Auth, SmtpClient, TestApp, queued_id, run_resend_script};
use serde_json::{Value, json};

async fn read_email(app: &TestApp, key: &str, id: &str) -> Value {
    app.get(&format!("/v1/emails/{id}"), Auth::Key(key))
        .await
        .expect(200)
        .clone()
}

/// The recipient entry of `address` in an email.
fn recipient<'a>(email: &'a Value, address: &str) -> &'a Value {
    email["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["email"] == address)
        .unwrap_or_else(|| panic!("{address} not among {email}"))
}

/// The tenant's suppression list (its first page).
pub async fn suppressions(app: &TestApp, key: &str) -> Vec<Value> {
    app.get("/v1/suppressions", Auth::Key(key))
        .await
        .expect(200)["data"]
        .as_array()
        .unwrap()
        .clone()
}

/// The recipients the sink got each message for.
fn envelopes(app: &TestApp) -> Vec<Vec<String>> {
    app.sink.received().into_iter().map(|m| m.rcpt_to).collect()
}

#[tokio::test]
async fn a_hard_bounce_suppresses_the_address_until_it_is_removed() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    app.sink
        .answer_rcpt_with("gone@x.test", &["550 5.1.1 <gone@x.test>: no such user"]);
    let first = app
        .send_email(
            &acme.key,
            &json!({ "from": "a@acme.test", "to": "gone@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    let email = read_email(&app, &acme.key, &first).await;
    let gone = recipient(&email, "gone@x.test");
    assert_eq!(gone["status"], "bounced");
    assert_eq!(gone["bounce_class"], "hard");

    // On the tenant's list, with where it came from.
    let listed = suppressions(&app, &acme.key).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["email"], "gone@x.test");
    assert_eq!(listed[0]["origin"], "bounce");
    assert_eq!(listed[0]["source_id"], first.as_str());
    assert!(
        listed[0]["reason"].as_str().unwrap().contains("5.1.1"),
        "{listed:?}"
    );
    assert!(suppressions(&app, &other.key).await.is_empty());

    // Accepted, but the suppressed recipient (in any case) is never sent; the others are.
    let second = app
        .send_email(
            &acme.key,
            &json!({ "from": "a@acme.test", "to": ["GONE@x.test", "ok@x.test"], "cc": "cc@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    let email = read_email(&app, &acme.key, &second).await;
    assert_eq!(recipient(&email, "GONE@x.test")["status"], "suppressed");
    assert_eq!(recipient(&email, "ok@x.test")["status"], "queued");
    let events: Vec<(&str, &str)> = email["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["recipient"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        events.contains(&("email.suppressed", "GONE@x.test")),
        "{events:?}"
    );
    let before = app.sink.received().len();
    app.worker.drain().await.unwrap();
    let email = read_email(&app, &acme.key, &second).await;
    assert_eq!(recipient(&email, "GONE@x.test")["status"], "suppressed");
    assert_eq!(recipient(&email, "ok@x.test")["status"], "delivered");
    assert_eq!(recipient(&email, "cc@x.test")["status"], "delivered");
    assert_eq!(email["last_event"], "suppressed");
    assert_eq!(
        envelopes(&app)[before..],
        [vec!["ok@x.test".to_owned(), "cc@x.test".to_owned()]]
    );

    // Another tenant's mail to the same address is not affected.
    let theirs = app
        .send_email(
            &other.key,
            &json!({ "from": "a@other.test", "to": "gone@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    let email = read_email(&app, &other.key, &theirs).await;
    assert_eq!(recipient(&email, "gone@x.test")["status"], "delivered");

    // Removed from the list: delivered again.
    let removed = app
        .delete("/v1/suppressions/Gone@X.test", Auth::Key(&acme.key))
        .await;
    assert_eq!(removed.expect(200)["deleted"], true);
    let third = app
        .send_email(
            &acme.key,
            &json!({ "from": "a@acme.test", "to": "gone@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    let email = read_email(&app, &acme.key, &third).await;
    assert_eq!(recipient(&email, "gone@x.test")["status"], "delivered");
    assert!(suppressions(&app, &acme.key).await.is_empty());
}

#[tokio::test]
async fn refusals_that_say_nothing_final_about_the_address_suppress_nothing() {
    let app = TestApp::spawn().await;
    // The deferred recipient waits for its backoff.
    app.expect_unsent_mail();
    let acme = app.create_tenant("Acme").await;
    app.sink
        .answer_rcpt_with("full@x.test", &["552 5.2.2 mailbox full"]);
    app.sink
        .answer_rcpt_with("blocked@x.test", &["550 5.7.1 rejected by policy"]);
    app.sink
        .answer_rcpt_with("later@x.test", &["451 4.2.1 try later"]);
    let id = app
        .send_email(
            &acme.key,
            &json!({ "from": "a@acme.test", "to": ["full@x.test", "blocked@x.test", "later@x.test"], "subject": "s", "text": "t" }),
        )
        .await;
    app.worker.drain().await.unwrap();
    let email = read_email(&app, &acme.key, &id).await;
    for (address, status) in [
        ("full@x.test", "bounced"),
        ("blocked@x.test", "bounced"),
        ("later@x.test", "deferred"),
    ] {
        let entry = recipient(&email, address);
        assert_eq!(entry["status"], status, "{entry}");
        assert_eq!(entry["bounce_class"], "soft", "{entry}");
    }
    assert!(suppressions(&app, &acme.key).await.is_empty());
}

#[tokio::test]
async fn smtp_submissions_to_a_suppressed_address_are_accepted_and_not_sent() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    app.post(
        "/v1/suppressions",
        Auth::Key(&acme.key),
        &json!({ "email": "gone@x.test" }),
    )
    .await
    .expect(200);
    let mut smtp = SmtpClient::in_memory(app.smtp.clone(), "192.0.2.10", Listener::Submission)
        .authenticated(&acme.key)
        .await;
    let message =
        "From: <me@acme.test>\r\nTo: gone@x.test, ok@x.test\r\nSubject: Hi\r\n\r\nHello\r\n";
    let reply = smtp
        .send_mail("me@acme.test", &["gone@x.test", "ok@x.test"], message)
        .await;
    let id = queued_id(&reply);
    app.worker.drain().await.unwrap();
    let email = read_email(&app, &acme.key, &id).await;
    assert_eq!(recipient(&email, "gone@x.test")["status"], "suppressed");
    assert_eq!(recipient(&email, "ok@x.test")["status"], "delivered");
    assert_eq!(envelopes(&app), [vec!["ok@x.test".to_owned()]]);
}

#[tokio::test]
async fn the_list_is_the_tenants_own_and_needs_its_scope() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    let added = app
        .post(
            "/v1/suppressions",
            Auth::Key(&acme.key),
            &json!({ "email": "x@x.test" }),
        )
        .await;
    let id = added.expect(200)["id"].as_str().unwrap().to_owned();
    // Another tenant cannot read or remove it, by id or by address.
    for path in [
        format!("/v1/suppressions/{id}"),
        "/v1/suppressions/x@x.test".to_owned(),
    ] {
        app.get(&path, Auth::Key(&other.key))
            .await
            .expect_error(404, "not_found");
        app.delete(&path, Auth::Key(&other.key))
            .await
            .expect_error(404, "not_found");
    }
    app.get(&format!("/v1/suppressions/{id}"), Auth::Key(&acme.key))
        .await
        .expect(200);
    // A key without the scope is refused.
    let (_, sender) = app.create_key(&acme.id, "sender", &["send"]).await;
    app.get("/v1/suppressions", Auth::Key(&sender))
        .await
        .expect_error(403, "restricted_api_key");
    // Bad input: a clear 422.
    for body in [
        json!({ "email": "not an address" }),
        json!({ "emails": [] }),
        json!({}),
    ] {
        app.post("/v1/suppressions", Auth::Key(&acme.key), &body)
            .await
            .assert_error_shape();
    }
    app.post(
        "/v1/suppressions/batch/remove",
        Auth::Key(&acme.key),
        &json!({ "emails": ["x@x.test"], "ids": [id] }),
    )
    .await
    .expect_error(422, "validation_error");
    app.get("/v1/suppressions?origin=spam", Auth::Key(&acme.key))
        .await
        .assert_error_shape();
}

#[tokio::test]
async fn the_resend_sdk_suppressions_calls_work_unmodified() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    app.sink.answer_rcpt("bounced@x.test", &[550]);
    app.send_email(
        &acme.key,
        &json!({ "from": "a@acme.test", "to": "bounced@x.test", "subject": "s", "text": "t" }),
    )
    .await;
    app.worker.drain().await.unwrap();
    let result = run_resend_script(
        &app.base_url,
        &acme.key,
        "resend_suppressions.py",
        &[("BOUNCED", "bounced@x.test".to_owned())],
    )
    .await;
    let added = &result["added"];
    assert_eq!(added["object"], "suppression");
    // Adding again (in another case) answers the same entry.
    assert_eq!(result["again"]["id"], added["id"]);
    for got in [&result["by_id"], &result["by_email"]] {
        assert_eq!(got["object"], "suppression");
        assert_eq!(got["id"], added["id"]);
        assert_eq!(got["email"], "manual@example.test");
        assert_eq!(got["origin"], "manual");
        assert_eq!(got["source_id"], Value::Null);
        assert_eq!(got["tenant_id"], acme.id.as_str());
    }
    assert_eq!(result["batch"]["data"].as_array().unwrap().len(), 2);
    let emails = |list: &Value| -> Vec<String> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["email"].as_str().unwrap().to_owned())
            .collect()
    };
    // Newest first.
    assert_eq!(
        emails(&result["everything"]),
        [
            "b2@example.test",
            "b1@example.test",
            "manual@example.test",
            "bounced@x.test"
        ]
    );
    assert_eq!(result["everything"]["object"], "list");
    assert_eq!(emails(&result["manual"]).len(), 3);
    assert_eq!(emails(&result["bounces"]), ["bounced@x.test"]);
    assert_eq!(result["first_page"]["has_more"], true);
    assert_eq!(
        emails(&result["second_page"]),
        ["manual@example.test", "bounced@x.test"]
    );
    assert_eq!(result["second_page"]["has_more"], false);
    assert_eq!(result["removed_by_email"]["id"], added["id"]);
    assert_eq!(result["removed_by_email"]["deleted"], true);
    assert_eq!(result["removed_batch"]["data"].as_array().unwrap().len(), 2);
    assert_eq!(result["removed_bounce"]["deleted"], true);
    assert!(emails(&result["after"]).is_empty(), "{result}");
    assert!(
        result["missing"]["message"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{result}"
    );
    assert!(
        result["invalid"]["message"]
            .as_str()
            .unwrap()
            .contains("not an address"),
        "{result}"
    );
}
