//! Managing projects: the operator's routes, and a tenant key with `projects:manage` that runs
//! its own applications without the operator.

use missive_tests::{Auth, TestApp};
use serde_json::json;

use super::{add_project, email};

#[tokio::test]
async fn a_projects_manage_key_creates_a_project_and_a_key_that_sends() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    let (_, manager) = app
        .create_key(&acme.id, "manager", &["projects:manage"])
        .await;

    // Without the scope (even with full_access) the routes answer 403.
    app.get("/v1/projects", Auth::Key(&acme.key))
        .await
        .expect_error(403, "restricted_api_key");

    let listed = app.get("/v1/projects", Auth::Key(&manager)).await;
    let listed = listed.expect(200)["data"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "default");
    assert_eq!(listed[0]["id"], acme.id.as_str());
    assert_eq!(listed[0]["default"], true);

    let created = app
        .post(
            "/v1/projects",
            Auth::Key(&manager),
            &json!({ "name": "billing" }),
        )
        .await;
    let project = created.expect(201)["id"].as_str().unwrap().to_owned();
    // Names are unique within the tenant; limits are the operator's to set.
    app.post(
        "/v1/projects",
        Auth::Key(&manager),
        &json!({ "name": "Billing" }),
    )
    .await
    .expect_error(409, "conflict");
    app.post(
        "/v1/projects",
        Auth::Key(&manager),
        &json!({ "name": "fast", "requests_per_minute": 100_000 }),
    )
    .await
    .expect(422);
    let renamed = app
        .patch(
            &format!("/v1/projects/{project}"),
            Auth::Key(&manager),
            &json!({ "name": "invoices" }),
        )
        .await;
    assert_eq!(renamed.expect(200)["name"], "invoices");

    let issued = app
        .post(
            &format!("/v1/projects/{project}/api-keys"),
            Auth::Key(&manager),
            &json!({ "name": "invoices-send", "scopes": ["send", "emails:read"] }),
        )
        .await;
    let issued = issued.expect(201).clone();
    assert_eq!(issued["project_id"], project.as_str());
    let token = issued["token"].as_str().unwrap();
    let id = app.send_email(token, &email("a@x.test")).await;
    let read = app.get(&format!("/v1/emails/{id}"), Auth::Key(token)).await;
    assert_eq!(read.expect(200)["project_id"], project.as_str());

    let keys = app
        .get(
            &format!("/v1/projects/{project}/api-keys"),
            Auth::Key(&manager),
        )
        .await;
    assert_eq!(keys.expect(200)["data"].as_array().unwrap().len(), 1);
    let revoked = app
        .delete(
            &format!(
                "/v1/projects/{project}/api-keys/{}",
                issued["id"].as_str().unwrap()
            ),
            Auth::Key(&manager),
        )
        .await;
    assert!(revoked.expect(200)["revoked_at"].is_string());
    app.post("/v1/emails", Auth::Key(token), &email("b@x.test"))
        .await
        .expect_error(401, "invalid_api_key");

    // Another tenant's project is a 404; the tenant's totals come with each project's.
    let theirs = super::add_project(&app, &other, "theirs").await;
    app.get(&format!("/v1/projects/{}", theirs.id), Auth::Key(&manager))
        .await
        .expect_error(404, "not_found");
    app.post(
        &format!("/v1/projects/{}/api-keys", theirs.id),
        Auth::Key(&manager),
        &json!({ "name": "sneaky" }),
    )
    .await
    .expect_error(404, "not_found");
    let usage = app.get("/v1/projects/usage", Auth::Key(&manager)).await;
    let usage = usage.expect(200);
    assert_eq!(usage["emails_sent"], 1);
    assert_eq!(usage["projects"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_key_hands_out_no_power_it_lacks() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    // A full-access key of a project cannot mint a key that manages its siblings.
    app.post(
        "/v1/api-keys",
        Auth::Key(&acme.key),
        &json!({ "name": "escalate", "scopes": ["projects:manage"] }),
    )
    .await
    .expect_error(403, "restricted_api_key");
    let (_, manager) = app
        .create_key(&acme.id, "manager", &["projects:manage"])
        .await;
    let billing = app
        .post(
            "/v1/projects",
            Auth::Key(&manager),
            &json!({ "name": "billing" }),
        )
        .await;
    let billing = billing.expect(201)["id"].as_str().unwrap().to_owned();
    let delegated = app
        .post(
            &format!("/v1/projects/{billing}/api-keys"),
            Auth::Key(&manager),
            &json!({ "name": "sub-manager", "scopes": ["projects:manage"] }),
        )
        .await;
    delegated.expect(201);
}

#[tokio::test]
async fn the_operator_manages_projects_and_the_default_one_stays() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let billing = add_project(&app, &acme, "billing").await;
    let base = format!("/v1/tenants/{}/projects", acme.id);
    let listed = app.get(&base, Auth::Admin).await;
    let names: Vec<&str> = listed.expect(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "billing"]);
    // The default project cannot go; another can, and its keys go with it.
    app.delete(&format!("{base}/{}", acme.id), Auth::Admin)
        .await
        .expect_error(409, "conflict");
    let limited = app
        .patch(
            &format!("{base}/{}", billing.id),
            Auth::Admin,
            &json!({ "requests_per_minute": 1 }),
        )
        .await;
    assert_eq!(limited.expect(200)["requests_per_minute"], 1);
    // The project's own rate applies to its keys, not to its siblings'.
    app.post("/v1/emails", Auth::Key(&billing.key), &email("a@x.test"))
        .await
        .expect(200);
    app.post("/v1/emails", Auth::Key(&billing.key), &email("b@x.test"))
        .await
        .expect_error(429, "rate_limit_exceeded");
    app.post("/v1/emails", Auth::Key(&acme.key), &email("c@x.test"))
        .await
        .expect(200);
    app.delete(&format!("{base}/{}", billing.id), Auth::Admin)
        .await
        .expect(200);
    app.get(&format!("{base}/{}", billing.id), Auth::Admin)
        .await
        .expect_error(404, "not_found");
    app.get("/v1/emails", Auth::Key(&billing.key))
        .await
        .expect_error(401, "invalid_api_key");
    // The tenant's history keeps the deleted project's emails, and its usage still adds up.
    let usage = app
        .get(&format!("/v1/tenants/{}/usage", acme.id), Auth::Admin)
        .await;
    let usage = usage.expect(200);
    assert_eq!(usage["emails_sent"], 2);
    let per_project: i64 = usage["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["emails_sent"].as_i64().unwrap())
        .sum();
    assert_eq!(per_project, 2);
    app.expect_unsent_mail();
}
