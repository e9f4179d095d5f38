//! Routing: a tenant's own upstream SMTP server beside the shared relay. Its mail goes there and
//! everyone else's to the shared relay; a server that is down defers only its tenant's mail and
//! is probed, not hammered; a change reaches the next attempts; the password never shows and is
//! bound to its tenant; the verify route reports each step.

use missive_tests::{Auth, ConnectionCounter, SinkOptions, SmtpSink, TestApp};
use serde_json::{Value, json};

const PASSWORD: &str = "s3cret-relay-password";

async fn spawn() -> TestApp {
    TestApp::spawn_with(|c| c.webhooks.allow_private = true).await
}

/// A tenant's own server: a sink that wants a login.
async fn own_server() -> SmtpSink {
    SmtpSink::start_with(SinkOptions {
        auth: Some(("acme".to_owned(), PASSWORD.to_owned())),
        ..SinkOptions::default()
    })
    .await
}

fn smtp_body(sink: &SmtpSink) -> Value {
    json!({"smtp": {"host": "127.0.0.1", "port": sink.addr.port(), "tls": "none",
                    "username": "acme", "password": PASSWORD}})
}

async fn set_smtp(app: &TestApp, tenant: &str, body: &Value) -> Value {
    app.patch(&format!("/v1/tenants/{tenant}"), Auth::Admin, body)
        .await
        .expect(200)
        .clone()
}

async fn send(app: &TestApp, key: &str, to: &str) -> String {
    app.send_email(
        key,
        &json!({"from": "a@acme.test", "to": to, "subject": "s", "text": "t"}),
    )
    .await
}

async fn recipient(app: &TestApp, key: &str, id: &str) -> Value {
    app.get(&format!("/v1/emails/{id}"), Auth::Key(key))
        .await
        .expect(200)["recipients"][0]
        .clone()
}

#[tokio::test]
async fn a_tenants_own_server_gets_its_mail_and_the_others_take_the_shared_relay() {
    let app = spawn().await;
    let acme = app.create_tenant("Acme").await;
    let globex = app.create_tenant("Globex").await;
    let server = own_server().await;
    let tenant = set_smtp(&app, &acme.id, &smtp_body(&server)).await;
    assert_eq!(
        tenant["smtp"],
        json!({"host": "127.0.0.1", "port": server.addr.port(), "username": "acme",
               "tls": "none", "enabled": true, "has_password": true})
    );
    let ours = send(&app, &acme.key, "x@x.test").await;
    let theirs = send(&app, &globex.key, "y@x.test").await;
    app.worker.drain().await.unwrap();

    let at_server = server.received();
    assert_eq!(at_server.len(), 1);
    assert_eq!(at_server[0].rcpt_to, ["x@x.test"]);
    assert_eq!(at_server[0].auth_user.as_deref(), Some("acme"));
    let shared = app.sink.received();
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].rcpt_to, ["y@x.test"]);

    let ours = recipient(&app, &acme.key, &ours).await;
    assert_eq!(ours["status"], "delivered");
    assert_eq!(
        ours["route"],
        json!({"kind": "tenant", "host": format!("127.0.0.1:{}", server.addr.port())})
    );
    let theirs = recipient(&app, &globex.key, &theirs).await;
    assert_eq!(theirs["route"]["kind"], "shared");
    assert_eq!(
        theirs["route"]["host"],
        format!("127.0.0.1:{}", app.sink.addr.port())
    );

    // The password is in no answer and nowhere in the database in clear.
    for response in [
        app.get(&format!("/v1/tenants/{}", acme.id), Auth::Admin)
            .await,
        app.get("/v1/tenants", Auth::Admin).await,
        app.get("/openapi.json", Auth::None).await,
    ] {
        assert!(!response.text.contains(PASSWORD), "{}", response.text);
    }
    let dump: Vec<String> = sqlx::query_scalar(
        "SELECT t::text FROM tenants t UNION ALL SELECT e::text FROM email_events e",
    )
    .fetch_all(app.store().pool())
    .await
    .unwrap();
    assert!(dump.iter().all(|row| !row.contains(PASSWORD)));
    let hex: String = PASSWORD.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(dump.iter().all(|row| !row.contains(&hex)));
}

