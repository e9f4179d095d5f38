//! Templates: Resend's Templates API driven by the official Python SDK, rendering rules
//! (escaping, strict variables, partials, layouts, caps), isolation between tenants, shipped
//! templates, and that what a preview shows is what the relay receives, over REST and SMTP.

use mail_parser::{Message, MessageParser};
use missive_tests::{Auth, SmtpClient, TestApp, queued_id, run_resend_script};
use serde_json::{Value, json};

mod sending;

/// Creates a template and returns its id.
async fn create(app: &TestApp, key: &str, body: &Value) -> String {
    app.post("/v1/templates", Auth::Key(key), body)
        .await
        .expect(200)["id"]
        .as_str()
        .expect("template id")
        .to_owned()
}

async fn publish(app: &TestApp, key: &str, id: &str) {
    app.post(
        &format!("/v1/templates/{id}/publish"),
        Auth::Key(key),
        &json!({}),
    )
    .await
    .expect(200);
}

async fn create_published(app: &TestApp, key: &str, body: &Value) -> String {
    let id = create(app, key, body).await;
    publish(app, key, &id).await;
    id
}

/// The one message the sink received for `rcpt`, parsed.
fn received_for(app: &TestApp, rcpt: &str) -> Vec<u8> {
    app.sink
        .received()
        .into_iter()
        .find(|m| m.rcpt_to.iter().any(|r| r == rcpt))
        .unwrap_or_else(|| panic!("nothing reached {rcpt}"))
        .data
}

fn parse(data: &[u8]) -> Message<'_> {
    MessageParser::default().parse(data).expect("a message")
}

/// A part's text without the line break a single-part message's body ends with on the wire.
fn html_of(message: &Message<'_>) -> String {
    unwire(&message.body_html(0).expect("an html part"))
}

fn text_of(message: &Message<'_>) -> String {
    unwire(&message.body_text(0).expect("a text part"))
}

fn unwire(part: &str) -> String {
    part.strip_suffix("\r\n").unwrap_or(part).to_owned()
}

#[tokio::test]
async fn the_resend_python_sdk_manages_templates_and_sends_with_one() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let result = run_resend_script(&app.base_url, &tenant.key, "resend_templates.py", &[]).await;
    let id = result["created"]["id"].as_str().unwrap();
    assert_eq!(result["created"]["object"], "template");
    assert_eq!(result["before_publish"]["status"], "draft");
    assert_eq!(result["before_publish"]["from"], "Acme <orders@acme.test>");
    assert_eq!(
        result["before_publish"]["reply_to"],
        json!(["help@acme.test"])
    );
    assert_eq!(result["before_publish"]["variables"][1]["type"], "number");
    assert_eq!(
        result["before_publish"]["variables"][2]["fallback_value"],
        "UPS"
    );
    assert!(
        result["draft_error"]["message"]
            .as_str()
            .unwrap()
            .contains("is a draft"),
        "{}",
        result["draft_error"]
    );
    assert_eq!(result["published"]["id"], id);
    assert_eq!(result["by_alias"]["id"], id);
    assert_eq!(result["by_alias"]["status"], "published");
    assert_eq!(result["by_alias"]["published_version"], 1);
    assert_eq!(result["updated"]["id"], id);
    assert_ne!(result["copy"]["id"], id);
    let listed = &result["listed"];
    assert_eq!(listed["object"], "list");
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert_eq!(listed["data"][0]["name"], "Order shipped (v2) (copy)");
    assert_eq!(listed["data"][1]["status"], "published");
    assert_eq!(result["removed"]["deleted"], true);
    assert!(
        result["missing_error"]["message"]
            .as_str()
            .unwrap()
            .contains("variable `ORDER`"),
        "{}",
        result["missing_error"]
    );

    app.worker.drain().await.unwrap();
    let data = received_for(&app, "buyer@x.test");
    let message = parse(&data);
    assert_eq!(message.subject(), Some("Order 42 is on its way"));
    assert_eq!(
        message.from().unwrap().first().unwrap().address(),
        Some("orders@acme.test")
    );
    assert_eq!(
        message.reply_to().unwrap().first().unwrap().address(),
        Some("help@acme.test")
    );
    assert_eq!(
        html_of(&message).trim(),
        "<p>Hi Ann &lt;ann&gt;, order <b>42</b> ships with UPS.</p>"
    );
    assert_eq!(
        text_of(&message).trim(),
        "Hi Ann <ann>, order 42 ships with UPS."
    );
    let email = app
        .get(
            &format!("/v1/emails/{}", result["sent"]["id"].as_str().unwrap()),
            Auth::Key(&tenant.key),
        )
        .await;
    assert_eq!(email.expect(200)["subject"], "Order 42 is on its way");
}

