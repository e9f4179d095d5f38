//! Tenant limits and usage: request rates per tenant and key (429 with its headers, SMTP 451),
//! sending quotas exact under concurrency over REST and SMTP and in a mixed group commit, SMTP
//! sessions per tenant, and usage figures that agree with the events.

use std::sync::Arc;

use missive_tests::{Auth, CreatedTenant, SmtpClient, TestApp, plain, run_resend_script};
use serde_json::{Value, json};

fn email(to: &str) -> Value {
    json!({ "from": "app@acme.test", "to": to, "subject": "Hi", "text": "Hello" })
}

async fn set_limits(app: &TestApp, tenant: &CreatedTenant, limits: Value) -> Value {
    app.patch(
        &format!("/v1/tenants/{}", tenant.id),
        Auth::Admin,
        &json!({ "rate_limit": limits }),
    )
    .await
    .expect(200)
    .clone()
}

async fn count(app: &TestApp, sql: &str, tenant: &CreatedTenant) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(uuid::Uuid::parse_str(&tenant.id).unwrap())
        .fetch_one(app.store().pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_admin_sets_limits_and_null_returns_them_to_the_defaults() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let tenant = set_limits(
        &app,
        &acme,
        json!({ "requests_per_minute": 600, "emails_per_day": 1000, "emails_per_month": 20000 }),
    )
    .await;
    assert_eq!(
        tenant["rate_limit"],
        json!({ "requests_per_minute": 600, "emails_per_day": 1000, "emails_per_month": 20000 })
    );
    // What a PATCH leaves out stays; null returns one limit to the default.
    let tenant = set_limits(&app, &acme, json!({ "emails_per_day": null })).await;
    assert_eq!(tenant["rate_limit"]["emails_per_day"], Value::Null);
    assert_eq!(tenant["rate_limit"]["emails_per_month"], 20000);
    // PUT means the same.
    let put = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/tenants/{}", acme.id),
            Auth::Admin,
            Some(&json!({ "rate_limit": null })),
        )
        .await;
    assert_eq!(
        put.expect(200)["rate_limit"],
        json!({ "requests_per_minute": null, "emails_per_day": null, "emails_per_month": null })
    );
    for bad in [
        json!({ "requests_per_minute": 0 }),
        json!({ "emails_per_day": -1 }),
        json!({ "per_hour": 5 }),
    ] {
        let response = app
            .patch(
                &format!("/v1/tenants/{}", acme.id),
                Auth::Admin,
                &json!({ "rate_limit": bad }),
            )
            .await;
        assert!(
            [400, 422].contains(&response.status),
            "{bad}: {}",
            response.text
        );
        response.assert_error_shape();
    }
}

#[tokio::test]
async fn a_tenant_over_its_rate_gets_429_with_headers_while_another_is_served() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    set_limits(&app, &acme, json!({ "requests_per_minute": 3 })).await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let response = app.get("/v1/emails", Auth::Key(&acme.key)).await;
        response.expect(200);
        assert_eq!(response.headers["ratelimit-limit"], "3");
        remaining.push(
            response.headers["ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let refused = app.get("/v1/emails", Auth::Key(&acme.key)).await;
    assert_eq!(
        refused.expect_error(429, "rate_limit_exceeded"),
        "too many requests: the limit is 3 per minute; retry after 20 s"
    );
    assert_eq!(refused.headers["ratelimit-remaining"], "0");
    assert_eq!(refused.headers["retry-after"], "20");
    assert_eq!(refused.headers["ratelimit-reset"], "20");
    // A send is refused the same way, and nothing of it is stored.
    app.post("/v1/emails", Auth::Key(&acme.key), &email("a@x.test"))
        .await
        .expect_error(429, "rate_limit_exceeded");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM emails WHERE tenant_id = $1",
            &acme
        )
        .await,
        0
    );
    // The other tenant, at the same moment, is not limited at all.
    for _ in 0..10 {
        let response = app.get("/v1/emails", Auth::Key(&other.key)).await;
        response.expect(200);
        assert!(response.headers.get("ratelimit-limit").is_none());
    }
}

