//! API keys: the operator's routes and the tenant's own, Resend-shaped ones.

use std::time::Duration;

use missive_tests::{Auth, TestApp};
use serde_json::{Value, json};

#[tokio::test]
async fn admin_creates_keys_with_scopes_permission_shorthand_and_expiry() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let path = format!("/v1/tenants/{}/api-keys", tenant.id);

    let scoped = app
        .post(
            &path,
            Auth::Admin,
            &json!({ "name": "reader", "scopes": ["emails:read", "usage:read"] }),
        )
        .await;
    let scoped = scoped.expect(201).clone();
    assert_eq!(scoped["scopes"], json!(["emails:read", "usage:read"]));
    assert_eq!(scoped["tenant_id"], tenant.id.as_str());
    assert!(scoped["token"].as_str().unwrap().starts_with("msv_"));

    let sending = app
        .post(
            &path,
            Auth::Admin,
            &json!({ "name": "sender", "permission": "sending_access" }),
        )
        .await;
    assert_eq!(sending.expect(201)["scopes"], json!(["send"]));

    let expiring = app
        .post(
            &path,
            Auth::Admin,
            &json!({ "name": "temp", "expires_at": "2099-01-01T00:00:00Z" }),
        )
        .await;
    let expiring = expiring.expect(201);
    assert_eq!(expiring["expires_at"], "2099-01-01T00:00:00Z");
    assert_eq!(expiring["scopes"], json!(["full_access"]));
}

#[tokio::test]
async fn admin_key_creation_errors() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let path = format!("/v1/tenants/{}/api-keys", tenant.id);
    app.post(
        &format!("/v1/tenants/{}/api-keys", uuid::Uuid::now_v7()),
        Auth::Admin,
        &json!({ "name": "k" }),
    )
    .await
    .expect_error(404, "not_found");
    app.post(&path, Auth::Admin, &json!({ "name": "default" }))
        .await
        .expect_error(409, "conflict");
    for body in [
        json!({ "name": "k", "scopes": ["emails:write"] }),
        json!({ "name": "k", "scopes": ["send"], "permission": "full_access" }),
        json!({ "name": "k", "permission": "admin" }),
        json!({ "name": "k", "expires_at": "2001-01-01T00:00:00Z" }),
        json!({ "name": "k", "expires_at": "tomorrow" }),
        json!({ "name": "   " }),
        json!({ "scopes": ["send"] }),
    ] {
        app.post(&path, Auth::Admin, &body)
            .await
            .expect_error(422, "validation_error");
    }
}

#[tokio::test]
async fn listings_show_prefixes_and_last_use_but_never_keys() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let path = format!("/v1/tenants/{}/api-keys", tenant.id);
    app.get("/v1/tenant", Auth::Key(&tenant.key))
        .await
        .expect(200);
    // last_used_at is written off the request path; give it a moment.
    let mut listed = Value::Null;
    for _ in 0..50 {
        listed = app.get(&path, Auth::Admin).await.expect(200).clone();
        if listed["data"][0]["last_used_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let key = &listed["data"][0];
    assert!(
        key["last_used_at"].is_string(),
        "last use recorded: {listed}"
    );
    assert_eq!(key["name"], "default");
    assert!(tenant.key.starts_with(key["prefix"].as_str().unwrap()));
    assert!(key.get("token").is_none());
    assert!(!listed.to_string().contains(&tenant.key[12..]));
}

#[tokio::test]
async fn admin_listing_of_an_unknown_tenant_is_404_not_an_empty_list() {
    let app = TestApp::spawn().await;
    app.get(
        &format!("/v1/tenants/{}/api-keys", uuid::Uuid::now_v7()),
        Auth::Admin,
    )
    .await
    .expect_error(404, "not_found");
}

#[tokio::test]
async fn admin_revokes_once_then_409_and_404_for_unknown_keys() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let (key_id, key) = app.create_key(&tenant.id, "second", &["send"]).await;
    let path = format!("/v1/tenants/{}/api-keys/{key_id}", tenant.id);
    let revoked = app.delete(&path, Auth::Admin).await;
    assert!(revoked.expect(200)["revoked_at"].is_string());
    let message = app
        .get("/v1/tenant", Auth::Key(&key))
        .await
        .expect_error(401, "invalid_api_key")
        .to_owned();
    assert!(message.contains("revoked"), "{message}");
    app.delete(&path, Auth::Admin)
        .await
        .expect_error(409, "conflict");
    app.delete(
        &format!(
            "/v1/tenants/{}/api-keys/{}",
            tenant.id,
            uuid::Uuid::now_v7()
        ),
        Auth::Admin,
    )
    .await
    .expect_error(404, "not_found");
    // The first key is untouched, and a revoked key's name can be reused.
    app.get("/v1/tenant", Auth::Key(&tenant.key))
        .await
        .expect(200);
    app.create_key(&tenant.id, "second", &["send"]).await;
}

