//! The operator's pages: every tenant's day with a sparkline, the queue by state and tenant with
//! its oldest due row's age, the last hour's delivery rate, and a tenant's page (keys by prefix,
//! settings, limits, SMTP override with a verify button, suppressions).
//!
//! The figures come from the activity rollup and the queue's partial indexes, never from a scan
//! of the emails or their events.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use missive_core::{DeliveryStatus, TenantId};
use missive_store::ActivityCounts;
use serde::Deserialize;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::charts::{self, Bar};
use super::sample_activity;
use super::session::{ConsoleError, Empty, Posted, Session};
use super::views::{self, path_id, value};
use crate::edge::state::AppState;
use crate::tenancy::accounts;
use crate::tenancy::caller::Caller;
use crate::tenancy::error::ServiceError;
use crate::tenancy::suppressions::{self, ListSuppressionsQuery};

/// Tenants per page of the overview.
const TENANTS_PER_PAGE: u32 = 25;

fn counts(c: ActivityCounts) -> Value {
    json!({ "sent": c.sent, "delivered": c.delivered, "bounced": c.bounced, "failed": c.failed })
}

/// Each tenant's last 24 hours: totals and a sparkline of emails sent per hour.
async fn last_day(
    state: &AppState,
    tenants: &[TenantId],
) -> Result<HashMap<TenantId, (ActivityCounts, String)>, ConsoleError> {
    let points = state.store.hourly_activity(tenants, 24).await?;
    let now = OffsetDateTime::now_utc();
    let this_hour = now
        .replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(now);
    let mut series: HashMap<TenantId, (ActivityCounts, [i64; 24])> = HashMap::new();
    for point in points {
        let hours_ago = (this_hour - point.at).whole_hours();
        let Ok(slot) = usize::try_from(23 - hours_ago) else {
            continue;
        };
        if slot >= 24 {
            continue;
        }
        let entry = series.entry(point.tenant_id).or_default();
        entry.0 += point.counts;
        entry.1[slot] += point.counts.sent;
    }
    Ok(tenants
        .iter()
        .map(|t| {
            let (total, hours) = series.remove(t).unwrap_or_default();
            (*t, (total, charts::sparkline(&hours)))
        })
        .collect())
}

#[derive(Debug, Default, Deserialize)]
pub struct TenantPaging {
    after: Option<String>,
}

