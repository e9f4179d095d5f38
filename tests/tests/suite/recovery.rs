//! Recovery from dead workers: a registered worker's leases are taken over within seconds of its
//! death, a live worker's are never taken, and a running worker whose database connections are
//! cut reconnects and finishes. (Killing whole processes is `crash.rs`.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use missive::queue::delivery::{DeliveryWorker, Routes};
use missive_core::WorkerKind;
use missive_tests::TestApp;
use serde_json::json;
use tokio_util::sync::CancellationToken;

async fn queue_one(app: &TestApp, key: &str) -> String {
    app.send_email(
        key,
        &json!({ "from": "a@acme.test", "to": "r@x.test", "subject": "s", "text": "t" }),
    )
    .await
}

#[tokio::test]
async fn a_dead_workers_leases_are_taken_over_at_once() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    queue_one(&app, &tenant.key).await;
    let store = app.store();
    let dead = store.register_worker(WorkerKind::Delivery).await.unwrap();
    let alive = store.register_worker(WorkerKind::Delivery).await.unwrap();
    let leased = store
        .lease_due_deliveries(10, Duration::from_secs(300), dead.id(), &[])
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert!(
        store.reap_dead_workers().await.unwrap().workers.is_empty(),
        "both hold their locks"
    );

    // The worker's connection goes, as when its process is killed.
    let dead_id = dead.id();
    drop(dead);
    let started = Instant::now();
    let reaped = loop {
        let reaped = store.reap_dead_workers().await.unwrap();
        if !reaped.workers.is_empty() {
            break reaped;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never reaped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(reaped.workers, [dead_id]);
    assert_eq!(reaped.deliveries, 1);
    let taken = store
        .lease_due_deliveries(10, Duration::from_secs(300), alive.id(), &[])
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "the live worker takes the lease at once");
    assert_eq!(taken[0].attempts, 2);
    alive.release().await.unwrap();
}

#[tokio::test]
async fn a_live_worker_keeps_what_it_is_sending() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    queue_one(&app, &tenant.key).await;
    let store = app.store();
    let worker = store.register_worker(WorkerKind::Delivery).await.unwrap();
    store
        .lease_due_deliveries(10, Duration::from_secs(1), worker.id(), &[])
        .await
        .unwrap();
    // A long conversation: the lease would run out, but the worker renews it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        store
            .renew_leases(worker.id(), Duration::from_secs(1))
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(store.reap_dead_workers().await.unwrap().workers.is_empty());
    let other = uuid::Uuid::now_v7();
    assert!(
        store
            .lease_due_deliveries(10, Duration::from_secs(1), other, &[])
            .await
            .unwrap()
            .is_empty(),
        "nothing is taken from a live worker"
    );
    worker.release().await.unwrap();
}

#[tokio::test]
async fn a_running_worker_whose_connections_are_cut_reconnects_and_finishes() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let mut config = missive::Config::with_database_url(&app.db.url);
    config.relay.url = app.sink.relay_url().parse().unwrap();
    config.delivery.poll_interval_ms = Duration::from_millis(50);
    let worker = DeliveryWorker::new(
        app.store().for_worker(4),
        Arc::new(
            Routes::new(
                &config.relay.url,
                missive::app::startup::tenant_relays(&config).unwrap(),
            )
            .unwrap(),
        ),
        config.worker_settings(),
    );
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));

    let workers = || async {
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM workers")
            .fetch_all(app.store().pool())
            .await
            .unwrap()
    };
    let started = Instant::now();
    while workers().await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = workers().await;

    let total = 60;
    for n in 0..total {
        queue_one(&app, &tenant.key).await;
        if n == total / 2 {
            // Every connection the worker has: its pool, its LISTEN and its registration.
            let cut: i64 = sqlx::query_scalar(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name LIKE 'missive worker%'",
            )
            .fetch_one(app.store().pool())
            .await
            .unwrap();
            assert!(
                cut >= 2,
                "the worker's pool and registration connections ({cut})"
            );
        }
    }
    while app.sink.received().len() < total {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} of {total} delivered",
            app.sink.received().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Registered again under a new id; the old registration is reaped.
    loop {
        let now = workers().await;
        if now.len() == 1 && now != first {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "registrations: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A result whose write was cut with the connection is not lost: the old registration's
    // leases, once reaped, are sent again (a duplicate, by design) and recorded.
    loop {
        let unsettled: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status <> 'delivered'")
                .fetch_one(app.store().pool())
                .await
                .unwrap();
        if unsettled == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{unsettled} deliveries not recorded as delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    running.await.unwrap();
    assert!(
        workers().await.is_empty(),
        "a worker that stops ends its registration"
    );
}
