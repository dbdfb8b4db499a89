//! Batch files: many refunds, captures, releases, reversals and payouts in one CSV file.
//! The file is checked row by row before anything runs (`validate.rs`) and stored with
//! its problems; a valid one is confirmed (with an SMS code bound to the file's hash, rows
//! and totals when it pays out), then processed in the background (`run.rs`), each row
//! once (its idempotency key is the batch and the row), across restarts; it can be paused
//! and cancelled, and its results downloaded.

use chrono::NaiveDateTime;
use diesel::QueryResult;
use futures_util::future::BoxFuture;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::schema::{batch_rows, batches};
use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::Principal;
use dashboard_core::db::prelude::*;
use dashboard_core::sms::{self, Confirmation};
use dashboard_core::time::{local_days, now};
use dashboard_core::{AppError, AppState, record_audit};
use dashboard_payments_domain::card::Card;
use dashboard_payments_domain::service::PaymentAction;

pub(crate) mod pages;
pub mod run;
pub mod validate;

/// The largest file taken (it is held in memory while its rows are checked).
pub const MAX_FILE_BYTES: usize = 20 * 1_048_576;
/// The most rows in one file.
pub const MAX_ROWS: usize = 100_000;
/// Rows checked and stored at a time.
const CHECKED_TOGETHER: usize = 2_000;

/// What a row does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Action(PaymentAction),
    Payout,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Action(PaymentAction::Refund),
        Kind::Action(PaymentAction::Capture),
        Kind::Action(PaymentAction::Release),
        Kind::Action(PaymentAction::Reversal),
        Kind::Payout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Action(action) => action.as_str(),
            Kind::Payout => "payout",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// As people read it on a row.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Action(action) => action.verb_noun(),
            Kind::Payout => "Payout",
        }
    }

    /// Plural, as totals read: `refunds 125.00 EUR`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Action(PaymentAction::Refund) => "refunds",
            Kind::Action(PaymentAction::Capture) => "captures",
            Kind::Action(PaymentAction::Release) => "releases",
            Kind::Action(PaymentAction::Reversal) => "reversals",
            Kind::Payout => "payouts",
        }
    }
}

/// Where a batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum BatchStatus {
    /// Its rows are being read, checked and stored.
    Validating,
    /// Some rows have problems: nothing will run.
    Invalid,
    AwaitingConfirmation,
    Processing,
    Paused,
    Done,
    Cancelled,
}

impl BatchStatus {
    pub const ALL: [BatchStatus; 7] = [
        BatchStatus::Validating,
        BatchStatus::Invalid,
        BatchStatus::AwaitingConfirmation,
        BatchStatus::Processing,
        BatchStatus::Paused,
        BatchStatus::Done,
        BatchStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Validating => "validating",
            BatchStatus::Invalid => "invalid",
            BatchStatus::AwaitingConfirmation => "awaiting_confirmation",
            BatchStatus::Processing => "processing",
            BatchStatus::Paused => "paused",
            BatchStatus::Done => "done",
            BatchStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<BatchStatus> {
        BatchStatus::ALL.into_iter().find(|status| status.as_str() == text)
    }

    pub fn label(self) -> &'static str {
        match self {
            BatchStatus::Validating => "Being checked",
            BatchStatus::Invalid => "Has errors",
            BatchStatus::AwaitingConfirmation => "Awaiting confirmation",
            BatchStatus::Processing => "Processing",
            BatchStatus::Paused => "Paused",
            BatchStatus::Done => "Done",
            BatchStatus::Cancelled => "Cancelled",
        }
    }
}

/// What the rows of a batch move, per kind and currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Total {
    /// `refund`, `capture`, `release`, `reversal` or `payout`.
    pub kind: String,
    pub currency: String,
    /// Minor units.
    pub amount: i64,
    pub rows: i64,
}

