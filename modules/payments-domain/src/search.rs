//! The payment registry's query: filters, search, sort and keyset pagination, scoped to
//! the principal's company and projects. Pages never count the matching rows (that
//! costs hundreds of milliseconds on a million payments); they ask for one row more than
//! they show to know whether a next page exists.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::model::Status;
use super::service::Money;
use diesel::connection::DefaultLoadingMode;
use diesel::prelude::{Queryable, Selectable};
use tokio::sync::mpsc;

use crate::schema::payments;
use dashboard_core::auth::{Principal, ProjectScope};
use dashboard_core::db::DbConn;
use dashboard_core::error::AppError;
use dashboard_core::export::Rows;
use dashboard_core::state::AppState;
use dashboard_core::time::{StoredTime, local_days};

/// The registry's filters; every field is optional and they live in the URL.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PaymentFilter {
    /// First day, `YYYY-MM-DD`, in the time zone of the person asking.
    pub from: Option<String>,
    /// Last day, inclusive.
    pub to: Option<String>,
    /// A project id (text, so that an empty form field means "all").
    pub project_id: Option<String>,
    pub status: Option<String>,
    pub kind: Option<String>,
    pub method: Option<String>,
    pub currency: Option<String>,
    /// Decimal amounts in the chosen currency (two decimals when no currency is chosen).
    pub amount_min: Option<String>,
    pub amount_max: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// Payment id, merchant order id, customer e-mail, card first 6 or last 4 digits.
    pub q: Option<String>,
    /// `date_desc` (default), `date_asc`, `amount_desc` or `amount_asc`.
    pub sort: Option<String>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Rows per page in the dashboard: 25, 50 (default), 100 or 200.
    pub size: Option<String>,
}

impl PaymentFilter {
    /// The page size the dashboard shows.
    pub fn page_size(&self) -> i64 {
        text(&self.size).and_then(|s| s.parse().ok()).filter(|s| [25, 50, 100, 200].contains(s)).unwrap_or(50)
    }
}

/// One row of the registry.
#[derive(Debug, Clone, Serialize, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PaymentSummary {
    pub id: String,
    pub project_id: i64,
    pub kind: String,
    pub method: String,
    pub status: String,
    pub amount: Money,
    pub merchant_order_id: Option<String>,
    pub customer_email: Option<String>,
    pub customer_country: Option<String>,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub decline_reason: Option<String>,
    pub created_at: dashboard_core::time::Timestamp,
}

/// The registry's orders, as the API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
pub enum SortOrder {
    DateDesc,
    DateAsc,
    AmountDesc,
    AmountAsc,
}

