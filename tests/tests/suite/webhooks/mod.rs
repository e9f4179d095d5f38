//! Webhook endpoints: Resend's Webhooks API through the official Python SDK, signatures both
//! verifiers accept across a rotation, the address policy for endpoints (every literal form, and
//! names a local DNS server resolves to internal addresses), isolation and scopes; and the client
//! that posts deliveries (both header sets, no redirects, timeouts, connect-time checks).

use std::time::Duration;

use missive::net::targets::Targets;
use missive::queue::webhooks::client::{ClientSettings, Signed, WebhookClient};
use missive_core::webhook::{SigningSecret, signature_header};
use missive_tests::{
    Auth, ConnectionCounter, DnsServer, Receiver, Reply, TestApp, run_python_with_input,
    run_resend_script, test_python,
};
use serde_json::{Value, json};

mod events;
mod posting;

/// What the address policy protects: a listener that must see no connection.
struct Canary {
    url: String,
    counter: ConnectionCounter,
}

impl Canary {
    async fn start() -> Self {
        let counter = ConnectionCounter::start().await;
        Self {
            url: format!("http://127.0.0.1:{}/hook", counter.port),
            counter,
        }
    }

    fn hits(&self) -> usize {
        self.counter.connections()
    }

    fn port(&self) -> String {
        self.counter.port.to_string()
    }
}

async fn create(app: &TestApp, key: &str, endpoint: &str) -> missive_tests::Response {
    app.post(
        "/v1/webhooks",
        Auth::Key(key),
        &json!({"endpoint": endpoint, "events": ["email.sent", "email.delivered"]}),
    )
    .await
}

#[tokio::test]
async fn the_resend_python_sdk_manages_webhooks() {
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private = true).await;
    let tenant = app.create_tenant("Acme").await;
    let canary = Canary::start().await;
    let result = run_resend_script(
        &app.base_url,
        &tenant.key,
        "resend_webhooks.py",
        &[("WEBHOOK_URL", canary.url.clone())],
    )
    .await;
    let created = &result["created"];
    assert_eq!(created["object"], "webhook");
    let secret = created["signing_secret"].as_str().unwrap();
    assert!(SigningSecret::parse(secret).is_ok(), "{secret}");
    let got = &result["got"];
    assert_eq!(got["id"], created["id"]);
    assert_eq!(got["endpoint"], canary.url.as_str());
    assert_eq!(got["events"], json!(["email.sent", "email.delivered"]));
    assert_eq!(got["status"], "enabled");
    assert_eq!(got["signing_secret"], secret);
    assert_eq!(got["tenant_id"], tenant.id.as_str());
    let listed = result["listed"]["data"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], created["id"]);
    assert_eq!(listed[0]["signing_secret"], Value::Null);
    assert_eq!(result["updated"]["id"], created["id"]);
    assert_eq!(result["after_update"]["status"], "disabled");
    assert_eq!(
        result["after_update"]["events"],
        json!(["email.sent", "email.delivered", "email.bounced"])
    );
    let rotated = result["rotated"]["signing_secret"].as_str().unwrap();
    assert_ne!(rotated, secret);
    assert_eq!(result["after_rotation"]["signing_secret"], rotated);
    let refused = &result["refused"];
    assert!(
        refused["message"].as_str().unwrap().contains("link-local"),
        "{refused}"
    );
    assert_eq!(result["removed"]["deleted"], true);
    assert!(result["gone"]["message"].is_string(), "{}", result["gone"]);
    // Saving an endpoint never connects to it.
    assert_eq!(canary.hits(), 0);
}