#[tokio::test]
async fn a_server_that_is_down_defers_only_its_tenants_mail_and_is_probed_not_hammered() {
    let app = spawn().await;
    app.expect_unsent_mail();
    let acme = app.create_tenant("Acme").await;
    let globex = app.create_tenant("Globex").await;
    // A server that closes every connection at once.
    let down = ConnectionCounter::start().await;
    set_smtp(
        &app,
        &acme.id,
        &json!({"smtp": {"host": "127.0.0.1", "port": down.port, "tls": "none"}}),
    )
    .await;
    // One at a time, so each attempt sees the breaker as the last one left it.
    for _ in 0..3 {
        send(&app, &acme.key, "x@x.test").await;
        app.worker.drain().await.unwrap();
    }
    assert_eq!(down.connections(), 3);
    // Open now: more of Acme's mail is deferred without a connection, Globex's flows.
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(send(&app, &acme.key, &format!("more{i}@x.test")).await);
        send(&app, &globex.key, &format!("g{i}@x.test")).await;
    }
    app.worker.drain().await.unwrap();
    assert_eq!(down.connections(), 3, "a paused route is not dialled");
    assert_eq!(app.sink.received().len(), 5);
    for id in &ids {
        let entry = recipient(&app, &acme.key, id).await;
        assert_eq!(entry["status"], "deferred", "{entry}");
        assert!(
            entry["last_smtp_response"]
                .as_str()
                .unwrap()
                .contains("not tried"),
            "{entry}"
        );
        assert_eq!(entry["route"]["kind"], "tenant");
    }
}

#[tokio::test]
async fn a_change_of_the_server_reaches_the_next_attempts() {
    let app = spawn().await;
    let acme = app.create_tenant("Acme").await;
    let first = own_server().await;
    let second = own_server().await;
    set_smtp(&app, &acme.id, &smtp_body(&first)).await;
    send(&app, &acme.key, "a@x.test").await;
    app.worker.drain().await.unwrap();
    assert_eq!(first.received().len(), 1);

    // The same worker (its transports cached) follows each change. PUT and SelfMX's field
    // names work too; the password is kept when not given.
    app.request(
        reqwest::Method::PUT,
        &format!("/v1/tenants/{}", acme.id),
        Auth::Admin,
        Some(&json!({"smtp": {"host": "127.0.0.1", "port": second.addr.port(), "user": "acme"}})),
    )
    .await
    .expect(200);
    send(&app, &acme.key, "b@x.test").await;
    app.worker.drain().await.unwrap();
    assert_eq!(second.received().len(), 1);
    assert_eq!(first.received().len(), 1);

    // Disabled: the shared relay, with the settings kept.
    let tenant = set_smtp(&app, &acme.id, &json!({"smtp": {"enabled": false}})).await;
    assert_eq!(tenant["smtp"]["enabled"], false);
    assert_eq!(tenant["smtp"]["has_password"], true);
    send(&app, &acme.key, "c@x.test").await;
    app.worker.drain().await.unwrap();
    assert_eq!(app.sink.received().len(), 1);

    // Removed.
    let tenant = set_smtp(&app, &acme.id, &json!({"smtp": null})).await;
    assert_eq!(tenant["smtp"], Value::Null);
    send(&app, &acme.key, "d@x.test").await;
    app.worker.drain().await.unwrap();
    assert_eq!(app.sink.received().len(), 2);
    assert_eq!(second.received().len(), 1);
}

