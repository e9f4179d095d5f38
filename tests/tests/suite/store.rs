//! Storage rules: keys never stored in clear, atomic tenant creation, and the schema rule that
//! every unique index on a tenant-owned table starts with `tenant_id`.

use std::process::Command;

use missive_tests::{Auth, TestApp, pg_bin};
use serde_json::json;

#[tokio::test]
async fn a_database_dump_holds_no_api_key_in_clear() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let (_, second) = app.create_key(&tenant.id, "second", &["send"]).await;
    let created = app
        .post(
            "/v1/api-keys",
            Auth::Key(&tenant.key),
            &json!({ "name": "third" }),
        )
        .await;
    let third = created.expect(201)["token"].as_str().unwrap().to_owned();

    let output = Command::new(pg_bin("pg_dump"))
        .arg("--dbname")
        .arg(&app.db.url)
        .args(["--data-only", "--inserts"])
        .output()
        .expect("run pg_dump");
    assert!(
        output.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dump = String::from_utf8(output.stdout).unwrap();
    // The dump really holds the keys' rows: their prefixes and hashes are there...
    assert!(dump.contains(&tenant.key[..12]), "prefix present");
    for key in [&tenant.key, &second, &third] {
        let hash = missive_core::ApiKeyHash::of(key);
        let hex: String = hash.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert!(dump.contains(&hex), "hash of the key is stored");
        // ...but no key, nor the secret part of one.
        assert!(!dump.contains(key.as_str()));
        assert!(!dump.contains(&key[12..]));
    }
}

#[tokio::test]
async fn a_failed_tenant_creation_leaves_nothing_behind() {
    let app = TestApp::spawn().await;
    app.create_tenant("Acme").await;
    app.post("/v1/tenants", Auth::Admin, &json!({ "name": "acme" }))
        .await
        .expect(409);
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!((tenants, keys), (1, 1));
}

#[tokio::test]
async fn every_unique_index_on_a_tenant_owned_table_starts_with_tenant_id() {
    let app = TestApp::spawn().await;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT t.relname::text, i.relname::text, a.attname::text
         FROM pg_index x
         JOIN pg_class t ON t.oid = x.indrelid
         JOIN pg_class i ON i.oid = x.indexrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0]
         WHERE n.nspname = 'public' AND x.indisunique
           AND EXISTS (SELECT 1 FROM pg_attribute c
                       WHERE c.attrelid = t.oid AND c.attname = 'tenant_id' AND NOT c.attisdropped)",
    )
    .fetch_all(app.store().pool())
    .await
    .unwrap();
    assert!(!rows.is_empty(), "the rule is checked against real indexes");
    for (table, index, first_column) in rows {
        assert_eq!(first_column, "tenant_id", "unique index {index} on {table}");
    }
}
