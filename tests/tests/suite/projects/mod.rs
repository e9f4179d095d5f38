//! Projects inside a tenant: each project sends with its own keys and sees only its own emails,
//! templates and webhooks; the tenant's quota, suppression list and reputation are shared by its
//! projects; usage per project sums to the tenant's; the headers naming tenant and project must
//! match the key.

use std::sync::Arc;

use missive_tests::{Auth, CreatedTenant, Receiver, SmtpClient, TestApp, queued_id};
use serde_json::{Value, json};

mod delegation;
mod migration;
mod security;

/// A project and a full-access key of its own, made by the operator.
pub struct Project {
    pub id: String,
    pub key: String,
}

pub async fn add_project(app: &TestApp, tenant: &CreatedTenant, name: &str) -> Project {
    let created = app
        .post(
            &format!("/v1/tenants/{}/projects", tenant.id),
            Auth::Admin,
            &json!({ "name": name }),
        )
        .await;
    let project = created.expect(201);
    assert_eq!(project["object"], "project");
    assert_eq!(project["tenant_id"], tenant.id.as_str());
    assert_eq!(project["default"], false);
    let id = project["id"].as_str().unwrap().to_owned();
    let key = app
        .post(
            &format!("/v1/tenants/{}/projects/{id}/api-keys", tenant.id),
            Auth::Admin,
            &json!({ "name": format!("{name}-key") }),
        )
        .await;
    let key = key.expect(201);
    assert_eq!(key["project_id"], id.as_str());
    Project {
        id,
        key: key["token"].as_str().unwrap().to_owned(),
    }
}

pub fn email(to: &str) -> Value {
    json!({ "from": "app@acme.test", "to": to, "subject": "Hi", "text": "Hello" })
}