#[tokio::test]
async fn tenant_key_routes_need_full_access() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let (_, send_key) = app.create_key(&tenant.id, "sender", &["send"]).await;
    for response in [
        app.get("/v1/api-keys", Auth::Key(&send_key)).await,
        app.post(
            "/v1/api-keys",
            Auth::Key(&send_key),
            &json!({ "name": "x" }),
        )
        .await,
        app.delete(
            &format!("/v1/api-keys/{}", tenant.key_id),
            Auth::Key(&send_key),
        )
        .await,
    ] {
        let message = response.expect_error(403, "restricted_api_key");
        assert!(message.contains("full_access"), "{message}");
    }
    // Any valid key may read its own tenant.
    app.get("/v1/tenant", Auth::Key(&send_key))
        .await
        .expect(200);
}

#[tokio::test]
async fn tenant_manages_its_own_keys_in_resends_shape() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let created = app
        .post(
            "/v1/api-keys",
            Auth::Key(&tenant.key),
            &json!({ "name": "ci", "permission": "sending_access" }),
        )
        .await;
    let created = created.expect(201).clone();
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["scopes"], json!(["send"]));

    let listed = app.get("/v1/api-keys", Auth::Key(&tenant.key)).await;
    let names: Vec<String> = listed.expect(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["ci", "default"]);

    app.post(
        "/v1/api-keys",
        Auth::Key(&tenant.key),
        &json!({ "name": "ci" }),
    )
    .await
    .expect_error(409, "conflict");
    app.post(
        "/v1/api-keys",
        Auth::Key(&tenant.key),
        &json!({ "name": "" }),
    )
    .await
    .expect_error(422, "validation_error");

    app.get("/v1/tenant", Auth::Key(&token)).await.expect(200);
    app.delete(&format!("/v1/api-keys/{id}"), Auth::Key(&tenant.key))
        .await
        .expect(200);
    app.get("/v1/tenant", Auth::Key(&token))
        .await
        .expect_error(401, "invalid_api_key");
    app.delete(&format!("/v1/api-keys/{id}"), Auth::Key(&tenant.key))
        .await
        .expect_error(409, "conflict");
    app.delete(
        &format!("/v1/api-keys/{}", uuid::Uuid::now_v7()),
        Auth::Key(&tenant.key),
    )
    .await
    .expect_error(404, "not_found");
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let (key_id, key) = app.create_key(&tenant.id, "short-lived", &["send"]).await;
    app.get("/v1/tenant", Auth::Key(&key)).await.expect(200);
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1::uuid")
        .bind(&key_id)
        .execute(app.store().pool())
        .await
        .unwrap();
    // A change made outside this process reaches its key cache by notification.
    app.wait_for_status("/v1/tenant", &key, 401).await;
    let message = app
        .get("/v1/tenant", Auth::Key(&key))
        .await
        .expect_error(401, "invalid_api_key")
        .to_owned();
    assert!(message.contains("expired"), "{message}");
}