/// A batch as its pages and the API show it.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BatchView {
    pub id: i64,
    pub file_name: String,
    /// SHA-256 of the file, hex.
    pub file_hash: String,
    pub status: BatchStatus,
    pub rows: i32,
    /// Rows with problems (an invalid batch runs none).
    pub errors: i32,
    pub succeeded: i32,
    pub declined: i32,
    pub failed: i32,
    /// Rows not yet processed.
    pub pending: i32,
    pub totals: Vec<Total>,
    pub project_ids: Vec<i64>,
    /// Whether confirming it needs an SMS code (it pays out).
    pub pays_out: bool,
    pub created_by: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub confirmed_by: Option<i64>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = batches, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct BatchRow {
    id: i64,
    created_by: i64,
    file_name: String,
    file_hash: String,
    status: String,
    row_count: i32,
    error_count: i32,
    totals: String,
    project_ids: String,
    succeeded: i32,
    declined: i32,
    failed: i32,
    confirmed_by: Option<i64>,
    created_at: NaiveDateTime,
    finished_at: Option<NaiveDateTime>,
}

impl BatchRow {
    fn view(self) -> BatchView {
        let totals: Vec<Total> = serde_json::from_str(&self.totals).unwrap_or_default();
        let status = BatchStatus::parse(&self.status).unwrap_or(BatchStatus::Invalid);
        let processed = self.succeeded + self.declined + self.failed;
        BatchView {
            id: self.id,
            file_name: self.file_name,
            file_hash: self.file_hash,
            status,
            rows: self.row_count,
            errors: self.error_count,
            succeeded: self.succeeded,
            declined: self.declined,
            failed: self.failed,
            pending: if matches!(status, BatchStatus::Invalid | BatchStatus::Validating) {
                0
            } else {
                self.row_count - processed
            },
            pays_out: totals.iter().any(|total| total.kind == Kind::Payout.as_str()),
            totals,
            project_ids: self.project_ids.split(',').filter_map(|id| id.parse().ok()).collect(),
            created_by: self.created_by,
            created_at: self.created_at.and_utc(),
            confirmed_by: self.confirmed_by,
            finished_at: self.finished_at.map(|at| at.and_utc()),
        }
    }
}

/// Checks the file and stores it as a batch with its rows and their problems: invalid
/// when any row has one, else awaiting confirmation. Audited. The rows are checked and
/// stored two thousand at a time, in a task of its own: a request dropped halfway (the
/// browser closed) leaves a whole batch, never part of one.
pub async fn upload(
    state: &AppState,
    principal: &Principal,
    file_name: &str,
    bytes: Vec<u8>,
    kind: Option<Kind>,
) -> Result<BatchView, AppError> {
    let (state_of_task, principal_of_task) = (state.clone(), principal.clone());
    let file_name = clean_name(file_name);
    let stored = tokio::spawn(async move {
        let (state, principal) = (&state_of_task, &principal_of_task);
        let started = std::time::Instant::now();
        let mut sheet = validate::Sheet::read(&bytes, kind)?;
        let file_hash = hex(&Sha256::digest(&bytes));
        let id = begin(state, principal, &file_name, &file_hash, &sheet).await?;
        match check_and_store(state, principal, id, &mut sheet, kind).await {
            Ok(summary) => {
                let rows = sheet.rows;
                finish_upload(state, principal, id, &file_name, rows, summary).await?;
                tracing::info!(batch = id, rows, ms = started.elapsed().as_millis(), "batch file checked and stored");
                Ok(id)
            }
            Err(error) => {
                forget(state, id).await?;
                Err(error)
            }
        }
    })
    .await
    .map_err(|e| AppError::Internal(format!("the batch file's check stopped: {e}")))?;
    view(state, principal, stored?).await
}

