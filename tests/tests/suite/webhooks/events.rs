//! Events as they flow: reported, signed, retried until they succeed or run out, listed, replayed, and leased in shares.

use super::*;

/// A tenant with an endpoint on `receiver` subscribed to every event type; returns the tenant
/// and the endpoint's secret.
async fn subscribed(app: &TestApp, receiver: &Receiver) -> (missive_tests::CreatedTenant, String) {
    let tenant = app.create_tenant("Acme").await;
    let all: Vec<&str> = missive_core::WebhookEventType::ALL
        .map(|t| t.as_str())
        .to_vec();
    let created = app
        .post(
            "/v1/webhooks",
            Auth::Key(&tenant.key),
            &json!({"endpoint": receiver.url("/hook"), "events": all}),
        )
        .await;
    let secret = created.expect(200)["signing_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    (tenant, secret)
}

async fn verify_all(hits: &[missive_tests::Hit], secret: &str) {
    let deliveries: Vec<Value> = hits
        .iter()
        .map(|hit| {
            let headers: serde_json::Map<String, Value> = hit
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), Value::String(v.clone())))
                .collect();
            json!({"body": hit.body, "headers": headers})
        })
        .collect();
    let input = json!({"secrets": [secret], "deliveries": deliveries});
    let python = test_python().expect("MISSIVE_TEST_PYTHON: run the suite with `make test`");
    let out =
        run_python_with_input(&python, "verify_webhooks.py", input.to_string().as_bytes()).await;
    let verdicts: Value = serde_json::from_slice(&out).unwrap();
    for (i, verdict) in verdicts.as_array().unwrap().iter().enumerate() {
        assert_eq!(
            verdict[0],
            json!({"resend": true, "standardwebhooks": true}),
            "delivery {i}: {}",
            hits[i].body
        );
    }
}

fn body(hit: &missive_tests::Hit) -> Value {
    serde_json::from_str(&hit.body).unwrap()
}

#[tokio::test]
async fn a_sent_email_is_reported_sent_then_delivered_signed_for_both_verifiers() {
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private = true).await;
    let receiver = Receiver::start().await;
    let (tenant, secret) = subscribed(&app, &receiver).await;
    let id = app
        .send_email(
            &tenant.key,
            &json!({"from": "a@acme.test", "to": "b@x.test", "subject": "Hi", "text": "hello",
                    "tags": [{"name": "kind", "value": "welcome"}]}),
        )
        .await;
    assert_eq!(app.dispatcher.drain().await.unwrap(), 1);
    app.worker.drain().await.unwrap();
    assert_eq!(app.dispatcher.drain().await.unwrap(), 1);
    let hits = receiver.hits();
    let types: Vec<Value> = hits.iter().map(|h| body(h)["type"].clone()).collect();
    assert_eq!(types, [json!("email.sent"), json!("email.delivered")]);
    let sent = body(&hits[0]);
    assert_eq!(sent["data"]["email_id"], id.as_str());
    assert_eq!(sent["data"]["tenant_id"], tenant.id.as_str());
    assert_eq!(sent["data"]["from"], "a@acme.test");
    assert_eq!(sent["data"]["to"], json!(["b@x.test"]));
    assert_eq!(sent["data"]["subject"], "Hi");
    assert_eq!(sent["data"]["tags"], json!({"kind": "welcome"}));
    let delivered = body(&hits[1]);
    assert_eq!(delivered["data"]["recipient"], "b@x.test");
    assert_eq!(delivered["data"]["smtp_code"], 250);
    assert_ne!(hits[0].header("svix-id"), hits[1].header("svix-id"));
    verify_all(&hits, &secret).await;
    // Nothing left to send, and another tenant's events never reach this endpoint.
    let other = app.create_tenant("Globex").await;
    app.send_email(
        &other.key,
        &json!({"from": "a@globex.test", "to": "c@x.test", "subject": "x", "text": "y"}),
    )
    .await;
    app.worker.drain().await.unwrap();
    assert_eq!(app.dispatcher.drain().await.unwrap(), 0);
    assert_eq!(receiver.hits().len(), 2);
}

