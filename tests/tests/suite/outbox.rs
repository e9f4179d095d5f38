//! How dispatchers lease the webhook outbox: round the endpoints, each within its share, in
//! batches, and from a low-water mark that never passes a row a running transaction may still
//! commit.

use std::time::Duration;

use missive_core::{WebhookEventId, WebhookEventStatus, WebhookEventType, WebhookId, WorkerKind};
use missive_store::{LeasedWebhookEvent, NewWebhook, SealedSecret, Store, WebhookAttemptResult};
use missive_tests::TestApp;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(60);

/// A tenant with `endpoints` endpoints, stored directly (nothing here posts them).
async fn endpoints(app: &TestApp, endpoints: usize) -> (Uuid, Vec<WebhookId>) {
    let tenant = app.create_tenant("outbox").await;
    let tenant_id: Uuid = tenant.id.parse().unwrap();
    let secret = SealedSecret {
        key_id: "test".to_owned(),
        bytes: vec![0; 32],
    };
    let mut ids = Vec::new();
    for _ in 0..endpoints {
        let id = WebhookId::new();
        app.store()
            .insert_webhook(
                missive_core::TenantId::from_uuid(tenant_id),
                &NewWebhook {
                    id,
                    endpoint: "https://hooks.example.test/in",
                    events: &[WebhookEventType::Sent],
                    secret: &secret,
                },
            )
            .await
            .unwrap();
        ids.push(id);
    }
    (tenant_id, ids)
}

/// Adds `n` due events for an endpoint, each in its own transaction.
async fn add_events(store: &Store, tenant_id: Uuid, webhook_id: WebhookId, n: usize) {
    for _ in 0..n {
        insert_event(store.pool(), tenant_id, webhook_id).await;
    }
}

async fn insert_event<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    tenant_id: Uuid,
    webhook_id: WebhookId,
) -> WebhookEventId {
    sqlx::query_scalar(
        "INSERT INTO webhook_events (tenant_id, project_id, webhook_id, type)
         VALUES ($1, $1, $2, 'email.sent')
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(webhook_id)
    .fetch_one(executor)
    .await
    .unwrap()
}

async fn lease(store: &Store, limit: i64, share: i64, holder: Uuid) -> Vec<LeasedWebhookEvent> {
    store
        .lease_webhook_events(limit, share, LEASE, holder)
        .await
        .unwrap()
}

/// Records every one of `events` as delivered.
async fn succeed(store: &Store, events: &[LeasedWebhookEvent], holder: Uuid) {
    let results: Vec<_> = events
        .iter()
        .map(|e| WebhookAttemptResult {
            tenant_id: e.tenant_id,
            event_id: e.id,
            webhook_id: e.webhook_id,
            holder,
            http_status: Some(204),
            response: String::new(),
            duration: Duration::from_millis(1),
            status: WebhookEventStatus::Success,
            next_attempt_at: None,
            disable: None,
        })
        .collect();
    store.record_webhook_attempts(&results).await.unwrap();
}

#[tokio::test]
async fn leasing_goes_round_the_endpoints_so_a_backlog_hides_no_one() {
    let app = TestApp::spawn().await;
    let store = app.store().for_dispatcher(2);
    let (tenant_id, ids) = endpoints(&app, 2).await;
    let (busy, quiet) = (ids[0], ids[1]);
    add_events(&store, tenant_id, busy, 40).await;
    // Newer than all of the busy endpoint's rows, yet in the first lease.
    add_events(&store, tenant_id, quiet, 1).await;

    let leased = lease(&store, 5, 100, Uuid::now_v7()).await;
    assert_eq!(leased.len(), 5);
    assert_eq!(
        leased.iter().filter(|e| e.webhook_id == quiet).count(),
        1,
        "the quiet endpoint's row waits behind the busy one's backlog"
    );
}

#[tokio::test]
async fn an_endpoint_gets_its_share_of_leases_topped_up_once_half_is_free() {
    let app = TestApp::spawn().await;
    let store = app.store().for_dispatcher(2);
    let (tenant_id, ids) = endpoints(&app, 1).await;
    add_events(&store, tenant_id, ids[0], 20).await;
    let holder = Uuid::now_v7();

    let first = lease(&store, 100, 8, holder).await;
    assert_eq!(first.len(), 8, "the endpoint's share");
    // Another dispatcher counts the same share.
    assert!(lease(&store, 100, 8, Uuid::now_v7()).await.is_empty());
    succeed(&store, &first[..3], holder).await;
    assert!(
        lease(&store, 100, 8, holder).await.is_empty(),
        "3 of 8 free: not yet half"
    );
    succeed(&store, &first[3..4], holder).await;
    let topped_up = lease(&store, 100, 8, holder).await;
    assert_eq!(topped_up.len(), 4, "half free: filled up again");
    let all: std::collections::HashSet<_> = first.iter().chain(&topped_up).map(|e| e.id).collect();
    assert_eq!(all.len(), 12, "no row leased twice");
}

#[tokio::test]
async fn the_low_water_mark_never_passes_a_row_a_running_transaction_commits_later() {
    let app = TestApp::spawn().await;
    let store = app.store().for_dispatcher(2);
    let (tenant_id, ids) = endpoints(&app, 1).await;
    let webhook_id = ids[0];
    let holder = Uuid::now_v7();

    // A transaction that starts first: its row carries that start as its due time.
    let mut slow = app.store().pool().begin().await.unwrap();
    let late = insert_event(&mut *slow, tenant_id, webhook_id).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    add_events(&store, tenant_id, webhook_id, 3).await;

    // The later rows are leased and delivered; the mark moves up, but not past the open
    // transaction's start.
    let leased = lease(&store, 10, 100, holder).await;
    assert_eq!(leased.len(), 3);
    succeed(&store, &leased, holder).await;
    assert!(lease(&store, 10, 100, holder).await.is_empty());

    slow.commit().await.unwrap();
    let leased = lease(&store, 10, 100, holder).await;
    assert_eq!(
        leased.iter().map(|e| e.id).collect::<Vec<_>>(),
        [late],
        "the row committed late is still found"
    );
    let (moved, behind_the_late_row): (bool, bool) = sqlx::query_as(
        "SELECT w.due_from > '-infinity', (w.due_from, w.due_from_id) <= (e.next_attempt_at, e.id)
         FROM webhooks w JOIN webhook_events e ON e.tenant_id = w.tenant_id AND e.id = $2
         WHERE w.id = $1",
    )
    .bind(webhook_id)
    .bind(late)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert!(moved && behind_the_late_row);
}

#[tokio::test]
async fn a_row_behind_its_endpoints_mark_is_found_by_the_sweep() {
    let app = TestApp::spawn().await;
    let store = app.store().for_dispatcher(2);
    let (tenant_id, ids) = endpoints(&app, 2).await;
    let holder = Uuid::now_v7();
    add_events(&store, tenant_id, ids[0], 2).await;
    add_events(&store, tenant_id, ids[1], 1).await;
    // A mark past an unfinished row, as a lease that could not see the row would have left it.
    sqlx::query("UPDATE webhooks SET due_from = now() + interval '1 hour' WHERE id = $1")
        .bind(ids[0])
        .execute(store.pool())
        .await
        .unwrap();
    let leased = lease(&store, 10, 100, holder).await;
    assert_eq!(leased.len(), 1, "only the other endpoint's row is seen");
    succeed(&store, &leased, holder).await;
    assert_eq!(store.reset_passed_webhook_marks().await.unwrap(), 1);
    assert_eq!(store.reset_passed_webhook_marks().await.unwrap(), 0);
    let leased = lease(&store, 10, 100, holder).await;
    assert_eq!(leased.len(), 2);
    assert!(leased.iter().all(|e| e.webhook_id == ids[0]));
}

#[tokio::test]
async fn deleting_an_endpoint_deletes_its_events() {
    let app = TestApp::spawn().await;
    let store = app.store();
    let (tenant_id, ids) = endpoints(&app, 2).await;
    add_events(store, tenant_id, ids[0], 3).await;
    add_events(store, tenant_id, ids[1], 2).await;
    // An attempt of each endpoint's events: the gone endpoint's go with its events.
    let holder = Uuid::now_v7();
    let leased = lease(store, 10, 10, holder).await;
    succeed(store, &leased, holder).await;
    store
        .delete_webhook(missive_core::TenantId::from_uuid(tenant_id), ids[0])
        .await
        .unwrap();
    let left: Vec<WebhookId> = sqlx::query_scalar("SELECT webhook_id FROM webhook_events")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(left, [ids[1], ids[1]], "the other endpoint's events stay");
    let attempts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_attempts a
         WHERE NOT EXISTS (SELECT 1 FROM webhook_events e
                           WHERE e.tenant_id = a.tenant_id AND e.id = a.event_id)",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(attempts, 0, "no attempt outlives its event");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_attempts")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(kept, 2, "the other endpoint's attempts stay");
}

