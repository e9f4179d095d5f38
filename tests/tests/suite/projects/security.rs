//! The headers that name tenant and project, the operator's reads narrowed to one project, and
//! Postgres confining a request to its project as it confines it to its tenant.

use missive_core::{ProjectId, ProjectRef, TenantId};
use missive_tests::{Auth, TestApp};
use reqwest::Method;

use super::{add_project, email};

#[tokio::test]
async fn headers_naming_another_tenant_or_project_are_refused_and_matching_ones_pass() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    let billing = add_project(&app, &acme, "billing").await;
    let call = async |headers: &[(&str, &str)]| {
        let mut request = app
            .client
            .get(format!("{}/v1/emails", app.base_url))
            .bearer_auth(&billing.key);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().await.unwrap())
    };
    let (status, _) = call(&[("x-tenant-id", &acme.id), ("x-project-id", &billing.id)]).await;
    assert_eq!(status, 200);
    let (status, body) = call(&[("x-project-id", &acme.id)]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["statusCode"], 403);
    assert!(
        body["message"].as_str().unwrap().contains("x-project-id"),
        "{body}"
    );
    let (status, body) = call(&[("x-tenant-id", &other.id)]).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("x-tenant-id"),
        "{body}"
    );
    let (status, body) = call(&[("x-project-id", "not-a-uuid")]).await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn the_operators_reads_narrow_to_the_project_it_names() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let acme = app.create_tenant("Acme").await;
    let billing = add_project(&app, &acme, "billing").await;
    let default_email = app.send_email(&acme.key, &email("a@x.test")).await;
    let billing_email = app.send_email(&billing.key, &email("b@x.test")).await;
    let list = app
        .get(&format!("/v1/tenants/{}/emails", acme.id), Auth::Admin)
        .await;
    assert_eq!(list.expect(200)["data"].as_array().unwrap().len(), 2);
    let narrowed = app
        .client
        .get(format!("{}/v1/tenants/{}/emails", app.base_url, acme.id))
        .bearer_auth(missive_tests::ADMIN_KEY)
        .header("x-project-id", &billing.id)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let ids: Vec<&str> = narrowed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [billing_email.as_str()]);
    let other = app
        .client
        .get(format!(
            "{}/v1/tenants/{}/emails/{default_email}",
            app.base_url, acme.id
        ))
        .bearer_auth(missive_tests::ADMIN_KEY)
        .header("x-project-id", &billing.id)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 404);
    // A project key is no admin key.
    app.request(
        Method::GET,
        &format!("/v1/tenants/{}/emails", acme.id),
        Auth::Key(&billing.key),
        None,
    )
    .await
    .expect_error(401, "invalid_api_key");
}

/// Row-level security holds a project's transaction to its project's rows on every
/// project-owned table, refuses its writes into a sibling, and shows the whole tenant to a
/// transaction that names no project.
#[tokio::test]
async fn postgres_confines_a_projects_transaction_to_its_project() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let billing = add_project(&app, &acme, "billing").await;
    for key in [&acme.key, &billing.key] {
        app.send_email(key, &email("x@x.test")).await;
        app.post(
            "/v1/templates",
            Auth::Key(key),
            &serde_json::json!({ "name": "T", "html": "<p>t</p>" }),
        )
        .await
        .expect(200);
    }
    app.worker.drain().await.unwrap();
    let tenant: TenantId = acme.id.parse().unwrap();
    let project: ProjectId = billing.id.parse().unwrap();
    let store = app.store();
    let mut tx = store
        .begin_for(ProjectRef {
            tenant_id: tenant,
            project_id: project,
        })
        .await
        .unwrap();
    for table in [
        "emails",
        "deliveries",
        "email_events",
        "api_keys",
        "usage_daily",
        "templates",
        "projects",
    ] {
        let column = if table == "projects" {
            "id"
        } else {
            "project_id"
        };
        let seen: Vec<uuid::Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT {column} FROM {table}"
        )))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        assert_eq!(seen, [project.as_uuid()], "{table}");
    }
    let refused = sqlx::query(
        "INSERT INTO webhooks (tenant_id, project_id, id, endpoint, events, secret_key_id, secret)
         VALUES ($1, $1, $2, 'https://x.test/h', ARRAY['email.sent'], 'k', '\\x00')",
    )
    .bind(tenant.as_uuid())
    .bind(uuid::Uuid::now_v7())
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("row-level security"),
        "{refused}"
    );
    tx.rollback().await.unwrap();
    // Named by its tenant alone, a transaction sees every project's rows.
    let mut tx = store.begin_for_tenant(tenant).await.unwrap();
    let projects: i64 = sqlx::query_scalar("SELECT count(DISTINCT project_id) FROM emails")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(projects, 2);
    tx.rollback().await.unwrap();
}