/// The operator's overview.
pub async fn overview(
    State(state): State<AppState>,
    session: Session,
    Query(paging): Query<TenantPaging>,
) -> Result<Response, ConsoleError> {
    session.operator()?;
    // Sampled now, so the page shows what committed a moment ago.
    sample_activity(&state.store).await;
    let after = paging
        .after
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<TenantId>()
                .map_err(|_| ServiceError::Invalid("`after` is not a tenant id".to_owned()))
        })
        .transpose()?;
    let list = accounts::list_tenants(&state.store, after, TENANTS_PER_PAGE)
        .await
        .map_err(ServiceError::from)?;
    let ids: Vec<TenantId> = list.data.iter().map(|t| t.id).collect();
    let mut day = last_day(&state, &ids).await?;
    let tenants: Vec<Value> = list
        .data
        .iter()
        .map(|t| {
            let (total, spark) = day.remove(&t.id).unwrap_or_default();
            json!({ "tenant": value(t), "day": counts(total), "spark": spark })
        })
        .collect();
    let next = list
        .has_more
        .then(|| list.data.last().map(|t| t.id.to_string()))
        .flatten();

    let now = OffsetDateTime::now_utc();
    let queue = state.store.queue_summary().await?;
    let mut by_status: HashMap<DeliveryStatus, i64> = HashMap::new();
    let mut oldest: Option<OffsetDateTime> = None;
    for row in &queue {
        *by_status.entry(row.status).or_default() += row.count;
        oldest = match (oldest, row.oldest_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let queue_rows: Vec<Value> = queue
        .iter()
        .map(|row| {
            json!({
                "tenant_id": row.tenant_id,
                "tenant_name": row.tenant_name,
                "status": row.status,
                "count": row.count,
                "oldest_due_age": row.oldest_due.map(|at| age(now - at)),
            })
        })
        .collect();

    let minutes = state.store.activity_by_minute(60).await?;
    let by_minute: HashMap<i64, ActivityCounts> = minutes
        .into_iter()
        .map(|(at, c)| (at.unix_timestamp() / 60, c))
        .collect();
    let this_minute = now.unix_timestamp() / 60;
    let bars: Vec<Bar> = (0..60)
        .map(|i| {
            let minute = this_minute - 59 + i;
            let c = by_minute.get(&minute).copied().unwrap_or_default();
            let at = OffsetDateTime::from_unix_timestamp(minute * 60).unwrap_or(now);
            Bar {
                label: format!("{:02}:{:02}", at.hour(), at.minute()),
                values: vec![c.delivered, c.bounced, c.failed],
            }
        })
        .collect();
    let delivered_last_hour: i64 = bars.iter().map(|b| b.values[0]).sum();
    let rate_chart = charts::bars(&bars, &["delivered", "bounced", "failed"], 10);

    views::page(
        &session,
        "operator",
        "operator",
        json!({
            "tenants": tenants,
            "next": next,
            "paged": after.is_some(),
            "queue": {
                "queued": by_status.get(&DeliveryStatus::Queued).copied().unwrap_or(0),
                "deferred": by_status.get(&DeliveryStatus::Deferred).copied().unwrap_or(0),
                "sending": by_status.get(&DeliveryStatus::Sending).copied().unwrap_or(0),
                "oldest_due_age": oldest.map(|at| age(now - at)),
                "rows": queue_rows,
            },
            "rate_chart": rate_chart,
            "delivered_last_hour": delivered_last_hour,
        }),
    )
}

/// A duration as the largest two units (`3 h 12 min`, `45 s`).
fn age(d: Duration) -> String {
    let s = d.whole_seconds().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86400, (s % 86400) / 3600),
    }
}

async fn tenant_page(
    state: &AppState,
    session: &Session,
    id: &str,
    verification: Option<Value>,
) -> Result<Response, ConsoleError> {
    session.operator()?;
    let id: TenantId = path_id(id)?;
    let tenant = accounts::get_tenant(&state.store, id)
        .await
        .map_err(ServiceError::from)?;
    let keys = accounts::list_api_keys(&state.store, id.into())
        .await
        .map_err(ServiceError::from)?;
    let query = ListSuppressionsQuery {
        origin: None,
        limit: Some(50),
        after: None,
        before: None,
    };
    let suppressions = suppressions::list(&state.store, Caller::operator(id), &query).await?;
    state.requests.flush_logged(&state.store).await;
    let projects = crate::tenancy::usage::projects_month(
        &state.store,
        id,
        missive_core::MonthPeriod::of(time::OffsetDateTime::now_utc()),
    )
    .await?;
    sample_activity(&state.store).await;
    let (day, spark) = last_day(state, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    views::page(
        session,
        "operator_tenant",
        "operator",
        json!({
            "tenant": value(&tenant),
            "keys": value(&keys),
            "projects": value(&projects),
            "suppressions": value(&suppressions.data),
            "day": counts(day),
            "spark": spark,
            "verification": verification,
        }),
    )
}

/// A tenant's page.
pub async fn tenant(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    tenant_page(&state, &session, &id, None).await
}

/// Checks the tenant's own SMTP server (connect, TLS, AUTH; never a message) and shows the
/// steps on its page.
pub async fn verify_smtp(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<Empty>,
) -> Result<Response, ConsoleError> {
    posted.session.operator()?;
    let tenant: TenantId = path_id(&id)?;
    let verification = match accounts::verify_smtp(&state.store, &state.relays, tenant)
        .await
        .map_err(ServiceError::from)
    {
        Ok(v) => value(&v),
        Err(err) if err.is_client_error() => json!({ "error": err.to_string() }),
        Err(err) => return Err(err.into()),
    };
    tenant_page(&state, &posted.session, &id, Some(verification)).await
}
