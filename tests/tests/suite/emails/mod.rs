//! `/v1/emails`: accept (committed before the answer), read back, list, cancel, idempotency,
//! batch, validation and tenant isolation.

use base64::Engine as _;
use mail_parser::MimeHeaders as _;
use missive_tests::{Auth, TestApp};
use serde_json::{Value, json};

mod schedule;

fn plain(to: &Value) -> Value {
    json!({ "from": "Acme <news@acme.test>", "to": to, "subject": "Hello", "text": "Hi there" })
}

/// A scheduling time a month ahead, in whole seconds as the API prints it.
fn in_a_month() -> String {
    let at = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        + time::Duration::days(30);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn stored_mime(app: &TestApp, id: &str) -> Vec<u8> {
    sqlx::query_scalar("SELECT mime FROM emails WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(app.store().pool())
        .await
        .unwrap()
}

async fn count(app: &TestApp, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(app.store().pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_sent_email_is_committed_and_reads_back_with_recipients_and_events() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    let body = json!({
        "from": "Acme <news@acme.test>",
        "to": ["a@x.test", "Bee <b@x.test>"],
        "cc": "c@x.test",
        "bcc": ["hidden@x.test"],
        "reply_to": "support@acme.test",
        "subject": "Welcome",
        "html": "<p>Hi</p>",
        "text": "Hi",
        "headers": { "X-Campaign": "spring" },
        "tags": [{ "name": "category", "value": "welcome" }]
    });
    let sent = app.post("/v1/emails", Auth::Key(&tenant.key), &body).await;
    let id = sent.expect(200)["id"].as_str().unwrap().to_owned();

    let email = app
        .get(&format!("/v1/emails/{id}"), Auth::Key(&tenant.key))
        .await;
    let email = email.expect(200).clone();
    assert_eq!(email["object"], "email");
    assert_eq!(email["tenant_id"], tenant.id.as_str());
    assert_eq!(email["from"], "Acme <news@acme.test>");
    assert_eq!(email["to"], json!(["a@x.test", "b@x.test"]));
    assert_eq!(email["cc"], json!(["c@x.test"]));
    assert_eq!(email["bcc"], json!(["hidden@x.test"]));
    assert_eq!(email["reply_to"], json!(["support@acme.test"]));
    assert_eq!(
        email["tags"],
        json!([{ "name": "category", "value": "welcome" }])
    );
    assert_eq!(email["last_event"], "queued");
    let recipients = email["recipients"].as_array().unwrap();
    assert_eq!(recipients.len(), 4);
    assert!(
        recipients
            .iter()
            .all(|r| r["status"] == "queued" && r["attempts"] == 0)
    );
    let events = email["events"].as_array().unwrap();
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e["type"] == "email.queued"));

    // The stored message: headers from the request, our Message-ID, and no trace of Bcc.
    let mime = stored_mime(&app, &id).await;
    let parsed = mail_parser::MessageParser::default().parse(&mime).unwrap();
    assert_eq!(parsed.subject(), Some("Welcome"));
    assert_eq!(
        parsed.message_id().unwrap(),
        email["message_id"].as_str().unwrap()
    );
    assert!(parsed.message_id().unwrap().ends_with("@acme.test"));
    assert_eq!(
        parsed.header_raw("X-Campaign").map(str::trim),
        Some("spring")
    );
    assert!(parsed.date().is_some());
    let text = String::from_utf8_lossy(&mime).to_ascii_lowercase();
    assert!(
        !text.lines().any(|l| l.starts_with("bcc:")) && !text.contains("hidden@x.test"),
        "Bcc leaked"
    );
}

#[tokio::test]
async fn attachments_are_stored_byte_identical() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    let pdf: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let png: Vec<u8> = vec![0x89, b'P', b'N', b'G', 0, 255, 13, 10];
    let body = json!({
        "from": "news@acme.test", "to": "a@x.test", "subject": "Files",
        "html": "<img src=\"cid:logo\">",
        "attachments": [
            { "filename": "report.pdf", "content": base64::engine::general_purpose::STANDARD.encode(&pdf) },
            { "filename": "logo.png", "content": png, "content_id": "logo", "content_type": "image/png" }
        ]
    });
    let id = app.send_email(&tenant.key, &body).await;
    let mime = stored_mime(&app, &id).await;
    let parsed = mail_parser::MessageParser::default().parse(&mime).unwrap();
    let attachments: Vec<_> = parsed.attachments().collect();
    assert_eq!(attachments.len(), 2);
    let report = attachments
        .iter()
        .find(|a| a.attachment_name() == Some("report.pdf"))
        .unwrap();
    assert_eq!(report.contents(), pdf.as_slice());
    assert_eq!(report.content_type().unwrap().ctype(), "application");
    let logo = attachments
        .iter()
        .find(|a| a.content_id() == Some("logo"))
        .unwrap();
    assert_eq!(logo.contents(), png.as_slice());
    for line in mime.split(|b| *b == b'\n') {
        assert!(line.len() <= 998);
    }
}