/// The batch, being checked.
async fn begin(
    state: &AppState,
    principal: &Principal,
    file_name: &str,
    file_hash: &str,
    sheet: &validate::Sheet<'_>,
) -> Result<i64, AppError> {
    let (company_id, user_id, created_at) = (principal.company_id, principal.user_id, now());
    let header = serde_json::to_string(&sheet.header).unwrap_or_default();
    let rows = i32::try_from(sheet.rows).unwrap_or(i32::MAX);
    dashboard_core::db_write!(state.db, conn => {
        diesel::insert_into(batches::table)
            .values((
                batches::company_id.eq(company_id),
                batches::created_by.eq(user_id),
                batches::file_name.eq(file_name),
                batches::file_hash.eq(file_hash),
                batches::status.eq(BatchStatus::Validating.as_str()),
                batches::row_count.eq(rows),
                batches::error_count.eq(0),
                batches::totals.eq("[]"),
                batches::kinds.eq(",,"),
                batches::project_ids.eq(",,"),
                batches::header.eq(&header),
                batches::created_at.eq(created_at),
            ))
            .returning(batches::id)
            .get_result(conn)
            .await
    })
    .map_err(AppError::from)
}

/// What the rows checked so far add up to.
#[derive(Default)]
struct Summary {
    errors: usize,
    /// Per kind and currency: the amount and the rows.
    totals: std::collections::BTreeMap<(&'static str, String), (i64, i64)>,
    projects: std::collections::BTreeSet<i64>,
    kinds: std::collections::BTreeSet<&'static str>,
}

impl Summary {
    fn add(&mut self, row: &validate::CheckedRow) {
        self.projects.extend(row.project_id);
        self.kinds.extend(row.kind.map(Kind::as_str));
        if !row.errors.is_empty() {
            self.errors += 1;
            return;
        }
        if let (Some(kind), Some(currency), Some(amount)) = (row.kind, &row.currency, row.amount) {
            let total = self.totals.entry((kind.as_str(), currency.clone())).or_default();
            *total = (total.0 + amount, total.1 + 1);
        }
    }

    fn totals(&self) -> Vec<Total> {
        self.totals
            .iter()
            .map(|((kind, currency), &(amount, rows))| Total {
                kind: (*kind).to_owned(),
                currency: currency.clone(),
                amount,
                rows,
            })
            .collect()
    }
}

/// Checks the sheet's rows and stores them with their problems, two thousand at a time:
/// each two thousand are stored while the next is checked.
async fn check_and_store(
    state: &AppState,
    principal: &Principal,
    batch_id: i64,
    sheet: &mut validate::Sheet<'_>,
    kind: Option<Kind>,
) -> Result<Summary, AppError> {
    let mut checker = validate::Checker::new(state, principal, &sheet.header, kind);
    let mut summary = Summary::default();
    let mut checked_before = Vec::new();
    loop {
        let rows = sheet.next_rows(CHECKED_TOGETHER)?;
        let (checked, ()) = futures_util::try_join!(checker.check(rows), store_rows(state, batch_id, &checked_before))?;
        if checked.is_empty() {
            return Ok(summary);
        }
        checked.iter().for_each(|row| summary.add(row));
        checked_before = checked;
    }
}

/// The batch checked: invalid or awaiting confirmation, with what it adds up to, and the
/// upload's audit entry in the same write.
async fn finish_upload(
    state: &AppState,
    principal: &Principal,
    id: i64,
    file_name: &str,
    rows: usize,
    summary: Summary,
) -> Result<(), AppError> {
    let status = if summary.errors > 0 { BatchStatus::Invalid } else { BatchStatus::AwaitingConfirmation };
    let listed = |items: Vec<String>| format!(",{},", items.join(","));
    let kinds = listed(summary.kinds.iter().map(|kind| (*kind).to_owned()).collect());
    let projects = listed(summary.projects.iter().map(i64::to_string).collect());
    let totals = serde_json::to_string(&summary.totals()).unwrap_or_default();
    let event = AuditEvent::by_user(principal.company_id, principal.user_id, "batch.upload", "success")
        .target(format!("batch {id}"))
        .details(serde_json::json!({ "file": file_name, "rows": rows, "errors": summary.errors }));
    dashboard_core::db_transaction!(state.db, conn => {
        diesel::update(batches::table.find(id))
            .set((
                batches::status.eq(status.as_str()),
                batches::error_count.eq(i32::try_from(summary.errors).unwrap_or(i32::MAX)),
                batches::totals.eq(&totals),
                batches::kinds.eq(&kinds),
                batches::project_ids.eq(&projects),
            ))
            .execute(conn)
            .await?;
        record_audit!(conn, event)?;
        Ok::<_, AppError>(())
    })
}

/// A batch whose check failed as a whole (the database went away): removed, rows first.
pub(crate) async fn forget(state: &AppState, id: i64) -> Result<(), AppError> {
    dashboard_core::db_transaction!(state.db, conn => {
        diesel::delete(batch_rows::table.filter(batch_rows::batch_id.eq(id))).execute(conn).await?;
        diesel::delete(batches::table.find(id)).execute(conn).await?;
        Ok::<_, AppError>(())
    })
}

/// A checked row as stored.
#[derive(Insertable)]
#[diesel(table_name = batch_rows, treat_none_as_default_value = false)]
struct NewRow<'r> {
    batch_id: i64,
    row_number: i32,
    kind: &'r str,
    cells: String,
    error: Option<String>,
    payment_id: Option<&'r str>,
    project_id: Option<i64>,
    amount: Option<i64>,
    currency: Option<&'r str>,
    /// The payout's card, sealed.
    card: Option<String>,
    merchant_order_id: Option<&'r str>,
    status: &'static str,
    reason: Option<&'r str>,
}