#[tokio::test]
async fn a_key_with_its_own_lower_rate_is_limited_before_its_tenant() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let created = app
        .post(
            &format!("/v1/tenants/{}/api-keys", acme.id),
            Auth::Admin,
            &json!({ "name": "slow", "requests_per_minute": 2 }),
        )
        .await;
    let body = created.expect(201);
    assert_eq!(body["requests_per_minute"], 2);
    let slow = body["token"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        app.get("/v1/emails", Auth::Key(&slow)).await.expect(200);
    }
    app.get("/v1/emails", Auth::Key(&slow))
        .await
        .expect_error(429, "rate_limit_exceeded");
    // The tenant's other key is not held back by it.
    app.get("/v1/emails", Auth::Key(&acme.key))
        .await
        .expect(200);
}

/// Fires `n` sends at once; returns how many were accepted and the refusals' error names.
async fn concurrent_sends(app: &Arc<TestApp>, key: &str, n: usize) -> (usize, Vec<String>) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (app, key) = (app.clone(), key.to_owned());
        tasks.spawn(async move {
            app.post(
                "/v1/emails",
                Auth::Key(&key),
                &email(&format!("user{i}@x.test")),
            )
            .await
        });
    }
    let (mut accepted, mut refused) = (0, Vec::new());
    while let Some(response) = tasks.join_next().await {
        let response = response.unwrap();
        match response.status {
            200 => accepted += 1,
            429 => refused.push(response.body["name"].as_str().unwrap().to_owned()),
            other => panic!("unexpected {other}: {}", response.text),
        }
    }
    (accepted, refused)
}

#[tokio::test]
async fn a_daily_quota_is_exact_under_concurrent_rest_sends() {
    let app = Arc::new(TestApp::spawn().await);
    app.expect_unsent_mail();
    let acme = app.create_tenant("Acme").await;
    set_limits(&app, &acme, json!({ "emails_per_day": 20 })).await;
    let (accepted, refused) = concurrent_sends(&app, &acme.key, 50).await;
    assert_eq!(accepted, 20);
    assert_eq!(refused.len(), 30);
    assert!(refused.iter().all(|name| name == "daily_quota_exceeded"));
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM emails WHERE tenant_id = $1",
            &acme
        )
        .await,
        20
    );
    let usage = app.get("/v1/usage", Auth::Key(&acme.key)).await;
    let daily = &usage.expect(200)["emails"]["daily"];
    assert_eq!(
        (daily["used"].as_i64(), daily["limit"].as_i64()),
        (Some(20), Some(20))
    );
    // The refusal says when to come back.
    let refusal = app
        .post("/v1/emails", Auth::Key(&acme.key), &email("late@x.test"))
        .await;
    refusal.expect_error(429, "daily_quota_exceeded");
    let wait: u64 = refusal.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&wait), "{wait}");
}

#[tokio::test]
async fn a_monthly_quota_counts_recipients_and_refuses_a_send_whole() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let acme = app.create_tenant("Acme").await;
    set_limits(&app, &acme, json!({ "emails_per_month": 3 })).await;
    // Two recipients use two of the three.
    app.send_email(
        &acme.key,
        &json!({ "from": "app@acme.test", "to": ["a@x.test", "b@x.test"], "subject": "s", "text": "t" }),
    )
    .await;
    // Two more would make four: refused whole, nothing stored.
    app.post(
        "/v1/emails",
        Auth::Key(&acme.key),
        &json!({ "from": "app@acme.test", "to": ["c@x.test", "d@x.test"], "subject": "s", "text": "t" }),
    )
    .await
    .expect_error(429, "monthly_quota_exceeded");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM deliveries WHERE tenant_id = $1",
            &acme
        )
        .await,
        2
    );
    // One fits.
    app.send_email(&acme.key, &email("e@x.test")).await;
    // An idempotent replay is not counted again (and is answered, though the quota is full).
    let replay = |key: &'static str| {
        let app = &app;
        let acme_key = acme.key.clone();
        async move {
            app.client
                .post(format!("{}/v1/emails", app.base_url))
                .bearer_auth(acme_key)
                .header("Idempotency-Key", key)
                .json(&email("f@x.test"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    set_limits(&app, &acme, json!({ "emails_per_month": 4 })).await;
    assert_eq!(replay("once").await, 200);
    assert_eq!(replay("once").await, 200);
    let usage = app.get("/v1/usage", Auth::Key(&acme.key)).await;
    assert_eq!(usage.expect(200)["emails"]["monthly"]["used"], 4);
    assert_eq!(usage.body["emails"]["monthly"]["sent"], 3);
}

#[tokio::test]
async fn a_daily_quota_is_exact_under_concurrent_smtp_sessions() {
    let app = Arc::new(TestApp::spawn().await);
    app.expect_unsent_mail();
    let acme = app.create_tenant("Acme").await;
    set_limits(&app, &acme, json!({ "emails_per_day": 20 })).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (addr, key) = (app.smtp_addr, acme.key.clone());
        tasks.spawn(async move {
            let mut client = SmtpClient::connect(addr).await.authenticated(&key).await;
            let reply = client
                .send_mail(
                    "app@acme.test",
                    &[&format!("user{i}@x.test")],
                    "From: app@acme.test\r\nSubject: Hi\r\n\r\nHello\r\n",
                )
                .await;
            (reply.code, reply.text())
        });
    }
    let mut codes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (code, text) = done.unwrap();
        if code == 452 {
            assert!(text.starts_with("4.3.1 The daily sending quota"), "{text}");
        }
        codes.push(code);
    }
    assert_eq!(codes.iter().filter(|c| **c == 250).count(), 20, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 452).count(), 30, "{codes:?}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM emails WHERE tenant_id = $1",
            &acme
        )
        .await,
        20
    );
    let usage = app.get("/v1/usage", Auth::Key(&acme.key)).await;
    assert_eq!(usage.expect(200)["today"]["smtp_messages"], 20);
}

