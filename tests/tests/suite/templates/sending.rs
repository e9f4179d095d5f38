//! Sending with a template: tenants' isolation, scopes, the shipped templates, previews, what queued mail keeps, caches across processes, listing.

use super::*;

#[tokio::test]
async fn a_tenant_cannot_name_render_send_with_or_include_another_tenants_template() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let globex = app.create_tenant("Globex").await;
    let secret = create_published(
        &app,
        &acme.key,
        &json!({"name": "Secret", "alias": "secret", "html": "acme only", "subject": "s", "from": "a@acme.test"}),
    )
    .await;
    let other = Auth::Key(&globex.key);
    for reference in [secret.as_str(), "secret"] {
        let path = format!("/v1/templates/{reference}");
        app.get(&path, other).await.expect(404);
        app.patch(&path, other, &json!({"name": "mine"}))
            .await
            .expect(404);
        app.delete(&path, other).await.expect(404);
        for action in ["publish", "duplicate", "render"] {
            app.post(&format!("{path}/{action}"), other, &json!({}))
                .await
                .expect(404);
        }
        let send = app
            .post(
                "/v1/emails",
                other,
                &json!({"to": "r@x.test", "from": "g@globex.test", "template": {"id": reference}}),
            )
            .await;
        assert_eq!(
            send.expect_error(422, "validation_error"),
            format!("template `{reference}` not found")
        );
    }
    let list = app.get("/v1/templates", other).await;
    assert_eq!(list.expect(200)["data"], json!([]));
    let partial = app
        .post(
            "/v1/templates",
            other,
            &json!({"name": "Thief", "html": "{{> secret}}"}),
        )
        .await;
    assert!(
        partial
            .expect_error(422, "validation_error")
            .contains("unknown partial `secret`")
    );
    let layout = app
        .post(
            "/v1/templates",
            other,
            &json!({"name": "Thief", "html": "x", "layout": "secret"}),
        )
        .await;
    assert!(
        layout
            .expect_error(422, "validation_error")
            .contains("unknown layout `secret`")
    );
    // The same alias is free for Globex, and each tenant gets its own.
    create_published(
        &app,
        &globex.key,
        &json!({"name": "Secret", "alias": "secret", "html": "globex", "subject": "s", "from": "g@globex.test"}),
    )
    .await;
    app.send_email(
        &globex.key,
        &json!({"to": "g@x.test", "template": {"id": "secret"}}),
    )
    .await;
    app.send_email(
        &acme.key,
        &json!({"to": "a@x.test", "template": {"id": "secret"}}),
    )
    .await;
    app.worker.drain().await.unwrap();
    assert_eq!(html_of(&parse(&received_for(&app, "g@x.test"))), "globex");
    assert_eq!(
        html_of(&parse(&received_for(&app, "a@x.test"))),
        "acme only"
    );
}

#[tokio::test]
async fn templates_scopes_are_enforced() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let (_, sender) = app.create_key(&tenant.id, "sender", &["send"]).await;
    let (_, reader) = app
        .create_key(&tenant.id, "reader", &["templates:read"])
        .await;
    let body = json!({"name": "T", "html": "x"});
    app.post("/v1/templates", Auth::Key(&sender), &body)
        .await
        .expect_error(403, "restricted_api_key");
    app.post("/v1/templates", Auth::Key(&reader), &body)
        .await
        .expect_error(403, "restricted_api_key");
    let id = create(&app, &tenant.key, &body).await;
    app.get(&format!("/v1/templates/{id}"), Auth::Key(&reader))
        .await
        .expect(200);
    app.get("/v1/templates", Auth::Key(&sender))
        .await
        .expect_error(403, "restricted_api_key");
}

