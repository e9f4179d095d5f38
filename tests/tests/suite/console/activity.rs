//! The console's activity rollup: each counter's growth added once, one process sampling at a time.

use super::*;

/// One sample, waiting out the app's own periodic one when it holds the lock at that moment.
async fn roll_up(store: &missive_store::Store) {
    for _ in 0..100 {
        if store.roll_up_activity().await.unwrap() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the rollup's lock stayed taken");
}

#[tokio::test]
async fn the_activity_rollup_adds_each_counters_growth_once_and_one_process_samples_at_a_time() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme").await;
    let id: uuid::Uuid = tenant.id.parse().unwrap();
    let tenant_id = missive_core::TenantId::from_uuid(id);
    let store = app.store();
    let count = |sent: i64, delivered: i64, shard: i16| {
        sqlx::query(
            "INSERT INTO usage_daily (tenant_id, project_id, day, shard, sent, delivered)
             VALUES ($1, $1, (now() AT TIME ZONE 'UTC')::date, $4, $2, $3)
             ON CONFLICT (tenant_id, day, project_id, shard) DO UPDATE
             SET sent = usage_daily.sent + $2, delivered = usage_daily.delivered + $3",
        )
        .bind(id)
        .bind(sent)
        .bind(delivered)
        .bind(shard)
        .execute(store.pool())
    };
    let day = || async {
        let points = store.hourly_activity(&[tenant_id], 24).await.unwrap();
        points.iter().fold((0, 0), |(s, d), p| {
            (s + p.counts.sent, d + p.counts.delivered)
        })
    };
    count(5, 3, 0).await.unwrap();
    roll_up(store).await;
    assert_eq!(day().await, (5, 3));
    // Nothing new: nothing added.
    roll_up(store).await;
    assert_eq!(day().await, (5, 3));
    // Growth in another shard of the same day counts once.
    count(2, 4, 5).await.unwrap();
    roll_up(store).await;
    assert_eq!(day().await, (7, 7));
    let minutes: i64 = store
        .activity_by_minute(60)
        .await
        .unwrap()
        .iter()
        .map(|(_, c)| c.sent)
        .sum();
    assert_eq!(minutes, 7);
    // While another process samples (holding the rollup's lock), this one skips.
    let mut other = store.pool().begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(0x6d69_7373_6163_7431_i64)
        .execute(&mut *other)
        .await
        .unwrap();
    count(1, 0, 0).await.unwrap();
    assert!(!store.roll_up_activity().await.unwrap());
    other.rollback().await.unwrap();
    roll_up(store).await;
    assert_eq!(day().await, (8, 7));
}