#[tokio::test]
async fn smtp_transactions_count_against_the_rate_and_sessions_per_tenant_are_capped() {
    let app = TestApp::spawn_with(|config| config.smtp.max_sessions_per_tenant = 2).await;
    let acme = app.create_tenant("Acme").await;
    set_limits(&app, &acme, json!({ "requests_per_minute": 1 })).await;
    let mut first = SmtpClient::connect(app.smtp_addr)
        .await
        .authenticated(&acme.key)
        .await;
    first
        .send_mail(
            "app@acme.test",
            &["a@x.test"],
            "From: app@acme.test\r\nSubject: 1\r\n\r\nOne\r\n",
        )
        .await;
    let limited = first.cmd("MAIL FROM:<app@acme.test>", 451).await;
    assert!(
        limited.text().starts_with("4.7.1 Rate limit exceeded"),
        "{}",
        limited.text()
    );
    // A second session of the tenant is let in; a third is turned away.
    let _second = SmtpClient::connect(app.smtp_addr)
        .await
        .authenticated(&acme.key)
        .await;
    let mut third = SmtpClient::connect(app.smtp_addr).await;
    third.expect(220).await;
    third.cmd("EHLO client.test", 250).await;
    let mut third = third.starttls().await;
    third.cmd("EHLO client.test", 250).await;
    let refused = third
        .cmd(&format!("AUTH PLAIN {}", plain(&acme.key)), 421)
        .await;
    assert!(
        refused.text().starts_with("4.7.0 Too many open sessions"),
        "{}",
        refused.text()
    );
    assert!(third.closed().await);
    // Another tenant's sessions are not counted with them.
    let other = app.create_tenant("Other").await;
    let _theirs = SmtpClient::connect(app.smtp_addr)
        .await
        .authenticated(&other.key)
        .await;
    app.worker.drain().await.unwrap();
}

#[tokio::test]
async fn a_tenant_over_quota_in_a_group_commit_fails_alone() {
    use missive_store::StoreError;
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let limited = app.create_tenant("Limited").await;
    let free = app.create_tenant("Free").await;
    // Ten recipients a day; each email below has two (a To and a Bcc): five emails fit.
    set_limits(&app, &limited, json!({ "emails_per_day": 10 })).await;
    let store = app.store().clone();
    // Hold the writer on a lock so the requests of both tenants pile up into one group.
    let (writer, blocker) = missive_tests::writer_held_by_a_lock(&store).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..16 {
        let writer = writer.clone();
        let tenant: missive_core::TenantId = if n % 2 == 0 { &limited } else { &free }
            .id
            .parse()
            .unwrap();
        let email = missive_tests::new_email(&format!("user{n}@x.test"));
        tasks.spawn(async move { (n % 2 == 0, writer.insert(tenant, vec![email], None).await) });
        if n == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    blocker.rollback().await.unwrap();
    let (mut limited_ok, mut limited_refused, mut free_ok) = (0, 0, 0);
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            (true, Ok(_)) => limited_ok += 1,
            (true, Err(StoreError::OverQuota(_))) => limited_refused += 1,
            (false, Ok(_)) => free_ok += 1,
            (limited, Err(err)) => panic!("limited={limited}: {err}"),
        }
    }
    assert_eq!((limited_ok, limited_refused, free_ok), (5, 3, 8));
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM emails WHERE tenant_id = $1",
            &limited
        )
        .await,
        5
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM emails WHERE tenant_id = $1",
            &free
        )
        .await,
        8
    );
}