/// Writes checked rows.
async fn store_rows(state: &AppState, batch_id: i64, rows: &[validate::CheckedRow]) -> Result<(), AppError> {
    if rows.is_empty() {
        return Ok(());
    }
    let rows: Vec<NewRow> = rows
        .iter()
        .map(|row| NewRow {
            batch_id,
            row_number: row.number,
            kind: row.kind.map(Kind::as_str).unwrap_or_default(),
            cells: serde_json::to_string(&row.cells).unwrap_or_default(),
            error: (!row.errors.is_empty()).then(|| row.errors.join("; ")),
            payment_id: row.payment_id.as_deref(),
            project_id: row.project_id,
            amount: row.amount,
            currency: row.currency.as_deref(),
            card: row
                .card
                .as_ref()
                .map(|card| state.secrets.seal(&card_context(batch_id, row.number), &card_text(card))),
            merchant_order_id: row.merchant_order_id.as_deref(),
            status: if row.errors.is_empty() { "pending" } else { "invalid" },
            reason: row.reason.as_deref(),
        })
        .collect();
    dashboard_core::db_transaction!(state.db, conn => conn.store_rows(&rows).await)?;
    Ok(())
}

/// Writes rows with the caller's connection.
trait StoreRows {
    fn store_rows<'a>(&'a mut self, rows: &'a [NewRow<'a>]) -> BoxFuture<'a, QueryResult<()>>;
}

