//! Storage rules: keys never stored in clear, atomic tenant creation, the schema rule that every
//! unique index on a tenant-owned table starts with `tenant_id`, and the columns and channels that
//! must agree with the core model.

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
        // A console session is found by its token's hash before anyone knows its tenant; the
        // token is random, so its uniqueness says nothing about another tenant's rows.
        if (table.as_str(), index.as_str()) == ("console_sessions", "console_sessions_pkey") {
            continue;
        }
        // A domain name receives mail for one tenant: the MX must know whose mail it is. That a
        // name is taken says no more than the name's public MX record already does.
        if (table.as_str(), index.as_str()) == ("domains", "domains_receiving_name") {
            continue;
        }
        assert_eq!(first_column, "tenant_id", "unique index {index} on {table}");
    }
}

#[tokio::test]
async fn grouped_commits_store_every_request_once_and_isolate_a_failing_one() {
    use missive_store::InsertOutcome;
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant: missive_core::TenantId = app.create_tenant("Acme").await.id.parse().unwrap();
    let store = app.store().clone();
    let stored = missive_tests::new_email("first@example.test");
    let duplicate_id = stored.id;
    store.insert_emails(tenant, &[stored], None).await.unwrap();

    // Hold the writer on a lock so the next requests pile up and are committed as one group,
    // one of which reuses an id and must fail alone.
    let (writer, blocker) = missive_tests::writer_held_by_a_lock(&store).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..40 {
        let writer = writer.clone();
        let mut email = missive_tests::new_email(&format!("user{n}@example.test"));
        if n == 17 {
            email.id = duplicate_id;
        }
        tasks.spawn(async move { (n, writer.insert(tenant, vec![email], None).await) });
        if n == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    blocker.rollback().await.unwrap();

    let mut failed = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (n, result) = joined.unwrap();
        match result {
            Ok(outcome) => assert_eq!(outcome, InsertOutcome::Inserted),
            Err(_) => failed.push(n),
        }
    }
    assert_eq!(failed, [17], "only the request reusing an id fails");
    let count = |sql: &'static str| {
        let store = store.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(store.pool())
                .await
                .unwrap()
        }
    };
    assert_eq!(count("SELECT count(*) FROM emails").await, 40);
    assert_eq!(count("SELECT count(*) FROM deliveries").await, 80);
    assert_eq!(
        count("SELECT count(*) FROM email_events WHERE type = 'email.queued'").await,
        80
    );
    // Every column survives the array round trip, reply-to lists included.
    let reply_to: Vec<String> = sqlx::query_scalar("SELECT reply_to FROM emails LIMIT 1")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(reply_to, ["Help <help@acme.test>", "b@acme.test"]);
}

#[tokio::test]
async fn writers_flush_one_group_at_a_time_until_groups_are_full() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant: missive_core::TenantId = app.create_tenant("Acme").await.id.parse().unwrap();
    let store = app.store().clone();
    let waiting = || {
        let store = store.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(store.pool())
            .await
            .unwrap()
        }
    };
    let waiting_reaches = |n: i64| async move {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while waiting().await < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    // Four writers. Groups that are not full: the writer flushing keeps the queue, so one
    // statement is in flight and the other requests wait for the next group. Full groups (one
    // email each): every writer has one in flight.
    for (max_group_emails, in_flight) in [(256, 1), (1, 4)] {
        let settings = missive_store::WriterSettings {
            writers: 4,
            max_group_emails,
        };
        let (writer, blocker) =
            missive_tests::writer_with_settings_held_by_a_lock(&store, settings).await;
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..12 {
            let writer = writer.clone();
            let email =
                missive_tests::new_email(&format!("user{n}-{max_group_emails}@example.test"));
            tasks.spawn(async move { writer.insert(tenant, vec![email], None).await });
            if n == 0 {
                // The first group is flushing (held by the lock) before the others come.
                waiting_reaches(1).await;
            }
        }
        waiting_reaches(in_flight).await;
        // Settled: no further writer joins them.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(
            waiting().await,
            in_flight,
            "groups of at most {max_group_emails}"
        );
        blocker.rollback().await.unwrap();
        while let Some(joined) = tasks.join_next().await {
            joined.unwrap().unwrap();
        }
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM emails")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(stored, 24);
}

#[tokio::test]
async fn the_worker_pool_skips_the_wal_flush_and_plans_key_probes_once_without_jit() {
    let app = TestApp::spawn().await;
    let setting = |pool: &sqlx::PgPool, name: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT current_setting($1)")
                .bind(name)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let worker = app.store().for_worker(1);
    // The dispatcher's sessions are the worker's.
    let dispatcher = app.store().for_dispatcher(1);
    for pool in [worker.pool(), dispatcher.pool()] {
        assert_eq!(setting(pool, "synchronous_commit").await, "off");
        // Plans made from a growing queue's statistics scanned it whole (cached or fresh): with
        // only key probes left to choose from, each statement is planned once per connection.
        assert_eq!(setting(pool, "plan_cache_mode").await, "force_generic_plan");
        for method in ["enable_seqscan", "enable_hashjoin", "enable_mergejoin"] {
            assert_eq!(setting(pool, method).await, "off", "{method}");
        }
    }
    // No session compiles its plans: a lease whose cost was misestimated spent 60 ms in JIT.
    for pool in [app.store().pool(), worker.pool(), dispatcher.pool()] {
        assert_eq!(setting(pool, "jit").await, "off");
    }
}