/// The holder's rows, as leased: how many, and the latest expiry.
async fn held(store: &Store, holder: Uuid) -> (i64, Option<time::OffsetDateTime>) {
    sqlx::query_as(
        "SELECT count(*), max(lease_expires_at) FROM webhook_events
         WHERE leased_by = $1 AND lease_expires_at >= now()",
    )
    .bind(holder)
    .fetch_one(store.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn a_live_dispatchers_leases_are_renewed_and_a_dead_ones_taken_over() {
    let app = TestApp::spawn().await;
    let store = app.store().for_dispatcher(2);
    let (tenant_id, ids) = endpoints(&app, 2).await;
    add_events(&store, tenant_id, ids[0], 12).await;
    add_events(&store, tenant_id, ids[1], 3).await;
    let alive = store.register_worker(WorkerKind::Webhooks).await.unwrap();
    let dead = store.register_worker(WorkerKind::Webhooks).await.unwrap();
    // The live one holds the first endpoint's first rows, with its finished rows before them.
    let finished = lease(&store, 4, 100, alive.id()).await;
    succeed(&store, &finished, alive.id()).await;
    let kept = lease(&store, 6, 100, alive.id()).await;
    let taken = lease(&store, 100, 100, dead.id()).await;
    assert_eq!((kept.len(), taken.len()), (6, 5));

    let (_, before) = held(&store, alive.id()).await;
    let renewed = store
        .renew_webhook_leases(alive.id(), Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(
        renewed, 6,
        "every row the live dispatcher holds, and no other"
    );
    let (n, after) = held(&store, alive.id()).await;
    assert_eq!(n, 6);
    assert!(after.unwrap() > before.unwrap(), "its leases run longer");

    // The dead one's connection goes, as when its process is killed.
    let dead_id = dead.id();
    drop(dead);
    let started = std::time::Instant::now();
    loop {
        if store.reap_dead_workers().await.unwrap().workers == [dead_id] {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never reaped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        held(&store, dead_id).await.0,
        0,
        "its leases ran out at once"
    );
    let other = Uuid::now_v7();
    let again = lease(&store, 100, 100, other).await;
    let mut again: Vec<WebhookEventId> = again.iter().map(|e| e.id).collect();
    let mut expected: Vec<WebhookEventId> = taken.iter().map(|e| e.id).collect();
    again.sort();
    expected.sort();
    assert_eq!(
        again, expected,
        "the dead one's rows, and none the live one holds"
    );
    alive.release().await.unwrap();
}