/// One statement for them all: on PostgreSQL each statement is a round trip. The rows go
/// as one array per column, unnested by the server: a dozen parameters rather than a
/// dozen per row, and one statement prepared once rather than a long one planned for
/// each two thousand. Their commit does not wait for the disk: until the check ends, a batch
/// lost in a crash is removed anyway (see `run::forget_abandoned`), and the check's last
/// commit, which waits, makes every row written before it durable with it.
impl StoreRows for dashboard_core::db::PgConn {
    fn store_rows<'a>(&'a mut self, rows: &'a [NewRow<'a>]) -> BoxFuture<'a, QueryResult<()>> {
        use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
        Box::pin(async move {
            diesel::sql_query("SET LOCAL synchronous_commit TO OFF").execute(&mut *self).await?;
            diesel::sql_query(
                "INSERT INTO batch_rows (batch_id, row_number, kind, cells, error, payment_id, project_id, amount, \
                 currency, card, merchant_order_id, status, reason) \
                 SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])",
            )
            .bind::<Array<BigInt>, _>(rows.iter().map(|row| row.batch_id).collect::<Vec<_>>())
            .bind::<Array<Integer>, _>(rows.iter().map(|row| row.row_number).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(rows.iter().map(|row| row.kind).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(rows.iter().map(|row| row.cells.as_str()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|row| row.error.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|row| row.payment_id).collect::<Vec<_>>())
            .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|row| row.project_id).collect::<Vec<_>>())
            .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|row| row.amount).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|row| row.currency).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|row| row.card.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|row| row.merchant_order_id).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(rows.iter().map(|row| row.status).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|row| row.reason).collect::<Vec<_>>())
            .execute(self)
            .await
            .map(drop)
        })
    }
}

/// One statement each: diesel-async offers no multi-row insert on SQLite, where a
/// statement costs no round trip anyway.
impl StoreRows for dashboard_core::db::SqliteWriteConn {
    fn store_rows<'a>(&'a mut self, rows: &'a [NewRow<'a>]) -> BoxFuture<'a, QueryResult<()>> {
        Box::pin(async move {
            for row in rows {
                diesel::insert_into(batch_rows::table).values(row).execute(self).await?;
            }
            Ok(())
        })
    }
}

/// What a sealed card is bound to: its batch and row.
pub(crate) fn card_context(batch_id: i64, row: i32) -> String {
    format!("batch-card:{batch_id}:{row}")
}

/// A payout card as sealed: number, expiry and holder.
fn card_text(card: &Card) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "number": card.number.digits(),
        "month": card.expiry_month,
        "year": card.expiry_year,
        "holder": card.holder,
    }))
    .unwrap_or_default()
}

/// The card a sealed text holds.
pub(crate) fn card_of(text: &[u8]) -> Result<Card, AppError> {
    let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| AppError::Internal(e.to_string()))?;
    let whole = |name: &str| value[name].as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    Card::payee(
        value["number"].as_str().unwrap_or_default(),
        whole("month"),
        whole("year"),
        value["holder"].as_str().map(str::to_owned),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A file name as shown: its last path part, printable, at most 120 characters.
fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = base.chars().filter(|c| !c.is_control()).take(120).collect();
    if clean.trim().is_empty() { "batch.csv".to_owned() } else { clean.trim().to_owned() }
}

/// A batch of the principal's company.
pub async fn view(state: &AppState, principal: &Principal, id: i64) -> Result<BatchView, AppError> {
    Ok(load(state, principal, id).await?.view())
}

async fn load(state: &AppState, principal: &Principal, id: i64) -> Result<BatchRow, AppError> {
    let company_id = principal.company_id;
    let row: Option<BatchRow> = dashboard_core::db_run!(state.db, conn => {
        batches::table
            .filter(batches::id.eq(id))
            .filter(batches::company_id.eq(company_id))
            .select(BatchRow::as_select())
            .first(conn)
            .await
            .optional()
    })?;
    let row = row.ok_or(AppError::NotFound)?;
    // A batch of projects the principal may not all see is not theirs to see.
    let projects: Vec<i64> = row.project_ids.split(',').filter_map(|id| id.parse().ok()).collect();
    if projects.iter().any(|project| !principal.projects.allows(*project)) {
        return Err(AppError::NotFound);
    }
    Ok(row)
}

/// The register's filters, as typed.
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
pub struct BatchFilter {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    /// Keyset cursor: batches older than this id.
    #[serde(default)]
    pub before: Option<i64>,
}

