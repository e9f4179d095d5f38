//! The projects migration on a populated database: every row of every project-owned table moves
//! to its tenant's default project, nothing is lost, and the keys from before still work.

use missive_store::{MIGRATOR, PoolSettings, Store};
use missive_tests::{Auth, TestApp};
use sqlx::Executor;

/// The last migration before projects.
const BEFORE_PROJECTS: i64 = 20261207000002;

/// Tables a project owns, and how many rows the fixture puts in each.
const OWNED: &[(&str, i64)] = &[
    ("api_keys", 2),
    ("emails", 2),
    ("deliveries", 3),
    ("email_events", 3),
    ("idempotency_keys", 1),
    ("trusted_networks", 1),
    ("templates", 2),
    ("template_versions", 1),
    ("webhooks", 1),
    ("webhook_events", 2),
    ("webhook_attempts", 1),
    ("usage_daily", 2),
];

/// Two tenants' worth of rows, written as the schema before projects had them.
const FIXTURE: &str = r"
INSERT INTO tenants (id, name) VALUES
    ('00000000-0000-7000-8000-00000000000a', 'Acme'),
    ('00000000-0000-7000-8000-00000000000b', 'Other');
INSERT INTO api_keys (tenant_id, id, name, prefix, key_hash, scopes) VALUES
    ('00000000-0000-7000-8000-00000000000a', gen_random_uuid(), 'k', 'msv_a', sha256('a'), '{send}'),
    ('00000000-0000-7000-8000-00000000000b', gen_random_uuid(), 'k', 'msv_b', sha256('b'), '{send}');
INSERT INTO emails (tenant_id, id, message_id, from_address, envelope_from, subject, mime) VALUES
    ('00000000-0000-7000-8000-00000000000a', '00000000-0000-7000-8000-0000000000e1', 'm1', 'a@a.test', 'a@a.test', 's', 'x'),
    ('00000000-0000-7000-8000-00000000000b', '00000000-0000-7000-8000-0000000000e2', 'm2', 'b@b.test', 'b@b.test', 's', 'x');
INSERT INTO deliveries (tenant_id, id, email_id, recipient, kind) VALUES
    ('00000000-0000-7000-8000-00000000000a', gen_random_uuid(), '00000000-0000-7000-8000-0000000000e1', 'r1@x.test', 'to'),
    ('00000000-0000-7000-8000-00000000000a', gen_random_uuid(), '00000000-0000-7000-8000-0000000000e1', 'r2@x.test', 'cc'),
    ('00000000-0000-7000-8000-00000000000b', gen_random_uuid(), '00000000-0000-7000-8000-0000000000e2', 'r3@x.test', 'to');
INSERT INTO email_events (tenant_id, email_id, type)
    SELECT tenant_id, email_id, 'email.queued' FROM deliveries;
INSERT INTO idempotency_keys (tenant_id, key, request_hash, email_ids) VALUES
    ('00000000-0000-7000-8000-00000000000a', 'once', sha256('body'), '{00000000-0000-7000-8000-0000000000e1}');
INSERT INTO trusted_networks (tenant_id, network) VALUES
    ('00000000-0000-7000-8000-00000000000a', '10.77.0.0/16');
INSERT INTO templates (tenant_id, id, name, alias, html, published_version) VALUES
    ('00000000-0000-7000-8000-00000000000a', '00000000-0000-7000-8000-0000000000f1', 'T', 'same', '<p>a</p>', 1),
    ('00000000-0000-7000-8000-00000000000b', gen_random_uuid(), 'T', 'same', '<p>b</p>', NULL);
INSERT INTO template_versions (tenant_id, template_id, version, reply_to, html, variables, uses) VALUES
    ('00000000-0000-7000-8000-00000000000a', '00000000-0000-7000-8000-0000000000f1', 1, '{}', '<p>a</p>', '[]', '{}');
INSERT INTO webhooks (tenant_id, id, endpoint, events, secret_key_id, secret) VALUES
    ('00000000-0000-7000-8000-00000000000a', '00000000-0000-7000-8000-0000000000b1', 'https://h.test/', '{email.sent}', 'k', 'x');
INSERT INTO webhook_events (tenant_id, id, webhook_id, type) VALUES
    ('00000000-0000-7000-8000-00000000000a', '00000000-0000-7000-8000-0000000000c1', '00000000-0000-7000-8000-0000000000b1', 'email.sent'),
    ('00000000-0000-7000-8000-00000000000a', gen_random_uuid(), '00000000-0000-7000-8000-0000000000b1', 'email.sent');
INSERT INTO webhook_attempts (tenant_id, event_id, response, duration_ms) VALUES
    ('00000000-0000-7000-8000-00000000000a', '00000000-0000-7000-8000-0000000000c1', 'ok', 5);
INSERT INTO usage_daily (tenant_id, day, shard, used, sent) VALUES
    ('00000000-0000-7000-8000-00000000000a', current_date, 0, 2, 1),
    ('00000000-0000-7000-8000-00000000000b', current_date, 3, 1, 1);
";

#[tokio::test]
async fn the_migration_moves_a_populated_databases_rows_to_default_projects() {
    let url = missive_tests::empty_database().await;
    let store = Store::connect(&url, PoolSettings::default()).await.unwrap();
    MIGRATOR
        .run_to(BEFORE_PROJECTS, store.pool())
        .await
        .unwrap();
    store.pool().execute(FIXTURE).await.unwrap();
    let before = counts(&store).await;
    assert_eq!(before, OWNED.iter().map(|(_, n)| *n).collect::<Vec<_>>());

    store.migrate().await.unwrap();

    // Nothing lost, and every row in its tenant's default project (whose id is the tenant's).
    assert_eq!(counts(&store).await, before);
    for (table, _) in OWNED {
        let astray: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE project_id IS DISTINCT FROM tenant_id"
        )))
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(astray, 0, "{table}");
    }
    let projects: Vec<(uuid::Uuid, uuid::Uuid, String)> =
        sqlx::query_as("SELECT tenant_id, id, name FROM projects ORDER BY tenant_id")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(projects.len(), 2);
    assert!(
        projects
            .iter()
            .all(|(tenant, id, name)| tenant == id && name == "default")
    );
    // What the rows meant still holds: usage sums, and the tenant reads its email.
    let acme = missive_core::TenantId::from_uuid(projects[0].0);
    let today = time::OffsetDateTime::now_utc().date();
    assert_eq!(
        store
            .usage_between(acme.into(), today, today)
            .await
            .unwrap()
            .used,
        2
    );
    let email = store
        .get_email(
            acme,
            "00000000-0000-7000-8000-0000000000e1".parse().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(email.project_id.as_uuid(), acme.as_uuid());
    store.close().await;
}

async fn counts(store: &Store) -> Vec<i64> {
    let mut out = Vec::new();
    for (table, _) in OWNED {
        out.push(
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(store.pool())
                .await
                .unwrap(),
        );
    }
    out
}

#[tokio::test]
async fn a_new_tenant_starts_with_its_default_project() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme").await;
    let projects = app
        .get(&format!("/v1/tenants/{}/projects", acme.id), Auth::Admin)
        .await;
    let projects = projects.expect(200)["data"].as_array().unwrap().clone();
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0]["id"], acme.id.as_str());
    assert_eq!(projects[0]["name"], "default");
    let keys = app
        .get(
            &format!("/v1/tenants/{}/projects/{}/api-keys", acme.id, acme.id),
            Auth::Admin,
        )
        .await;
    assert_eq!(keys.expect(200)["data"][0]["id"], acme.key_id.as_str());
}