impl SortOrder {
    /// The filter's text for this order.
    pub fn as_str(self) -> &'static str {
        match self {
            SortOrder::DateDesc => "date_desc",
            SortOrder::DateAsc => "date_asc",
            SortOrder::AmountDesc => "amount_desc",
            SortOrder::AmountAsc => "amount_asc",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    DateDesc,
    DateAsc,
    AmountDesc,
    AmountAsc,
}

impl Sort {
    fn parse(text: Option<&str>) -> Result<Sort, AppError> {
        match text.unwrap_or("date_desc") {
            "" | "date_desc" => Ok(Sort::DateDesc),
            "date_asc" => Ok(Sort::DateAsc),
            "amount_desc" => Ok(Sort::AmountDesc),
            "amount_asc" => Ok(Sort::AmountAsc),
            other => Err(AppError::BadRequest(format!("Unknown sort order {other:?}."))),
        }
    }
}

fn text(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn amount(value: &Option<String>, currency: Option<&str>, what: &str) -> Result<Option<i64>, AppError> {
    text(value)
        .map(|v| {
            dashboard_core::money::parse_amount(&v, currency.unwrap_or("EUR"))
                .ok_or_else(|| AppError::BadRequest(format!("The {what} amount is not a valid amount.")))
        })
        .transpose()
}

/// The keyset cursor: the sort key and id of the last row shown, opaque.
pub(crate) fn encode_cursor(key: i64, id: i64) -> String {
    dashboard_core::cursor::encode(&[key, id])
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<(i64, i64), AppError> {
    dashboard_core::cursor::decode::<2>(cursor).map(|[key, id]| (key, id))
}

fn micros(value: &NaiveDateTime) -> i64 {
    value.and_utc().timestamp_micros()
}

pub(crate) fn from_micros(value: i64) -> Result<NaiveDateTime, AppError> {
    chrono::DateTime::from_timestamp_micros(value)
        .map(|t| t.naive_utc())
        .ok_or_else(|| AppError::BadRequest("The page cursor is not valid.".to_owned()))
}

/// `(payments.<column>, payments.id) <op> (key, id)` as a row-value comparison.
macro_rules! keyset {
    ($column:literal, $op:literal, $key:expr, $key_type:ty, $id:expr) => {
        diesel::dsl::sql::<diesel::sql_types::Bool>(concat!("(payments.", $column, ", payments.id) ", $op, " ("))
            .bind::<$key_type, _>($key)
            .sql(", ")
            .bind::<diesel::sql_types::BigInt, _>($id)
            .sql(")")
    };
}

/// One payment of the registry as it is read. `created_at` is a [`StoredTime`], read
/// quickly on SQLite (an export reads a million of them).
#[derive(Queryable, Selectable)]
#[diesel(table_name = payments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct PaymentRecord {
    pub id: i64,
    pub public_id: String,
    pub project_id: i64,
    pub kind: String,
    pub method: String,
    pub status: String,
    pub currency: String,
    pub amount: i64,
    pub merchant_order_id: Option<String>,
    pub customer_email: Option<String>,
    pub customer_country: Option<String>,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub decline_reason: Option<String>,
    pub created_at: StoredTime,
}

/// The registry's query for a [`Checked`] filter, newest first (or as sorted), without a
/// limit (a macro because the query is built for each database backend).
macro_rules! registry_query {
    ($q:expr) => {{
        #[allow(unused_imports)]
        use dashboard_core::db::prelude::*;
        let mut query = payments::table
            .filter(payments::company_id.eq($q.company_id))
            .select(PaymentRecord::as_select())
            .into_boxed();
        if let Some(ids) = &$q.allowed {
            query = query.filter(payments::project_id.eq_any(ids.clone()));
        }
        if let Some(project) = $q.project {
            query = query.filter(payments::project_id.eq(project));
        }
        if let Some(from) = $q.from {
            query = query.filter(payments::created_at.ge(from));
        }
        if let Some(to) = $q.to {
            query = query.filter(payments::created_at.lt(to));
        }
        if let Some(status) = &$q.status {
            query = query.filter(payments::status.eq(status.clone()));
        }
        if let Some(kind) = &$q.kind {
            query = query.filter(payments::kind.eq(kind.clone()));
        }
        if let Some(method) = &$q.method {
            query = query.filter(payments::method.eq(method.clone()));
        }
        if let Some(currency) = &$q.currency {
            query = query.filter(payments::currency.eq(currency.clone()));
        }
        if let Some(min) = $q.amount_min {
            query = query.filter(payments::amount.ge(min));
        }
        if let Some(max) = $q.amount_max {
            query = query.filter(payments::amount.le(max));
        }
        if let Some(country) = &$q.country {
            query = query.filter(payments::customer_country.eq(country.clone()));
        }
        if let Some(q) = &$q.search {
            let digits = q.bytes().all(|b| b.is_ascii_digit());
            query = if q.starts_with("pay_") {
                query.filter(payments::public_id.eq(q.clone()))
            } else if q.contains('@') {
                query.filter(payments::customer_email.eq(q.to_lowercase()))
            } else if digits && q.len() == 4 {
                query.filter(payments::card_last4.eq(q.clone()))
            } else if digits && q.len() == 6 {
                query.filter(payments::card_first6.eq(q.clone()))
            } else {
                query.filter(payments::merchant_order_id.eq(q.clone()))
            };
        }
        // Row-value comparisons, so that both databases seek to the cursor in the index
        // instead of reading every row before it (an `OR` of the two columns would).
        query = match ($q.sort, $q.cursor, $q.cursor_time) {
            (Sort::DateDesc, Some((_, id)), Some(time)) => {
                query.filter(keyset!("created_at", "<", time, diesel::sql_types::Timestamp, id))
            }
            (Sort::DateAsc, Some((_, id)), Some(time)) => {
                query.filter(keyset!("created_at", ">", time, diesel::sql_types::Timestamp, id))
            }
            (Sort::AmountDesc, Some((key, id)), _) => {
                query.filter(keyset!("amount", "<", key, diesel::sql_types::BigInt, id))
            }
            (Sort::AmountAsc, Some((key, id)), _) => {
                query.filter(keyset!("amount", ">", key, diesel::sql_types::BigInt, id))
            }
            _ => query,
        };
        query = match $q.sort {
            Sort::DateDesc => query.order((payments::created_at.desc(), payments::id.desc())),
            Sort::DateAsc => query.order((payments::created_at.asc(), payments::id.asc())),
            Sort::AmountDesc => query.order((payments::amount.desc(), payments::id.desc())),
            Sort::AmountAsc => query.order((payments::amount.asc(), payments::id.asc())),
        };
        query
    }};
}

/// A filter checked and resolved for the principal.
#[derive(Debug, Clone)]
struct Checked {
    company_id: i64,
    sort: Sort,
    currency: Option<String>,
    from: Option<NaiveDateTime>,
    to: Option<NaiveDateTime>,
    amount_min: Option<i64>,
    amount_max: Option<i64>,
    status: Option<String>,
    kind: Option<String>,
    method: Option<String>,
    country: Option<String>,
    cursor: Option<(i64, i64)>,
    cursor_time: Option<NaiveDateTime>,
    project: Option<i64>,
    /// The principal's projects, unless they see all of the company's.
    allowed: Option<Vec<i64>>,
    search: Option<String>,
}

/// Checks `filter` (a clear error for a bad one); `None` when it asks for a project the
/// principal may not see, which nothing matches.
fn check(principal: &Principal, filter: &PaymentFilter) -> Result<Option<Checked>, AppError> {
    let sort = Sort::parse(filter.sort.as_deref())?;
    let currency = text(&filter.currency).map(|c| c.to_ascii_uppercase());
    // Whole days where the person is: the same day lists the same payments here, in
    // the analytics and in a report.
    let (from, to) = local_days(filter.from.as_deref(), filter.to.as_deref(), &principal.time_zone)?;
    let amount_min = amount(&filter.amount_min, currency.as_deref(), "minimum")?;
    let amount_max = amount(&filter.amount_max, currency.as_deref(), "maximum")?;
    let status = text(&filter.status);
    if let Some(status) = &status
        && Status::parse(status).is_none()
    {
        return Err(AppError::BadRequest(format!("Unknown status {status:?}.")));
    }
    let (kind, method, country) =
        (text(&filter.kind), text(&filter.method), text(&filter.country).map(|c| c.to_ascii_uppercase()));
    let cursor = text(&filter.after).map(|c| decode_cursor(&c)).transpose()?;
    let cursor_time = match (sort, cursor) {
        (Sort::DateDesc | Sort::DateAsc, Some((key, _))) => Some(from_micros(key)?),
        _ => None,
    };
    let project = text(&filter.project_id)
        .map(|p| p.parse::<i64>().map_err(|_| AppError::BadRequest("The project must be a project id.".to_owned())))
        .transpose()?;
    if let Some(project) = project
        && !principal.projects.allows(project)
    {
        return Ok(None);
    }
    let allowed: Option<Vec<i64>> = match &principal.projects {
        ProjectScope::All => None,
        ProjectScope::Only(ids) => Some(ids.iter().copied().collect()),
    };
    let search = text(&filter.q);
    let company_id = principal.company_id;
    Ok(Some(Checked {
        company_id,
        sort,
        currency,
        from,
        to,
        amount_min,
        amount_max,
        status,
        kind,
        method,
        country,
        cursor,
        cursor_time,
        project,
        allowed,
        search,
    }))
}

/// Checks `filter` for the principal: a clear error for a bad one.
pub fn check_filter(principal: &Principal, filter: &PaymentFilter) -> Result<(), AppError> {
    check(principal, filter).map(|_| ())
}

/// One page of payments matching `filter`, and the cursor of the next page.
pub async fn search(
    state: &AppState,
    principal: &Principal,
    filter: &PaymentFilter,
    limit: i64,
) -> Result<(Vec<PaymentSummary>, Option<String>), AppError> {
    let (records, next) = records(state, principal, filter, limit).await?;
    Ok((records.into_iter().map(summary).collect(), next))
}

/// [`search`] as the payments are read.
async fn records(
    state: &AppState,
    principal: &Principal,
    filter: &PaymentFilter,
    limit: i64,
) -> Result<(Vec<PaymentRecord>, Option<String>), AppError> {
    let Some(checked) = check(principal, filter)? else { return Ok((Vec::new(), None)) };
    let sort = checked.sort;
    let mut rows: Vec<PaymentRecord> = dashboard_core::db_run!(state.db, conn => {
        registry_query!(checked).limit(limit + 1).load(conn).await
    })?;
    let limit = usize::try_from(limit).unwrap_or(50);
    let next = rows.get(limit).and(rows.get(limit - 1)).map(|row| {
        let key = match sort {
            Sort::DateDesc | Sort::DateAsc => micros(&row.created_at.0),
            Sort::AmountDesc | Sort::AmountAsc => row.amount,
        };
        encode_cursor(key, row.id)
    });
    rows.truncate(limit);
    Ok((rows, next))
}

fn summary(row: PaymentRecord) -> PaymentSummary {
    PaymentSummary {
        id: row.public_id,
        project_id: row.project_id,
        kind: row.kind,
        method: row.method,
        status: row.status,
        amount: Money { amount: row.amount, currency: row.currency },
        merchant_order_id: row.merchant_order_id,
        customer_email: row.customer_email,
        customer_country: row.customer_country,
        card_brand: row.card_brand,
        card_last4: row.card_last4,
        decline_reason: row.decline_reason,
        created_at: dashboard_core::time::Timestamp::from(&row.created_at.0),
    }
}

/// Rows of an export sent in one batch.
const EXPORT_BATCH: usize = 1_000;

/// Every payment matching `filter` (from its start: `after` is ignored), each made into
/// an export row by `row`; the export is audited. A bad filter is refused before
/// anything is sent.
pub async fn export_rows(
    state: &AppState,
    principal: &Principal,
    filter: &PaymentFilter,
    row: fn(PaymentSummary, [String; 2]) -> Vec<String>,
) -> Result<Rows, AppError> {
    check(principal, filter)?;
    // Who took which payments out of the dashboard, from the page or the API alike.
    dashboard_core::audit::export(&state.db, principal, "payments.export", filter).await?;
    let zone = principal.time_zone.clone();
    let made = move |found: PaymentRecord| {
        let created = dashboard_core::time::file_columns(&found.created_at.0, &zone);
        row(summary(found), created)
    };
    stream(state, principal, filter, move |found| found.into_iter().map(&made).collect()).await
}

/// Every payment matching `filter` in its order (from its start: `after` is ignored), in
/// batches, each batch made into what the reader takes by `make`. One query reads them
/// all in one pass, which is several times faster than page by page (each page seeks the
/// index again, and on SQLite its rows cross between threads twice): on SQLite on a
/// blocking thread, on PostgreSQL as its rows arrive. A bad filter is refused before anything is sent; a dropped
/// receiver stops the reading.
pub async fn stream<B, F>(
    state: &AppState,
    principal: &Principal,
    filter: &PaymentFilter,
    make: F,
) -> Result<mpsc::Receiver<Result<B, AppError>>, AppError>
where
    B: Send + 'static,
    F: Fn(Vec<PaymentRecord>) -> B + Send + Sync + 'static,
{
    let filter = PaymentFilter { after: None, ..filter.clone() };
    let Some(checked) = check(principal, &filter)? else { return Ok(mpsc::channel(1).1) };
    if let DbConn::Postgres(mut conn) = state.db.get().await? {
        // One query whose rows arrive as they are read (the connection's own back pressure
        // paces it): a page query per thousand rows costs PostgreSQL twice the work.
        let (sender, made) = mpsc::channel(dashboard_core::export::BATCHES_AHEAD);
        tokio::spawn(async move {
            let read = async {
                #[allow(unused_imports)]
                use dashboard_core::db::prelude::*;
                use futures_util::TryStreamExt;
                let mut found = registry_query!(checked).load_stream::<PaymentRecord>(&mut *conn).await?;
                let mut batch = Vec::with_capacity(EXPORT_BATCH);
                while let Some(payment) = found.try_next().await? {
                    batch.push(payment);
                    // A closed channel: the reader is gone, stop reading.
                    if batch.len() == EXPORT_BATCH && sender.send(Ok(make(std::mem::take(&mut batch)))).await.is_err() {
                        return Ok(());
                    }
                }
                if !batch.is_empty() {
                    let _ = sender.send(Ok(make(batch))).await;
                }
                Ok::<_, AppError>(())
            };
            if let Err(error) = read.await {
                let _ = sender.send(Err(error)).await;
            }
        });
        return Ok(made);
    }
    let DbConn::Sqlite(mut conn) = state.db.get().await? else {
        return Err(AppError::Internal("a pool gave a connection of neither backend".to_owned()));
    };
    // Three stages, so that the database read, the making of items and their reader each
    // have a thread: the read on a blocking thread, the rest as tasks.
    let (found_sender, mut found) = mpsc::channel::<Vec<PaymentRecord>>(dashboard_core::export::BATCHES_AHEAD);
    let (sender, items) = mpsc::channel(dashboard_core::export::BATCHES_AHEAD);
    let read = conn.spawn_blocking(move |conn| {
        let query = registry_query!(checked);
        let mut batch = Vec::with_capacity(EXPORT_BATCH);
        for item in diesel::RunQueryDsl::load_iter::<PaymentRecord, DefaultLoadingMode>(query, conn)? {
            batch.push(item?);
            // A closed channel: the reader is gone, stop reading.
            if batch.len() == EXPORT_BATCH && found_sender.blocking_send(std::mem::take(&mut batch)).is_err() {
                return Ok(());
            }
        }
        if !batch.is_empty() {
            let _ = found_sender.blocking_send(batch);
        }
        Ok(())
    });
    let failed = sender.clone();
    tokio::spawn(async move {
        if let Err(error) = read.await {
            let _ = failed.send(Err(error.into())).await;
        }
        drop(conn);
    });
    tokio::spawn(async move {
        while let Some(batch) = found.recv().await {
            if sender.send(Ok(make(batch))).await.is_err() {
                return;
            }
        }
    });
    Ok(items)
}