#[tokio::test]
async fn signatures_verify_with_resend_and_standardwebhooks_across_a_rotation() {
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private = true).await;
    let tenant = app.create_tenant("Acme").await;
    let canary = Canary::start().await;
    let created = create(&app, &tenant.key, &canary.url).await;
    let id = created.expect(200)["id"].as_str().unwrap().to_owned();
    let old = created.body["signing_secret"].as_str().unwrap().to_owned();
    let rotated = app
        .post(
            &format!("/v1/webhooks/{id}/signing-secret/rotate"),
            Auth::Key(&tenant.key),
            &json!({}),
        )
        .await;
    let new = rotated.expect(200)["signing_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    // What a delivery during the overlap carries: the new secret's signature and the old one's.
    let body = json!({"type": "email.sent", "created_at": "2026-11-29T08:00:00.000Z",
                      "data": {"email_id": "x", "tenant_id": tenant.id}})
    .to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let secrets: Vec<SigningSecret> = [&new, &old]
        .iter()
        .map(|s| SigningSecret::parse(s).unwrap())
        .collect();
    let signature = signature_header(&secrets, "msg_1", now, body.as_bytes());
    let headers = |signature: &str| {
        json!({
            "svix-id": "msg_1", "svix-timestamp": now.to_string(), "svix-signature": signature,
            "webhook-id": "msg_1", "webhook-timestamp": now.to_string(), "webhook-signature": signature,
        })
    };
    let stranger = SigningSecret::generate().expose();
    let input = json!({
        "secrets": [old, new, stranger],
        "deliveries": [
            {"body": body, "headers": headers(&signature)},
            {"body": body.replace("email.sent", "email.bounced"), "headers": headers(&signature)},
        ],
    });
    let python = test_python().expect("MISSIVE_TEST_PYTHON: run the suite with `make test`");
    let out =
        run_python_with_input(&python, "verify_webhooks.py", input.to_string().as_bytes()).await;
    let verdicts: Value = serde_json::from_slice(&out).unwrap();
    let genuine = &verdicts[0];
    for (i, secret) in ["old", "new"].iter().enumerate() {
        assert_eq!(genuine[i]["resend"], true, "{secret}: {genuine}");
        assert_eq!(genuine[i]["standardwebhooks"], true, "{secret}: {genuine}");
    }
    assert!(genuine[2]["resend"].is_string() && genuine[2]["standardwebhooks"].is_string());
    let tampered = &verdicts[1];
    for verdict in tampered.as_array().unwrap() {
        assert!(verdict["resend"].is_string() && verdict["standardwebhooks"].is_string());
    }
}

#[tokio::test]
async fn endpoints_on_internal_addresses_are_refused_in_every_form() {
    let canary = Canary::start().await;
    let port = canary.port();
    let strict = TestApp::spawn().await;
    let tenant = strict.create_tenant("Acme").await;
    let internal = [
        canary.url.clone(),
        format!("http://127.1:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://0x7f000001:{port}/hook"),
        format!("http://0177.0.0.1:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        "http://0/hook".to_owned(),
        "http://10.0.0.1/hook".to_owned(),
        "http://172.16.5.4/hook".to_owned(),
        "http://192.168.1.1/hook".to_owned(),
        "http://100.64.0.1/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://0xa9fea9fe/".to_owned(),
        "http://[fe80::1]/hook".to_owned(),
        "http://[fd00::1]/hook".to_owned(),
        "http://[::]/hook".to_owned(),
        "http://224.0.0.1/hook".to_owned(),
    ];
    for url in &internal {
        let message = create(&strict, &tenant.key, url)
            .await
            .expect_error(422, "validation_error")
            .to_owned();
        assert!(message.starts_with("endpoint: "), "{url}: {message}");
    }
    for bad in [
        "ftp://example.com/",
        "not a url",
        "https://user:pw@example.com/",
    ] {
        create(&strict, &tenant.key, bad)
            .await
            .expect_error(422, "validation_error");
    }
    // With private targets allowed (self-hosting): loopback and private ranges pass, link-local
    // and the other never-ranges do not.
    let open = TestApp::spawn_with(|c| c.webhooks.allow_private = true).await;
    let tenant = open.create_tenant("Acme").await;
    for url in [
        &canary.url,
        &format!("http://2130706433:{port}/hook"),
        &"http://10.0.0.1/".to_owned(),
    ] {
        create(&open, &tenant.key, url).await.expect(200);
    }
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://0xa9fea9fe/",
        "http://[fe80::1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://0.0.0.0/",
    ] {
        let message = create(&open, &tenant.key, url)
            .await
            .expect_error(422, "validation_error")
            .to_owned();
        assert!(
            message.contains("Missive does not connect to"),
            "{url}: {message}"
        );
    }
    assert_eq!(canary.hits(), 0, "a refused target was connected to");
}