#[tokio::test]
async fn invalid_emails_are_422_naming_the_field_and_store_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let many: Vec<String> = (0..51).map(|i| format!("r{i}@x.test")).collect();
    let cases = [
        (
            json!({ "from": "a@acme.test", "subject": "s", "text": "t" }),
            "to",
        ),
        (
            json!({ "from": "a@acme.test", "to": [], "subject": "s", "text": "t" }),
            "to",
        ),
        (
            json!({ "from": "a@acme.test", "to": many, "subject": "s", "text": "t" }),
            "to",
        ),
        (
            json!({ "from": "a@acme.test", "to": "not-an-address", "subject": "s", "text": "t" }),
            "to",
        ),
        (
            json!({ "from": "nope", "to": "a@x.test", "subject": "s", "text": "t" }),
            "from",
        ),
        (
            json!({ "to": "a@x.test", "subject": "s", "text": "t" }),
            "from",
        ),
        (
            json!({ "from": "a@acme.test", "to": "a@x.test", "subject": "s" }),
            "html or text",
        ),
        (
            json!({ "from": "a@acme.test", "to": "a@x.test", "subject": "a\r\nBcc: x@y.test", "text": "t" }),
            "subject",
        ),
        (
            json!({ "from": "a@acme.test", "to": "a@x.test", "subject": "s", "text": "t", "headers": { "X-A": "1\r\nBcc: e@v.test" } }),
            "headers.X-A",
        ),
        (
            json!({ "from": "a@acme.test", "to": "a@x.test", "subject": "s", "text": "t", "headers": { "Message-ID": "<x@y>" } }),
            "headers.Message-ID",
        ),
        (
            json!({ "from": "a@acme.test", "to": "a@x.test", "subject": "s", "text": "t", "tags": [{ "name": "a b", "value": "c" }] }),
            "tags.name",
        ),
        (
            json!({ "from": "a@acme.test", "to": "a@x.test", "subject": "s", "text": "t", "attachments": [{ "filename": "a.txt", "content": "***" }] }),
            "attachments[0].content",
        ),
        (
            json!({ "from": "a@acme.test", "to": "a@x.test", "subject": "s", "text": "t", "attachments": [{ "filename": "a.txt", "path": "https://x.test/a" }] }),
            "attachments[0].path",
        ),
        (
            json!({ "from": "a@acme.test", "to": "a@x.test", "subject": "s", "text": "t", "scheduled_at": "tomorrow" }),
            "scheduled_at",
        ),
        (
            json!({ "from": "a@acme.test", "to": "a@x.test", "subject": 5, "text": "t" }),
            "subject",
        ),
    ];
    for (body, field) in cases {
        let response = app.post("/v1/emails", Auth::Key(&tenant.key), &body).await;
        let message = response.expect_error(422, "validation_error");
        assert!(message.contains(field), "{body}: {message}");
    }
    assert_eq!(count(&app, "emails").await, 0);
    assert_eq!(count(&app, "deliveries").await, 0);
}