#[tokio::test]
async fn bounces_carry_their_class_and_a_suppressed_recipient_is_reported() {
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private = true).await;
    let receiver = Receiver::start().await;
    let (tenant, secret) = subscribed(&app, &receiver).await;
    app.sink
        .answer_rcpt_with("gone@x.test", &["550 5.1.1 no such user"]);
    app.sink
        .answer_rcpt_with("full@x.test", &["552 5.2.2 mailbox full"]);
    app.send_email(
        &tenant.key,
        &json!({"from": "a@acme.test", "to": ["gone@x.test", "full@x.test"], "subject": "s", "text": "t"}),
    )
    .await;
    app.worker.drain().await.unwrap();
    app.dispatcher.drain().await.unwrap();
    let mut bounced: Vec<(Value, Value)> = receiver
        .hits()
        .iter()
        .map(body)
        .filter(|b| b["type"] == "email.bounced")
        .map(|b| (b["data"]["recipient"].clone(), b["data"]["bounce"].clone()))
        .collect();
    // Posted concurrently: in any order.
    bounced.sort_by_key(|(recipient, _)| recipient.to_string());
    assert_eq!(
        bounced,
        [
            (
                json!("full@x.test"),
                json!({"type": "Transient", "message": "552 5.2.2 mailbox full"})
            ),
            (
                json!("gone@x.test"),
                json!({"type": "Permanent", "message": "550 5.1.1 no such user"})
            ),
        ]
    );
    // The hard bounce suppressed the address: the next email to it is reported suppressed.
    let id = app
        .send_email(
            &tenant.key,
            &json!({"from": "a@acme.test", "to": "gone@x.test", "subject": "s", "text": "t"}),
        )
        .await;
    app.dispatcher.drain().await.unwrap();
    let last = receiver.hits();
    let suppressed = body(last.last().unwrap());
    assert_eq!(suppressed["type"], "email.suppressed");
    assert_eq!(suppressed["data"]["email_id"], id.as_str());
    assert_eq!(suppressed["data"]["recipient"], "gone@x.test");
    verify_all(&last, &secret).await;
}

#[tokio::test]
async fn failures_and_timeouts_are_retried_with_the_same_id_and_410_disables_the_endpoint() {
    let app = TestApp::spawn_with(|c| {
        c.webhooks.allow_private = true;
        c.webhooks.retry_schedule = vec![Duration::ZERO; 4];
    })
    .await;
    let receiver = Receiver::start().await;
    let (tenant, secret) = subscribed(&app, &receiver).await;
    receiver.script([
        Reply::Status(500),
        Reply::Stall(Duration::from_secs(4)),
        Reply::Status(200),
    ]);
    app.send_email(
        &tenant.key,
        &json!({"from": "a@acme.test", "to": "b@x.test", "subject": "Hi", "text": "hello"}),
    )
    .await;
    app.expect_unsent_mail();
    assert_eq!(app.dispatcher.drain().await.unwrap(), 3);
    let hits = receiver.hits();
    assert_eq!(hits.len(), 3);
    let ids: Vec<Option<&str>> = hits.iter().map(|h| h.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0] && id.is_some()),
        "{ids:?}"
    );
    assert!(
        hits.iter().all(|h| h.body == hits[0].body),
        "the body changed between attempts"
    );
    verify_all(&hits, &secret).await;
    let attempts: Vec<(Option<i32>, String)> =
        sqlx::query_as("SELECT http_status, response FROM webhook_attempts ORDER BY id")
            .fetch_all(app.store().pool())
            .await
            .unwrap();
    assert_eq!(attempts[0].0, Some(500));
    assert_eq!(attempts[1], (None, "timed out".to_owned()));
    assert_eq!(attempts[2].0, Some(200));
    let status: String = sqlx::query_scalar("SELECT status FROM webhook_events")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(status, "success");

    // 410 Gone: the endpoint is disabled and receives nothing more.
    receiver.script([Reply::Status(410)]);
    app.send_email(
        &tenant.key,
        &json!({"from": "a@acme.test", "to": "c@x.test", "subject": "Hi", "text": "hello"}),
    )
    .await;
    assert_eq!(app.dispatcher.drain().await.unwrap(), 1);
    let listed = app.get("/v1/webhooks", Auth::Key(&tenant.key)).await;
    let webhook = &listed.expect(200)["data"][0];
    assert_eq!(webhook["status"], "disabled");
    assert_eq!(webhook["disabled_reason"], "410 Gone");
    app.send_email(
        &tenant.key,
        &json!({"from": "a@acme.test", "to": "d@x.test", "subject": "Hi", "text": "hello"}),
    )
    .await;
    assert_eq!(app.dispatcher.drain().await.unwrap(), 0);
    assert_eq!(receiver.hits().len(), 4);
}

