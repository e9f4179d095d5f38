//! Usage as the tenant, the admin and the Resend SDK read it, and the admin's reads of a tenant's emails.

use super::*;

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
