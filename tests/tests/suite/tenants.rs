//! Admin routes for tenants: success and every error path.

use missive_tests::{Auth, TestApp};
use serde_json::json;

#[tokio::test]
async fn create_returns_the_tenant_and_a_working_first_key() {
    let app = TestApp::spawn().await;
    let response = app
        .post(
            "/v1/tenants",
            Auth::Admin,
            &json!({
                "name": "Acme",
                "settings": {
                    "default_from": "Acme <noreply@acme.test>",
                    "reply_to": "support@acme.test",
                    "allowed_sender_domains": ["ACME.test", "mail.acme.test"]
                }
            }),
        )
        .await;
    let body = response.expect(201).clone();
    let tenant = &body["tenant"];
    assert_eq!(tenant["object"], "tenant");
    assert_eq!(tenant["name"], "Acme");
    assert_eq!(tenant["status"], "active");
    assert_eq!(tenant["tenant_id"], tenant["id"]);
    assert_eq!(
        tenant["settings"]["default_from"],
        "Acme <noreply@acme.test>"
    );
    assert_eq!(
        tenant["settings"]["allowed_sender_domains"],
        json!(["acme.test", "mail.acme.test"])
    );
    let key = &body["api_key"];
    assert_eq!(key["scopes"], json!(["full_access"]));
    assert_eq!(key["tenant_id"], tenant["id"]);
    let token = key["token"].as_str().unwrap();
    assert!(token.starts_with("msv_") && token.starts_with(key["prefix"].as_str().unwrap()));

    let me = app.get("/v1/tenant", Auth::Key(token)).await;
    assert_eq!(me.expect(200)["id"], tenant["id"]);
}

#[tokio::test]
async fn admin_routes_need_the_admin_key() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    for (method, path) in [
        (reqwest::Method::GET, "/v1/tenants".to_owned()),
        (reqwest::Method::POST, "/v1/tenants".to_owned()),
        (reqwest::Method::GET, format!("/v1/tenants/{}", tenant.id)),
        (reqwest::Method::PATCH, format!("/v1/tenants/{}", tenant.id)),
        (
            reqwest::Method::DELETE,
            format!("/v1/tenants/{}", tenant.id),
        ),
        (
            reqwest::Method::GET,
            format!("/v1/tenants/{}/api-keys", tenant.id),
        ),
        (
            reqwest::Method::POST,
            format!("/v1/tenants/{}/api-keys", tenant.id),
        ),
        (
            reqwest::Method::DELETE,
            format!("/v1/tenants/{}/api-keys/{}", tenant.id, tenant.key_id),
        ),
    ] {
        let body = json!({ "name": "x" });
        app.request(method.clone(), &path, Auth::None, Some(&body))
            .await
            .expect_error(401, "missing_api_key");
        app.request(
            method.clone(),
            &path,
            Auth::Header("Bearer wrong-admin-key-0123456789"),
            Some(&body),
        )
        .await
        .expect_error(401, "invalid_api_key");
        // A tenant's full-access key is not an admin key.
        app.request(method.clone(), &path, Auth::Key(&tenant.key), Some(&body))
            .await
            .expect_error(401, "invalid_api_key");
    }
    // Nothing changed.
    app.get("/v1/tenant", Auth::Key(&tenant.key))
        .await
        .expect(200);
}

#[tokio::test]
async fn admin_api_is_403_when_no_admin_key_is_configured() {
    let app = TestApp::spawn_with(|c| c.secrets.admin_key = None).await;
    let message = app
        .get("/v1/tenants", Auth::Admin)
        .await
        .expect_error(403, "admin_api_disabled")
        .to_owned();
    assert!(message.contains("MISSIVE_ADMIN_KEY"), "{message}");
}

#[tokio::test]
async fn names_are_unique_case_insensitively() {
    let app = TestApp::spawn().await;
    app.create_tenant("Acme").await;
    app.post("/v1/tenants", Auth::Admin, &json!({ "name": "ACME" }))
        .await
        .expect_error(409, "conflict");
}