#[tokio::test]
async fn html_is_escaped_text_and_subject_are_not_and_the_send_overrides_the_template() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    create_published(
        &app,
        &tenant.key,
        &json!({
            "name": "Note", "alias": "note", "from": "news@acme.test",
            "subject": "About {{TOPIC}}",
            "html": "<h1>{{TOPIC}}</h1><div>{{{TRUSTED}}}</div>",
            "text": "{{TOPIC}}",
            "variables": [{"key": "TOPIC", "type": "string"}],
        }),
    )
    .await;
    let topic = "<script>alert(1)</script> & co";
    app.send_email(
        &tenant.key,
        &json!({"to": "a@x.test", "template": {"id": "note", "variables": {"TOPIC": topic, "TRUSTED": "<i>ok</i>"}}}),
    )
    .await;
    app.send_email(
        &tenant.key,
        &json!({
            "to": "b@x.test", "from": "Boss <boss@acme.test>", "subject": "Mine",
            "reply_to": ["r@acme.test"],
            "template": {"id": "note", "variables": {"TOPIC": "x", "TRUSTED": ""}},
        }),
    )
    .await;
    app.worker.drain().await.unwrap();
    let a = received_for(&app, "a@x.test");
    let a = parse(&a);
    assert_eq!(
        html_of(&a),
        "<h1>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</h1><div><i>ok</i></div>"
    );
    assert_eq!(text_of(&a), topic);
    assert_eq!(a.subject(), Some(format!("About {topic}").as_str()));
    let b = received_for(&app, "b@x.test");
    let b = parse(&b);
    assert_eq!(b.subject(), Some("Mine"));
    assert_eq!(
        b.from().unwrap().first().unwrap().address(),
        Some("boss@acme.test")
    );
    assert_eq!(
        b.reply_to().unwrap().first().unwrap().address(),
        Some("r@acme.test")
    );
}

#[tokio::test]
async fn strict_errors_name_the_variable_the_type_or_the_template() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let key = tenant.key.as_str();
    create_published(
        &app,
        key,
        &json!({
            "name": "Invoice", "alias": "invoice", "from": "billing@acme.test",
            "subject": "Invoice {{NUMBER}}",
            "html": "<p>Dear {{NAME}},</p>\n<p>{{AMOUNT}} due</p>",
            "variables": [
                {"key": "NAME", "type": "string"},
                {"key": "NUMBER", "type": "string", "fallback_value": "draft"},
                {"key": "AMOUNT", "type": "number"},
            ],
        }),
    )
    .await;
    let send = |template: Value| {
        let app = &app;
        async move {
            app.post(
                "/v1/emails",
                Auth::Key(key),
                &json!({"to": "r@x.test", "template": template}),
            )
            .await
        }
    };
    let missing = send(json!({"id": "invoice", "variables": {"AMOUNT": 3}})).await;
    assert_eq!(
        missing.expect_error(422, "validation_error"),
        "template `invoice`: variable `NAME` is used (html, line 1, column 9) but neither given \
         nor declared with a fallback_value"
    );
    let wrong = send(json!({"id": "invoice", "variables": {"NAME": "x", "AMOUNT": "3"}})).await;
    assert_eq!(
        wrong.expect_error(422, "validation_error"),
        "template `invoice`: variables.AMOUNT: must be a number, as the template declares it"
    );
    let unknown = send(json!({"id": "nowhere"})).await;
    assert_eq!(
        unknown.expect_error(422, "validation_error"),
        "template `nowhere` not found"
    );
    create(
        &app,
        key,
        &json!({"name": "Later", "alias": "later", "html": "x", "subject": "s"}),
    )
    .await;
    let draft = send(json!({"id": "later"})).await;
    assert_eq!(
        draft.expect_error(422, "validation_error"),
        "template `Later` is a draft: publish it before sending with it"
    );
    let with_body = app
        .post(
            "/v1/emails",
            Auth::Key(key),
            &json!({"to": "r@x.test", "html": "<p>mine</p>", "template": {"id": "invoice"}}),
        )
        .await;
    assert!(
        with_body
            .expect_error(422, "validation_error")
            .contains("not allowed with `template`")
    );
    let no_subject = create_published(
        &app,
        key,
        &json!({"name": "Bare", "html": "x", "from": "a@acme.test"}),
    )
    .await;
    let needs_subject = send(json!({ "id": no_subject })).await;
    assert_eq!(
        needs_subject.expect_error(422, "validation_error"),
        "subject: required"
    );
    // A batch names the email that failed; nothing of it is stored.
    let batch = app
        .post(
            "/v1/emails/batch",
            Auth::Key(key),
            &json!([
                {"to": "1@x.test", "template": {"id": "invoice", "variables": {"NAME": "a", "AMOUNT": 1}}},
                {"to": "2@x.test", "template": {"id": "invoice", "variables": {"AMOUNT": 1}}},
            ]),
        )
        .await;
    assert!(
        batch
            .expect_error(422, "validation_error")
            .starts_with("[1] template `invoice`: variable `NAME`")
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM emails")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(stored, 0);
    // Saving refuses bad sources and definitions with their position.
    let syntax = app
        .post(
            "/v1/templates",
            Auth::Key(key),
            &json!({"name": "Broken", "html": "ok\n{{#if x}}"}),
        )
        .await;
    assert!(
        syntax
            .expect_error(422, "validation_error")
            .starts_with("html, line 2,")
    );
    let helper = app
        .post(
            "/v1/templates",
            Auth::Key(key),
            &json!({"name": "Logs", "html": "{{log \"secret\"}}"}),
        )
        .await;
    assert!(
        helper
            .expect_error(422, "validation_error")
            .contains("unknown helper `log`")
    );
}