/// One page of the company's batches the principal may see, newest first.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    filter: &BatchFilter,
    limit: i64,
) -> Result<(Vec<BatchView>, Option<i64>), AppError> {
    let text = |value: &Option<String>| value.clone().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let status = text(&filter.status)
        .map(|s| BatchStatus::parse(&s).ok_or_else(|| AppError::BadRequest(format!("{s:?} is not a batch status."))))
        .transpose()?;
    let kind = text(&filter.kind)
        .map(|k| Kind::parse(&k).ok_or_else(|| AppError::BadRequest(format!("{k:?} is not a kind of row."))))
        .transpose()?;
    let project = text(&filter.project_id)
        .map(|p| p.parse::<i64>().map_err(|_| AppError::BadRequest("Choose a project from the list.".to_owned())))
        .transpose()?;
    let (since, until) = local_days(filter.from.as_deref(), filter.to.as_deref(), &principal.time_zone)?;
    let (company_id, before) = (principal.company_id, filter.before);
    let mut found = Vec::new();
    let mut cursor = before;
    // Batches of projects the principal may not see are skipped: read on until the page
    // is full.
    loop {
        let rows: Vec<BatchRow> = dashboard_core::db_run!(state.db, conn => {
            let mut query = batches::table
                .filter(batches::company_id.eq(company_id))
                .select(BatchRow::as_select())
                .order(batches::id.desc())
                .limit(limit + 1)
                .into_boxed();
            if let Some(cursor) = cursor {
                query = query.filter(batches::id.lt(cursor));
            }
            if let Some(status) = status {
                query = query.filter(batches::status.eq(status.as_str()));
            }
            if let Some(kind) = kind {
                query = query.filter(batches::kinds.like(format!("%,{},%", kind.as_str())));
            }
            if let Some(project) = project {
                query = query.filter(batches::project_ids.like(format!("%,{project},%")));
            }
            if let Some(since) = since {
                query = query.filter(batches::created_at.ge(since));
            }
            if let Some(until) = until {
                query = query.filter(batches::created_at.lt(until));
            }
            query.load(conn).await
        })?;
        let exhausted = rows.len() <= usize::try_from(limit).unwrap_or(usize::MAX);
        cursor = rows.last().map(|row| row.id);
        for row in rows {
            let projects: Vec<i64> = row.project_ids.split(',').filter_map(|id| id.parse().ok()).collect();
            if projects.iter().all(|project| principal.projects.allows(*project)) {
                found.push(row.view());
            }
        }
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        if found.len() > wanted {
            found.truncate(wanted);
            let next = found.last().map(|batch| batch.id);
            return Ok((found, next));
        }
        if exhausted {
            return Ok((found, None));
        }
    }
}

/// What the code of a batch with payouts is bound to.
fn confirmation_of(batch: &BatchView) -> Confirmation {
    Confirmation::Batch {
        batch_id: batch.id,
        file_name: batch.file_name.clone(),
        file_hash: batch.file_hash.clone(),
        rows: u32::try_from(batch.rows).unwrap_or(u32::MAX),
        totals: batch
            .totals
            .iter()
            .map(|total| {
                (Kind::parse(&total.kind).map_or("rows", Kind::plural).to_owned(), total.currency.clone(), total.amount)
            })
            .collect(),
    }
}

/// Sends the SMS code that confirms this batch (its file, rows and totals) to the
/// principal's phone; for a batch with payouts, confirmed by a person.
pub async fn request_code(state: &AppState, principal: &Principal, id: i64) -> Result<String, AppError> {
    let batch = view(state, principal, id).await?;
    if batch.status != BatchStatus::AwaitingConfirmation {
        return Err(AppError::Conflict(format!(
            "This batch is {}: it cannot be confirmed.",
            batch.status.label().to_lowercase()
        )));
    }
    if principal.via_api_token || !batch.pays_out {
        return Err(AppError::BadRequest("This batch is confirmed without an SMS code.".to_owned()));
    }
    let phone = dashboard_core::directory::profile_phone(&state.db, principal.user_id).await?.ok_or_else(|| {
        AppError::Refused("Payouts are confirmed with a code sent by SMS: add a phone number in My profile.".to_owned())
    })?;
    sms::request_confirmation(state, principal.user_id, &phone, &confirmation_of(&batch)).await?;
    let last: String = phone.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    Ok(format!("…{last}"))
}

