//! Tenant limits and usage: request rates per tenant and key (429 with its headers, SMTP 451),
//! sending quotas exact under concurrency over REST and SMTP and in a mixed group commit, SMTP
//! sessions per tenant, and usage figures that agree with the events.

use std::sync::Arc;

use missive_tests::{Auth, CreatedTenant, SmtpClient, TestApp, plain, run_resend_script};
use serde_json::{Value, json};

mod usage;

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