#[tokio::test]
async fn two_projects_send_with_their_own_keys_and_neither_reads_the_others_data() {
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private = true).await;
    let acme = app.create_tenant("Acme").await;
    let billing = add_project(&app, &acme, "billing").await;
    let support = add_project(&app, &acme, "support").await;

    // Each sends with its own key; the email says whose it is.
    let from_billing = app.send_email(&billing.key, &email("a@x.test")).await;
    let from_support = app.send_email(&support.key, &email("b@x.test")).await;
    let read = app
        .get(
            &format!("/v1/emails/{from_billing}"),
            Auth::Key(&billing.key),
        )
        .await;
    let read = read.expect(200);
    assert_eq!(read["tenant_id"], acme.id.as_str());
    assert_eq!(read["project_id"], billing.id.as_str());
    // Neither reads the other's email, and the default project's key reads neither.
    for (key, id) in [
        (&billing.key, &from_support),
        (&support.key, &from_billing),
        (&acme.key, &from_billing),
    ] {
        app.get(&format!("/v1/emails/{id}"), Auth::Key(key))
            .await
            .expect_error(404, "not_found");
    }
    let listed = app.get("/v1/emails", Auth::Key(&billing.key)).await;
    let ids: Vec<&str> = listed.expect(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [from_billing.as_str()]);

    // Templates: one project's is not the other's, by id or by alias, nor usable in a send.
    let template = app
        .post(
            "/v1/templates",
            Auth::Key(&billing.key),
            &json!({ "name": "Receipt", "alias": "billing-receipt", "html": "<p>{{total}}</p>" }),
        )
        .await;
    let template_id = template.expect(200)["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/v1/templates/{template_id}/publish"),
        Auth::Key(&billing.key),
        &json!({}),
    )
    .await
    .expect(200);
    for reference in [template_id.as_str(), "billing-receipt"] {
        app.get(
            &format!("/v1/templates/{reference}"),
            Auth::Key(&support.key),
        )
        .await
        .expect_error(404, "not_found");
    }
    let listed = app.get("/v1/templates", Auth::Key(&support.key)).await;
    assert!(
        listed.expect(200)["data"].as_array().unwrap().is_empty(),
        "{}",
        listed.text
    );
    let refused = app
        .post(
            "/v1/emails",
            Auth::Key(&support.key),
            &json!({ "from": "app@acme.test", "to": "c@x.test", "subject": "s",
                     "template": { "id": "billing-receipt", "variables": { "total": "9" } } }),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    // The same alias is free in the other project.
    app.post(
        "/v1/templates",
        Auth::Key(&support.key),
        &json!({ "name": "Receipt", "alias": "billing-receipt", "html": "<p>support</p>" }),
    )
    .await
    .expect(200);

    // Webhooks: an endpoint is its project's, and hears only its project's events.
    let receiver = Receiver::start().await;
    let hook = app
        .post(
            "/v1/webhooks",
            Auth::Key(&billing.key),
            &json!({ "endpoint": receiver.url("/billing"), "events": ["email.sent"] }),
        )
        .await;
    let hook = hook.expect(200).clone();
    let hook_id = hook["id"].as_str().unwrap();
    app.get(&format!("/v1/webhooks/{hook_id}"), Auth::Key(&support.key))
        .await
        .expect_error(404, "not_found");
    app.delete(&format!("/v1/webhooks/{hook_id}"), Auth::Key(&support.key))
        .await
        .expect_error(404, "not_found");
    let mine = app
        .get(&format!("/v1/webhooks/{hook_id}"), Auth::Key(&billing.key))
        .await;
    assert_eq!(mine.expect(200)["project_id"], billing.id.as_str());
    let billed = app.send_email(&billing.key, &email("d@x.test")).await;
    app.send_email(&support.key, &email("e@x.test")).await;
    app.worker.drain().await.unwrap();
    app.dispatcher.drain().await.unwrap();
    let bodies: Vec<Value> = receiver
        .hits()
        .iter()
        .map(|hit| serde_json::from_str(&hit.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["data"]["email_id"], billed.as_str());

    // Keys: a project's key lists its project's keys only.
    let keys = app.get("/v1/api-keys", Auth::Key(&billing.key)).await;
    let keys = keys.expect(200)["data"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["project_id"], billing.id.as_str());
}

#[tokio::test]
async fn a_shared_daily_quota_is_exact_across_projects_under_concurrent_sends() {
    let app = Arc::new(TestApp::spawn().await);
    app.expect_unsent_mail();
    let acme = app.create_tenant("Acme").await;
    let billing = add_project(&app, &acme, "billing").await;
    let support = add_project(&app, &acme, "support").await;
    app.patch(
        &format!("/v1/tenants/{}", acme.id),
        Auth::Admin,
        &json!({ "rate_limit": { "emails_per_day": 5 } }),
    )
    .await
    .expect(200);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let app = app.clone();
        let key = if i % 2 == 0 {
            billing.key.clone()
        } else {
            support.key.clone()
        };
        tasks.spawn(async move {
            app.post(
                "/v1/emails",
                Auth::Key(&key),
                &email(&format!("u{i}@x.test")),
            )
            .await
        });
    }
    let (mut accepted, mut refused) = (0, 0);
    while let Some(response) = tasks.join_next().await {
        let response = response.unwrap();
        match response.status {
            200 => accepted += 1,
            429 => {
                assert_eq!(response.body["name"], "daily_quota_exceeded");
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", response.text),
        }
    }
    assert_eq!((accepted, refused), (5, 15));
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM emails WHERE tenant_id = $1")
        .bind(uuid::Uuid::parse_str(&acme.id).unwrap())
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(stored, 5);
    // Each project's usage shows the tenant's quota, used by both.
    for key in [&billing.key, &support.key] {
        let usage = app.get("/v1/usage", Auth::Key(key)).await;
        let daily = &usage.expect(200)["emails"]["daily"];
        assert_eq!(
            (daily["used"].as_i64(), daily["limit"].as_i64()),
            (Some(5), Some(5))
        );
    }
}

#[tokio::test]
async fn a_hard_bounce_in_one_project_suppresses_the_address_for_the_other() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let billing = add_project(&app, &acme, "billing").await;
    let support = add_project(&app, &acme, "support").await;
    app.sink
        .answer_rcpt_with("gone@x.test", &["550 5.1.1 <gone@x.test>: no such user"]);
    app.send_email(&billing.key, &email("gone@x.test")).await;
    app.worker.drain().await.unwrap();
    let listed = app.get("/v1/suppressions", Auth::Key(&support.key)).await;
    let listed = listed.expect(200)["data"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["email"], "gone@x.test");
    // The sibling's send to it is accepted and never relayed.
    let id = app.send_email(&support.key, &email("gone@x.test")).await;
    let read = app
        .get(&format!("/v1/emails/{id}"), Auth::Key(&support.key))
        .await;
    assert_eq!(read.expect(200)["recipients"][0]["status"], "suppressed");
    app.worker.drain().await.unwrap();
    assert_eq!(app.sink.received().len(), 0);
}