#[tokio::test]
async fn an_event_whose_attempts_run_out_is_failed() {
    let app = TestApp::spawn_with(|c| {
        c.webhooks.allow_private = true;
        c.webhooks.retry_schedule = vec![Duration::ZERO, Duration::ZERO];
    })
    .await;
    let receiver = Receiver::start().await;
    let (tenant, _) = subscribed(&app, &receiver).await;
    receiver.script([
        Reply::Status(503),
        Reply::Redirect("http://127.0.0.1:9/".to_owned()),
    ]);
    app.send_email(
        &tenant.key,
        &json!({"from": "a@acme.test", "to": "b@x.test", "subject": "Hi", "text": "hello"}),
    )
    .await;
    app.expect_unsent_mail();
    assert_eq!(app.dispatcher.drain().await.unwrap(), 2);
    let (status, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM webhook_events")
            .fetch_one(app.store().pool())
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("failed", 2));
    assert_eq!(receiver.hits().len(), 2);
}

#[tokio::test]
async fn events_their_attempts_replay_and_test_events_through_the_api() {
    let app = TestApp::spawn_with(|c| {
        c.webhooks.allow_private = true;
        c.webhooks.retry_schedule = vec![Duration::ZERO; 3];
    })
    .await;
    let receiver = Receiver::start().await;
    let (tenant, secret) = subscribed(&app, &receiver).await;
    let key = tenant.key.as_str();
    let webhook = app.get("/v1/webhooks", Auth::Key(key)).await.expect(200)["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    receiver.script([Reply::Status(500)]);
    let email = app
        .send_email(
            key,
            &json!({"from": "a@acme.test", "to": "b@x.test", "subject": "Hi", "text": "hello"}),
        )
        .await;
    app.expect_unsent_mail();
    app.dispatcher.drain().await.unwrap();
    let events = app
        .get(&format!("/v1/webhooks/{webhook}/events"), Auth::Key(key))
        .await;
    let listed = events.expect(200)["data"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    let event = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["type"], "email.sent");
    assert_eq!(listed[0]["status"], "success");
    let one = app
        .get(
            &format!("/v1/webhooks/{webhook}/events/{event}"),
            Auth::Key(key),
        )
        .await;
    let one = one.expect(200).clone();
    assert_eq!(one["payload"]["data"]["email_id"], email.as_str());
    assert_eq!(one["next_attempt_at"], Value::Null);
    let hits = receiver.hits();
    assert_eq!(one["message_id"].as_str(), hits[0].header("svix-id"));
    assert_eq!(body(&hits[0]), one["payload"]);
    let attempts = app
        .get(
            &format!("/v1/webhooks/{webhook}/events/{event}/attempts"),
            Auth::Key(key),
        )
        .await;
    let codes: Vec<Value> = attempts.expect(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["http_status_code"].clone())
        .collect();
    assert_eq!(codes, [json!(500), json!(200)]);

    // The Resend SDK reads the same, and its replay posts the same id and body again.
    let sdk = run_resend_script(
        &app.base_url,
        key,
        "resend_webhook_events.py",
        &[("WEBHOOK_ID", webhook.clone()), ("EVENT_ID", event.clone())],
    )
    .await;
    assert_eq!(sdk["listed"]["data"][0]["id"], event.as_str());
    assert_eq!(sdk["got"]["payload"], one["payload"]);
    assert_eq!(sdk["attempts"]["data"].as_array().unwrap().len(), 2);
    assert_eq!(sdk["replayed"]["id"], event.as_str());
    assert_eq!(app.dispatcher.drain().await.unwrap(), 1);
    let hits = receiver.hits();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[2].header("svix-id"), hits[0].header("svix-id"));
    assert_eq!(hits[2].body, hits[0].body);

    // A test event, signed like the others.
    app.post(
        &format!("/v1/webhooks/{webhook}/test"),
        Auth::Key(key),
        &json!({}),
    )
    .await
    .expect(200);
    assert_eq!(app.dispatcher.drain().await.unwrap(), 1);
    let hits = receiver.hits();
    assert_eq!(body(&hits[3])["data"]["test"], true);
    verify_all(&hits, &secret).await;

    // Another tenant sees none of it.
    let other = app.create_tenant("Globex").await;
    for path in [
        format!("/v1/webhooks/{webhook}/events"),
        format!("/v1/webhooks/{webhook}/events/{event}"),
        format!("/v1/webhooks/{webhook}/events/{event}/attempts"),
    ] {
        app.get(&path, Auth::Key(&other.key))
            .await
            .expect_error(404, "not_found");
    }
    for path in [
        format!("/v1/webhooks/{webhook}/events/{event}/replay"),
        format!("/v1/webhooks/{webhook}/test"),
    ] {
        app.post(&path, Auth::Key(&other.key), &json!({}))
            .await
            .expect_error(404, "not_found");
    }
}