#[tokio::test]
async fn names_are_resolved_once_and_refused_when_an_address_is_internal() {
    let dns = DnsServer::start(&json!({
        "internal.test": ["10.1.2.3"],
        "mixed.test": ["93.184.215.14", "192.168.1.1"],
        "public.test": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
        "metadata.test": ["169.254.169.254"],
        "loopback6.test": ["::1"],
    }))
    .await;
    let addr = dns.addr();
    let app = TestApp::spawn_with(|c| c.dns.server = Some(addr)).await;
    let tenant = app.create_tenant("Acme").await;
    for (url, names) in [
        ("http://internal.test/hook", "10.1.2.3"),
        ("http://mixed.test/hook", "192.168.1.1"),
        ("https://loopback6.test/hook", "::1"),
        ("http://METADATA.test./hook", "169.254.169.254"),
    ] {
        let message = create(&app, &tenant.key, url)
            .await
            .expect_error(422, "validation_error")
            .to_owned();
        assert!(message.contains(names), "{url}: {message}");
    }
    let message = create(&app, &tenant.key, "http://nowhere.test/hook")
        .await
        .expect_error(422, "validation_error")
        .to_owned();
    assert!(message.contains("does not resolve"), "{message}");
    create(&app, &tenant.key, "https://public.test/hooks/missive")
        .await
        .expect(200);
    // An update is checked the same way.
    let id = create(&app, &tenant.key, "https://public.test/other")
        .await
        .expect(200)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.patch(
        &format!("/v1/webhooks/{id}"),
        Auth::Key(&tenant.key),
        &json!({"endpoint": "http://internal.test/hook"}),
    )
    .await
    .expect_error(422, "validation_error");
    let kept = app
        .get(&format!("/v1/webhooks/{id}"), Auth::Key(&tenant.key))
        .await;
    assert_eq!(kept.expect(200)["endpoint"], "https://public.test/other");
}

#[tokio::test]
async fn webhooks_belong_to_their_tenant_need_their_scope_and_valid_events() {
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private = true).await;
    let acme = app.create_tenant("Acme").await;
    let globex = app.create_tenant("Globex").await;
    let id = create(&app, &acme.key, "http://127.0.0.1:9/hook")
        .await
        .expect(200)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/webhooks/{id}");
    app.get(&path, Auth::Key(&globex.key))
        .await
        .expect_error(404, "not_found");
    app.patch(
        &path,
        Auth::Key(&globex.key),
        &json!({"status": "disabled"}),
    )
    .await
    .expect_error(404, "not_found");
    app.post(
        &format!("{path}/signing-secret/rotate"),
        Auth::Key(&globex.key),
        &json!({}),
    )
    .await
    .expect_error(404, "not_found");
    app.delete(&path, Auth::Key(&globex.key))
        .await
        .expect_error(404, "not_found");
    let listed = app.get("/v1/webhooks", Auth::Key(&globex.key)).await;
    assert_eq!(listed.expect(200)["data"], json!([]));
    assert_eq!(
        app.get(&path, Auth::Key(&acme.key)).await.expect(200)["status"],
        "enabled"
    );

    let (_, sender) = app.create_key(&acme.id, "sender", &["send"]).await;
    app.get("/v1/webhooks", Auth::Key(&sender))
        .await
        .expect_error(403, "restricted_api_key");
    create(&app, &sender, "http://127.0.0.1:9/hook")
        .await
        .expect_error(403, "restricted_api_key");

    for events in [json!([]), json!(["email.opened"]), json!(["email.queued"])] {
        app.post(
            "/v1/webhooks",
            Auth::Key(&acme.key),
            &json!({"endpoint": "http://127.0.0.1:9/hook", "events": events}),
        )
        .await
        .expect_error(422, "validation_error");
    }
    app.patch(&path, Auth::Key(&acme.key), &json!({"status": "paused"}))
        .await
        .expect_error(422, "validation_error");
}