#[tokio::test]
async fn shipped_templates_serve_every_tenant_and_a_tenants_own_alias_wins() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let key = tenant.key.as_str();
    let shipped = app.get("/v1/templates/welcome", Auth::Key(key)).await;
    let shipped = shipped.expect(200);
    assert_eq!(shipped["shipped"], true);
    assert_eq!(shipped["status"], "published");
    assert_eq!(shipped["layout"], "layout");
    app.send_email(
        key,
        &json!({
            "from": "hello@acme.test", "to": "new@x.test",
            "template": {"id": "welcome", "variables": {"NAME": "Ann", "ACTION_URL": "https://acme.test/start", "PRODUCT_NAME": "Acme"}},
        }),
    )
    .await;
    // Shipped templates are read-only, and can be copied.
    app.patch(
        "/v1/templates/welcome",
        Auth::Key(key),
        &json!({"name": "x"}),
    )
    .await
    .expect_error(409, "conflict");
    let copy = app
        .post(
            "/v1/templates/receipt/duplicate",
            Auth::Key(key),
            &json!({}),
        )
        .await;
    let copy_id = copy.expect(200)["id"].as_str().unwrap().to_owned();
    let copied = app
        .get(&format!("/v1/templates/{copy_id}"), Auth::Key(key))
        .await;
    assert_eq!(copied.expect(200)["name"], "Receipt (copy)");
    assert_eq!(copied.body["status"], "draft");

    // The tenant's own layout restyles the shipped templates; its own welcome replaces them.
    create_published(
        &app,
        key,
        &json!({"name": "Our layout", "alias": "layout", "html": "<main class=\"acme\">{{{@content}}}</main>"}),
    )
    .await;
    app.send_email(
        key,
        &json!({
            "from": "hello@acme.test", "to": "restyled@x.test",
            "template": {"id": "password-reset", "variables": {"RESET_URL": "https://acme.test/r"}},
        }),
    )
    .await;
    create_published(
        &app,
        key,
        &json!({"name": "Our welcome", "alias": "welcome", "subject": "Hi from Acme", "html": "<p>ours</p>"}),
    )
    .await;
    app.send_email(
        key,
        &json!({"from": "hello@acme.test", "to": "own@x.test", "template": {"id": "welcome"}}),
    )
    .await;
    app.worker.drain().await.unwrap();
    let first = received_for(&app, "new@x.test");
    let first = parse(&first);
    assert_eq!(first.subject(), Some("Welcome to Acme, Ann"));
    assert!(html_of(&first).contains("Welcome, Ann!"));
    assert!(html_of(&first).contains("https://acme.test/start"));
    let restyled = received_for(&app, "restyled@x.test");
    let restyled = parse(&restyled);
    assert!(html_of(&restyled).starts_with("<main class=\"acme\">"));
    assert!(html_of(&restyled).contains("https://acme.test/r"));
    let own = received_for(&app, "own@x.test");
    assert_eq!(html_of(&parse(&own)), "<p>ours</p>");
}

