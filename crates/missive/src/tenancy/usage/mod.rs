//! Usage: what a tenant sent, what became of it, its quotas and request rate, for `GET /v1/usage`
//! (Resend's shape, scope `usage:read`), the operator's month view (SelfMX's shape) and the
//! console's chart; and the counting of REST requests ([`requests`]).
//!
//! Figures come from the `usage_daily` counters, which the statements that accept, deliver and
//! refuse mail write as they do it; reading them never scans the events. Days and months are
//! UTC. Quotas count recipients (`used`); `sent` counts emails.

mod requests;

use missive_core::limits::resets_at;
use missive_core::{MonthPeriod, ProjectId, Scope, TenantId};
use missive_store::{DailyUsage, ProjectUsage, Store, UsageTotals};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};

pub use self::requests::RequestCounter;
use crate::tenancy::caller::TenantAuth;
use crate::tenancy::error::ServiceError;

/// Most days one `?from&to` request covers.
const MAX_DAYS: i64 = 366;

/// `GET /v1/usage` query: a range of days for the per-day figures.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// First day (YYYY-MM-DD, UTC) of the per-day figures [default: the first of `to`'s month].
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// Last day, inclusive [default: today]. At most the 366 days up to it are listed.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
}

/// `GET /v1/tenants/{id}/usage` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// The month, YYYY-MM (UTC) [default: this month].
    #[param(value_type = Option<String>, pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$", example = "2026-11")]
    pub period: Option<String>,
}

impl PeriodQuery {
    /// The month asked for, this month (UTC) when none is.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a month that does not parse.
    pub fn month(&self) -> Result<MonthPeriod, ServiceError> {
        match &self.period {
            Some(raw) => raw.parse().map_err(ServiceError::Invalid),
            None => Ok(MonthPeriod::of(OffsetDateTime::now_utc())),
        }
    }
}

/// One quota's figures (Resend's `emails.daily` and `emails.monthly`).
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaView {
    /// Recipients counted against the quota.
    pub used: i64,
    /// The quota; null when there is none.
    pub limit: Option<u64>,
    /// Emails accepted.
    pub sent: i64,
    /// Messages received for the tenant's domains.
    pub received: i64,
    /// When the quota starts again (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub resets_at: OffsetDateTime,
}

/// Resend's `emails`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailsUsageView {
    pub daily: QuotaView,
    pub monthly: QuotaView,
}

/// Resend's `rate_limit`: requests per window.
#[derive(Debug, Serialize, ToSchema)]
pub struct RateLimitUsageView {
    /// Requests per minute; null when there is no limit.
    pub limit: Option<u32>,
    #[schema(example = "60000ms")]
    pub duration: &'static str,
}

/// Our breakdown of a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakdownView {
    /// Recipients accepted.
    pub recipients: i64,
    /// Emails accepted.
    pub emails: i64,
    /// Recipients by what happened to them (`failed`: after the last retry).
    pub delivered: i64,
    pub bounced: i64,
    pub failed: i64,
    pub suppressed: i64,
    /// Authenticated REST requests.
    pub api_requests: i64,
    /// Emails accepted over SMTP.
    pub smtp_messages: i64,
    /// Messages received for the tenant's domains (counted in its default project).
    pub received: i64,
    /// Their size, in bytes.
    pub received_bytes: i64,
}

impl From<UsageTotals> for BreakdownView {
    fn from(t: UsageTotals) -> Self {
        Self {
            recipients: t.used,
            emails: t.sent,
            delivered: t.delivered,
            bounced: t.bounced,
            failed: t.failed,
            suppressed: t.suppressed,
            api_requests: t.api_requests,
            smtp_messages: t.smtp_messages,
            received: t.received,
            received_bytes: t.received_bytes,
        }
    }
}

/// One day's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayView {
    /// YYYY-MM-DD (UTC).
    #[schema(value_type = String, example = "2026-11-29")]
    pub date: String,
    #[serde(flatten)]
    pub figures: BreakdownView,
}

impl From<DailyUsage> for DayView {
    fn from(d: DailyUsage) -> Self {
        Self {
            date: d.day.to_string(),
            figures: d.totals.into(),
        }
    }
}

/// `GET /v1/usage`: Resend's shape (`object`, `emails`, `rate_limit`) and ours.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// Always `usage`.
    #[schema(example = "usage")]
    pub object: &'static str,
    pub tenant_id: TenantId,
    /// The key's project: `today`, `month` and `days` are its figures, while `emails` shows
    /// the tenant's quotas, which its projects share.
    pub project_id: ProjectId,
    pub emails: EmailsUsageView,
    pub rate_limit: RateLimitUsageView,
    /// Today's figures (UTC).
    pub today: BreakdownView,
    /// This month's figures (UTC).
    pub month: BreakdownView,
    /// Per day over `?from&to`, days with no activity left out; absent without `from`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<DayView>>,
}

/// `GET /v1/tenants/{id}/usage`: SelfMX's shape and our breakdown.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantUsageView {
    /// Always `tenant_usage`.
    #[schema(example = "tenant_usage")]
    pub object: &'static str,
    pub tenant_id: TenantId,
    /// YYYY-MM.
    #[schema(example = "2026-11")]
    pub period: String,
    /// Emails accepted.
    pub emails_sent: i64,
    /// Recipients delivered.
    pub emails_delivered: i64,
    /// Recipients bounced.
    pub emails_bounced: i64,
    pub api_requests: i64,
    pub breakdown: BreakdownView,
    /// Each day of the month with activity.
    pub days: Vec<DayView>,
    /// The same month per project; they sum to the tenant's figures.
    pub projects: Vec<ProjectUsageView>,
}