/// Confirms a batch awaiting it: with the SMS code sent for it when it pays out and a
/// person confirms. Processing starts at once (in the background); once only. Audited.
pub async fn confirm(
    state: &AppState,
    principal: &Principal,
    id: i64,
    code: Option<&str>,
) -> Result<BatchView, AppError> {
    let batch = view(state, principal, id).await?;
    let kinds_allowed = batch.totals.iter().all(|total| match Kind::parse(&total.kind) {
        Some(Kind::Payout) => principal.has_permission(crate::PAYOUT),
        _ => principal.has_permission(crate::ACT),
    });
    if !kinds_allowed {
        return Err(AppError::Forbidden);
    }
    if batch.status != BatchStatus::AwaitingConfirmation {
        return Err(AppError::Conflict(format!(
            "This batch is {}: it cannot be confirmed.",
            batch.status.label().to_lowercase()
        )));
    }
    let code_id = if batch.pays_out && !principal.via_api_token {
        let code = code.map(str::trim).filter(|code| !code.is_empty()).ok_or_else(|| {
            AppError::Refused("A batch with payouts is confirmed with the code sent by SMS for it.".to_owned())
        })?;
        let found = sms::confirming_code(state, principal.user_id, &confirmation_of(&batch), code).await?;
        Some(found.ok_or_else(|| {
            AppError::Refused(
                "The SMS code does not confirm this batch: it is wrong, used or expired, or it was sent for another \
                 file. Ask for a new code."
                    .to_owned(),
            )
        })?)
    } else {
        None
    };
    let (company_id, user_id, at) = (principal.company_id, principal.user_id, now());
    let moved = dashboard_core::db_transaction!(state.db, conn => {
        if let Some(code_id) = code_id
            && dashboard_core::use_code!(conn, code_id) != 1
        {
            return Err(AppError::Refused("This SMS code was used already. Ask for a new code.".to_owned()));
        }
        let moved = diesel::update(
            batches::table.find(id).filter(batches::status.eq(BatchStatus::AwaitingConfirmation.as_str())),
        )
        .set((
            batches::status.eq(BatchStatus::Processing.as_str()),
            batches::confirmed_by.eq(user_id),
            batches::confirmed_at.eq(at),
        ))
        .execute(conn)
        .await?;
        if moved == 1 {
            let event = AuditEvent::by_user(company_id, user_id, "batch.confirm", "success").target(format!("batch {id}"));
            record_audit!(conn, event)?;
        }
        Ok::<_, AppError>(moved)
    })?;
    if moved != 1 {
        return Err(AppError::Conflict("This batch was confirmed already.".to_owned()));
    }
    view(state, principal, id).await
}