#[tokio::test]
async fn the_preview_is_what_the_relay_receives_over_rest_and_smtp() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let key = tenant.key.as_str();
    create_published(
        &app,
        key,
        &json!({"name": "Signature", "alias": "sig", "html": "<i>{{TEAM}}</i>", "text": "{{TEAM}}", "variables": [{"key": "TEAM", "type": "string", "fallback_value": "The Acme team"}]}),
    )
    .await;
    create_published(
        &app,
        key,
        &json!({"name": "Frame", "alias": "frame", "html": "<table><tr><td>{{{@content}}}</td></tr></table>{{> sig}}", "text": "{{{@content}}}\n-- \n{{> sig}}"}),
    )
    .await;
    let id = create_published(
        &app,
        key,
        &json!({
            "name": "Digest", "alias": "digest", "from": "Acme <digest@acme.test>",
            "subject": "{{COUNT}} new items for {{NAME}}", "layout": "frame",
            "html": "<p>Hello {{NAME}}, Grüße!</p><ul>{{#each ITEMS}}<li>{{@index}}: {{title}}</li>{{/each}}</ul>",
            "text": "Hello {{NAME}}, Grüße!\n{{#each ITEMS}}- {{title}}\n{{/each}}",
            "variables": [{"key": "NAME", "type": "string"}, {"key": "COUNT", "type": "number"}],
        }),
    )
    .await;
    let variables = json!({"NAME": "Zoë & <Bob>", "COUNT": 2, "ITEMS": [{"title": "One"}, {"title": "Two \"quoted\""}]});
    let preview = app
        .post(
            &format!("/v1/templates/{id}/render"),
            Auth::Key(key),
            &json!({ "variables": variables }),
        )
        .await;
    let preview = preview.expect(200).clone();
    assert_eq!(preview["version"], 1);
    assert_eq!(preview["subject"], "2 new items for Zoë & <Bob>");
    app.send_email(
        key,
        &json!({"to": "rest@x.test", "template": {"id": "digest", "variables": variables}}),
    )
    .await;

    let mut smtp = SmtpClient::connect(app.smtp_addr)
        .await
        .authenticated(key)
        .await;
    let message = format!(
        "From: Acme <digest@acme.test>\r\nTo: smtp@x.test\r\nMessage-ID: <legacy-1@acme.test>\r\n\
         X-Campaign: weekly\r\nX-Missive-Template: digest\r\nX-Missive-Template-Variables: {}\r\n\
         \r\nthis body is replaced\r\n",
        serde_json::to_string(&variables).unwrap()
    );
    let reply = smtp
        .send_mail("digest@acme.test", &["smtp@x.test"], &message)
        .await;
    assert_eq!(reply.code, 250, "{}", reply.text());
    let smtp_id = queued_id(&reply);
    app.worker.drain().await.unwrap();

    for rcpt in ["rest@x.test", "smtp@x.test"] {
        let data = received_for(&app, rcpt);
        let message = parse(&data);
        assert_eq!(message.subject(), preview["subject"].as_str(), "{rcpt}");
        // Line ends travel as CRLF; the preview has the template's own.
        let lf = |s: &str| s.replace("\r\n", "\n");
        assert_eq!(
            lf(&html_of(&message)),
            lf(preview["html"].as_str().unwrap()),
            "{rcpt}"
        );
        assert_eq!(
            lf(&text_of(&message)),
            lf(preview["text"].as_str().unwrap()),
            "{rcpt}"
        );
    }
    let smtp_message = received_for(&app, "smtp@x.test");
    let smtp_message = parse(&smtp_message);
    assert_eq!(smtp_message.message_id(), Some("legacy-1@acme.test"));
    assert_eq!(
        smtp_message.header_raw("X-Campaign").map(str::trim),
        Some("weekly")
    );
    assert!(smtp_message.header("X-Missive-Template").is_none());
    assert!(
        smtp_message
            .header("X-Missive-Template-Variables")
            .is_none()
    );
    assert!(
        smtp_message
            .header_raw("Received")
            .is_some_and(|r| r.contains("(Missive)"))
    );
    let stored = app
        .get(&format!("/v1/emails/{smtp_id}"), Auth::Key(key))
        .await;
    assert_eq!(stored.expect(200)["html"], preview["html"]);

    // Over SMTP a template error is a 550 naming it.
    let refused = smtp
        .send_mail(
            "digest@acme.test",
            &["smtp@x.test"],
            "From: digest@acme.test\r\nTo: smtp@x.test\r\nX-Missive-Template: nowhere\r\n\r\nx\r\n",
        )
        .await;
    assert_eq!(refused.code, 550);
    assert!(
        refused.text().contains("template `nowhere` not found"),
        "{}",
        refused.text()
    );
    let bad_json = smtp
        .send_mail(
            "digest@acme.test",
            &["smtp@x.test"],
            "From: digest@acme.test\r\nTo: smtp@x.test\r\nX-Missive-Template: digest\r\nX-Missive-Template-Variables: {nope\r\n\r\nx\r\n",
        )
        .await;
    assert_eq!(bad_json.code, 550);
    assert!(bad_json.text().contains("X-Missive-Template-Variables"));
}