#[tokio::test]
async fn invalid_fields_are_422_naming_the_field() {
    let app = TestApp::spawn().await;
    for (body, needle) in [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "a\u{7}b" }), "name"),
        (json!({}), "name"),
        (
            json!({ "name": "x", "settings": { "default_from": "not an address" } }),
            "default_from",
        ),
        (
            json!({ "name": "x", "settings": { "reply_to": "a@b.test\r\nBcc: x@y.test" } }),
            "reply_to",
        ),
        (
            json!({ "name": "x", "settings": { "allowed_sender_domains": ["no_underscores.test"] } }),
            "no_underscores",
        ),
        (json!({ "name": "x", "colour": "blue" }), "colour"),
    ] {
        let response = app.post("/v1/tenants", Auth::Admin, &body).await;
        let message = response.expect_error(422, "validation_error");
        assert!(message.contains(needle), "{body}: {message}");
    }
    let list = app.get("/v1/tenants", Auth::Admin).await;
    assert_eq!(list.expect(200)["data"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn list_pages_with_a_cursor() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(app.create_tenant(name).await.id);
    }
    let first = app.get("/v1/tenants?limit=2", Auth::Admin).await;
    let first = first.expect(200);
    assert_eq!(first["object"], "list");
    assert_eq!(first["has_more"], true);
    let page: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(page, [ids[0].as_str(), ids[1].as_str()]);
    let second = app
        .get(
            &format!("/v1/tenants?limit=2&after={}", ids[1]),
            Auth::Admin,
        )
        .await;
    let second = second.expect(200);
    assert_eq!(second["has_more"], false);
    assert_eq!(second["data"][0]["id"], ids[2].as_str());
    for bad in ["limit=0", "limit=101", "limit=x", "after=nope", "sort=name"] {
        app.get(&format!("/v1/tenants?{bad}"), Auth::Admin)
            .await
            .expect_error(422, "validation_error");
    }
}

#[tokio::test]
async fn get_is_404_for_unknown_and_malformed_ids() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    assert_eq!(
        app.get(&format!("/v1/tenants/{}", tenant.id), Auth::Admin)
            .await
            .expect(200)["name"],
        "Acme"
    );
    app.get(
        &format!("/v1/tenants/{}", uuid::Uuid::now_v7()),
        Auth::Admin,
    )
    .await
    .expect_error(404, "not_found");
    app.get("/v1/tenants/not-a-uuid", Auth::Admin)
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn patch_renames_sets_and_clears_settings_and_toggles_status() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let path = format!("/v1/tenants/{}", tenant.id);
    let updated = app
        .patch(
            &path,
            Auth::Admin,
            &json!({ "name": "Acme Corp", "settings": { "default_from": "a@acme.test", "allowed_sender_domains": ["acme.test"] } }),
        )
        .await;
    let updated = updated.expect(200);
    assert_eq!(updated["name"], "Acme Corp");
    assert_eq!(updated["settings"]["default_from"], "a@acme.test");
    // null clears; an absent field is left alone.
    let cleared = app
        .patch(
            &path,
            Auth::Admin,
            &json!({ "settings": { "default_from": null } }),
        )
        .await;
    let cleared = cleared.expect(200);
    assert_eq!(cleared["settings"]["default_from"], json!(null));
    assert_eq!(
        cleared["settings"]["allowed_sender_domains"],
        json!(["acme.test"])
    );
    assert_eq!(cleared["name"], "Acme Corp");

    // Disabling refuses the tenant's keys without revoking them; enabling restores them.
    let disabled = app
        .patch(&path, Auth::Admin, &json!({ "status": "disabled" }))
        .await;
    assert!(disabled.expect(200)["disabled_at"].is_string());
    app.get("/v1/tenant", Auth::Key(&tenant.key))
        .await
        .expect_error(401, "invalid_api_key");
    app.patch(&path, Auth::Admin, &json!({ "status": "active" }))
        .await
        .expect(200);
    app.get("/v1/tenant", Auth::Key(&tenant.key))
        .await
        .expect(200);
}

#[tokio::test]
async fn patch_errors_are_404_409_and_422() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    app.create_tenant("Other").await;
    let path = format!("/v1/tenants/{}", tenant.id);
    app.patch(
        &format!("/v1/tenants/{}", uuid::Uuid::now_v7()),
        Auth::Admin,
        &json!({ "name": "x" }),
    )
    .await
    .expect_error(404, "not_found");
    app.patch(&path, Auth::Admin, &json!({ "name": "other" }))
        .await
        .expect_error(409, "conflict");
    for body in [
        json!({ "status": "paused" }),
        json!({ "name": "" }),
        json!({ "settings": { "reply_to": "nope" } }),
        json!({ "settings": { "allowed_sender_domains": "acme.test" } }),
        json!({ "unknown": 1 }),
    ] {
        app.patch(&path, Auth::Admin, &body)
            .await
            .expect_error(422, "validation_error");
    }
}