#[tokio::test]
async fn tenant_settings_restrict_and_default_the_sender() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let created = app
        .post(
            "/v1/tenants",
            Auth::Admin,
            &json!({ "name": "Acme", "settings": {
                "default_from": "Acme <noreply@acme.test>",
                "reply_to": "help@acme.test",
                "allowed_sender_domains": ["acme.test"]
            } }),
        )
        .await;
    let key = created.expect(201)["api_key"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = app
        .post(
            "/v1/emails",
            Auth::Key(&key),
            &json!({ "from": "x@evil.test", "to": "a@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    let message = refused.expect_error(422, "invalid_from_address");
    assert!(message.contains("evil.test"), "{message}");
    app.post(
        "/v1/emails",
        Auth::Key(&key),
        &json!({ "from": "x@mail.acme.test", "to": "a@x.test", "subject": "s", "text": "t" }),
    )
    .await
    .expect(200);
    let id = app
        .post(
            "/v1/emails",
            Auth::Key(&key),
            &json!({ "to": "a@x.test", "subject": "s", "text": "t" }),
        )
        .await
        .expect(200)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let email = app.get(&format!("/v1/emails/{id}"), Auth::Key(&key)).await;
    let email = email.expect(200);
    assert_eq!(email["from"], "Acme <noreply@acme.test>");
    assert_eq!(email["reply_to"], json!(["help@acme.test"]));
}

#[tokio::test]
async fn messages_over_the_size_limit_are_refused() {
    let app = TestApp::spawn_with(|c| c.accept.max_message_bytes = 4096).await;
    let tenant = app.create_tenant("Acme").await;
    let mut body = plain(&json!("a@x.test"));
    body["text"] = json!("x".repeat(8000));
    let message = app
        .post("/v1/emails", Auth::Key(&tenant.key), &body)
        .await
        .expect_error(422, "validation_error")
        .to_owned();
    assert!(message.contains("over the limit"), "{message}");
    assert_eq!(count(&app, "emails").await, 0);
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_answer_and_refuse_another_body() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    let send = |body: Value, key: &'static str| {
        let request = app
            .client
            .post(format!("{}/v1/emails", app.base_url))
            .bearer_auth(&tenant.key)
            .header("Idempotency-Key", key)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, first) = send(plain(&json!("a@x.test")), "order-42").await;
    assert_eq!(status, 200);
    // Same body, reformatted: the same answer, and still one email.
    let reordered = json!({ "text": "Hi there", "subject": "Hello", "to": "a@x.test", "from": "Acme <news@acme.test>" });
    let (status, second) = send(reordered, "order-42").await;
    assert_eq!((status, &second), (200, &first));
    assert_eq!(count(&app, "emails").await, 1);
    // Concurrent replays agree too.
    let (a, b) = tokio::join!(
        send(plain(&json!("a@x.test")), "order-42"),
        send(plain(&json!("a@x.test")), "order-42")
    );
    assert_eq!((a.1.clone(), b.1.clone()), (first.clone(), first.clone()));
    // Another body under the same key is a conflict; the same body under a new key is new.
    let (status, conflict) = send(plain(&json!("b@x.test")), "order-42").await;
    assert_eq!(status, 409);
    assert_eq!(conflict["name"], "invalid_idempotent_request");
    let (status, other) = send(plain(&json!("a@x.test")), "order-43").await;
    assert_eq!(status, 200);
    assert_ne!(other["id"], first["id"]);
    assert_eq!(count(&app, "emails").await, 2);
    // Keys are per tenant: another tenant's identical key is unrelated.
    let b = app.create_tenant("B").await;
    let response = app
        .client
        .post(format!("{}/v1/emails", app.base_url))
        .bearer_auth(&b.key)
        .header("Idempotency-Key", "order-42")
        .json(&plain(&json!("a@x.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_ne!(body["id"], first["id"]);
    // An over-long key is refused.
    let long = app
        .client
        .post(format!("{}/v1/emails", app.base_url))
        .bearer_auth(&tenant.key)
        .header("Idempotency-Key", "k".repeat(257))
        .json(&plain(&json!("a@x.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), 422);
}

#[tokio::test]
async fn a_batch_is_validated_whole_and_stored_whole() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    let ok = app
        .post(
            "/v1/emails/batch",
            Auth::Key(&tenant.key),
            &json!([plain(&json!("a@x.test")), plain(&json!("b@x.test"))]),
        )
        .await;
    let ids = ok.expect(200)["data"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 2);
    for id in &ids {
        app.get(
            &format!("/v1/emails/{}", id["id"].as_str().unwrap()),
            Auth::Key(&tenant.key),
        )
        .await
        .expect(200);
    }
    let bad = app
        .post(
            "/v1/emails/batch",
            Auth::Key(&tenant.key),
            &json!([plain(&json!("c@x.test")), plain(&json!("nope"))]),
        )
        .await;
    let message = bad.expect_error(422, "validation_error");
    assert!(message.starts_with("[1]"), "{message}");
    assert_eq!(
        count(&app, "emails").await,
        2,
        "nothing of the refused batch was stored"
    );
    let too_many: Vec<Value> = (0..101).map(|_| plain(&json!("a@x.test"))).collect();
    app.post("/v1/emails/batch", Auth::Key(&tenant.key), &json!(too_many))
        .await
        .expect_error(422, "validation_error");
    app.post("/v1/emails/batch", Auth::Key(&tenant.key), &json!([]))
        .await
        .expect_error(422, "validation_error");
}

#[tokio::test]
async fn scopes_guard_sending_and_reading() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    let (_, reader) = app.create_key(&tenant.id, "reader", &["emails:read"]).await;
    let (_, sender) = app.create_key(&tenant.id, "sender", &["send"]).await;
    let message = app
        .post("/v1/emails", Auth::Key(&reader), &plain(&json!("a@x.test")))
        .await
        .expect_error(403, "restricted_api_key")
        .to_owned();
    assert!(message.contains("`send`"));
    let id = app
        .post("/v1/emails", Auth::Key(&sender), &plain(&json!("a@x.test")))
        .await
        .expect(200)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let message = app
        .get(&format!("/v1/emails/{id}"), Auth::Key(&sender))
        .await
        .expect_error(403, "restricted_api_key")
        .to_owned();
    assert!(message.contains("emails:read"));
    app.get("/v1/emails", Auth::Key(&sender))
        .await
        .expect_error(403, "restricted_api_key");
    app.get(&format!("/v1/emails/{id}"), Auth::Key(&reader))
        .await
        .expect(200);
}

#[tokio::test]
async fn another_tenants_emails_are_invisible() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let a = app.create_tenant("A").await;
    let b = app.create_tenant("B").await;
    let id = app
        .post("/v1/emails", Auth::Key(&a.key), &plain(&json!("a@x.test")))
        .await
        .expect(200)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut scheduled = plain(&json!("a@x.test"));
    scheduled["scheduled_at"] = json!(in_a_month());
    let scheduled_id = app.send_email(&a.key, &scheduled).await;
    let nowhere = app
        .get(
            &format!("/v1/emails/{}", uuid::Uuid::now_v7()),
            Auth::Key(&b.key),
        )
        .await;
    let elsewhere = app
        .get(&format!("/v1/emails/{id}"), Auth::Key(&b.key))
        .await;
    elsewhere.expect_error(404, "not_found");
    assert_eq!(elsewhere.text, nowhere.text, "no hint that the id exists");
    app.post(
        &format!("/v1/emails/{scheduled_id}/cancel"),
        Auth::Key(&b.key),
        &json!({}),
    )
    .await
    .expect_error(404, "not_found");
    let listed = app.get("/v1/emails", Auth::Key(&b.key)).await;
    assert_eq!(listed.expect(200)["data"], json!([]));
    // A's email is untouched.
    let email = app
        .get(&format!("/v1/emails/{scheduled_id}"), Auth::Key(&a.key))
        .await;
    assert_eq!(email.expect(200)["last_event"], "scheduled");
}

#[tokio::test]
async fn listing_pages_and_filters() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut body = plain(&json!(format!("r{i}@x.test")));
        body["tags"] = json!([{ "name": "n", "value": format!("v{i}") }]);
        ids.push(app.send_email(&tenant.key, &body).await);
    }
    let page = app.get("/v1/emails?limit=2", Auth::Key(&tenant.key)).await;
    let page = page.expect(200).clone();
    assert_eq!(page["has_more"], true);
    let got: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[2].as_str(), ids[1].as_str()], "newest first");
    let next = app
        .get(
            &format!("/v1/emails?limit=2&after={}", ids[1]),
            Auth::Key(&tenant.key),
        )
        .await;
    let next = next.expect(200);
    assert_eq!(next["has_more"], false);
    assert_eq!(next["data"][0]["id"], ids[0].as_str());
    let tagged = app.get("/v1/emails?tag=n:v1", Auth::Key(&tenant.key)).await;
    let tagged = tagged.expect(200)["data"].as_array().unwrap().clone();
    assert_eq!(tagged.len(), 1);
    assert_eq!(tagged[0]["id"], ids[1].as_str());
    let queued = app
        .get("/v1/emails?status=queued", Auth::Key(&tenant.key))
        .await;
    assert_eq!(queued.expect(200)["data"].as_array().unwrap().len(), 3);
    let delivered = app
        .get("/v1/emails?status=delivered", Auth::Key(&tenant.key))
        .await;
    assert_eq!(delivered.expect(200)["data"], json!([]));
    let future = app
        .get(
            "/v1/emails?created_after=2099-01-01T00:00:00Z",
            Auth::Key(&tenant.key),
        )
        .await;
    assert_eq!(future.expect(200)["data"], json!([]));
    for bad in [
        "limit=0",
        "status=lost",
        "tag=novalue",
        "created_after=yesterday",
        "after=x",
    ] {
        app.get(&format!("/v1/emails?{bad}"), Auth::Key(&tenant.key))
            .await
            .expect_error(422, "validation_error");
    }
}

#[tokio::test]
async fn nul_characters_are_refused_with_a_422_not_a_server_error() {
    // Found by schemathesis: Postgres text cannot hold NUL, and these reached it.
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let mut body = plain(&json!("a@x.test"));
    body["text"] = json!("a\u{0}b");
    let message = app
        .post("/v1/emails", Auth::Key(&tenant.key), &body)
        .await
        .expect_error(422, "validation_error")
        .to_owned();
    assert!(message.contains("text"), "{message}");
    app.get("/v1/emails?tag=a%00:b", Auth::Key(&tenant.key))
        .await
        .expect_error(422, "validation_error");
    app.get("/v1/emails?tag=kind:welcome", Auth::Key(&tenant.key))
        .await
        .expect(200);
}