#[tokio::test]
async fn queued_mail_keeps_what_it_rendered_and_publishing_takes_effect_at_once() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let key = tenant.key.as_str();
    let id = create_published(
        &app,
        key,
        &json!({"name": "News", "alias": "news", "html": "version one", "subject": "s", "from": "a@acme.test"}),
    )
    .await;
    let send = |to: &'static str| {
        let app = &app;
        async move {
            app.send_email(key, &json!({"to": to, "template": {"id": "news"}}))
                .await
        }
    };
    send("first@x.test").await;
    app.patch(
        &format!("/v1/templates/{id}"),
        Auth::Key(key),
        &json!({"html": "version two"}),
    )
    .await
    .expect(200);
    // Until published, sends keep the published version.
    send("second@x.test").await;
    let draft = app
        .post(
            &format!("/v1/templates/{id}/render"),
            Auth::Key(key),
            &json!({"draft": true}),
        )
        .await;
    assert_eq!(draft.expect(200)["html"], "version two");
    assert_eq!(draft.body["version"], Value::Null);
    publish(&app, key, &id).await;
    send("third@x.test").await;
    let template = app
        .get(&format!("/v1/templates/{id}"), Auth::Key(key))
        .await;
    assert_eq!(template.expect(200)["published_version"], 2);
    app.delete(&format!("/v1/templates/{id}"), Auth::Key(key))
        .await
        .expect(200);
    app.worker.drain().await.unwrap();
    assert_eq!(
        html_of(&parse(&received_for(&app, "first@x.test"))),
        "version one"
    );
    assert_eq!(
        html_of(&parse(&received_for(&app, "second@x.test"))),
        "version one"
    );
    assert_eq!(
        html_of(&parse(&received_for(&app, "third@x.test"))),
        "version two"
    );
}

#[tokio::test]
async fn a_change_made_by_another_process_reaches_this_ones_cache() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let key = tenant.key.as_str();
    create_published(
        &app,
        key,
        &json!({"name": "Promo", "alias": "promo", "html": "old", "subject": "s", "from": "a@acme.test"}),
    )
    .await;
    // Warm the cache, then change the published version behind this process's back.
    app.send_email(key, &json!({"to": "w@x.test", "template": {"id": "promo"}}))
        .await;
    app.execute_sql(
        "WITH t AS (UPDATE templates SET updated_at = now() WHERE alias = 'promo' RETURNING id)
         UPDATE template_versions SET html = 'new' WHERE template_id IN (SELECT id FROM t)",
    )
    .await;
    let mut rendered = String::new();
    for _ in 0..200 {
        let preview = app
            .post("/v1/templates/promo/render", Auth::Key(key), &json!({}))
            .await;
        rendered = preview.expect(200)["html"].as_str().unwrap().to_owned();
        let id = app
            .send_email(key, &json!({"to": "p@x.test", "template": {"id": "promo"}}))
            .await;
        let email = app.get(&format!("/v1/emails/{id}"), Auth::Key(key)).await;
        if email.expect(200)["html"] == "new" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(rendered, "new");
    app.worker.drain().await.unwrap();
    assert!(
        app.sink
            .received()
            .iter()
            .any(|m| m.rcpt_to == ["p@x.test"] && String::from_utf8_lossy(&m.data).contains("new"))
    );
}

#[tokio::test]
async fn templates_list_in_pages_both_ways() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let key = tenant.key.as_str();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(create(&app, key, &json!({"name": format!("T{n}"), "html": "x"})).await);
    }
    let names = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = app.get("/v1/templates?limit=2", Auth::Key(key)).await;
    assert_eq!(names(first.expect(200)), ["T4", "T3"]);
    assert_eq!(first.body["has_more"], true);
    let second = app
        .get(
            &format!("/v1/templates?limit=2&after={}", ids[3]),
            Auth::Key(key),
        )
        .await;
    assert_eq!(names(second.expect(200)), ["T2", "T1"]);
    let back = app
        .get(
            &format!("/v1/templates?limit=2&before={}", ids[2]),
            Auth::Key(key),
        )
        .await;
    assert_eq!(names(back.expect(200)), ["T4", "T3"]);
    assert_eq!(back.body["has_more"], false);
    let window = app
        .get(
            &format!("/v1/templates?after={}&before={}", ids[4], ids[1]),
            Auth::Key(key),
        )
        .await;
    assert_eq!(names(window.expect(200)), ["T3", "T2"]);
    assert_eq!(window.body["has_more"], false);
    app.get("/v1/templates?limit=0", Auth::Key(key))
        .await
        .expect_error(422, "validation_error");
    app.post(
        "/v1/templates",
        Auth::Key(key),
        &json!({"name": "t4", "html": "x"}),
    )
    .await
    .expect_error(409, "conflict");
}
