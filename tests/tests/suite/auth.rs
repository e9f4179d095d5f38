//! Tenant authentication: offline refusal of malformed keys, and each 401 case.

use missive_tests::{Auth, TestApp};

const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz234567";

/// Every key that differs from `key` in exactly one character, within the key alphabet (the
/// hardest case: same shape, same length).
fn single_character_flips(key: &str) -> Vec<String> {
    let mut flips = Vec::new();
    for (i, c) in key.char_indices().skip(4) {
        let replacement = ALPHABET.chars().find(|r| *r != c).unwrap();
        let mut flipped = key.to_owned();
        flipped.replace_range(i..=i, &replacement.to_string());
        flips.push(flipped);
    }
    flips
}

#[tokio::test]
async fn a_flipped_character_is_refused_before_any_query() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let flips = single_character_flips(&tenant.key);
    assert_eq!(flips.len(), tenant.key.len() - 4);
    for flipped in &flips {
        let message = app
            .get("/v1/tenant", Auth::Key(flipped))
            .await
            .expect_error(401, "invalid_api_key")
            .to_owned();
        assert_eq!(message, "API key is malformed", "{flipped}");
    }
    // With the database gone, a well-formed key cannot be checked (503) while a flipped one is
    // still refused: proof that the refusal needs no query.
    app.store().pool().close().await;
    app.get("/v1/tenant", Auth::Key(&tenant.key))
        .await
        .expect_error(503, "service_unavailable");
    for flipped in flips.iter().step_by(7) {
        let message = app
            .get("/v1/tenant", Auth::Key(flipped))
            .await
            .expect_error(401, "invalid_api_key")
            .to_owned();
        assert_eq!(message, "API key is malformed");
    }
}

#[tokio::test]
async fn unknown_missing_and_misformatted_credentials_are_401() {
    let app = TestApp::spawn().await;
    app.create_tenant("Acme").await;
    // A key we could have issued but did not.
    let unknown = missive_core::NewApiKey::generate();
    let message = app
        .get("/v1/tenant", Auth::Key(unknown.expose()))
        .await
        .expect_error(401, "invalid_api_key")
        .to_owned();
    assert_eq!(message, "API key is not valid");
    app.get("/v1/tenant", Auth::None)
        .await
        .expect_error(401, "missing_api_key");
    app.get("/v1/tenant", Auth::Header("Bearer "))
        .await
        .expect_error(401, "missing_api_key");
    app.get("/v1/tenant", Auth::Header("Basic dXNlcjpwYXNz"))
        .await
        .expect_error(401, "invalid_api_key");
    app.get("/v1/tenant", Auth::Header("Bearer"))
        .await
        .expect_error(401, "missing_api_key");
    app.get("/v1/tenant", Auth::Header("Token abc"))
        .await
        .expect_error(401, "invalid_api_key");
    app.get("/v1/tenant", Auth::Header("Bearer m\u{fc}ll"))
        .await
        .expect_error(401, "invalid_api_key");
    // The admin key is not a tenant key.
    app.get("/v1/tenant", Auth::Admin)
        .await
        .expect_error(401, "invalid_api_key");
}

#[tokio::test]
async fn a_disabled_tenant_cannot_authenticate() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    app.patch(
        &format!("/v1/tenants/{}", tenant.id),
        Auth::Admin,
        &serde_json::json!({ "status": "disabled" }),
    )
    .await
    .expect(200);
    let message = app
        .get("/v1/tenant", Auth::Key(&tenant.key))
        .await
        .expect_error(401, "invalid_api_key")
        .to_owned();
    assert!(message.contains("disabled"), "{message}");
}

#[tokio::test]
async fn every_tenant_route_refuses_missing_malformed_unknown_and_revoked_keys() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let (revoked_id, revoked) = app.create_key(&tenant.id, "old", &["full_access"]).await;
    app.delete(
        &format!("/v1/tenants/{}/api-keys/{revoked_id}", tenant.id),
        Auth::Admin,
    )
    .await
    .expect(200);
    let unknown = missive_core::NewApiKey::generate();
    let malformed = format!("{}x", &tenant.key[..tenant.key.len() - 1]);
    let body = serde_json::json!({ "name": "x" });
    let routes = [
        (reqwest::Method::GET, "/v1/tenant".to_owned()),
        (reqwest::Method::GET, "/v1/api-keys".to_owned()),
        (reqwest::Method::POST, "/v1/api-keys".to_owned()),
        (
            reqwest::Method::DELETE,
            format!("/v1/api-keys/{}", tenant.key_id),
        ),
    ];
    for (method, path) in &routes {
        app.request(method.clone(), path, Auth::None, Some(&body))
            .await
            .expect_error(401, "missing_api_key");
        for key in [malformed.as_str(), unknown.expose(), revoked.as_str()] {
            app.request(method.clone(), path, Auth::Key(key), Some(&body))
                .await
                .expect_error(401, "invalid_api_key");
        }
    }
    // None of those attempts changed anything: the tenant's own key still works.
    app.get("/v1/tenant", Auth::Key(&tenant.key))
        .await
        .expect(200);
}

#[tokio::test]
async fn key_lookups_are_cached_and_dropped_when_another_process_changes_a_key_or_tenant() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let pool = app.store().pool();
    // The cache serves only while it hears notifications; wait for its listener.
    app.wait_for_status("/v1/tenant", &tenant.key, 200).await;
    let listening = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%missive_api_keys%'",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    };
    for _ in 0..200 {
        if listening().await > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    app.get("/v1/tenant", Auth::Key(&tenant.key))
        .await
        .expect(200);

    // A change that sends no notification is not seen: the answer came from the cache.
    app.execute_sql("ALTER TABLE api_keys DISABLE TRIGGER api_keys_notify")
        .await;
    app.execute_sql("UPDATE api_keys SET revoked_at = now()")
        .await;
    app.get("/v1/tenant", Auth::Key(&tenant.key))
        .await
        .expect(200);

    // The same change as another process makes it (trigger on) reaches the cache.
    app.execute_sql("ALTER TABLE api_keys ENABLE TRIGGER api_keys_notify")
        .await;
    app.execute_sql("UPDATE api_keys SET revoked_at = now()")
        .await;
    app.wait_for_status("/v1/tenant", &tenant.key, 401).await;

    // Tenant changes too: a second key, cached, stops working when the tenant is disabled.
    let (_, second) = app.create_key(&tenant.id, "second", &["full_access"]).await;
    app.get("/v1/tenant", Auth::Key(&second)).await.expect(200);
    app.execute_sql("UPDATE tenants SET status = 'disabled'")
        .await;
    app.wait_for_status("/v1/tenant", &second, 401).await;
}