#[tokio::test]
async fn usage_agrees_with_the_events_for_the_tenant_and_the_admin() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    app.sink
        .answer_rcpt_with("gone@x.test", &["550 5.1.1 <gone@x.test>: no such user"]);
    app.post(
        "/v1/suppressions",
        Auth::Key(&acme.key),
        &json!({ "email": "listed@x.test" }),
    )
    .await
    .expect(200);
    for to in [
        json!(["a@x.test", "b@x.test"]),
        json!("gone@x.test"),
        json!(["listed@x.test", "c@x.test"]),
    ] {
        app.send_email(
            &acme.key,
            &json!({ "from": "app@acme.test", "to": to, "subject": "s", "text": "t" }),
        )
        .await;
    }
    app.send_email(&other.key, &email("o@x.test")).await;
    let mut client = SmtpClient::connect(app.smtp_addr)
        .await
        .authenticated(&acme.key)
        .await;
    client
        .send_mail(
            "app@acme.test",
            &["d@x.test"],
            "From: app@acme.test\r\nSubject: Hi\r\n\r\nHello\r\n",
        )
        .await;
    app.worker.drain().await.unwrap();

    let events = |kind: &'static str| {
        let app = &app;
        let acme = &acme;
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM email_events WHERE tenant_id = $1 AND type = $2",
            )
            .bind(uuid::Uuid::parse_str(&acme.id).unwrap())
            .bind(kind)
            .fetch_one(app.store().pool())
            .await
            .unwrap()
        }
    };
    let usage = app.get("/v1/usage", Auth::Key(&acme.key)).await;
    let body = usage.expect(200).clone();
    assert_eq!(body["object"], "usage");
    assert_eq!(body["tenant_id"], acme.id.as_str());
    let today = &body["today"];
    assert_eq!(today["recipients"], 6);
    assert_eq!(today["emails"], 4);
    assert_eq!(today["smtp_messages"], 1);
    assert_eq!(today["delivered"], events("email.delivered").await);
    assert_eq!(today["delivered"], 4);
    assert_eq!(today["bounced"], events("email.bounced").await);
    assert_eq!(today["bounced"], 1);
    assert_eq!(today["suppressed"], events("email.suppressed").await);
    assert_eq!(today["suppressed"], 1);
    assert_eq!(today["failed"], 0);
    // Authenticated requests so far: the suppression, three sends, and this read.
    assert_eq!(today["api_requests"], 5);
    assert_eq!(body["emails"]["daily"]["used"], 6);
    assert_eq!(body["emails"]["daily"]["received"], 0);
    assert_eq!(body["emails"]["daily"]["limit"], Value::Null);
    assert_eq!(body["month"]["recipients"], 6);
    // Per day on request.
    let today_date = time::OffsetDateTime::now_utc().date().to_string();
    let days = app
        .get(
            &format!("/v1/usage?from={today_date}&to={today_date}"),
            Auth::Key(&acme.key),
        )
        .await;
    let days = days.expect(200)["days"].as_array().unwrap().clone();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0]["date"], today_date.as_str());
    assert_eq!(days[0]["delivered"], 4);
    app.get("/v1/usage?from=2026-13-01", Auth::Key(&acme.key))
        .await
        .expect_error(422, "validation_error");
    // `to` alone lists its month up to it.
    let month = app
        .get(&format!("/v1/usage?to={today_date}"), Auth::Key(&acme.key))
        .await;
    assert_eq!(month.expect(200)["days"].as_array().unwrap().len(), 1);

    // The operator's view of the month, SelfMX's shape.
    let period = &today_date[..7];
    let admin = app
        .get(
            &format!("/v1/tenants/{}/usage?period={period}", acme.id),
            Auth::Admin,
        )
        .await;
    let admin = admin.expect(200);
    assert_eq!(admin["tenant_id"], acme.id.as_str());
    assert_eq!(admin["period"], period);
    assert_eq!(admin["emails_sent"], 4);
    assert_eq!(admin["emails_delivered"], 4);
    assert_eq!(admin["emails_bounced"], 1);
    assert_eq!(admin["breakdown"]["suppressed"], 1);
    assert!(admin["api_requests"].as_i64().unwrap() >= 6);
    assert_eq!(admin["days"].as_array().unwrap().len(), 1);
    // Another tenant's figures are its own.
    let theirs = app
        .get(&format!("/v1/tenants/{}/usage", other.id), Auth::Admin)
        .await;
    assert_eq!(theirs.expect(200)["emails_sent"], 1);
    app.get(
        "/v1/tenants/01a22800-0000-7000-8000-000000000000/usage",
        Auth::Admin,
    )
    .await
    .expect_error(404, "not_found");
    app.get(
        &format!("/v1/tenants/{}/usage?period=2026-13", acme.id),
        Auth::Admin,
    )
    .await
    .expect_error(422, "validation_error");
    // A key without `usage:read` cannot read it.
    let (_, sender) = app.create_key(&acme.id, "sender", &["send"]).await;
    app.get("/v1/usage", Auth::Key(&sender))
        .await
        .expect_error(403, "restricted_api_key");
}

