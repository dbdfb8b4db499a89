//! What an analytics view covers: the period (in the user's time zone), the projects and
//! the filters. Parsed from the page's query string, which is also the API's.

use chrono::{Datelike, Days, Months, NaiveDate};
use chrono_tz::Tz;
use dashboard_core::auth::Principal;
use dashboard_core::db::DbPool;
use dashboard_core::web::query_string;
use dashboard_core::{AppError, directory};
use serde::{Deserialize, Serialize};

use crate::rollup::{self, UTC, local_day};

/// The longest period a view may cover.
const MAX_DAYS: u64 = 3 * 366;

/// The filters as they come in the URL. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Filters {
    /// `today`, `7d`, `30d` (the default), `this_month`, `previous_month` or `custom`
    /// (with `from` and `to`).
    pub period: Option<String>,
    /// First day, `YYYY-MM-DD`, in the caller's time zone (with `period=custom`).
    pub from: Option<String>,
    /// Last day, inclusive.
    pub to: Option<String>,
    /// Project ids separated by commas; all the caller may see when empty.
    pub projects: Option<String>,
    /// `card`, `bank_transfer` or `wallet`.
    pub method: Option<String>,
    /// ISO 4217 code: only payments in this currency.
    pub currency: Option<String>,
    /// ISO 3166-1 alpha-2 code of the customer's country.
    pub country: Option<String>,
    /// `day`, `week` or `month`: the time series' buckets (by default days up to 62
    /// days, weeks up to a year, months beyond).
    pub grain: Option<String>,
    /// The currency money figures are shown in (the one with the most turnover by
    /// default).
    pub show: Option<String>,
}

impl Filters {
    /// The filters as a query string (empty values left out).
    pub fn query(&self) -> String {
        query_string(&[
            ("period", &self.period),
            ("from", &self.from),
            ("to", &self.to),
            ("projects", &self.projects),
            ("method", &self.method),
            ("currency", &self.currency),
            ("country", &self.country),
            ("grain", &self.grain),
            ("show", &self.show),
        ])
    }
}

/// The buckets of a time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grain {
    Day,
    Week,
    Month,
}

impl Grain {
    /// The first day of the bucket holding `day` (weeks start on Monday).
    pub fn bucket(self, day: NaiveDate) -> NaiveDate {
        match self {
            Grain::Day => day,
            Grain::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
            Grain::Month => day.with_day(1).unwrap_or(day),
        }
    }

    /// The first day of the bucket after the one starting on `start`.
    pub fn next(self, start: NaiveDate) -> NaiveDate {
        match self {
            Grain::Day => start + Days::new(1),
            Grain::Week => start + Days::new(7),
            Grain::Month => start + Months::new(1),
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Grain::Day => "day",
            Grain::Week => "week",
            Grain::Month => "month",
        }
    }
}

/// A resolved view: checked filters, concrete days, the projects the caller may see.
#[derive(Debug, Clone, Serialize)]
pub struct Scope {
    #[serde(skip)]
    pub zone: Tz,
    /// The zone the days are of (UTC while the user's zone is still being prepared).
    pub zone_name: String,
    /// The user's zone is still being prepared: days are UTC days meanwhile.
    pub zone_pending: bool,
    pub period: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub previous_from: NaiveDate,
    pub previous_to: NaiveDate,
    pub projects: Vec<i64>,
    pub method: Option<String>,
    pub currency: Option<String>,
    pub country: Option<String>,
    pub grain: Grain,
    pub show: Option<String>,
}

pub const PERIODS: [(&str, &str); 6] = [
    ("today", "Today"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("this_month", "This month"),
    ("previous_month", "Previous month"),
    ("custom", "Custom"),
];

fn bad(message: &str) -> AppError {
    AppError::BadRequest(message.to_owned())
}

fn date(value: Option<&str>, what: &str) -> Result<NaiveDate, AppError> {
    let value =
        value.filter(|v| !v.is_empty()).ok_or_else(|| bad(&format!("A custom period needs its {what} day.")))?;
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| bad(&format!("The {what} day must be a date like 2026-11-27.")))
}