/// One project's figures for a month.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectUsageView {
    /// Always `project_usage`.
    #[schema(example = "project_usage")]
    pub object: &'static str,
    pub tenant_id: TenantId,
    pub project_id: ProjectId,
    /// The project's name (empty for one deleted since).
    pub name: String,
    /// YYYY-MM.
    #[schema(example = "2026-11")]
    pub period: String,
    pub emails_sent: i64,
    pub emails_delivered: i64,
    pub emails_bounced: i64,
    pub api_requests: i64,
    pub breakdown: BreakdownView,
}

impl ProjectUsageView {
    fn of(tenant_id: TenantId, period: MonthPeriod, usage: ProjectUsage) -> Self {
        let total = usage.totals;
        Self {
            object: "project_usage",
            tenant_id,
            project_id: usage.project_id,
            name: usage.name,
            period: period.to_string(),
            emails_sent: total.sent,
            emails_delivered: total.delivered,
            emails_bounced: total.bounced,
            api_requests: total.api_requests,
            breakdown: total.into(),
        }
    }
}

/// Each project's figures for a month, the default first.
///
/// # Errors
/// Database failures.
pub async fn projects_month(
    store: &Store,
    tenant: TenantId,
    period: MonthPeriod,
) -> Result<Vec<ProjectUsageView>, ServiceError> {
    Ok(store
        .usage_by_project(tenant, period.first_day(), period.last_day())
        .await?
        .into_iter()
        .map(|usage| ProjectUsageView::of(tenant, period, usage))
        .collect())
}

fn parse_day(field: &str, raw: &str) -> Result<Date, ServiceError> {
    Date::parse(
        raw,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| ServiceError::Invalid(format!("`{field}` must be a date, YYYY-MM-DD")))
}

/// The calling tenant's usage and quotas (scope `usage:read`). What this process counted of
/// its requests is written first, so the figures include them; `default_rate` is the request
/// rate of a tenant without its own.
///
/// # Errors
/// [`ServiceError::Invalid`] for a date that does not parse.
pub async fn get(
    store: &Store,
    requests: &RequestCounter,
    auth: &TenantAuth,
    query: &UsageQuery,
    default_rate: Option<u32>,
) -> Result<UsageView, ServiceError> {
    auth.require(Scope::UsageRead)?;
    let now = OffsetDateTime::now_utc();
    let today = now.date();
    let range = if query.from.is_none() && query.to.is_none() {
        None
    } else {
        let to = query
            .to
            .as_deref()
            .map(|t| parse_day("to", t))
            .transpose()?
            .unwrap_or(today);
        let from = match query.from.as_deref() {
            Some(from) => parse_day("from", from)?,
            None => MonthPeriod::of(to.midnight().assume_utc()).first_day(),
        };
        // A longer range lists its last days; `from` after `to` lists none.
        let earliest = to
            .checked_sub(time::Duration::days(MAX_DAYS - 1))
            .unwrap_or(Date::MIN);
        Some((from.max(earliest), to))
    };
    // What this process counted so far is in the figures.
    requests.flush_logged(store).await;
    let usage = store
        .quota_usage(auth.tenant_id, now, store.default_limits())
        .await?;
    let days = match range {
        Some((from, to)) => Some(
            store
                .usage_by_day(auth.project().into(), from, to)
                .await?
                .into_iter()
                .map(DayView::from)
                .collect(),
        ),
        None => None,
    };
    // The quota is the tenant's, over all its projects; the counts below are the project's.
    let today = now.to_offset(time::UtcOffset::UTC).date();
    let month = MonthPeriod::of(now);
    let project = auth.project().into();
    let project_today = store.usage_between(project, today, today).await?;
    let project_month = store
        .usage_between(project, month.first_day(), month.last_day())
        .await?;
    let (day_reset, month_reset) = resets_at(now);
    Ok(UsageView {
        object: "usage",
        tenant_id: auth.tenant_id,
        project_id: auth.project_id,
        emails: EmailsUsageView {
            daily: QuotaView {
                used: usage.today.used,
                limit: usage.limits.emails_per_day,
                sent: usage.today.sent,
                received: usage.today.received,
                resets_at: day_reset,
            },
            monthly: QuotaView {
                used: usage.month.used,
                limit: usage.limits.emails_per_month,
                sent: usage.month.sent,
                received: usage.month.received,
                resets_at: month_reset,
            },
        },
        rate_limit: RateLimitUsageView {
            limit: auth
                .rates
                .key
                .into_iter()
                .chain(auth.rates.tenant.or(default_rate))
                .min(),
            duration: "60000ms",
        },
        today: project_today.into(),
        month: project_month.into(),
        days,
    })
}

/// A tenant's figures for a month (the admin route's and the CLI's).
///
/// # Errors
/// `NotFound` for an unknown tenant; database failures.
pub async fn tenant_month(
    store: &Store,
    tenant: TenantId,
    period: MonthPeriod,
) -> Result<TenantUsageView, ServiceError> {
    // An unknown tenant is a 404, not a month of zeros.
    store.tenant_limits(tenant).await?;
    let days = store
        .usage_by_day(tenant.into(), period.first_day(), period.last_day())
        .await?;
    let mut total = UsageTotals::default();
    for day in &days {
        total += day.totals;
    }
    Ok(TenantUsageView {
        object: "tenant_usage",
        tenant_id: tenant,
        period: period.to_string(),
        emails_sent: total.sent,
        emails_delivered: total.delivered,
        emails_bounced: total.bounced,
        api_requests: total.api_requests,
        breakdown: total.into(),
        days: days.into_iter().map(DayView::from).collect(),
        projects: projects_month(store, tenant, period).await?,
    })
}
