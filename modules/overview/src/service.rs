//! The analytics figures, from the rollups: KPIs against the previous period, time
//! series and breakdowns. The pages, the downloads and the API all come here.
//!
//! The database adds the cells up (one row per day and currency, or per value and
//! currency): a page reads a few dozen rows, not the thousands of cells they come from.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use dashboard_core::AppError;
use dashboard_core::db::DbPool;
use diesel::sql_types::{BigInt, Date, Nullable, SmallInt, Text};
use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::measures::{COUNTRY, Dimension, METHOD, Measures};
use crate::scope::Scope;

/// Measures per currency.
pub type ByCurrency = BTreeMap<String, Measures>;

/// A sum of cells: of one day (when summed per day) or one value of a dimension (when
/// broken down), in one currency.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Sum {
    #[diesel(sql_type = Nullable<Date>)]
    pub day: Option<NaiveDate>,
    #[diesel(sql_type = Text)]
    pub value: String,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    payments: i64,
    #[diesel(sql_type = BigInt)]
    approved: i64,
    #[diesel(sql_type = BigInt)]
    declined: i64,
    #[diesel(sql_type = BigInt)]
    captures: i64,
    #[diesel(sql_type = BigInt)]
    captured: i64,
    #[diesel(sql_type = BigInt)]
    refunds: i64,
    #[diesel(sql_type = BigInt)]
    refunded: i64,
    #[diesel(sql_type = BigInt)]
    chargebacks: i64,
    #[diesel(sql_type = BigInt)]
    charged_back: i64,
    #[diesel(sql_type = BigInt)]
    payouts: i64,
    #[diesel(sql_type = BigInt)]
    paid_out: i64,
}

impl Sum {
    pub fn measures(&self) -> Measures {
        Measures {
            payments: self.payments,
            approved: self.approved,
            declined: self.declined,
            captures: self.captures,
            captured: self.captured,
            refunds: self.refunds,
            refunded: self.refunded,
            chargebacks: self.chargebacks,
            charged_back: self.charged_back,
            payouts: self.payouts,
            paid_out: self.paid_out,
        }
    }
}

/// What to add up: `scope`'s cells from `from` to `to` (inclusive) in the grouping that
/// holds `dimension` too, per day or per value of `dimension`.
struct SumQuery<'a> {
    scope: &'a Scope,
    grouping: i16,
    dimension: Option<Dimension>,
    per_day: bool,
    from: NaiveDate,
    to: NaiveDate,
}

impl SumQuery<'_> {
    /// The statement, with `placeholder(n)` for the n-th parameter (from 1) and `no_day`
    /// for a missing day.
    fn sql(&self, placeholder: impl Fn(usize) -> String, no_day: &str) -> String {
        let value = match self.dimension {
            None => "''",
            Some(Dimension::Project) => "CAST(project_id AS TEXT)",
            Some(Dimension::Currency) => "currency",
            Some(Dimension::Method) => "method",
            Some(Dimension::Country) => "country",
            Some(Dimension::Brand) => "brand",
            Some(Dimension::Status) => "status",
            Some(Dimension::Decline) => "decline",
        };
        let day = if self.per_day { "day" } else { no_day };
        let sums: String = Measures::COLUMNS.iter().map(|c| format!(", CAST(SUM({c}) AS BIGINT) AS {c}")).collect();
        let mut n = 0;
        let mut next = || {
            n += 1;
            placeholder(n)
        };
        let mut sql = format!(
            "SELECT {day} AS day, {value} AS value, currency{sums} FROM analytics_cells \
             WHERE zone = {} AND dims = {} AND day >= {} AND day <= {}",
            next(),
            next(),
            next(),
            next()
        );
        let projects: Vec<String> = self.scope.projects.iter().map(|_| next()).collect();
        sql += &format!(
            " AND project_id IN ({})",
            if projects.is_empty() { "NULL".to_owned() } else { projects.join(", ") }
        );
        for (column, filter) in
            [("method", &self.scope.method), ("country", &self.scope.country), ("currency", &self.scope.currency)]
        {
            if filter.is_some() {
                sql += &format!(" AND {column} = {}", next());
            }
        }
        let mut groups = Vec::new();
        if self.per_day {
            groups.push("day");
        }
        if self.dimension.is_some() {
            groups.push(value);
        }
        groups.push("currency");
        sql + " GROUP BY " + &groups.join(", ")
    }
}