#[tokio::test]
async fn a_deleted_tenant_is_gone_its_keys_revoked_and_its_name_free() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let (key_id, second_key) = app.create_key(&tenant.id, "second", &["send"]).await;
    let path = format!("/v1/tenants/{}", tenant.id);
    let deleted = app.delete(&path, Auth::Admin).await;
    assert_eq!(deleted.expect(200)["status"], "disabled");
    for key in [&tenant.key, &second_key] {
        let message = app
            .get("/v1/tenant", Auth::Key(key))
            .await
            .expect_error(401, "invalid_api_key")
            .to_owned();
        assert!(message.contains("revoked"), "{message}");
    }
    // Everything about it answers 404 now, as after any DELETE.
    app.get(&path, Auth::Admin)
        .await
        .expect_error(404, "not_found");
    app.get(&format!("{path}/api-keys"), Auth::Admin)
        .await
        .expect_error(404, "not_found");
    app.post(
        &format!("{path}/api-keys"),
        Auth::Admin,
        &json!({ "name": "new" }),
    )
    .await
    .expect_error(404, "not_found");
    app.delete(&format!("{path}/api-keys/{key_id}"), Auth::Admin)
        .await
        .expect_error(404, "not_found");
    app.patch(&path, Auth::Admin, &json!({ "status": "active" }))
        .await
        .expect_error(404, "not_found");
    app.delete(&path, Auth::Admin)
        .await
        .expect_error(404, "not_found");
    let listed = app.get("/v1/tenants", Auth::Admin).await;
    assert!(
        listed.expect(200)["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != tenant.id.as_str())
    );
    // Its rows stay for the operator; its name is free again.
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL")
            .fetch_one(app.store().pool())
            .await
            .unwrap();
    assert_eq!(rows, 2);
    app.create_tenant("Acme").await;
    app.delete(
        &format!("/v1/tenants/{}", uuid::Uuid::now_v7()),
        Auth::Admin,
    )
    .await
    .expect_error(404, "not_found");
}

#[tokio::test]
async fn selfmx_documented_tenant_requests_work_verbatim() {
    let app = TestApp::spawn().await;
    let created = app
        .post(
            "/v1/tenants",
            Auth::Admin,
            &json!({
                "name": "Acme Corp",
                "domain": "acme.com",
                "settings": { "from_name": "Acme", "reply_to": "support@acme.com" }
            }),
        )
        .await;
    let created = created.expect(201).clone();
    let tenant = &created["tenant"];
    assert_eq!(tenant["domain"], "acme.com");
    assert_eq!(tenant["settings"]["from_name"], "Acme");
    assert_eq!(tenant["settings"]["reply_to"], "support@acme.com");
    assert_eq!(
        tenant["settings"]["allowed_sender_domains"],
        json!(["acme.com"])
    );
    let id = tenant["id"].as_str().unwrap().to_owned();
    let key = app
        .post(
            &format!("/v1/tenants/{id}/api-keys"),
            Auth::Admin,
            &json!({ "name": "Production", "permissions": ["send", "templates:read"] }),
        )
        .await;
    let key = key.expect(201).clone();
    assert_eq!(key["scopes"], json!(["send", "templates:read"]));
    let token = key["token"].as_str().unwrap().to_owned();

    let replaced = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/tenants/{id}"),
            Auth::Admin,
            Some(&json!({ "name": "Acme Inc", "settings": { "from_name": "Acme Inc" } })),
        )
        .await;
    let replaced = replaced.expect(200).clone();
    assert_eq!(replaced["name"], "Acme Inc");
    assert_eq!(replaced["settings"]["from_name"], "Acme Inc");
    assert_eq!(
        replaced["domain"], "acme.com",
        "what PUT does not name stays"
    );

    // The domain is where it may send from; from_name names a sender that has no name.
    app.post(
        "/v1/emails",
        Auth::Key(&token),
        &json!({ "from": "x@other.com", "to": "a@x.test", "subject": "s", "text": "t" }),
    )
    .await
    .expect_error(422, "invalid_from_address");
    let id = app
        .send_email(
            &token,
            &json!({ "from": "noreply@mail.acme.com", "to": "a@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    let email = app
        .get(
            &format!("/v1/emails/{id}"),
            Auth::Key(created["api_key"]["token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(
        email.expect(200)["from"],
        "Acme Inc <noreply@mail.acme.com>"
    );
    app.worker.drain().await.unwrap();
}
