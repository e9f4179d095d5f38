//! Cross-tenant isolation on every tenant-scoped route: another tenant's ids are 404, listings
//! never mix tenants, and nothing one tenant does reaches another.

use missive_tests::{Auth, TestApp};
use serde_json::json;

#[tokio::test]
async fn a_tenant_sees_only_itself() {
    let app = TestApp::spawn().await;
    let a = app.create_tenant("A").await;
    let b = app.create_tenant("B").await;
    let me = app.get("/v1/tenant", Auth::Key(&a.key)).await;
    let me = me.expect(200);
    assert_eq!(me["id"], a.id.as_str());
    assert!(!me.to_string().contains(&b.id));
}

#[tokio::test]
async fn key_listings_never_mix_tenants() {
    let app = TestApp::spawn().await;
    let a = app.create_tenant("A").await;
    let b = app.create_tenant("B").await;
    app.create_key(&b.id, "b-only", &["send"]).await;
    for (response, tenant) in [
        (app.get("/v1/api-keys", Auth::Key(&a.key)).await, &a),
        (
            app.get(&format!("/v1/tenants/{}/api-keys", a.id), Auth::Admin)
                .await,
            &a,
        ),
        (app.get("/v1/api-keys", Auth::Key(&b.key)).await, &b),
    ] {
        let keys = response.expect(200)["data"].as_array().unwrap().clone();
        assert!(!keys.is_empty());
        assert!(
            keys.iter().all(|k| k["tenant_id"] == tenant.id.as_str()),
            "{keys:?}"
        );
    }
}

#[tokio::test]
async fn another_tenants_key_id_is_404_and_stays_untouched() {
    let app = TestApp::spawn().await;
    let a = app.create_tenant("A").await;
    let b = app.create_tenant("B").await;
    // Through the tenant API, with A's full-access key.
    let response = app
        .delete(&format!("/v1/api-keys/{}", b.key_id), Auth::Key(&a.key))
        .await;
    let message = response.expect_error(404, "not_found").to_owned();
    assert_eq!(message, "not found", "no hint that the id exists elsewhere");
    // Through the admin API, naming A as the owner of B's key.
    app.delete(
        &format!("/v1/tenants/{}/api-keys/{}", a.id, b.key_id),
        Auth::Admin,
    )
    .await
    .expect_error(404, "not_found");
    // The answer for another tenant's id is the same as for an id that exists nowhere.
    let nowhere = app
        .delete(
            &format!("/v1/api-keys/{}", uuid::Uuid::now_v7()),
            Auth::Key(&a.key),
        )
        .await;
    assert_eq!(nowhere.text, response.text);
    app.get("/v1/tenant", Auth::Key(&b.key)).await.expect(200);
}

#[tokio::test]
async fn keys_a_tenant_creates_belong_to_it_whatever_the_body_says() {
    let app = TestApp::spawn().await;
    let a = app.create_tenant("A").await;
    let b = app.create_tenant("B").await;
    // No field can redirect a key to another tenant: unknown fields are refused outright.
    app.post(
        "/v1/api-keys",
        Auth::Key(&a.key),
        &json!({ "name": "x", "tenant_id": b.id }),
    )
    .await
    .expect_error(422, "validation_error");
    let created = app
        .post("/v1/api-keys", Auth::Key(&a.key), &json!({ "name": "x" }))
        .await;
    let created = created.expect(201).clone();
    assert_eq!(created["tenant_id"], a.id.as_str());
    let token = created["token"].as_str().unwrap();
    assert_eq!(
        app.get("/v1/tenant", Auth::Key(token)).await.expect(200)["id"],
        a.id.as_str()
    );
    // Deleting B leaves A's keys working.
    app.delete(&format!("/v1/tenants/{}", b.id), Auth::Admin)
        .await
        .expect(200);
    app.get("/v1/tenant", Auth::Key(&a.key)).await.expect(200);
    app.get("/v1/tenant", Auth::Key(&b.key))
        .await
        .expect_error(401, "invalid_api_key");
}