#[tokio::test]
async fn the_verify_route_reports_each_step_and_a_wrong_password() {
    let app = spawn().await;
    let acme = app.create_tenant("Acme").await;
    let server = own_server().await;
    set_smtp(&app, &acme.id, &smtp_body(&server)).await;
    let path = format!("/v1/tenants/{}/smtp/verify", acme.id);
    let good = app.post(&path, Auth::Admin, &json!({})).await;
    let good = good.expect(200);
    assert_eq!(good["ok"], true, "{good}");
    let steps: Vec<&str> = good["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["connect", "greeting", "ehlo", "auth"]);
    assert!(
        good["steps"][3]["detail"]
            .as_str()
            .unwrap()
            .starts_with("235")
    );

    set_smtp(&app, &acme.id, &json!({"smtp": {"password": "wrong"}})).await;
    let bad = app.post(&path, Auth::Admin, &json!({})).await;
    let bad = bad.expect(200);
    assert_eq!(bad["ok"], false);
    let auth = bad["steps"].as_array().unwrap().last().unwrap();
    assert_eq!(auth["step"], "auth");
    assert_eq!(auth["ok"], false);
    assert!(
        auth["detail"].as_str().unwrap().starts_with("535"),
        "{auth}"
    );
    assert!(!bad.to_string().contains("wrong"), "{bad}");

    // A server nobody listens on: the connect step says so.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    set_smtp(&app, &acme.id, &json!({"smtp": {"port": port}})).await;
    let refused = app.post(&path, Auth::Admin, &json!({})).await;
    let refused = refused.expect(200);
    assert_eq!(refused["steps"][0]["step"], "connect");
    assert_eq!(refused["steps"][0]["ok"], false);

    let other = app.create_tenant("Other").await;
    app.post(
        &format!("/v1/tenants/{}/smtp/verify", other.id),
        Auth::Admin,
        &json!({}),
    )
    .await
    .expect_error(422, "validation_error");
}

#[tokio::test]
async fn a_password_sealed_for_another_tenant_or_tampered_with_does_not_open() {
    let app = spawn().await;
    app.expect_unsent_mail();
    let acme = app.create_tenant("Acme").await;
    let globex = app.create_tenant("Globex").await;
    let server = own_server().await;
    set_smtp(&app, &acme.id, &smtp_body(&server)).await;
    set_smtp(&app, &globex.id, &smtp_body(&server)).await;
    // Acme's sealed password copied into Globex's row: bound to Acme, it does not open there.
    sqlx::query(
        "UPDATE tenants g SET smtp_password = a.smtp_password, smtp_changed_at = now()
         FROM tenants a WHERE a.id = $1 AND g.id = $2",
    )
    .bind(uuid::Uuid::parse_str(&acme.id).unwrap())
    .bind(uuid::Uuid::parse_str(&globex.id).unwrap())
    .execute(app.store().pool())
    .await
    .unwrap();
    // And one byte of Acme's own flipped.
    sqlx::query(
        "UPDATE tenants SET smtp_password = set_byte(smtp_password, 30, get_byte(smtp_password, 30) # 1),
                            smtp_changed_at = now()
         WHERE id = $1",
    )
    .bind(uuid::Uuid::parse_str(&acme.id).unwrap())
    .execute(app.store().pool())
    .await
    .unwrap();
    for tenant in [&acme, &globex] {
        let verify = app
            .post(
                &format!("/v1/tenants/{}/smtp/verify", tenant.id),
                Auth::Admin,
                &json!({}),
            )
            .await;
        let verify = verify.expect(200);
        assert_eq!(verify["ok"], false);
        assert_eq!(verify["steps"][0]["step"], "password");
        assert!(
            verify["steps"][0]["detail"]
                .as_str()
                .unwrap()
                .contains("does not open"),
            "{verify}"
        );
        let id = send(&app, &tenant.key, "x@x.test").await;
        app.worker.drain().await.unwrap();
        let entry = recipient(&app, &tenant.key, &id).await;
        assert_eq!(entry["status"], "deferred");
        assert!(
            entry["last_smtp_response"]
                .as_str()
                .unwrap()
                .contains("does not open"),
            "{entry}"
        );
    }
    assert!(server.received().is_empty(), "never sent another way");
}

#[tokio::test]
async fn settings_missive_must_not_use_are_refused() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let path = format!("/v1/tenants/{}", acme.id);
    for smtp in [
        json!({"host": "169.254.169.254", "port": 25}),
        json!({"host": "10.0.0.1"}),
        json!({"host": "127.0.0.1"}),
        json!({"host": "0x7f000001"}),
        json!({"host": "relay.test", "tls": "ssl"}),
        json!({"host": "relay.test", "password": "p"}),
        json!({"host": "relay.test", "username": "u"}),
        json!({"host": "relay.test", "port": 0}),
        json!({"port": 25}),
        json!({"host": "relay.test", "colour": "blue"}),
    ] {
        let response = app
            .patch(&path, Auth::Admin, &json!({ "smtp": smtp }))
            .await;
        assert_eq!(response.status, 422, "{smtp}: {}", response.text);
        response.assert_error_shape();
    }
    let tenant = app.get(&path, Auth::Admin).await;
    assert_eq!(tenant.expect(200)["smtp"], Value::Null);
}

#[tokio::test]
async fn a_rotated_secret_key_still_opens_what_the_previous_one_sealed() {
    use missive_core::TenantId;
    use secrecy::SecretBox;
    let app = spawn().await;
    let acme = app.create_tenant("Acme").await;
    let server = own_server().await;
    set_smtp(&app, &acme.id, &smtp_body(&server)).await;
    let tenant = TenantId::from_uuid(uuid::Uuid::parse_str(&acme.id).unwrap());
    let stored = app.store().tenant_relay(tenant).await.unwrap().unwrap();
    let relays = |previous: Vec<[u8; 32]>| {
        let mut config = missive::Config::with_database_url(&app.db.url);
        config.webhooks.allow_private = true;
        config.secrets.secret_key = Some(SecretBox::new(Box::new([7u8; 32])));
        config.secrets.previous_secret_keys = Some(
            previous
                .into_iter()
                .map(|k| SecretBox::new(Box::new(k)))
                .collect(),
        );
        missive::app::startup::tenant_relays(&config).unwrap()
    };
    // A new key alone cannot open it; with the old one listed as previous, it does.
    let err = relays(Vec::new()).transport(tenant, &stored).unwrap_err();
    assert!(err.to_string().contains("not configured"), "{err}");
    let transport = relays(vec![missive_tests::TEST_SECRET_KEY])
        .transport(tenant, &stored)
        .unwrap();
    let missive::net::relay::Transport::Smtp(pool) = transport else {
        panic!("an SMTP transport");
    };
    let (ok, steps) = pool.verify().await;
    assert!(ok, "{steps:?}");
}