#[tokio::test]
async fn partials_that_include_each_other_are_refused_and_never_run() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let key = tenant.key.as_str();
    let unknown = app
        .post(
            "/v1/templates",
            Auth::Key(key),
            &json!({"name": "A", "alias": "a", "html": "<p>\n  {{> b}}</p>"}),
        )
        .await;
    assert_eq!(
        unknown.expect_error(422, "validation_error"),
        "html, line 2, column 3: unknown partial `b`: no published template has this alias"
    );
    let b = create_published(&app, key, &json!({"name": "B", "alias": "b", "html": "b"})).await;
    let a = create_published(
        &app,
        key,
        &json!({"name": "A", "alias": "a", "html": "a{{> b}}", "subject": "s", "from": "x@acme.test"}),
    )
    .await;
    let cycle = app
        .patch(
            &format!("/v1/templates/{b}"),
            Auth::Key(key),
            &json!({"html": "b{{> a}}"}),
        )
        .await;
    assert_eq!(
        cycle.expect_error(422, "validation_error"),
        "templates include each other: b → a → b"
    );
    let own = app
        .post(
            "/v1/templates",
            Auth::Key(key),
            &json!({"name": "Self", "alias": "self", "html": "{{> self}}"}),
        )
        .await;
    assert!(
        own.expect_error(422, "validation_error")
            .contains("include each other")
    );
    // Deleting a partial in use, or renaming its alias, is refused.
    let in_use = app
        .delete(&format!("/v1/templates/{b}"), Auth::Key(key))
        .await;
    assert!(
        in_use
            .expect_error(409, "conflict")
            .contains("included by `A`")
    );

    // Two processes saving at once could still close a cycle; write one as they would have.
    app.execute_sql(
        "UPDATE template_versions SET html = 'b{{> a}}', uses = '{a}'
         WHERE template_id = (SELECT id FROM templates WHERE alias = 'b')",
    )
    .await;
    let looped = app
        .post(
            "/v1/emails",
            Auth::Key(key),
            &json!({"to": "r@x.test", "template": {"id": a}}),
        )
        .await;
    assert_eq!(
        looped.expect_error(422, "validation_error"),
        "template `".to_owned()
            + &a
            + "`: templates include each other: (this template) → b → a → b"
    );
    let preview = app
        .post(
            &format!("/v1/templates/{a}/render"),
            Auth::Key(key),
            &json!({}),
        )
        .await;
    assert!(
        preview
            .expect_error(422, "validation_error")
            .contains("include each other")
    );
    // The process is still up and serving.
    app.get("/healthz", Auth::None).await.expect(200);
    app.send_email(
        key,
        &json!({"from": "x@acme.test", "to": "ok@x.test", "subject": "s", "text": "t"}),
    )
    .await;
    app.worker.drain().await.unwrap();
}

#[tokio::test]
async fn output_over_the_cap_is_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let html = format!(
        "{{{{#each ITEMS}}}}{}{{{{/each}}}}",
        "{{../BLOCK}}".repeat(30)
    );
    let id = create_published(
        &app,
        &tenant.key,
        &json!({"name": "Big", "html": html, "subject": "s", "from": "a@acme.test"}),
    )
    .await;
    let variables = json!({"BLOCK": "x".repeat(40_000), "ITEMS": [1, 2, 3]});
    let sent = app
        .post(
            "/v1/emails",
            Auth::Key(&tenant.key),
            &json!({"to": "r@x.test", "template": {"id": id, "variables": variables}}),
        )
        .await;
    assert!(
        sent.expect_error(422, "validation_error")
            .contains("the rendered html is over the limit of 1048576 bytes")
    );
    let preview = app
        .post(
            &format!("/v1/templates/{id}/render"),
            Auth::Key(&tenant.key),
            &json!({ "variables": variables }),
        )
        .await;
    assert!(
        preview
            .expect_error(422, "validation_error")
            .contains("over the limit")
    );
    // Sources are capped too.
    let huge = app
        .post(
            "/v1/templates",
            Auth::Key(&tenant.key),
            &json!({"name": "Huge", "html": "x".repeat(300 * 1024)}),
        )
        .await;
    assert!(
        huge.expect_error(422, "validation_error")
            .contains("longer than")
    );
}
