//! The analytics figures, from the rollups: KPIs against the previous period, time
//! series and breakdowns. The pages, the downloads and the API all come here.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use dashboard_core::AppError;
use dashboard_core::db::DbPool;
use dashboard_core::schema::analytics_cells;
use serde::Serialize;

use crate::measures::{COUNTRY, Dimension, METHOD, Measures};
use crate::scope::Scope;

/// Measures per currency.
pub type ByCurrency = BTreeMap<String, Measures>;

/// One rollup cell as read.
#[derive(Debug, Clone)]
pub struct Cell {
    pub day: NaiveDate,
    pub project_id: i64,
    pub currency: String,
    pub method: String,
    pub country: String,
    pub brand: String,
    pub status: String,
    pub decline: String,
    pub measures: Measures,
}

impl Cell {
    /// This cell's value of `dimension`.
    pub fn value(&self, dimension: Dimension) -> String {
        match dimension {
            Dimension::Project => self.project_id.to_string(),
            Dimension::Method => self.method.clone(),
            Dimension::Brand => self.brand.clone(),
            Dimension::Country => self.country.clone(),
            Dimension::Currency => self.currency.clone(),
            Dimension::Status => self.status.clone(),
            Dimension::Decline => self.decline.clone(),
        }
    }
}

type CellRow = (
    NaiveDate,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64),
);

/// The cells of `scope`'s filters from `from` to `to` (inclusive) in the grouping that
/// also holds `dimension` (none: the filters' own).
pub async fn cells(
    db: &DbPool,
    scope: &Scope,
    dimension: Option<Dimension>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Cell>, AppError> {
    let filters = if scope.method.is_some() { METHOD } else { 0 } | if scope.country.is_some() { COUNTRY } else { 0 };
    let grouping = filters | dimension.map_or(0, Dimension::bit);
    let rows: Vec<CellRow> = dashboard_core::db_run!(db, conn => {
        let mut query = analytics_cells::table
            .filter(analytics_cells::zone.eq(scope.zone.name()))
            .filter(analytics_cells::dims.eq(grouping))
            .filter(analytics_cells::day.ge(from))
            .filter(analytics_cells::day.le(to))
            .filter(analytics_cells::project_id.eq_any(&scope.projects))
            .select((
                analytics_cells::day,
                analytics_cells::project_id,
                analytics_cells::currency,
                analytics_cells::method,
                analytics_cells::country,
                analytics_cells::brand,
                analytics_cells::status,
                analytics_cells::decline,
                (
                    analytics_cells::payments,
                    analytics_cells::approved,
                    analytics_cells::declined,
                    analytics_cells::captures,
                    analytics_cells::captured,
                    analytics_cells::refunds,
                    analytics_cells::refunded,
                    analytics_cells::chargebacks,
                    analytics_cells::charged_back,
                    analytics_cells::payouts,
                    analytics_cells::paid_out,
                ),
            ))
            .into_boxed();
        if let Some(method) = &scope.method {
            query = query.filter(analytics_cells::method.eq(method));
        }
        if let Some(country) = &scope.country {
            query = query.filter(analytics_cells::country.eq(country));
        }
        if let Some(currency) = &scope.currency {
            query = query.filter(analytics_cells::currency.eq(currency));
        }
        query.load(conn).await
    })?;
    Ok(rows
        .into_iter()
        .map(|(day, project_id, currency, method, country, brand, status, decline, m)| Cell {
            day,
            project_id,
            currency,
            method,
            country,
            brand,
            status,
            decline,
            measures: Measures {
                payments: m.0,
                approved: m.1,
                declined: m.2,
                captures: m.3,
                captured: m.4,
                refunds: m.5,
                refunded: m.6,
                chargebacks: m.7,
                charged_back: m.8,
                payouts: m.9,
                paid_out: m.10,
            },
        })
        .collect())
}

/// Adds up cells per currency.
pub fn by_currency<'a>(cells: impl IntoIterator<Item = &'a Cell>) -> ByCurrency {
    let mut sums = ByCurrency::new();
    for cell in cells {
        *sums.entry(cell.currency.clone()).or_default() += cell.measures;
    }
    sums
}

/// A period's figures and the previous period's, with the days of the period.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub current: ByCurrency,
    pub previous: ByCurrency,
    /// Per bucket of the scope's grain, every bucket of the period (empty ones too).
    pub series: Vec<(NaiveDate, ByCurrency)>,
}

/// KPIs of the period and the previous one, and the time series.
pub async fn totals(db: &DbPool, scope: &Scope) -> Result<Totals, AppError> {
    Ok(totals_of(scope, &base_cells(db, scope).await?))
}

/// The cells of the filters alone over the period and the previous one: the totals, and
/// the breakdowns by project and currency, come from them.
pub async fn base_cells(db: &DbPool, scope: &Scope) -> Result<Vec<Cell>, AppError> {
    cells(db, scope, None, scope.previous_from, scope.to).await
}

/// [`totals`] from the [`base_cells`].
pub fn totals_of(scope: &Scope, cells: &[Cell]) -> Totals {
    let (current, previous): (Vec<&Cell>, Vec<&Cell>) = cells.iter().partition(|cell| cell.day >= scope.from);
    let mut series: BTreeMap<NaiveDate, ByCurrency> = BTreeMap::new();
    let mut start = scope.grain.bucket(scope.from);
    while start <= scope.to {
        series.insert(start, ByCurrency::new());
        start = scope.grain.next(start);
    }
    for cell in &current {
        let bucket = series.entry(scope.grain.bucket(cell.day)).or_default();
        *bucket.entry(cell.currency.clone()).or_default() += cell.measures;
    }
    Totals { current: by_currency(current), previous: by_currency(previous), series: series.into_iter().collect() }
}

/// The period's figures per value of `dimension`, largest first (by payments, then by
/// value).
pub async fn breakdown(
    db: &DbPool,
    scope: &Scope,
    dimension: Dimension,
) -> Result<Vec<(String, ByCurrency)>, AppError> {
    let cells = cells(db, scope, Some(dimension), scope.from, scope.to).await?;
    Ok(breakdown_of(scope, &cells, dimension))
}

/// [`breakdown`] from cells that hold `dimension` (the [`base_cells`] hold the project
/// and the currency).
pub fn breakdown_of(scope: &Scope, cells: &[Cell], dimension: Dimension) -> Vec<(String, ByCurrency)> {
    let mut values: BTreeMap<String, ByCurrency> = BTreeMap::new();
    for cell in cells.iter().filter(|cell| cell.day >= scope.from && cell.day <= scope.to) {
        let sums = values.entry(cell.value(dimension)).or_default();
        *sums.entry(cell.currency.clone()).or_default() += cell.measures;
    }
    let mut rows: Vec<(String, ByCurrency)> = values.into_iter().collect();
    let weight = |sums: &ByCurrency| -> (i64, i64) {
        let all = total(sums);
        (all.payments, all.captures + all.payouts)
    };
    rows.sort_by(|a, b| weight(&b.1).cmp(&weight(&a.1)).then_with(|| a.0.cmp(&b.0)));
    rows
}

/// All currencies together (only the counts of which mean something).
pub fn total(sums: &ByCurrency) -> Measures {
    let mut all = Measures::default();
    for measures in sums.values() {
        all += *measures;
    }
    all
}