/// The days of a period preset, counted back from `today`.
pub fn period_days(period: &str, today: NaiveDate, filters: &Filters) -> Result<(NaiveDate, NaiveDate), AppError> {
    let month_start = today.with_day(1).unwrap_or(today);
    let days = match period {
        "today" => (today, today),
        "7d" => (today - Days::new(6), today),
        "30d" => (today - Days::new(29), today),
        "this_month" => (month_start, today),
        "previous_month" => (month_start - Months::new(1), month_start - Days::new(1)),
        "custom" => {
            let (from, to) = (date(filters.from.as_deref(), "first")?, date(filters.to.as_deref(), "last")?);
            if from > to {
                return Err(bad("The first day comes after the last day."));
            }
            (from, to)
        }
        _ => return Err(bad("The period must be today, 7d, 30d, this_month, previous_month or custom.")),
    };
    if (days.1 - days.0).num_days() as u64 >= MAX_DAYS {
        return Err(bad("A period can cover three years at most."));
    }
    Ok(days)
}

fn optional(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn code(value: &Option<String>, len: usize, what: &str) -> Result<Option<String>, AppError> {
    match optional(value).map(|v| v.to_ascii_uppercase()) {
        Some(v) if v.len() != len || !v.bytes().all(|b| b.is_ascii_uppercase()) => {
            Err(bad(&format!("The {what} must be {len} letters.")))
        }
        other => Ok(other),
    }
}

impl Scope {
    /// Checks `filters` for `principal`; the days are the user's (or UTC's while the
    /// user's zone is being prepared).
    pub async fn resolve(db: &DbPool, principal: &Principal, filters: &Filters) -> Result<Scope, AppError> {
        let wanted = rollup::zone(&principal.time_zone).unwrap_or(UTC);
        let zone_pending = !rollup::ready(db, wanted).await?;
        let zone = if zone_pending && wanted != UTC { UTC } else { wanted };
        let visible: Vec<i64> = directory::visible_projects(db, principal).await?.into_iter().map(|p| p.id).collect();
        Scope::of(zone, zone_pending && wanted != UTC, dashboard_core::time::now(), &visible, filters)
    }

    /// The scope of `filters` at instant `now`, for a caller who may see `visible`.
    pub fn of(
        zone: Tz,
        zone_pending: bool,
        now: chrono::NaiveDateTime,
        visible: &[i64],
        filters: &Filters,
    ) -> Result<Scope, AppError> {
        let period = optional(&filters.period).unwrap_or_else(|| "30d".to_owned());
        let (from, to) = period_days(&period, local_day(zone, now), filters)?;
        let days = (to - from).num_days() as u64 + 1;
        let length = Days::new(days);
        let projects = match optional(&filters.projects) {
            None => visible.to_vec(),
            Some(list) => {
                let mut chosen = Vec::new();
                for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let id: i64 = part.parse().map_err(|_| bad("Projects are given by their ids, like 1,2."))?;
                    if !visible.contains(&id) {
                        return Err(bad(&format!("There is no project {id} you may see.")));
                    }
                    chosen.push(id);
                }
                chosen
            }
        };
        let method = optional(&filters.method);
        if let Some(m) = &method
            && dashboard_payments_domain::model::Method::parse(m).is_none()
        {
            return Err(bad("The method must be card, bank_transfer or wallet."));
        }
        let grain = match optional(&filters.grain).as_deref() {
            None if days <= 62 => Grain::Day,
            None if days <= 366 => Grain::Week,
            None => Grain::Month,
            Some("day") => Grain::Day,
            Some("week") => Grain::Week,
            Some("month") => Grain::Month,
            Some(_) => return Err(bad("The grain must be day, week or month.")),
        };
        Ok(Scope {
            zone,
            zone_name: zone.name().to_owned(),
            zone_pending,
            period,
            from,
            to,
            previous_from: from - length,
            previous_to: from - Days::new(1),
            projects,
            method,
            currency: code(&filters.currency, 3, "currency")?,
            country: code(&filters.country, 2, "country")?,
            grain,
            show: code(&filters.show, 3, "currency shown")?,
        })
    }
}