#[tokio::test]
async fn usage_per_project_sums_to_the_tenants() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let billing = add_project(&app, &acme, "billing").await;
    let support = add_project(&app, &acme, "support").await;
    for (key, n) in [(&acme.key, 1), (&billing.key, 2), (&support.key, 3)] {
        for i in 0..n {
            app.send_email(key, &email(&format!("r{i}@x.test"))).await;
        }
    }
    app.worker.drain().await.unwrap();
    let usage = app
        .get(&format!("/v1/tenants/{}/usage", acme.id), Auth::Admin)
        .await;
    let usage = usage.expect(200).clone();
    assert_eq!(usage["emails_sent"], 6);
    assert_eq!(usage["emails_delivered"], 6);
    let projects = usage["projects"].as_array().unwrap();
    assert_eq!(projects.len(), 3, "{usage}");
    // The default first, then in creation order; each project's own figures.
    assert_eq!(projects[0]["project_id"], acme.id.as_str());
    assert_eq!(projects[0]["name"], "default");
    assert_eq!(projects[1]["project_id"], billing.id.as_str());
    let sent: Vec<i64> = projects
        .iter()
        .map(|p| p["emails_sent"].as_i64().unwrap())
        .collect();
    assert_eq!(sent, [1, 2, 3]);
    for field in ["emails_sent", "emails_delivered", "api_requests"] {
        let sum: i64 = projects.iter().map(|p| p[field].as_i64().unwrap()).sum();
        assert_eq!(sum, usage[field].as_i64().unwrap(), "{field}: {usage}");
    }
    // A project's own usage reads its own counts.
    let own = app.get("/v1/usage", Auth::Key(&support.key)).await;
    let own = own.expect(200);
    assert_eq!(own["project_id"], support.id.as_str());
    assert_eq!(own["today"]["emails"], 3, "{own}");
}

#[tokio::test]
async fn smtp_auth_with_a_project_key_and_a_projects_trusted_network_send_as_that_project() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let acme = app.create_tenant("Acme").await;
    let billing = add_project(&app, &acme, "billing").await;
    let message = "From: app@acme.test\r\nTo: you@x.test\r\nSubject: Hi\r\n\r\nHello\r\n";

    let mut client = SmtpClient::connect(app.smtp_addr)
        .await
        .authenticated(&billing.key)
        .await;
    let id = queued_id(
        &client
            .send_mail("app@acme.test", &["you@x.test"], message)
            .await,
    );
    let read = app
        .get(&format!("/v1/emails/{id}"), Auth::Key(&billing.key))
        .await;
    assert_eq!(read.expect(200)["project_id"], billing.id.as_str());
    app.get(&format!("/v1/emails/{id}"), Auth::Key(&acme.key))
        .await
        .expect(404);

    // A network trusted for the project sends as the project.
    let set = app
        .patch(
            &format!("/v1/tenants/{}/projects/{}", acme.id, billing.id),
            Auth::Admin,
            &json!({ "trusted_networks": ["10.42.0.0/16"] }),
        )
        .await;
    assert_eq!(set.expect(200)["trusted_networks"], json!(["10.42.0.0/16"]));
    let mut trusted = SmtpClient::in_memory(
        app.smtp.clone(),
        "10.42.1.2",
        missive::edge::smtp::Listener::Submission,
    );
    trusted.expect(220).await;
    trusted.cmd("HELO printer", 250).await;
    let id = queued_id(
        &trusted
            .send_mail("app@acme.test", &["you@x.test"], message)
            .await,
    );
    let read = app
        .get(&format!("/v1/emails/{id}"), Auth::Key(&billing.key))
        .await;
    assert_eq!(read.expect(200)["project_id"], billing.id.as_str());
}

#[tokio::test]
async fn the_lease_takes_projects_in_turn_so_a_projects_backlog_cannot_starve_its_sibling() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let acme = app.create_tenant("Acme").await;
    let quiet = add_project(&app, &acme, "quiet").await;
    for n in 0..30 {
        app.send_email(&acme.key, &email(&format!("r{n}@x.test")))
            .await;
    }
    // Queued last, in the same tenant: it would wait behind the whole backlog in arrival order.
    let late = app.send_email(&quiet.key, &email("q@x.test")).await;
    let leased = app
        .store()
        .lease_due_deliveries(
            4,
            std::time::Duration::from_secs(60),
            uuid::Uuid::now_v7(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(leased.len(), 4);
    assert_eq!(
        leased
            .iter()
            .filter(|d| d.email_id.to_string() == late)
            .count(),
        1,
        "the quiet project's email is in the first lease"
    );
    app.worker.drain().await.unwrap();
    assert_eq!(app.sink.received().len(), 31 - 4);
}