/// Binds a [`SumQuery`]'s parameters in the order of [`SumQuery::sql`] (a macro because the
/// boxed query's type is the backend's).
macro_rules! bind_sum_query {
    ($query:expr, $q:expr) => {{
        let q = $q;
        let mut query = $query
            .bind::<Text, _>(q.scope.zone.name())
            .bind::<SmallInt, _>(q.grouping)
            .bind::<Date, _>(q.from)
            .bind::<Date, _>(q.to);
        for project in &q.scope.projects {
            query = query.bind::<BigInt, _>(*project);
        }
        for filter in [&q.scope.method, &q.scope.country, &q.scope.currency].into_iter().flatten() {
            query = query.bind::<Text, _>(filter.clone());
        }
        query
    }};
}

/// Runs a [`SumQuery`] on either database (their parameters are written differently).
trait SumCells {
    fn sum_cells<'a>(&'a mut self, q: &'a SumQuery<'a>) -> BoxFuture<'a, diesel::QueryResult<Vec<Sum>>>;
}

impl SumCells for dashboard_core::db::SqliteConn {
    fn sum_cells<'a>(&'a mut self, q: &'a SumQuery<'a>) -> BoxFuture<'a, diesel::QueryResult<Vec<Sum>>> {
        use diesel_async::RunQueryDsl;
        let sql = q.sql(|_| "?".to_owned(), "NULL");
        Box::pin(async move {
            bind_sum_query!(diesel::sql_query(sql).into_boxed::<diesel::sqlite::Sqlite>(), q).load(self).await
        })
    }
}

impl SumCells for dashboard_core::db::PgConn {
    fn sum_cells<'a>(&'a mut self, q: &'a SumQuery<'a>) -> BoxFuture<'a, diesel::QueryResult<Vec<Sum>>> {
        use diesel_async::RunQueryDsl;
        let sql = q.sql(|n| format!("${n}"), "CAST(NULL AS DATE)");
        Box::pin(
            async move { bind_sum_query!(diesel::sql_query(sql).into_boxed::<diesel::pg::Pg>(), q).load(self).await },
        )
    }
}

/// `scope`'s cells from `from` to `to` added up per day (`dimension` none) or per value
/// of `dimension`, and currency.
async fn sums(
    db: &DbPool,
    scope: &Scope,
    dimension: Option<Dimension>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Sum>, AppError> {
    let filters = if scope.method.is_some() { METHOD } else { 0 } | if scope.country.is_some() { COUNTRY } else { 0 };
    let grouping = filters | dimension.map_or(0, Dimension::bit);
    let q = SumQuery { scope, grouping, dimension, per_day: dimension.is_none(), from, to };
    Ok(dashboard_core::db_run!(db, conn => conn.sum_cells(&q).await)?)
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
    let days = sums(db, scope, None, scope.previous_from, scope.to).await?;
    let mut series: BTreeMap<NaiveDate, ByCurrency> = BTreeMap::new();
    let mut start = scope.grain.bucket(scope.from);
    while start <= scope.to {
        series.insert(start, ByCurrency::new());
        start = scope.grain.next(start);
    }
    let (mut current, mut previous) = (ByCurrency::new(), ByCurrency::new());
    for sum in &days {
        let Some(day) = sum.day else { continue };
        let measures = sum.measures();
        if day >= scope.from {
            *current.entry(sum.currency.clone()).or_default() += measures;
            let bucket = series.entry(scope.grain.bucket(day)).or_default();
            *bucket.entry(sum.currency.clone()).or_default() += measures;
        } else {
            *previous.entry(sum.currency.clone()).or_default() += measures;
        }
    }
    Ok(Totals { current, previous, series: series.into_iter().collect() })
}

/// The period's figures per value of `dimension`, largest first (by payments, then by
/// value).
pub async fn breakdown(
    db: &DbPool,
    scope: &Scope,
    dimension: Dimension,
) -> Result<Vec<(String, ByCurrency)>, AppError> {
    let mut values: BTreeMap<String, ByCurrency> = BTreeMap::new();
    for sum in sums(db, scope, Some(dimension), scope.from, scope.to).await? {
        *values.entry(sum.value.clone()).or_default().entry(sum.currency.clone()).or_default() += sum.measures();
    }
    let mut rows: Vec<(String, ByCurrency)> = values.into_iter().collect();
    let weight = |sums: &ByCurrency| -> (i64, i64) {
        let all = total(sums);
        (all.payments, all.captures + all.payouts)
    };
    rows.sort_by(|a, b| weight(&b.1).cmp(&weight(&a.1)).then_with(|| a.0.cmp(&b.0)));
    Ok(rows)
}

/// All currencies together (only the counts of which mean something).
pub fn total(sums: &ByCurrency) -> Measures {
    let mut all = Measures::default();
    for measures in sums.values() {
        all += *measures;
    }
    all
}