/// Row-level security: the tenant role sees its transaction's tenant only, nothing without one,
/// can write no other tenant's rows, and leaves nothing behind on a pooled connection.
#[tokio::test]
async fn postgres_confines_the_tenant_role_to_its_transactions_tenant() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    let mut sent = Vec::new();
    for tenant in [&acme, &other] {
        sent.push(
            app.send_email(
                &tenant.key,
                &json!({ "from": "a@acme.test", "to": "x@x.test", "subject": "s", "text": "t" }),
            )
            .await,
        );
    }
    app.worker.drain().await.unwrap();
    let acme_id = uuid::Uuid::parse_str(&acme.id).unwrap();
    let other_id = uuid::Uuid::parse_str(&other.id).unwrap();
    // One connection, so the test sees what the next transaction on it inherits.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&app.db.url)
        .await
        .unwrap();
    let store = missive_store::Store::from_pool(pool.clone());

    let mut tx = store.begin_for_tenant(acme_id.into()).await.unwrap();
    // Deliberately unfiltered.
    for table in [
        "emails",
        "deliveries",
        "email_events",
        "api_keys",
        "usage_daily",
    ] {
        let tenants: Vec<uuid::Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT tenant_id FROM {table}"
        )))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        assert_eq!(tenants, [acme_id], "{table}");
    }
    let tenants: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM tenants")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(tenants, [acme_id]);
    // Writing another tenant's row is refused by the policy.
    let refused = sqlx::query(
        "INSERT INTO suppressions (tenant_id, id, email, origin) VALUES ($1, $2, 'x@x.test', 'manual')",
    )
    .bind(other_id)
    .bind(uuid::Uuid::now_v7())
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("row-level security"),
        "{refused}"
    );
    tx.rollback().await.unwrap();

    // The tenant role with no tenant named sees nothing.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE missive_tenant")
        .execute(&mut *tx)
        .await
        .unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM emails")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 0);
    tx.rollback().await.unwrap();

    // A committed tenant transaction leaves its connection as it found it, and so does a
    // confined read, which is rolled back when the connection goes back to the pool.
    let tx = store.begin_for_tenant(acme_id.into()).await.unwrap();
    tx.commit().await.unwrap();
    let leftover = async || -> (String, Option<String>, bool) {
        sqlx::query_as(
            "SELECT current_user::text, current_setting('app.tenant_id', true),
                    current_setting('transaction_read_only')::bool",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let (role, tenant, read_only) = leftover().await;
    assert_ne!(role, "missive_tenant");
    assert_eq!(tenant.unwrap_or_default(), "");
    assert!(!read_only);
    let email_id: missive_core::EmailId = sent[0].parse().unwrap();
    let read = store
        .get_email(missive_core::TenantId::from_uuid(acme_id), email_id)
        .await
        .unwrap();
    assert_eq!(read.id, email_id);
    let (role, tenant, read_only) = leftover().await;
    assert_ne!(role, "missive_tenant");
    assert_eq!(tenant.unwrap_or_default(), "");
    assert!(!read_only);
    // And it never reaches another tenant's email, by id.
    let theirs: missive_core::EmailId = sent[1].parse().unwrap();
    assert!(matches!(
        store
            .get_email(missive_core::TenantId::from_uuid(acme_id), theirs)
            .await,
        Err(missive_store::StoreError::NotFound)
    ));
    let everyone: i64 = sqlx::query_scalar("SELECT count(DISTINCT tenant_id) FROM emails")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(everyone, 2);

    // The tenant role owns nothing and cannot bypass the policies.
    let (bypass, owned): (bool, i64) = sqlx::query_as(
        "SELECT r.rolbypassrls, (SELECT count(*) FROM pg_tables WHERE tableowner = r.rolname)
         FROM pg_roles r WHERE r.rolname = 'missive_tenant'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!bypass);
    assert_eq!(owned, 0);
}

/// Tenant routes read through the tenant role: once Postgres hides a table's rows from that
/// role, the routes stop showing them, though the rows are there and every query still names
/// its tenant. So the row-level policies, not only the queries' filters, decide what a tenant
/// request sees.
#[tokio::test]
async fn tenant_routes_see_only_what_postgres_shows_the_tenant_role() {
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private = true).await;
    let acme = app.create_tenant("Acme").await;
    let key = Auth::Key(&acme.key);
    let email = app
        .send_email(
            &acme.key,
            &json!({ "from": "a@acme.test", "to": "x@x.test", "subject": "s", "text": "t" }),
        )
        .await;
    app.post("/v1/suppressions", key, &json!({ "email": "gone@x.test" }))
        .await
        .expect(200);
    app.post("/v1/templates", key, &json!({ "name": "T", "html": "x" }))
        .await
        .expect(200);
    app.post(
        "/v1/webhooks",
        key,
        &json!({ "endpoint": "http://127.0.0.1:9/hook", "events": ["email.sent"] }),
    )
    .await
    .expect(200);
    app.worker.drain().await.unwrap();
    let email_path = format!("/v1/emails/{email}");
    let lists = [
        "/v1/emails",
        "/v1/suppressions",
        "/v1/templates",
        "/v1/webhooks",
        "/v1/api-keys",
    ];
    app.get(&email_path, key).await.expect(200);
    for path in lists {
        let listed = app.get(path, key).await;
        assert_ne!(listed.expect(200)["data"], json!([]), "{path}");
    }
    let usage = app.get("/v1/usage", key).await;
    assert_eq!(usage.expect(200)["emails"]["daily"]["used"], 1);

    let tables = [
        "emails",
        "suppressions",
        "templates",
        "webhooks",
        "api_keys",
        "usage_daily",
    ];
    for table in tables {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE POLICY hidden ON {table} AS RESTRICTIVE TO missive_tenant USING (false)"
        )))
        .execute(app.store().pool())
        .await
        .unwrap();
    }

    app.get(&email_path, key)
        .await
        .expect_error(404, "not_found");
    for path in lists {
        let listed = app.get(path, key).await;
        assert_eq!(listed.expect(200)["data"], json!([]), "{path}");
    }
    let usage = app.get("/v1/usage", key).await;
    assert_eq!(usage.expect(200)["emails"]["daily"]["used"], 0);
    // The rows are all there; authentication, which finds the tenant, still works.
    for table in tables {
        let rows: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(app.store().pool())
                .await
                .unwrap();
        assert!(rows > 0, "{table}");
    }
}