#[tokio::test]
async fn message_bodies_are_compressed_with_lz4_where_the_server_has_it() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let pool = app.store().pool();
    let lz4 = sqlx::query("CREATE TEMP TABLE lz4_probe (x text COMPRESSION lz4)")
        .execute(pool)
        .await
        .is_ok();
    let methods: Vec<(String, String)> = sqlx::query_as(
        "SELECT attname::text, attcompression::text FROM pg_attribute
         WHERE attrelid = 'emails'::regclass AND attname IN ('html', 'mime', 'text')
         ORDER BY attname",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let expected = if lz4 { "l" } else { "" };
    assert_eq!(
        methods,
        ["html", "mime", "text"].map(|c| (c.to_owned(), expected.to_owned()))
    );

    // A body large enough to be compressed comes back byte for byte.
    let tenant: missive_core::TenantId = app.create_tenant("Acme").await.id.parse().unwrap();
    let mut email = missive_tests::new_email("big@example.test");
    email.text = Some("Lorem ipsum dolor sit amet. ".repeat(2_000));
    email.mime = format!("Subject: Big\r\n\r\n{}\r\n", email.text.as_deref().unwrap()).into_bytes();
    let (id, text, mime) = (email.id, email.text.clone(), email.mime.clone());
    app.store()
        .insert_emails(tenant, &[email], None)
        .await
        .unwrap();
    let stored = app.store().get_email(tenant, id).await.unwrap();
    assert_eq!(stored.text, text);
    let (stored_mime, method): (Vec<u8>, Option<String>) =
        sqlx::query_as("SELECT mime, pg_column_compression(mime) FROM emails WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(stored_mime, mime);
    if lz4 {
        assert_eq!(method.as_deref(), Some("lz4"));
    }
}

/// The names a `CHECK (column IN (...))` constraint allows.
async fn allowed_by(app: &TestApp, constraint: &str) -> std::collections::BTreeSet<String> {
    let definition: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1",
    )
    .bind(constraint)
    .fetch_one(app.store().pool())
    .await
    .unwrap_or_else(|e| panic!("{constraint}: {e}"));
    // The quoted literals are every other piece between single quotes.
    definition
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(ToOwned::to_owned)
        .collect()
}

#[tokio::test]
async fn statuses_and_event_kinds_in_the_schema_are_the_core_models() {
    use missive_core::{DeliveryStatus, EventKind, WebhookEventType};
    let app = TestApp::spawn().await;
    let statuses = DeliveryStatus::ALL.map(|s| s.as_str().to_owned());
    assert_eq!(
        allowed_by(&app, "deliveries_status_check").await,
        statuses.into_iter().collect()
    );
    let kinds = EventKind::ALL.map(|k| k.as_str().to_owned());
    assert_eq!(
        allowed_by(&app, "email_events_type_check").await,
        kinds.into_iter().collect()
    );
    let webhook_types = WebhookEventType::ALL.map(|k| k.as_str().to_owned());
    assert_eq!(
        allowed_by(&app, "webhooks_events_check").await,
        webhook_types.into_iter().collect()
    );

    // And every other list of names a CHECK constrains a column to is one core enum's names,
    // and every enum the database stores by name has such a CHECK.
    let constraints: Vec<String> = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint
         WHERE contype = 'c' AND conrelid <> 0 AND pg_get_constraintdef(oid) LIKE '%ARRAY[''%'
         ORDER BY 1",
    )
    .fetch_all(app.store().pool())
    .await
    .unwrap();
    let enums = missive_core::named::stored_enums();
    let mut checked = std::collections::BTreeSet::new();
    for constraint in &constraints {
        let names = allowed_by(&app, constraint).await;
        // Enums with the same names (a webhook's status, a domain's capability) share a CHECK's
        // list: each of them counts as checked by it.
        let models: Vec<_> = enums
            .iter()
            .filter(|e| {
                e.names
                    .iter()
                    .map(|n| (*n).to_owned())
                    .collect::<std::collections::BTreeSet<_>>()
                    == names
            })
            .collect();
        assert!(
            !models.is_empty(),
            "{constraint} lists {names:?}, which no core enum is"
        );
        checked.extend(models.iter().map(|m| m.what));
    }
    let unchecked: Vec<&str> = enums
        .iter()
        .map(|e| e.what)
        .filter(|what| !checked.contains(what))
        .collect();
    assert!(
        unchecked.is_empty(),
        "stored by name without a CHECK: {unchecked:?}"
    );
    assert!(constraints.len() >= enums.len(), "{constraints:?}");
}