/// Pauses, resumes or cancels a batch (cancelling marks the rows not yet processed).
/// Audited.
pub async fn control(state: &AppState, principal: &Principal, id: i64, to: Control) -> Result<BatchView, AppError> {
    let batch = view(state, principal, id).await?;
    let (from, into): (&[BatchStatus], BatchStatus) = match to {
        Control::Pause => (&[BatchStatus::Processing], BatchStatus::Paused),
        Control::Resume => (&[BatchStatus::Paused], BatchStatus::Processing),
        Control::Cancel => {
            (&[BatchStatus::AwaitingConfirmation, BatchStatus::Processing, BatchStatus::Paused], BatchStatus::Cancelled)
        }
    };
    if !from.contains(&batch.status) {
        return Err(AppError::Conflict(format!(
            "This batch is {}: it cannot be {}.",
            batch.status.label().to_lowercase(),
            to.done()
        )));
    }
    let (company_id, user_id, at) = (principal.company_id, principal.user_id, now());
    let from: Vec<&str> = from.iter().map(|status| status.as_str()).collect();
    dashboard_core::db_transaction!(state.db, conn => {
        let moved = diesel::update(batches::table.find(id).filter(batches::status.eq_any(&from)))
            .set((
                batches::status.eq(into.as_str()),
                batches::finished_at.eq((into == BatchStatus::Cancelled).then_some(at)),
            ))
            .execute(conn)
            .await?;
        if moved != 1 {
            return Err(AppError::Conflict("This batch changed meanwhile: look at it again.".to_owned()));
        }
        if into == BatchStatus::Cancelled {
            diesel::update(batch_rows::table.filter(batch_rows::batch_id.eq(id)).filter(batch_rows::status.eq("pending")))
                .set((batch_rows::status.eq("cancelled"), batch_rows::card.eq(None::<String>), batch_rows::done_at.eq(at)))
                .execute(conn)
                .await?;
        }
        let event = AuditEvent::by_user(company_id, user_id, to.action(), "success").target(format!("batch {id}"));
        record_audit!(conn, event)?;
        Ok::<_, AppError>(())
    })?;
    view(state, principal, id).await
}

/// A change a person makes to a running batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Cancel,
}

impl Control {
    fn done(self) -> &'static str {
        match self {
            Control::Pause => "paused",
            Control::Resume => "resumed",
            Control::Cancel => "cancelled",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Control::Pause => "batch.pause",
            Control::Resume => "batch.resume",
            Control::Cancel => "batch.cancel",
        }
    }
}

/// A row of a batch as its results show it.
#[derive(Debug, Clone, Serialize, Queryable, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RowResult {
    pub row: i32,
    pub kind: String,
    /// The cells as typed (a card number masked).
    #[oai(skip)]
    #[serde(skip)]
    pub cells: String,
    /// What was wrong with it when the file was checked.
    pub error: Option<String>,
    /// The payment it acted on, or the payout it made.
    pub payment_id: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    /// `pending`, `succeeded`, `declined`, `failed`, `cancelled` or `invalid`.
    pub status: String,
    /// Why it was declined or failed.
    pub result: Option<String>,
}

/// The columns of a batch's file, as its header named them (the annotated file's).
pub async fn columns(state: &AppState, principal: &Principal, id: i64) -> Result<Vec<String>, AppError> {
    load(state, principal, id).await?;
    let text: String = dashboard_core::db_run!(state.db, conn => {
        batches::table.find(id).select(batches::header).first(conn).await
    })?;
    Ok(serde_json::from_str(&text).unwrap_or_default())
}

/// A page of a batch's rows in file order, after row `after`.
pub async fn rows(
    state: &AppState,
    principal: &Principal,
    id: i64,
    only_problems: bool,
    after: Option<i32>,
    limit: i64,
) -> Result<(Vec<RowResult>, Option<i32>), AppError> {
    load(state, principal, id).await?;
    let rows: Vec<RowResult> = dashboard_core::db_run!(state.db, conn => {
        let mut query = batch_rows::table
            .filter(batch_rows::batch_id.eq(id))
            .filter(batch_rows::row_number.gt(after.unwrap_or(0)))
            .select((
                batch_rows::row_number,
                batch_rows::kind,
                batch_rows::cells,
                batch_rows::error,
                batch_rows::payment_id,
                batch_rows::amount,
                batch_rows::currency,
                batch_rows::status,
                batch_rows::result,
            ))
            .order(batch_rows::row_number.asc())
            .limit(limit + 1)
            .into_boxed();
        if only_problems {
            query = query.filter(batch_rows::status.eq_any(["invalid", "declined", "failed"]));
        }
        query.load(conn).await
    })?;
    let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
    let next = (rows.len() > wanted).then(|| rows[wanted - 1].row);
    Ok((rows.into_iter().take(wanted).collect(), next))
}
