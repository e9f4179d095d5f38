//! Tenant limits: request rates, sending quotas, and the calendar periods (UTC) that quotas and
//! usage figures count over.
//!
//! Quotas count recipients: an email to three addresses uses three. Each recipient is a delivery
//! of its own, with its own cost to the relay and the sender's reputation; counting emails would
//! let one email with 150 recipients pass for one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, Time};
use utoipa::ToSchema;

/// A tenant's limits as set; `None` is the configured default (which may be no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    /// Requests per minute over the REST API, per process.
    pub requests_per_minute: Option<u32>,
    /// Recipients accepted per UTC day.
    pub emails_per_day: Option<u64>,
    /// Recipients accepted per UTC calendar month.
    pub emails_per_month: Option<u64>,
}

impl Limits {
    /// These limits, with `defaults` where none is set.
    #[must_use]
    pub fn or(self, defaults: Self) -> Self {
        Self {
            requests_per_minute: self.requests_per_minute.or(defaults.requests_per_minute),
            emails_per_day: self.emails_per_day.or(defaults.emails_per_day),
            emails_per_month: self.emails_per_month.or(defaults.emails_per_month),
        }
    }
}

/// Which sending quota refused a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaPeriod {
    Daily,
    Monthly,
}

impl QuotaPeriod {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Monthly => "monthly",
        }
    }

    /// The error name Resend answers with (its SDKs raise their rate-limit error for both).
    #[must_use]
    pub const fn error_name(self) -> &'static str {
        match self {
            Self::Daily => "daily_quota_exceeded",
            Self::Monthly => "monthly_quota_exceeded",
        }
    }
}

impl fmt::Display for QuotaPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QuotaPeriod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "daily" => Ok(Self::Daily),
            "monthly" => Ok(Self::Monthly),
            other => Err(format!("unknown quota period `{other}`")),
        }
    }
}

/// A calendar month, the period of monthly quotas and of the admin's usage report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonthPeriod {
    pub year: i32,
    pub month: Month,
}

impl MonthPeriod {
    /// The month `at` falls in (UTC).
    #[must_use]
    pub fn of(at: OffsetDateTime) -> Self {
        let date = at.to_offset(time::UtcOffset::UTC).date();
        Self {
            year: date.year(),
            month: date.month(),
        }
    }

    /// Its first day.
    #[must_use]
    pub fn first_day(self) -> Date {
        Date::from_calendar_date(self.year, self.month, 1).unwrap_or(Date::MIN)
    }

    /// The first day of the month after it.
    #[must_use]
    pub fn next_first_day(self) -> Date {
        let (year, month) = match self.month {
            Month::December => (self.year + 1, Month::January),
            month => (self.year, month.next()),
        };
        Date::from_calendar_date(year, month, 1).unwrap_or(Date::MAX)
    }

    /// Its last day.
    #[must_use]
    pub fn last_day(self) -> Date {
        self.next_first_day().previous_day().unwrap_or(Date::MIN)
    }
}

impl fmt::Display for MonthPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, u8::from(self.month))
    }
}

impl FromStr for MonthPeriod {
    type Err = String;

    /// `YYYY-MM`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("`{s}` is not a month: expected YYYY-MM, e.g. 2026-11");
        let (year, month) = s.split_once('-').ok_or_else(invalid)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(invalid());
        }
        let year: i32 = year.parse().map_err(|_| invalid())?;
        let month: u8 = month.parse().map_err(|_| invalid())?;
        let month = Month::try_from(month).map_err(|_| invalid())?;
        Ok(Self { year, month })
    }
}

/// When the daily and the monthly quota that count `now` start again (midnight UTC).
#[must_use]
pub fn resets_at(now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    let midnight = |date: Date| date.with_time(Time::MIDNIGHT).assume_utc();
    let tomorrow = today.next_day().unwrap_or(Date::MAX);
    (
        midnight(tomorrow),
        midnight(MonthPeriod::of(now).next_first_day()),
    )
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_month_parses_and_knows_its_days() {
        let m: MonthPeriod = "2026-11".parse().unwrap();
        assert_eq!(m.to_string(), "2026-11");
        assert_eq!(m.first_day().to_string(), "2026-11-01");
        assert_eq!(m.last_day().to_string(), "2026-11-30");
        let december: MonthPeriod = "2026-12".parse().unwrap();
        assert_eq!(december.next_first_day().to_string(), "2027-01-01");
        let february: MonthPeriod = "2028-02".parse().unwrap();
        assert_eq!(february.last_day().to_string(), "2028-02-29");
        for bad in [
            "2026-13", "2026-1", "26-11", "2026/11", "", "2026-00", "abcd-ef",
        ] {
            assert!(bad.parse::<MonthPeriod>().is_err(), "{bad}");
        }
    }

    #[test]
    fn quotas_reset_at_the_next_utc_midnight_and_month() {
        let (day, month) = resets_at(datetime!(2026-11-30 23:59:59 +01:00));
        // 22:59:59 UTC on the 30th.
        assert_eq!(day, datetime!(2026-12-01 00:00 UTC));
        assert_eq!(month, datetime!(2026-12-01 00:00 UTC));
        let (day, month) = resets_at(datetime!(2026-12-31 12:00 UTC));
        assert_eq!(day, datetime!(2027-01-01 00:00 UTC));
        assert_eq!(month, datetime!(2027-01-01 00:00 UTC));
    }

    #[test]
    fn unset_limits_take_the_defaults() {
        let set = Limits {
            requests_per_minute: Some(10),
            emails_per_day: None,
            emails_per_month: None,
        };
        let defaults = Limits {
            requests_per_minute: Some(600),
            emails_per_day: Some(1_000),
            emails_per_month: None,
        };
        assert_eq!(
            set.or(defaults),
            Limits {
                requests_per_minute: Some(10),
                emails_per_day: Some(1_000),
                emails_per_month: None,
            }
        );
    }

    #[test]
    fn quota_periods_name_resends_errors() {
        assert_eq!(QuotaPeriod::Daily.error_name(), "daily_quota_exceeded");
        assert_eq!("monthly".parse::<QuotaPeriod>(), Ok(QuotaPeriod::Monthly));
    }
}