#[tokio::test]
async fn every_listen_channel_is_what_the_triggers_notify() {
    use missive_store::listen::{Channel, ListenEvent, listen};
    use tokio::sync::mpsc;
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private = true).await;
    // Every pg_notify in a trigger function names one of our channels, and each is used.
    let notified: Vec<String> = sqlx::query_scalar(
        r"SELECT DISTINCT substring(p.prosrc from 'pg_notify\(''([a-z_]+)''')
          FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
          WHERE NOT t.tgisinternal AND p.prosrc LIKE '%pg_notify%'
          ORDER BY 1",
    )
    .fetch_all(app.store().pool())
    .await
    .unwrap();
    let mut names: Vec<String> = Channel::ALL.map(|c| c.name().to_owned()).to_vec();
    names.sort();
    assert_eq!(notified, names);

    // And a listener on each hears the change its trigger reports.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut heard = Vec::new();
    for channel in Channel::ALL {
        let (events, received) = mpsc::unbounded_channel();
        tokio::spawn(listen(
            app.store().clone(),
            channel,
            stop.clone(),
            move |e| {
                let _ = events.send(e);
            },
        ));
        heard.push(received);
    }
    for received in &mut heard {
        assert_eq!(received.recv().await, Some(ListenEvent::Connected));
    }
    // A changed tenant for the accounts channel, an email for the deliveries one, a template
    // for the templates one (whose payload is the tenant's id).
    let tenant = app.create_tenant("Acme").await;
    app.patch(
        &format!("/v1/tenants/{}", tenant.id),
        Auth::Admin,
        &json!({ "settings": { "reply_to": "help@acme.test" } }),
    )
    .await
    .expect(200);
    app.send_email(
        &tenant.key,
        &json!({ "from": "a@acme.test", "to": "r@x.test", "subject": "s", "text": "t" }),
    )
    .await;
    app.post(
        "/v1/templates",
        Auth::Key(&tenant.key),
        &json!({ "name": "T", "html": "x" }),
    )
    .await
    .expect(200);
    // A domain for the domains channel (its payload is the tenant's id too).
    app.post(
        "/v1/domains",
        Auth::Key(&tenant.key),
        &json!({ "name": "acme.test", "dkim_algorithm": "ed25519" }),
    )
    .await
    .expect(200);
    // An endpoint, then an email it is told about, for the webhooks channel.
    let created = app
        .post(
            "/v1/webhooks",
            Auth::Key(&tenant.key),
            &json!({ "endpoint": "http://127.0.0.1:9/hook", "events": ["email.sent"] }),
        )
        .await;
    let webhook = created.expect(200);
    app.send_email(
        &tenant.key,
        &json!({ "from": "a@acme.test", "to": "q@x.test", "subject": "s", "text": "t" }),
    )
    .await;
    for (channel, received) in Channel::ALL.iter().zip(&mut heard) {
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), received.recv()).await;
        let Some(ListenEvent::Notified(payload)) = event.unwrap() else {
            panic!("no notification on {channel:?}");
        };
        if [Channel::Templates, Channel::Domains].contains(channel) {
            assert_eq!(payload, tenant.id, "{channel:?}");
        }
    }
    // A replayed event wakes the dispatchers too, though no row is inserted.
    let events = format!("/v1/webhooks/{}/events", webhook["id"].as_str().unwrap());
    let listing = app.get(&events, Auth::Key(&tenant.key)).await;
    let listed = listing.expect(200);
    let event_id = listed["data"][0]["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("{events}/{event_id}/replay"),
        Auth::Key(&tenant.key),
        &json!({}),
    )
    .await
    .expect(200);
    let webhooks = Channel::ALL
        .iter()
        .position(|c| *c == Channel::Webhooks)
        .unwrap();
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), heard[webhooks].recv());
    assert!(matches!(
        event.await.unwrap(),
        Some(ListenEvent::Notified(_))
    ));
    stop.cancel();
    app.worker.drain().await.unwrap();
}

#[tokio::test]
async fn deleting_an_email_by_hand_deletes_its_recipients_and_events() {
    // The rows written for every email check no foreign key (a query and a parent row lock per
    // row); a trigger does what a cascade would, so a hand-made delete leaves no orphans for the
    // worker to lease.
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let message = json!({ "from": "a@acme.test", "to": ["r@x.test", "s@x.test"], "subject": "s", "text": "t" });
    let gone = app.send_email(&tenant.key, &message).await;
    let kept = app.send_email(&tenant.key, &message).await;
    let pool = app.store().pool();
    sqlx::query("DELETE FROM emails WHERE id = $1")
        .bind(gone.parse::<uuid::Uuid>().unwrap())
        .execute(pool)
        .await
        .unwrap();
    for query in [
        "SELECT DISTINCT email_id FROM deliveries",
        "SELECT DISTINCT email_id FROM email_events",
    ] {
        let emails: Vec<uuid::Uuid> = sqlx::query_scalar(query).fetch_all(pool).await.unwrap();
        assert_eq!(emails, [kept.parse::<uuid::Uuid>().unwrap()], "{query}");
    }
    app.worker.drain().await.unwrap();
}