#[tokio::test]
async fn the_resend_sdk_reads_usage_and_raises_its_rate_limit_error() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    app.send_email(&acme.key, &email("a@x.test")).await;
    app.worker.drain().await.unwrap();
    set_limits(
        &app,
        &acme,
        json!({ "requests_per_minute": 4, "emails_per_day": 100 }),
    )
    .await;
    let result = run_resend_script(
        &app.base_url,
        &acme.key,
        "resend_usage.py",
        &[("LIMIT", "4".to_owned())],
    )
    .await;
    let usage = &result["usage"];
    assert_eq!(usage["object"], "usage");
    assert_eq!(usage["emails"]["daily"]["used"], 1);
    assert_eq!(usage["emails"]["daily"]["limit"], 100);
    assert_eq!(usage["emails"]["monthly"]["sent"], 1);
    assert_eq!(
        usage["rate_limit"],
        json!({ "limit": 4, "duration": "60000ms" })
    );
    assert_eq!(result["headers"]["ratelimit-limit"], "4");
    let refused = &result["refused"];
    assert_eq!(refused["type"], "RateLimitError");
    assert_eq!(refused["code"], 429);
    assert_eq!(refused["error_type"], "rate_limit_exceeded");
    assert_eq!(refused["headers"]["ratelimit-remaining"], "0");
    assert!(refused["headers"]["retry-after"].is_string());
}

#[tokio::test]
async fn the_admin_reads_any_tenants_emails_in_the_tenant_shapes() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    let id = app.send_email(&acme.key, &email("a@x.test")).await;
    app.worker.drain().await.unwrap();
    let as_tenant = app
        .get(&format!("/v1/emails/{id}"), Auth::Key(&acme.key))
        .await
        .expect(200)
        .clone();
    let as_admin = app
        .get(&format!("/v1/tenants/{}/emails/{id}", acme.id), Auth::Admin)
        .await
        .expect(200)
        .clone();
    assert_eq!(as_admin, as_tenant);
    let list = app
        .get(
            &format!("/v1/tenants/{}/emails?limit=10", acme.id),
            Auth::Admin,
        )
        .await;
    let list = list.expect(200);
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][0]["id"], id.as_str());
    // Under another tenant the email does not exist.
    app.get(
        &format!("/v1/tenants/{}/emails/{id}", other.id),
        Auth::Admin,
    )
    .await
    .expect_error(404, "not_found");
    let theirs = app
        .get(&format!("/v1/tenants/{}/emails", other.id), Auth::Admin)
        .await;
    assert_eq!(theirs.expect(200)["data"], json!([]));
    // A tenant key is no admin key.
    app.get(
        &format!("/v1/tenants/{}/emails", acme.id),
        Auth::Key(&acme.key),
    )
    .await
    .expect_error(401, "invalid_api_key");
}