#[tokio::test]
async fn deliveries_during_a_rotation_verify_with_the_old_and_the_new_secret() {
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private = true).await;
    let receiver = Receiver::start().await;
    let (tenant, old) = subscribed(&app, &receiver).await;
    let key = tenant.key.as_str();
    let webhook = app.get("/v1/webhooks", Auth::Key(key)).await.expect(200)["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotated = app
        .post(
            &format!("/v1/webhooks/{webhook}/signing-secret/rotate"),
            Auth::Key(key),
            &json!({}),
        )
        .await;
    let new = rotated.expect(200)["signing_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let email =
        |to: &str| json!({"from": "a@acme.test", "to": to, "subject": "Hi", "text": "hello"});
    app.send_email(key, &email("b@x.test")).await;
    app.expect_unsent_mail();
    assert_eq!(app.dispatcher.drain().await.unwrap(), 1);
    let during = receiver.hits();
    assert_eq!(
        during[0]
            .header("svix-signature")
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    verify_all(&during, &old).await;
    verify_all(&during, &new).await;
    // Once the overlap is over, only the new secret signs.
    app.execute_sql("UPDATE webhooks SET previous_secret_expires_at = now() - interval '1 second'")
        .await;
    app.send_email(key, &email("c@x.test")).await;
    assert_eq!(app.dispatcher.drain().await.unwrap(), 1);
    let after = receiver.hits()[1..].to_vec();
    assert_eq!(
        after[0]
            .header("svix-signature")
            .unwrap()
            .split(' ')
            .count(),
        1
    );
    verify_all(&after, &new).await;
}

/// The dispatcher's leases so far that found `found` (`rows` or `none`), from `/metrics`.
async fn leases(app: &TestApp, found: &str) -> u64 {
    let metrics = app.get("/metrics", Auth::None).await;
    let series = format!("missive_webhook_leases_total{{found=\"{found}\"}} ");
    metrics
        .text
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

#[tokio::test]
async fn a_dispatcher_held_back_by_a_full_share_does_not_lease_on_every_new_row() {
    // One post at a time to the endpoint, so its share is 16 rows; the first post stalls, and
    // the other 15 rows it leased with it wait for the post slot.
    let app = TestApp::spawn_with(|c| {
        c.webhooks.allow_private = true;
        c.webhooks.endpoint_concurrency = 1;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::Stall(Duration::from_millis(1500))]);
    let tenant = app.create_tenant("Acme").await;
    let created = app
        .post(
            "/v1/webhooks",
            Auth::Key(&tenant.key),
            &json!({"endpoint": receiver.url("/hook"), "events": ["email.sent"]}),
        )
        .await;
    let tenant_id = missive_core::TenantId::from_uuid(tenant.id.parse().unwrap());
    let webhook_id = created.expect(200)["id"].as_str().unwrap().parse().unwrap();
    let queue = async || {
        app.store()
            .queue_test_webhook_event(tenant_id, webhook_id)
            .await
            .unwrap();
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(app.dispatcher.clone().run(shutdown.clone()));
    for _ in 0..16 {
        queue().await;
    }
    while receiver.hits().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Each new row notifies the dispatcher while the share is full.
    let (before, started) = (leases(&app, "none").await, std::time::Instant::now());
    for _ in 0..100 {
        queue().await;
    }
    let empty = leases(&app, "none").await - before;
    let bound =
        u64::try_from(started.elapsed().as_millis() / missive::queue::webhooks::GATHER.as_millis())
            .unwrap()
            + 3;
    assert!(
        empty <= bound,
        "{empty} leases found nothing while 100 rows arrived (at most {bound} expected)"
    );

    // Nothing was lost waiting: once the stall ends, every event is posted.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while receiver.hits().len() < 116 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.hits().len(), 116);
    shutdown.cancel();
    running.await.unwrap();
}
